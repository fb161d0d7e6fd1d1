package notify

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PROTOCOLS §D.1 vector.
const (
	vecSecret = "whsec_test"
	vecT      = 1700000000
	vecBody   = `{"id":"evt_1"}`
	vecV1     = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
)

func TestSignVector(t *testing.T) {
	t.Parallel()
	got := Sign([]byte(vecSecret), vecT, []byte(vecBody))
	if want := "t=1700000000,v1=" + vecV1; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(vecT, 0)
	other := Sign([]byte("whsec_old"), vecT, []byte(vecBody))
	otherV1 := other[strings.Index(other, "v1=")+3:]
	tests := []struct {
		name      string
		secret    string
		header    string
		body      string
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{name: "vector", header: "t=1700000000,v1=" + vecV1, now: now},
		{name: "several v1 during rotation, second matches", header: "t=1700000000,v1=" + otherV1 + ",v1=" + vecV1, now: now},
		{name: "several v1, first matches", header: "t=1700000000,v1=" + vecV1 + ",v1=" + otherV1, now: now},
		{name: "unknown keys and v0 ignored", header: "v0=abc,t=1700000000,x=y,v1=" + vecV1 + ",v2=zz", now: now},
		{name: "spaces around pairs", header: " t=1700000000 , v1=" + vecV1 + " ", now: now},
		{name: "upper-case hex accepted", header: "t=1700000000,v1=" + strings.ToUpper(vecV1), now: now},
		{name: "non-hex v1 ignored when another matches", header: "t=1700000000,v1=nothex,v1=" + vecV1, now: now},
		{name: "at the edge of tolerance", header: "t=1700000000,v1=" + vecV1, now: now.Add(300 * time.Second)},
		{name: "too old", header: "t=1700000000,v1=" + vecV1, now: now.Add(301 * time.Second), want: ErrTimestampSkew},
		{name: "too far in the future", header: "t=1700000000,v1=" + vecV1, now: now.Add(-301 * time.Second), want: ErrTimestampSkew},
		{name: "custom tolerance", header: "t=1700000000,v1=" + vecV1, now: now.Add(11 * time.Second), tolerance: 10 * time.Second, want: ErrTimestampSkew},
		{name: "negative tolerance skips the time check", header: "t=1700000000,v1=" + vecV1, now: now.Add(1000 * time.Hour), tolerance: -1},
		{name: "wrong secret", secret: "whsec_other", header: "t=1700000000,v1=" + vecV1, now: now, want: ErrSignatureMismatch},
		{name: "tampered body", body: `{"id":"evt_2"}`, header: "t=1700000000,v1=" + vecV1, now: now, want: ErrSignatureMismatch},
		{name: "timestamp changed", header: "t=1700000001,v1=" + vecV1, now: now, want: ErrSignatureMismatch},
		{name: "timestamp with leading zero is other bytes", header: "t=01700000000,v1=" + vecV1, now: now, want: ErrSignatureMismatch},
		{name: "only the old secret's signature", header: "t=1700000000,v1=" + otherV1, now: now, want: ErrSignatureMismatch},
		{name: "empty header", header: "", now: now, want: ErrNotSigned},
		{name: "no t", header: "v1=" + vecV1, now: now, want: ErrInvalidHeader},
		{name: "two t", header: "t=1700000000,t=1700000000,v1=" + vecV1, now: now, want: ErrInvalidHeader},
		{name: "signed t", header: "t=+1700000000,v1=" + vecV1, now: now, want: ErrInvalidHeader},
		{name: "t not a number", header: "t=abc,v1=" + vecV1, now: now, want: ErrInvalidHeader},
		{name: "pair without =", header: "t=1700000000,v1", now: now, want: ErrInvalidHeader},
		{name: "no v1", header: "t=1700000000,v0=" + vecV1, now: now, want: ErrNoSignature},
		{name: "only non-hex v1", header: "t=1700000000,v1=zz", now: now, want: ErrNoSignature},
		{name: "truncated v1", header: "t=1700000000,v1=" + vecV1[:62], now: now, want: ErrNoSignature},
		{name: "header too long", header: "t=1700000000,v1=" + vecV1 + strings.Repeat(",x=y", 2000), now: now, want: ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secret, body := tt.secret, tt.body
			if secret == "" {
				secret = vecSecret
			}
			if body == "" {
				body = vecBody
			}
			err := Verify([]byte(secret), tt.header, []byte(body), tt.now, tt.tolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzVerify fuzzes the header parser: Verify never panics, accepts a
// header only if it carries the real MAC, and always accepts what Sign made.
func FuzzVerify(f *testing.F) {
	f.Add("t=1700000000,v1="+vecV1, []byte(vecBody))
	f.Add("t=1700000000,v1=00,v1="+vecV1+",v0=x", []byte(vecBody))
	f.Add("t=,v1=", []byte{})
	f.Add(",,,", []byte("x"))
	secret := []byte(vecSecret)
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		h, perr := parseHeader(header)
		err := Verify(secret, header, body, time.Unix(vecT, 0), -1)
		if perr != nil && err == nil {
			t.Fatalf("Verify accepted a header the parser refused: %v", perr)
		}
		if perr == nil {
			if n, err := strconv.ParseInt(h.ts, 10, 64); err != nil || n != h.t {
				t.Fatalf("t %q parsed as %d", h.ts, h.t)
			}
			for _, s := range h.v1 {
				if len(s) != 32 {
					t.Fatalf("v1 of %d bytes kept", len(s))
				}
			}
		}
		if err == nil && !strings.Contains(strings.ToLower(header), hex.EncodeToString(mac(secret, h.ts, body))) {
			t.Fatalf("Verify accepted %q without the MAC", header)
		}
		if perr == nil {
			signed := Sign(secret, h.t, body)
			if err := Verify(secret, signed, body, time.Unix(h.t, 0), 0); err != nil {
				t.Fatalf("Verify(Sign) = %v", err)
			}
		}
	})
}
