package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/paygate/paygate/store/storetest"
)

func errMessage(t *testing.T, r response) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

// A create the store received but never answered (a frozen Redis) is 503
// store_unavailable saying the outcome is unknown and that a retry with the
// same out_trade_no is safe — and the retry finds the payment; a store that
// could not be reached at all keeps "nothing was done", and nothing was.
func TestStoreOutcomeHonesty(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	in := startInstance(t, cfg, rs.Addr())
	sg := hmacSigner("m-hmac", hmacSecret)
	if r := sg.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("warm-1", 100, "qr"), reqOpts{}); r.status != 201 {
		t.Fatalf("warm-up create: %d %s", r.status, r.body)
	}

	rs.Freeze()
	r := sg.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("frozen-1", 100, "qr"), reqOpts{})
	rs.Thaw()
	msg := errMessage(t, r)
	if r.status != 503 || r.errCode(t) != "store_unavailable" || !strings.Contains(msg, "unknown") ||
		!strings.Contains(msg, "same out_trade_no") || strings.Contains(msg, "nothing was done") {
		t.Fatalf("create on a frozen store: %d %s; want 503 store_unavailable with the outcome unknown", r.status, r.body)
	}
	// The retry the answer promised is safe: the store did run the create
	// once it resumed, so the retry meets that payment (still being created:
	// 409 request_in_progress, which the reconciler finishes) and never makes
	// a second one.
	r = sg.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("frozen-1", 100, "qr"), reqOpts{})
	switch {
	case r.status == 409 && r.errCode(t) == "request_in_progress":
	case r.status == 200 && r.header.Get("Idempotent-Replayed") == "true":
	case r.status == 201:
	default:
		t.Fatalf("retry with the same out_trade_no: %d %s", r.status, r.body)
	}

	before := s.creates.Load()
	rs.Stop()
	r = sg.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("down-1", 100, "qr"), reqOpts{})
	if r.status != 503 || r.errCode(t) != "store_unavailable" || !strings.Contains(errMessage(t, r), "nothing was done") {
		t.Fatalf("create on a stopped store: %d %s; want 503 saying nothing was done", r.status, r.body)
	}
	if got := s.creates.Load(); got != before {
		t.Fatalf("%d channel orders made while the store was down", got-before)
	}
}
