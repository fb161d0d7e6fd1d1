package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/store/storetest"
)

// Lists are per merchant: another merchant's payment is not listed, its
// refunds are 404, and its out_refund_no is not found. The query string is
// signed (a list request re-signed without it fails), and the list routes
// have their own request metric labels.
func TestListsPerMerchant(t *testing.T) {
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	m := gateway.NewMetrics()
	in := startInstance(t, cfg, rs.Addr(), gateway.WithMetrics(m))
	owner, other := hmacSigner("m-hmac", hmacSecret), edSigner("m-ed", testKeys(t).edPriv)
	r := owner.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("mine-1", 100, "qr"), reqOpts{})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["payment_id"].(string)

	if r := owner.do(t, in.url, http.MethodGet, "/v1/payments?limit=5", nil, reqOpts{}); r.status != 200 || !strings.Contains(string(r.body), id) {
		t.Fatalf("owner's list: %d %s", r.status, r.body)
	}
	if r := other.do(t, in.url, http.MethodGet, "/v1/payments", nil, reqOpts{}); r.status != 200 || string(r.body) != `{"data":[],"has_more":false}` {
		t.Fatalf("other merchant's list: %d %s", r.status, r.body)
	}
	if r := other.do(t, in.url, http.MethodGet, "/v1/payments/"+id+"/refunds", nil, reqOpts{}); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("other merchant's refunds of the payment: %d %s", r.status, r.body)
	}
	if r := owner.do(t, in.url, http.MethodGet, "/v1/payments/"+id+"/refunds", nil, reqOpts{}); r.status != 200 || string(r.body) != `{"data":[],"has_more":false}` {
		t.Fatalf("owner's refunds: %d %s", r.status, r.body)
	}
	if r := owner.do(t, in.url, http.MethodGet, "/v1/payments?limit=5", nil, reqOpts{signURI: "/v1/payments"}); r.status != 401 || r.errCode(t) != "bad_signature" {
		t.Fatalf("query not covered by the signature: %d %s", r.status, r.body)
	}
	if r := other.do(t, in.url, http.MethodGet, "/v1/refunds?out_refund_no=nope", nil, reqOpts{}); r.status != 404 {
		t.Fatalf("unknown out_refund_no: %d %s", r.status, r.body)
	}
	text := scrape(t, m)
	for _, want := range []string{
		`paygate_http_requests_total{code="200",method="GET",route="/v1/payments"} 2`,
		`paygate_http_requests_total{code="404",method="GET",route="/v1/payments/{id}/refunds"} 1`,
		`paygate_http_requests_total{code="200",method="GET",route="/v1/payments/{id}/refunds"} 1`,
		`paygate_http_requests_total{code="404",method="GET",route="/v1/refunds"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
