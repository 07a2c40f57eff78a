#!/usr/bin/env python3
"""Cross-check helper: signs and verifies Stripe webhook headers with the OFFICIAL
stripe-python SDK, so crates/stripe/tests/official_sdks.rs can prove our Rust
implementation agrees with Stripe's own code.

The payload is read from stdin (raw bytes, decoded as UTF-8 like the SDK does).
  python3 sign.py sign   <secret> <timestamp>        -> prints the header
  python3 sign.py verify <secret> <header> [tolerance_secs]
       -> prints "ok <event id>" and exits 0, or the SDK's error and exits 1.
          stripe-python checks the timestamp against the real clock (time.time()).
Exit code 2: usage error; 3: the stripe package is not installed.
"""
import sys

try:
    import stripe
    from stripe import Webhook, WebhookSignature
except ImportError as e:  # pragma: no cover - exercised only on a bare machine
    print(
        "sign.py: cannot import the PyPI package 'stripe'; run "
        f"tests/official-stripe/install.sh ({e})",
        file=sys.stderr,
    )
    sys.exit(3)


def main(argv):
    if argv[:1] == ["version"]:
        print(stripe.VERSION)
        return 0
    if len(argv) == 3 and argv[0] == "sign":
        payload = sys.stdin.buffer.read().decode("utf-8")
        header = WebhookSignature.generate_signature_header(
            payload, argv[1], timestamp=int(argv[2])
        )
        print(header)
        return 0
    if len(argv) in (3, 4) and argv[0] == "verify":
        payload = sys.stdin.buffer.read()
        tolerance = int(argv[3]) if len(argv) == 4 else Webhook.DEFAULT_TOLERANCE
        try:
            event = Webhook.construct_event(payload, argv[2], argv[1], tolerance)
        except stripe.SignatureVerificationError as e:
            print(f"rejected: {e}")
            return 1
        print(f"ok {event.id}")
        return 0
    print(
        "usage: python3 sign.py version | sign <secret> <timestamp> | "
        "verify <secret> <header> [tolerance]  (payload on stdin)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
