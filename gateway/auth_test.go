package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/store/storetest"
)

// The signature vectors of CONTRACT §2 for every key type, against a
// running edge on a real redis-server. GET of an unknown (well-formed)
// payment id answers 404 not_found once authentication has passed.
func TestAuthVectors(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	in := startInstance(t, cfg, rs.Addr())
	k := testKeys(t)
	signers := map[string]signer{
		"hmac-sha256": hmacSigner("m-hmac", hmacSecret),
		"rsa-sha256":  rsaSigner("m-rsa", k.rsaPriv),
		"ed25519":     edSigner("m-ed", k.edPriv),
	}
	const uri = "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA"
	now := time.Now().Unix()
	cases := []struct {
		name   string
		method string
		body   []byte
		o      reqOpts
		status int
		code   string
	}{
		{name: "valid", method: http.MethodGet, status: 404, code: "not_found"},
		{name: "tampered body", method: http.MethodPost, body: paymentBody("o-1", 100, "qr"), o: reqOpts{signBody: paymentBody("o-1", 1, "qr")}, status: 401, code: "bad_signature"},
		{name: "wrong uri", method: http.MethodGet, o: reqOpts{signURI: "/v1/payments/pay_BBBBBBBBBBBBBBBBBBBBBBBB"}, status: 401, code: "bad_signature"},
		{name: "missing merchant", method: http.MethodGet, o: reqOpts{omit: "X-Paygate-Merchant"}, status: 401, code: "missing_auth"},
		{name: "missing timestamp", method: http.MethodGet, o: reqOpts{omit: "X-Paygate-Timestamp"}, status: 401, code: "missing_auth"},
		{name: "missing nonce", method: http.MethodGet, o: reqOpts{omit: "X-Paygate-Nonce"}, status: 401, code: "missing_auth"},
		{name: "missing signature", method: http.MethodGet, o: reqOpts{omit: "X-Paygate-Signature"}, status: 401, code: "missing_auth"},
		{name: "bad base64", method: http.MethodGet, o: reqOpts{signature: "not*base64!"}, status: 401, code: "missing_auth"},
		{name: "short nonce", method: http.MethodGet, o: reqOpts{nonce: "short"}, status: 401, code: "missing_auth"},
		{name: "nonce bad chars", method: http.MethodGet, o: reqOpts{nonce: "abcdefghijklmnop+"}, status: 401, code: "missing_auth"},
		{name: "old timestamp", method: http.MethodGet, o: reqOpts{ts: now - 330}, status: 401, code: "timestamp_out_of_window"},
		{name: "future timestamp", method: http.MethodGet, o: reqOpts{ts: now + 330}, status: 401, code: "timestamp_out_of_window"},
		{name: "signature of another key", method: http.MethodGet, o: reqOpts{otherKey: true}, status: 401, code: "bad_signature"},
		{name: "garbage signature", method: http.MethodGet, o: reqOpts{signature: "c2lnbmF0dXJlLW9mLWFub3RoZXIta2V5LTAxMjM0NTY3ODk="}, status: 401, code: "bad_signature"},
	}
	for alg, sg := range signers {
		for _, tc := range cases {
			t.Run(alg+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				uri := uri
				if tc.method == http.MethodPost {
					uri = "/v1/payments"
				}
				r := sg.do(t, in.url, tc.method, uri, tc.body, tc.o)
				if r.status != tc.status || r.errCode(t) != tc.code {
					t.Fatalf("got %d %s, want %d %s: %s", r.status, r.errCode(t), tc.status, tc.code, r.body)
				}
				if r.header.Get("X-Request-Id") == "" || r.json(t)["error"].(map[string]any)["request_id"] != r.header.Get("X-Request-Id") {
					t.Fatalf("request id missing or not echoed: %v %s", r.header, r.body)
				}
			})
		}
	}
	t.Run("unknown merchant", func(t *testing.T) {
		r := hmacSigner("nobody", hmacSecret).do(t, in.url, http.MethodGet, uri, nil, reqOpts{})
		if r.status != 401 || r.errCode(t) != "unknown_merchant" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

// A nonce is accepted once across every instance sharing the store, and a
// request that fails an earlier check does not burn it.
func TestNonceReplayAcrossInstances(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	a := startInstance(t, cfg, rs.Addr())
	b := startInstance(t, cfg, rs.Addr())
	sg := hmacSigner("m-hmac", hmacSecret)
	const uri = "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA"
	nonce := newNonce()
	ts := time.Now().Unix()

	// A bad signature with this nonce first: refused, nonce not claimed.
	if r := sg.do(t, a.url, http.MethodGet, uri, nil, reqOpts{nonce: nonce, ts: ts, signature: "AAAA"}); r.errCode(t) != "bad_signature" {
		t.Fatalf("bad signature: got %d %s", r.status, r.body)
	}
	// An out-of-window timestamp with this nonce: refused, not claimed.
	if r := sg.do(t, a.url, http.MethodGet, uri, nil, reqOpts{nonce: nonce, ts: ts - 1000}); r.errCode(t) != "timestamp_out_of_window" {
		t.Fatalf("old timestamp: got %d %s", r.status, r.body)
	}
	if r := sg.do(t, a.url, http.MethodGet, uri, nil, reqOpts{nonce: nonce, ts: ts}); r.status != 404 {
		t.Fatalf("first use on instance A: got %d %s", r.status, r.body)
	}
	if r := sg.do(t, b.url, http.MethodGet, uri, nil, reqOpts{nonce: nonce, ts: ts}); r.status != 401 || r.errCode(t) != "nonce_replayed" {
		t.Fatalf("replay on instance B: got %d %s", r.status, r.body)
	}
	if r := sg.do(t, a.url, http.MethodGet, uri, nil, reqOpts{nonce: nonce, ts: ts}); r.errCode(t) != "nonce_replayed" {
		t.Fatalf("replay on instance A: got %d %s", r.status, r.body)
	}
	// Nonces are per merchant: another merchant may use the same value.
	if r := edSigner("m-ed", testKeys(t).edPriv).do(t, b.url, http.MethodGet, uri, nil, reqOpts{nonce: nonce, ts: ts}); r.status != 404 {
		t.Fatalf("same nonce, other merchant: got %d %s", r.status, r.body)
	}
}

// With the store down the edge fails closed: 503 store_unavailable, and the
// nonce it could not claim is still usable once the store is back.
func TestStoreDownFailsClosed(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	in := startInstance(t, cfg, rs.Addr())
	sg := hmacSigner("m-hmac", hmacSecret)
	rs.Stop()
	nonce := newNonce()
	var wg sync.WaitGroup
	for i, body := range [][]byte{nil, paymentBody("down-1", 100, "qr")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			method, uri := http.MethodGet, "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA"
			if body != nil {
				method, uri = http.MethodPost, "/v1/payments"
			}
			n := nonce
			if i > 0 {
				n = newNonce()
			}
			r := sg.do(t, in.url, method, uri, body, reqOpts{nonce: n})
			if r.status != 503 || r.errCode(t) != "store_unavailable" {
				t.Errorf("%s %s with the store down: got %d %s", method, uri, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if got := s.creates.Load(); got != 0 {
		t.Fatalf("a request was accepted while the store was down: %d channel orders", got)
	}
	rs.Start()
	if r := sg.do(t, in.url, http.MethodGet, "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA", nil, reqOpts{nonce: nonce}); r.status != 404 {
		t.Fatalf("after the store is back, the unclaimed nonce works: got %d %s", r.status, r.body)
	}
}

func TestBodyTooLargeFirst(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	cfg.Server.MaxBodyBytes = 1024
	s.start(t, cfg)
	in := startInstance(t, cfg, rs.Addr())
	big := make([]byte, 4096)
	for i := range big {
		big[i] = 'a'
	}
	// No auth headers at all: the size check comes before every other.
	r := hmacSigner("", hmacSecret).do(t, in.url, http.MethodPost, "/v1/payments", big, reqOpts{omit: "X-Paygate-Merchant"})
	if r.status != 413 || r.errCode(t) != "body_too_large" || r.header.Get("X-Request-Id") == "" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestUnknownPathAndVerb(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	in := startInstance(t, cfg, rs.Addr())
	sg := hmacSigner("m-hmac", hmacSecret)
	if r := sg.do(t, in.url, http.MethodGet, "/v1/nothing", nil, reqOpts{}); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("unknown path: %d %s", r.status, r.body)
	}
	if r := sg.do(t, in.url, http.MethodDelete, "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA", nil, reqOpts{}); r.status != 405 || r.errCode(t) != "http_method_not_allowed" {
		t.Fatalf("wrong verb: %d %s", r.status, r.body)
	}
}

// Any X-Paygate-* header sent twice, in any mix of cases, is 400
// invalid_request naming it, before anything else is checked: its nonce is
// not claimed, so the same request sent once, correctly, then succeeds.
func TestRepeatedPaygateHeaderRefused(t *testing.T) {
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	in := startInstance(t, cfg, "")
	sg := hmacSigner("m-hmac", hmacSecret)
	cases := []struct {
		name, header string
		extra        map[string][]string
	}{
		{"nonce, lower case", "X-Paygate-Nonce", map[string][]string{"x-paygate-nonce": {"another-nonce-0123456789"}}},
		{"merchant, same case", "X-Paygate-Merchant", map[string][]string{"X-Paygate-Merchant": {"m-rsa"}}},
		{"signature, upper case", "X-Paygate-Signature", map[string][]string{"X-PAYGATE-SIGNATURE": {"c2ln"}}},
		{"timestamp, mixed case", "X-Paygate-Timestamp", map[string][]string{"x-PayGate-timestamp": {"1"}}},
		{"a header paygate does not define", "X-Paygate-Extra", map[string][]string{"X-Paygate-Extra": {"a", "b"}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nonce := newNonce()
			body := paymentBody(fmt.Sprintf("dup-%d", i), 100, "qr")
			r := sg.do(t, in.url, http.MethodPost, "/v1/payments", body, reqOpts{nonce: nonce, extra: tc.extra})
			if r.status != 400 || r.errCode(t) != "invalid_request" || !strings.Contains(string(r.body), tc.header) {
				t.Fatalf("got %d %s, want 400 invalid_request naming %s", r.status, r.body, tc.header)
			}
			r = sg.do(t, in.url, http.MethodPost, "/v1/payments", body, reqOpts{nonce: nonce})
			if r.status != 201 {
				t.Fatalf("the same request sent once: %d %s (its nonce must not have been claimed)", r.status, r.body)
			}
		})
	}
}
