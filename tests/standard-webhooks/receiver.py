#!/usr/bin/env python3
"""A notification receiver for subsync's tests, verifying every request with the official
Standard Webhooks library (PyPI `standardwebhooks`, pinned in requirements.txt).

    receiver.py serve --secret whsec_... [--fail-rate 0.3] [--redirect-rate 0.05]
                      [--down-from N --down-for SECONDS] [--stall-first SECONDS] [--seed 7]
        Listens on 127.0.0.1 (port chosen by the OS), prints `PORT <n>` on stdout, then one
        JSON line per request received: {"id", "user_id", "version", "status", "verified",
        "error", "t"}. Unverifiable requests are answered 400; verified ones 2xx unless this
        one is picked to fail (500), to redirect (307), or arrives while the receiver is
        "down" (503), or is the first one and is stalled before answering.

    receiver.py verify --secret whsec_...
        Reads JSON lines {"id", "timestamp", "signature", "body"} on stdin and prints one
        line per input: `ok` or `refused: <why>`.
"""
import argparse
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def serve(args):
    hook = Webhook(args.secret)
    rng = random.Random(args.seed)
    lock = threading.Lock()
    state = {"received": 0, "down_until": None, "stalled": False}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k: v for k, v in self.headers.items()}
            record = {"id": headers.get("webhook-id"), "t": time.time()}
            try:
                payload = hook.verify(body, headers)
                record.update(verified=True, user_id=payload.get("user_id"), version=payload.get("version"))
            except (WebhookVerificationError, ValueError) as e:
                record.update(verified=False, error=str(e))
                return self.answer(400, record)
            with lock:
                state["received"] += 1
                n = state["received"]
                now = time.time()
                if args.down_from and n == args.down_from:
                    state["down_until"] = now + args.down_for
                down = state["down_until"] is not None and now < state["down_until"]
                stall = args.stall_first > 0 and not state["stalled"]
                state["stalled"] = state["stalled"] or stall
                roll = rng.random()
            if stall:
                record["stalled"] = True
                emit(record | {"status": "stalling"})
                time.sleep(args.stall_first)
            if down:
                return self.answer(503, record)
            if roll < args.fail_rate:
                return self.answer(500, record)
            if roll < args.fail_rate + args.redirect_rate:
                return self.answer(307, record, location="http://127.0.0.1:9/elsewhere")
            return self.answer(204, record)

        def answer(self, status, record, location=None):
            record["status"] = status
            emit(record)
            self.send_response(status)
            if location:
                self.send_header("location", location)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


_out = threading.Lock()


def emit(record):
    with _out:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def verify(args):
    hook = Webhook(args.secret)
    for line in sys.stdin:
        if not line.strip():
            continue
        m = json.loads(line)
        headers = {"webhook-id": m["id"], "webhook-timestamp": str(m["timestamp"]), "webhook-signature": m["signature"]}
        try:
            hook.verify(m["body"], headers)
            print("ok", flush=True)
        except WebhookVerificationError as e:
            print(f"refused: {e}", flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--secret", required=True)
    s.add_argument("--fail-rate", type=float, default=0.0)
    s.add_argument("--redirect-rate", type=float, default=0.0)
    s.add_argument("--down-from", type=int, default=0)
    s.add_argument("--down-for", type=float, default=0.0)
    s.add_argument("--stall-first", type=float, default=0.0)
    s.add_argument("--seed", type=int, default=7)
    v = sub.add_parser("verify")
    v.add_argument("--secret", required=True)
    args = p.parse_args()
    serve(args) if args.cmd == "serve" else verify(args)


if __name__ == "__main__":
    main()
