#!/usr/bin/env python3
"""Fidelity helper: reads subsync's fake Stripe API (crates/stripe-api, feature
`testing`) with the OFFICIAL stripe-python SDK, so
crates/stripe-api/tests/official_sdk.rs can prove the fake is a Stripe the
official client can read: "a fake that the official client cannot read is a
wrong fake".

  python3 fake_api.py version
  python3 fake_api.py read <base_url> <api_key>      (parameters as JSON on stdin)
       -> prints one JSON object: what the SDK listed and retrieved
  python3 fake_api.py wrong-key <base_url> <api_key>
       -> prints {"error": <class name>, "http_status": …, "message": …}
  python3 fake_api.py retry <base_url> <api_key> <subscription id> <max_network_retries>
       -> retrieves one subscription; prints {"id": …} or {"error": …}
Exit code 2: usage error; 3: the stripe package is not installed.

stdin for `read`: {"types": [...], "created_gte": int, "created_lt": int,
"event": id, "subscription": id, "customer": id, "ending_before": id}
"""
import json
import sys

try:
    import stripe
except ImportError as e:  # pragma: no cover - exercised only on a bare machine
    print(
        "fake_api.py: cannot import the PyPI package 'stripe'; run "
        f"tests/official-stripe/install.sh ({e})",
        file=sys.stderr,
    )
    sys.exit(3)


def client(base_url, api_key, retries=0):
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base_url},
        max_network_retries=retries,
    )


def dicts(items):
    return [item.to_dict() for item in items]


def read(base_url, api_key, params):
    c = client(base_url, api_key)
    events = c.v1.events
    out = {}
    first = events.list(params={"limit": 3})
    out["events_first_page"] = {
        "ids": [e.id for e in first.data],
        "has_more": first.has_more,
        "url": first.url,
        "object": first.object,
    }
    # Every event, three at a time, through the SDK's own pagination.
    out["events_all"] = dicts(first.auto_paging_iter())
    filtered = events.list(
        params={
            "limit": 2,
            "types": params["types"],
            "created": {"gte": params["created_gte"], "lt": params["created_lt"]},
        }
    )
    out["events_filtered"] = [e.id for e in filtered.auto_paging_iter()]
    wildcard = events.list(params={"limit": 4, "type": "customer.subscription.*"})
    out["events_wildcard"] = [e.id for e in wildcard.auto_paging_iter()]
    # Backwards: the SDK walks `ending_before` pages, oldest first.
    newer = events.list(params={"limit": 4, "ending_before": params["ending_before"]})
    out["events_newer_than"] = [e.id for e in newer.auto_paging_iter()]
    out["event"] = events.retrieve(params["event"]).to_dict()

    subs = c.v1.subscriptions.list(
        params={"status": "all", "expand": ["data.customer"], "limit": 2}
    )
    out["subscriptions_all"] = dicts(subs.auto_paging_iter())
    out["subscriptions_default"] = [
        s.id for s in c.v1.subscriptions.list(params={"limit": 100}).auto_paging_iter()
    ]
    sub = c.v1.subscriptions.retrieve(
        params["subscription"], params={"expand": ["customer"]}
    )
    out["subscription"] = sub.to_dict()
    out["subscription_customer_class"] = type(sub.customer).__name__
    out["customer"] = c.v1.customers.retrieve(params["customer"]).to_dict()
    sessions = c.v1.checkout.sessions.list(params={"subscription": params["subscription"]})
    out["checkout_sessions"] = dicts(sessions.data)
    try:
        c.v1.subscriptions.retrieve("sub_missing")
        out["missing"] = None
    except stripe.InvalidRequestError as e:
        out["missing"] = {"http_status": e.http_status, "code": e.code, "message": e.user_message}
    return out


def failure(e):
    return {
        "error": type(e).__name__,
        "http_status": e.http_status,
        "code": e.code,
        "message": e.user_message,
    }


def wrong_key(base_url, api_key):
    try:
        client(base_url, api_key, retries=2).v1.events.list(params={"limit": 1})
    except stripe.StripeError as e:
        return failure(e)
    return {"error": None}


def retry(base_url, api_key, subscription, retries):
    try:
        sub = client(base_url, api_key, retries=retries).v1.subscriptions.retrieve(subscription)
    except stripe.StripeError as e:
        return failure(e)
    return {"id": sub.id}


def main(argv):
    if argv[:1] == ["version"]:
        print(stripe.VERSION)
        return 0
    if len(argv) == 3 and argv[0] == "read":
        print(json.dumps(read(argv[1], argv[2], json.load(sys.stdin))))
        return 0
    if len(argv) == 3 and argv[0] == "wrong-key":
        print(json.dumps(wrong_key(argv[1], argv[2])))
        return 0
    if len(argv) == 5 and argv[0] == "retry":
        print(json.dumps(retry(argv[1], argv[2], argv[3], int(argv[4]))))
        return 0
    print(
        "usage: python3 fake_api.py version | read <base_url> <key> (JSON on stdin) | "
        "wrong-key <base_url> <key> | retry <base_url> <key> <subscription> <retries>",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
