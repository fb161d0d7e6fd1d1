package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/paygate/paygate/store/storetest"
)

// A merchant close is answered "closed" only when the channel can no longer
// take money. Alipay before the scan and an ACP consume cannot be closed at
// their channel (the code or form stays payable until its expiry): the close
// is refused with 409 naming when paygate will close it, no payment.closed is
// sent, and a payer who then pays makes the payment succeeded — without any
// alert, since paygate never claimed it closed.
func TestCloseIsTruthful(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr()})
	site := newMerchantSite(t)
	cases := []struct {
		method    string
		closeable bool
	}{
		{"wechat_native", true},
		{"alipay_qr", false},
		{"bank_redirect", false},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			g := *g
			g.t = t
			id := g.mustCreate("close-"+tc.method, 600, tc.method, site.url())["payment_id"].(string)
			r := g.call(http.MethodPost, "/v1/payments/"+id+"/close", nil)
			if tc.closeable {
				if r.Status != 200 || r.obj(t)["status"] != "closed" {
					t.Fatalf("close: %d %s", r.Status, r.Body)
				}
				site.waitEvent("payment.closed", id)
				if p := g.adminCall(http.MethodPost, "/admin/sandbox/payments/"+id+"/pay", ""); p.Status != 409 {
					t.Fatalf("the payer paid a closed order: %d %s", p.Status, p.Body)
				}
				return
			}
			if r.Status != 409 || r.code(t) != "invalid_state" || !strings.Contains(string(r.Body), "paygate closes it then") {
				t.Fatalf("close that the channel cannot make: %d %s", r.Status, r.Body)
			}
			if p := g.call(http.MethodGet, "/v1/payments/"+id, nil).obj(t); p["status"] != "pending" {
				t.Fatalf("after the refused close: %v", p)
			}
			g.pay(id)
			g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
			site.waitEvent("payment.succeeded", id)
			if site.count("evt_"+id+"_payment_closed") != 0 {
				t.Fatal("payment.closed was sent for a payment that could still be paid")
			}
			if n := alerts(&g, "ALERT", id); n != 0 {
				t.Fatalf("%d alerts for an honest outcome", n)
			}
		})
	}
}
