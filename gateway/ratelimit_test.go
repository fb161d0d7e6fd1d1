package gateway_test

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/store/storetest"
)

// Over the merchant's requests_per_second: 429 rate_limited with
// Retry-After, before the nonce is claimed (the same nonce works later).
func TestRateLimit(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	cfg.Merchants[0].Limits.RequestsPerSecond = 2
	s.start(t, cfg)
	var offset atomic.Int64 // the edge's clock: moved, not slept on
	in := startInstance(t, cfg, rs.Addr(), gateway.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	sg := hmacSigner("m-hmac", hmacSecret)
	const uri = "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA"
	var limited response
	var limitedNonce string
	for range 5 {
		n := newNonce()
		r := sg.do(t, in.url, http.MethodGet, uri, nil, reqOpts{nonce: n})
		if r.status == 429 {
			limited, limitedNonce = r, n
			break
		}
		if r.status != 404 {
			t.Fatalf("unexpected %d %s", r.status, r.body)
		}
	}
	if limited.status != 429 || limited.errCode(t) != "rate_limited" {
		t.Fatalf("no 429 after the burst: %d %s", limited.status, limited.body)
	}
	if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	// Other merchants are not limited by this one.
	if r := edSigner("m-ed", testKeys(t).edPriv).do(t, in.url, http.MethodGet, uri, nil, reqOpts{}); r.status != 404 {
		t.Fatalf("other merchant: %d %s", r.status, r.body)
	}
	// A second later the bucket has refilled, and the rate-limited
	// request's nonce was not burnt.
	offset.Add(int64(time.Second))
	if r := sg.do(t, in.url, http.MethodGet, uri, nil, reqOpts{nonce: limitedNonce}); r.status != 404 {
		t.Fatalf("retry with the same nonce: %d %s", r.status, r.body)
	}
}
