package gateway

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/textproto"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/paygate/paygate/store"
)

// Merchant request authentication (CONTRACT §2).
//
// Order of checks: headers present and well-formed → merchant known →
// timestamp in window → signature valid (constant-time) → nonce claimed →
// body validated. The nonce is claimed by the store operation that serves
// the request (same round trip), so a request that fails an earlier check
// never burns its nonce.

const (
	hdrMerchant  = "X-Paygate-Merchant"
	hdrTimestamp = "X-Paygate-Timestamp"
	hdrNonce     = "X-Paygate-Nonce"
	hdrSignature = "X-Paygate-Signature"
)

// authHeaders are the four auth headers, parsed and copied out of the request.
type authHeaders struct {
	merchant  string
	timestamp int64
	tsRaw     string
	nonce     string
	signature []byte
}

// parseAuth checks that the four headers are present and well-formed. Any
// problem is 401 missing_auth naming the header.
func parseAuth(get func(name string) []byte) (authHeaders, error) {
	var a authHeaders
	m := get(hdrMerchant)
	if len(m) == 0 || len(m) > 64 || !isToken(m) {
		return a, missingAuth(hdrMerchant, len(m) == 0)
	}
	ts := get(hdrTimestamp)
	t, ok := parseUnix(ts)
	if !ok {
		return a, missingAuth(hdrTimestamp, len(ts) == 0)
	}
	n := get(hdrNonce)
	if len(n) < 16 || len(n) > 64 || !isToken(n) {
		return a, missingAuth(hdrNonce, len(n) == 0)
	}
	sig := get(hdrSignature)
	if len(sig) == 0 || len(sig) > 1024 {
		return a, missingAuth(hdrSignature, len(sig) == 0)
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(sig)))
	k, err := base64.StdEncoding.Strict().Decode(dec, sig)
	if err != nil || k == 0 {
		return a, missingAuth(hdrSignature, false)
	}
	a.merchant, a.timestamp, a.tsRaw, a.nonce, a.signature = string(m), t, string(ts), string(n), dec[:k]
	return a, nil
}

func missingAuth(header string, absent bool) error {
	if absent {
		return apiErr(http.StatusUnauthorized, codeMissingAuth, "%s header is missing", header)
	}
	return apiErr(http.StatusUnauthorized, codeMissingAuth, "%s header is malformed", header)
}

// paygateHeaderPrefix starts every header of paygate's own.
const paygateHeaderPrefix = "X-Paygate-"

// repeatedPaygateHeader names an X-Paygate-* header that h carries more than
// once, in any mix of cases, or returns "". Peek returns the first value, a
// proxy in front may act on the last: a request that could mean two things
// to two parts of the path is refused before any of it is used.
func repeatedPaygateHeader(h *fasthttp.RequestHeader) string {
	var seen [8][]byte // paygate defines four; a request with more distinct ones still works
	n := 0
	for k := range h.All() {
		if len(k) < len(paygateHeaderPrefix) || !bytes.EqualFold(k[:len(paygateHeaderPrefix)], []byte(paygateHeaderPrefix)) {
			continue
		}
		for _, prev := range seen[:n] {
			if bytes.EqualFold(prev, k) {
				return textproto.CanonicalMIMEHeaderKey(string(k))
			}
		}
		if n < len(seen) {
			seen[n] = k
			n++
		}
	}
	return ""
}

// isToken: [A-Za-z0-9_-]+
func isToken(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return len(b) > 0
}

// parseUnix parses 1–12 decimal digits.
func parseUnix(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonical appends the canonical message of CONTRACT §2 to dst.
func canonical(dst []byte, method, requestURI []byte, ts, nonce string, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, '\n')
	dst = append(dst, requestURI...)
	dst = append(dst, '\n')
	dst = append(dst, ts...)
	dst = append(dst, '\n')
	dst = append(dst, nonce...)
	dst = append(dst, '\n')
	dst = append(dst, body...)
	return append(dst, '\n')
}

var msgPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// keyVerifier checks a signature over a canonical message.
type keyVerifier interface {
	verify(msg, sig []byte) bool
}

// hmacKey verifies hmac-sha256 with a pool of keyed hashes (hmac.New costs
// allocations and two key-block hashes; Reset keeps the keyed state).
type hmacKey struct{ pool sync.Pool }

func newHMACKey(secret []byte) *hmacKey {
	k := &hmacKey{}
	key := append([]byte(nil), secret...)
	k.pool.New = func() any { return hmac.New(sha256.New, key) }
	return k
}

func (k *hmacKey) verify(msg, sig []byte) bool {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(msg)
	var sum [sha256.Size]byte
	ok := hmac.Equal(h.Sum(sum[:0]), sig)
	k.pool.Put(h)
	return ok
}

type rsaKey struct{ pub *rsa.PublicKey }

func (k rsaKey) verify(msg, sig []byte) bool {
	d := sha256.Sum256(msg)
	return rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, d[:], sig) == nil
}

type ed25519Key struct{ pub ed25519.PublicKey }

func (k ed25519Key) verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.pub, msg, sig)
}

// newKeyVerifier builds the verifier for a merchant key.
func newKeyVerifier(algorithm, secret, publicPEM string) (keyVerifier, error) {
	switch algorithm {
	case "hmac-sha256":
		if len(secret) < 32 {
			return nil, errors.New("hmac-sha256 secret must be at least 32 bytes")
		}
		return newHMACKey([]byte(secret)), nil
	case "rsa-sha256", "ed25519":
		blk, _ := pem.Decode([]byte(publicPEM))
		if blk == nil {
			return nil, errors.New("public key is not PEM")
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if algorithm == "rsa-sha256" {
				return rsaKey{p}, nil
			}
		case ed25519.PublicKey:
			if algorithm == "ed25519" {
				return ed25519Key{p}, nil
			}
		}
		return nil, fmt.Errorf("public key type does not match %s", algorithm)
	}
	return nil, fmt.Errorf("unknown key algorithm %q", algorithm)
}

// authenticate runs the checks up to the signature and returns the merchant
// and the nonce the handler must claim with its store operation.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, snap *snapshot, now time.Time) (*merchant, *store.Nonce, error) {
	if name := repeatedPaygateHeader(&ctx.Request.Header); name != "" {
		return nil, nil, invalid(name, "header is sent more than once")
	}
	a, err := parseAuth(ctx.Request.Header.Peek)
	if err != nil {
		return nil, nil, err
	}
	m, ok := snap.merchants[a.merchant]
	if !ok {
		return nil, nil, apiErr(http.StatusUnauthorized, codeUnknownMerchant, "unknown merchant")
	}
	if d := now.Unix() - a.timestamp; d > int64(snap.window/time.Second) || -d > int64(snap.window/time.Second) {
		return m, nil, apiErr(http.StatusUnauthorized, codeTimestampWindow, "%s is more than %s away from the gateway's clock", hdrTimestamp, snap.window)
	}
	bp := msgPool.Get().(*[]byte)
	msg := canonical((*bp)[:0], ctx.Method(), ctx.RequestURI(), a.tsRaw, a.nonce, ctx.Request.Body())
	ok = m.key.verify(msg, a.signature)
	*bp = msg[:0]
	msgPool.Put(bp)
	if !ok {
		return m, nil, apiErr(http.StatusUnauthorized, codeBadSignature, "signature does not match")
	}
	return m, &store.Nonce{Merchant: m.id, Value: a.nonce, TTL: 2 * snap.window}, nil
}
