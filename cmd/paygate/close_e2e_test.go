package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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
			if r.Status != 409 || r.code(t) != "invalid_state" || !strings.Contains(string(r.Body), "paygate closes it at") {
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

// Past the expiry and the grace, a payment whose channel still reports the
// order payable (a bank whose clock disagrees with ours) is not called
// closed: only the channel's own word (closed, failed, no such order) is.
func TestNoCloseWhileTheChannelSaysPayable(t *testing.T) {
	rs := storetest.Redis(t)
	clk := &shiftClock{}
	g := startE2EWith(t, e2eOpts{redisAddr: rs.Addr()}, options{now: clk.now})
	site := newMerchantSite(t)
	r := g.call(http.MethodPost, "/v1/payments", map[string]any{"out_trade_no": "payable-1", "amount": 700, "currency": "CNY",
		"method": "bank_redirect", "subject": "S", "notify_url": site.url(), "expire_in": 60})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	p := r.obj(t)
	id := p["payment_id"].(string)
	// The payer's browser posts the bank form: the order is payable at the
	// bank, whose clock (the real one) says it has not expired.
	act := p["action"].(map[string]any)
	form := url.Values{}
	for k, v := range act["fields"].(map[string]any) {
		form.Set(k, v.(string))
	}
	res, err := http.PostForm(act["url"].(string), form)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("posting the bank form: %v %v", res, err)
	}
	res.Body.Close()
	clk.advance(3 * time.Minute) // the gateway's clock: well past expiry and grace
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) { // several reconciler rounds
		if st := g.get("/v1/payments/" + id)["status"]; st != "pending" {
			t.Fatalf("payment %s while the bank still says payable", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.pay(id)
	g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
	if site.count("evt_"+id+"_payment_closed") != 0 {
		t.Fatal("payment.closed sent for a payment the bank could still take")
	}
}
