#!/usr/bin/env bash
# Sign a paygate merchant request with bash and the openssl command (OpenSSL 3).
#
# Environment: PAYGATE_MERCHANT, PAYGATE_ALGORITHM (hmac-sha256 | rsa-sha256 | ed25519;
# default hmac-sha256), PAYGATE_SECRET (hmac) or PAYGATE_PRIVATE_KEY (path of a PEM private
# key), PAYGATE_METHOD, PAYGATE_URI (path plus "?" and the query, exactly as sent),
# PAYGATE_BODY_FILE (optional), PAYGATE_TIMESTAMP and PAYGATE_NONCE (optional).
# Prints the four X-Paygate-* headers, one "Name: value" per line; for example
#   mapfile -t h < <(./sign.sh)
#   curl -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" --data-binary @"$PAYGATE_BODY_FILE" ...
set -euo pipefail

ts=${PAYGATE_TIMESTAMP:-$(date +%s)}
nonce=${PAYGATE_NONCE:-$(openssl rand -hex 16)}
msg=$(mktemp)
trap 'rm -f "$msg"' EXIT
# The canonical message: five lines, each ending in "\n"; the body as raw bytes. It is
# written to a file because $(...) would drop the body's trailing newlines.
{
	printf '%s\n%s\n%s\n%s\n' "$PAYGATE_METHOD" "$PAYGATE_URI" "$ts" "$nonce"
	if [ -n "${PAYGATE_BODY_FILE:-}" ]; then cat "$PAYGATE_BODY_FILE"; fi
	printf '\n'
} >"$msg"

case ${PAYGATE_ALGORITHM:-hmac-sha256} in
hmac-sha256)
	key=$(printf '%s' "$PAYGATE_SECRET" | od -An -v -tx1 | tr -d ' \n') # hex: any byte of the secret survives
	sig=$(openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary "$msg" | openssl base64 -A)
	;;
rsa-sha256) sig=$(openssl dgst -sha256 -sign "$PAYGATE_PRIVATE_KEY" -binary "$msg" | openssl base64 -A) ;;
ed25519) sig=$(openssl pkeyutl -sign -inkey "$PAYGATE_PRIVATE_KEY" -rawin -in "$msg" | openssl base64 -A) ;;
*) echo "unknown algorithm $PAYGATE_ALGORITHM" >&2; exit 2 ;;
esac

echo "X-Paygate-Merchant: $PAYGATE_MERCHANT"
echo "X-Paygate-Timestamp: $ts"
echo "X-Paygate-Nonce: $nonce"
echo "X-Paygate-Signature: $sig"
