#!/usr/bin/env python3
"""Sign a paygate merchant request (hmac-sha256), Python 3 standard library only.

Environment: PAYGATE_MERCHANT, PAYGATE_SECRET, PAYGATE_METHOD, PAYGATE_URI (path plus "?"
and the query, exactly as sent), PAYGATE_BODY_FILE (optional; no body when unset),
PAYGATE_TIMESTAMP and PAYGATE_NONCE (optional; now and a random nonce when unset).
Prints the four X-Paygate-* headers, one "Name: value" per line.
"""
import base64, hashlib, hmac, os, secrets, time


def canonical(method, uri, ts, nonce, body):
    # Five lines, each ending in "\n"; the body as raw bytes.
    return b"".join(part + b"\n" for part in (method.encode(), uri.encode(), str(ts).encode(), nonce.encode(), body))


def sign_hmac(secret, message):
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def main():
    env = os.environ
    body = b""
    if env.get("PAYGATE_BODY_FILE"):
        with open(env["PAYGATE_BODY_FILE"], "rb") as f:
            body = f.read()
    ts = int(env.get("PAYGATE_TIMESTAMP") or time.time())
    nonce = env.get("PAYGATE_NONCE") or secrets.token_hex(16)
    msg = canonical(env["PAYGATE_METHOD"], env["PAYGATE_URI"], ts, nonce, body)
    print("X-Paygate-Merchant: " + env["PAYGATE_MERCHANT"])
    print("X-Paygate-Timestamp: %d" % ts)
    print("X-Paygate-Nonce: " + nonce)
    print("X-Paygate-Signature: " + sign_hmac(env["PAYGATE_SECRET"].encode(), msg))


if __name__ == "__main__":
    main()
