// Package notify delivers merchant notifications (CONTRACT §5): it builds the
// event a state change enqueues (NewEvent), signs every delivery attempt with
// the Stripe construction (Sign, Verify), dials notify URLs through an
// SSRF-safe dialer (Dialer), and runs the bounded pool of delivery workers
// that drains the store's per-merchant outbox on a retry schedule and
// dead-letters what the schedule cannot deliver (Dispatcher).
//
// The outbox itself — a due-time sorted set per merchant with leases, written
// in the same atomic store operation as the state change it announces — is
// implemented by package store behind the small Store interface declared here.
// See docs/notifications.md.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader and EventIDHeader are the headers of every delivery.
const (
	SignatureHeader = "X-Paygate-Signature"
	EventIDHeader   = "X-Paygate-Event-Id"
)

// DefaultTolerance is how far a signature timestamp may be from the
// receiver's clock (PROTOCOLS §D.1, as Stripe).
const DefaultTolerance = 300 * time.Second

// maxHeaderLen bounds what Verify parses; a real header is under 200 bytes
// (about 70 more per extra v1 value during a secret rotation).
const maxHeaderLen = 4096

// Verification errors. Verify wraps nothing else, so errors.Is on these is
// the whole story.
var (
	ErrNotSigned         = errors.New("notify: no signature header")
	ErrInvalidHeader     = errors.New("notify: malformed signature header")
	ErrNoSignature       = errors.New("notify: no v1 signature in header")
	ErrTimestampSkew     = errors.New("notify: signature timestamp outside tolerance")
	ErrSignatureMismatch = errors.New("notify: signature does not match")
)

// Sign returns the X-Paygate-Signature value for body sent at unix time t:
// "t=<t>,v1=<lower-case hex HMAC-SHA256(secret, "<t>.<body>")>" (the Stripe
// construction, PROTOCOLS §D.1).
func Sign(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks an X-Paygate-Signature header against the raw body, as a
// merchant should: the header is a comma-separated list of key=value pairs;
// exactly one t (unix seconds) is required; every v1 value is compared in
// constant time and one match suffices (several appear while a secret is
// rotated); v1 values that are not hex and unknown keys (v0, …) are ignored.
// The timestamp must be within tolerance of now, in either direction;
// tolerance 0 means DefaultTolerance and a negative tolerance skips the check
// (only for replaying stored requests in tests).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	h, err := parseHeader(header)
	if err != nil {
		return err
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if tolerance > 0 {
		skew := now.Sub(time.Unix(h.t, 0))
		if skew > tolerance || skew < -tolerance {
			return ErrTimestampSkew
		}
	}
	want := mac(secret, h.ts, body)
	ok := false
	for _, sig := range h.v1 {
		// Compare against every value (no early exit) so timing does not tell
		// which one matched.
		if hmac.Equal(sig, want) {
			ok = true
		}
	}
	if !ok {
		return ErrSignatureMismatch
	}
	return nil
}

// signedHeader is a parsed signature header.
type signedHeader struct {
	t  int64
	ts string   // t exactly as sent: the signed message uses these bytes
	v1 [][]byte // decoded v1 values
}

func parseHeader(header string) (signedHeader, error) {
	var h signedHeader
	if strings.TrimSpace(header) == "" {
		return h, ErrNotSigned
	}
	if len(header) > maxHeaderLen {
		return h, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHeader, maxHeaderLen)
	}
	haveT := false
	for pair := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return h, fmt.Errorf("%w: %q is not key=value", ErrInvalidHeader, pair)
		}
		switch k {
		case "t":
			if haveT {
				return h, fmt.Errorf("%w: more than one t", ErrInvalidHeader)
			}
			t, err := parseUnix(v)
			if err != nil {
				return h, fmt.Errorf("%w: t: %v", ErrInvalidHeader, err)
			}
			h.t, h.ts, haveT = t, v, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				continue // not a signature we could have made: ignore, as Stripe does
			}
			h.v1 = append(h.v1, sig)
		default:
			// Unknown keys (v0, future schemes) are ignored.
		}
	}
	if !haveT {
		return h, fmt.Errorf("%w: no t", ErrInvalidHeader)
	}
	if len(h.v1) == 0 {
		return h, ErrNoSignature
	}
	return h, nil
}

// parseUnix accepts only plain decimal digits (no sign, no spaces), so that
// the bytes signed are unambiguous.
func parseUnix(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, errors.New("not a unix time")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a unix time")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
