package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/paygate/paygate/store/storetest"
)

// Create → sandbox payer pays → the channel's real signed notification makes
// the payment succeeded → partial refund → refund succeeded, with the
// merchant notified of each, for every channel type.
func TestEndToEndEachChannel(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr()})
	site := newMerchantSite(t)
	cases := []struct {
		name    string
		method  string
		amount  int64
		channel string
		action  string
	}{
		{"wechat_native", "wechat_native", 1000, "wechat-main", "qr_code"},
		{"wechat_jsapi", "wechat_jsapi", 1000, "wechat-main", "jsapi"},
		{"alipay_qr", "alipay_qr", 1000, "alipay-main", "qr_code"},
		{"alipay_page", "alipay_page", 1000, "alipay-main", "redirect"},
		{"bank_redirect", "bank_redirect", 1000, "", "form"},
		{"qr", "qr", 1000, "", "qr_code"},
		{"qr_large_to_bank", "qr", 600000, "", "qr_code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := *g
			g.t = t
			p := g.mustCreate("e2e-"+tc.name, tc.amount, tc.method, site.url())
			if tc.name == "qr_large_to_bank" && p["channel"] != "bank-a" && p["channel"] != "bank-b" {
				t.Fatalf("large qr routed to %v, want a bank (rule large-to-bank)", p["channel"])
			}
			id := p["payment_id"].(string)
			if act := p["action"].(map[string]any); act["type"] != tc.action {
				t.Fatalf("action %v, want %s", act, tc.action)
			}
			if tc.channel != "" && p["channel"] != tc.channel {
				t.Fatalf("channel %v, want %s", p["channel"], tc.channel)
			}
			g.pay(id)
			paid := g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
			if paid["paid_at"] == nil || paid["channel_trade_no"] == "" {
				t.Fatalf("paid payment lacks paid_at or channel_trade_no: %v", paid)
			}
			ev := site.waitEvent("payment.succeeded", id)
			if ev["data"].(map[string]any)["status"] != "succeeded" {
				t.Fatalf("event data: %v", ev)
			}
			r := g.call(http.MethodPost, "/v1/payments/"+id+"/refunds", map[string]any{"out_refund_no": "rf-" + tc.name, "amount": 300, "reason": "damaged"})
			if r.Status != 201 {
				t.Fatalf("refund: %d %s", r.Status, r.Body)
			}
			rid := r.obj(t)["refund_id"].(string)
			g.waitFor("/v1/refunds/"+rid, "succeeded", statusIs("succeeded"))
			site.waitEvent("refund.succeeded", rid)
			after := g.call(http.MethodGet, "/v1/payments/"+id, nil).obj(t)
			if after["refunded_amount"] != float64(300) || after["status"] != "succeeded" {
				t.Fatalf("payment after refund: %v", after)
			}
			// More than what is left is refused; the rest is fine.
			if r := g.call(http.MethodPost, "/v1/payments/"+id+"/refunds", map[string]any{"out_refund_no": "rf2-" + tc.name, "amount": tc.amount - 299}); r.Status != 422 || r.code(t) != "refund_exceeds_payment" {
				t.Fatalf("over-refund: %d %s", r.Status, r.Body)
			}
		})
	}
	if site.bad != 0 {
		t.Fatalf("%d notifications failed signature verification", site.bad)
	}
	// Every channel call was counted; /metrics is open (no token).
	m := do(t, mustReq(t, http.MethodGet, g.admin+"/metrics", ""))
	for _, want := range []string{
		`paygate_channel_calls_total{channel="wechat-main",op="create",outcome="http_200"}`,
		`paygate_channel_calls_total{channel="alipay-main",op="refund",outcome="http_200"}`,
		`paygate_notifications_delivered_total{merchant="demo"}`,
		`paygate_channel_score{channel="wechat-main"}`,
		`paygate_channel_breaker_open{channel="bank-a"} 0`,
		`paygate_notifications_backlog{merchant="demo"}`,
		`paygate_notifications_dead{merchant="demo"} 0`,
	} {
		if m.Status != 200 || !strings.Contains(string(m.Body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The status page shows every channel.
	page := do(t, mustReq(t, http.MethodGet, g.admin+"/", ""))
	for _, ch := range []string{"wechat-main", "alipay-main", "bank-a", "bank-b", "large-to-bank"} {
		if !strings.Contains(string(page.Body), ch) {
			t.Errorf("status page lacks %s", ch)
		}
	}
}

// 20 concurrent refunds on one payment: the sum never exceeds the amount.
func TestConcurrentRefunds(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr()})
	site := newMerchantSite(t)
	p := g.mustCreate("conc-refunds", 1000, "wechat_native", site.url())
	id := p["payment_id"].(string)
	g.pay(id)
	g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := int64(0)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := g.call(http.MethodPost, "/v1/payments/"+id+"/refunds", map[string]any{"out_refund_no": fmt.Sprintf("c-%d", i), "amount": 150})
			switch r.Status {
			case 201:
				mu.Lock()
				accepted += 150
				mu.Unlock()
			case 422:
			default:
				t.Errorf("refund %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if accepted != 900 {
		t.Fatalf("accepted %d fen of refunds, want exactly 900 (6 × 150 ≤ 1000)", accepted)
	}
	g.waitFor("/v1/payments/"+id, "refunded 900", func(m map[string]any) bool { return m["refunded_amount"] == float64(900) })
}
