package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

// The reconciler end to end (issue 5): a callback dropped by the simulator
// (drop_callbacks) → the payment still becomes succeeded via query and the
// merchant is notified, likewise a refund; an unpaid payment past expiry is
// closed at the channel.

func TestReconcileDroppedCallbacks(t *testing.T) {
	rs := storetest.Redis(t)
	g, rec := startWithRecorder(t, e2eOpts{redisAddr: rs.Addr(), routing: callbackRoutes}, options{})
	for _, cc := range cbChannels {
		t.Run(cc.typ, func(t *testing.T) {
			t.Parallel()
			g := g.with(t)
			site := newMerchantSite(t)
			g.faults(`{"channel": "` + cc.channel + `", "drop_callbacks": true}`)
			p := g.mustCreate("rc-drop-"+cc.typ, 1500, cc.method, site.url())
			id := p["payment_id"].(string)
			if p["channel"] != cc.channel {
				t.Fatalf("payment on %v, want %s", p["channel"], cc.channel)
			}
			// Paid at the channel; its notification is never sent. No GET
			// until the merchant has heard: only the reconciler can learn it.
			g.pay(id)
			ev := site.waitEvent("payment.succeeded", id)
			if d := ev["data"].(map[string]any); d["status"] != "succeeded" || d["payment_id"] != id {
				t.Fatalf("event data: %v", d)
			}
			paid := g.get("/v1/payments/" + id)
			if paid["status"] != "succeeded" || paid["paid_at"] == nil || paid["channel_trade_no"] == "" {
				t.Fatalf("after reconciliation: %v", paid)
			}
			if src := changeSource(g, "payment_id", id, "succeeded"); src != "query" {
				t.Fatalf("payment succeeded by %q, want query", src)
			}

			// A refund whose notification is dropped as well.
			r := g.call(http.MethodPost, "/v1/payments/"+id+"/refunds", map[string]any{"out_refund_no": "rc-rf-" + cc.typ, "amount": 400})
			if r.Status != 201 {
				t.Fatalf("refund: %d %s", r.Status, r.Body)
			}
			rf := r.obj(t)
			rid := rf["refund_id"].(string)
			// WeChat and the bank accept a refund and finish it later (the
			// reconciler must query); Alipay answers the final state at once.
			wantSource := "query"
			if cc.typ == "alipay" {
				wantSource = "refund"
			} else if rf["status"] != "pending" {
				t.Fatalf("refund answered %v, want pending", rf)
			}
			site.waitEvent("refund.succeeded", rid)
			if got := g.get("/v1/refunds/" + rid); got["status"] != "succeeded" || got["amount"] != float64(400) {
				t.Fatalf("refund after reconciliation: %v", got)
			}
			if src := changeSource(g, "refund_id", rid, "succeeded"); src != wantSource {
				t.Fatalf("refund succeeded by %q, want %s", src, wantSource)
			}
			if got := g.get("/v1/payments/" + id); got["refunded_amount"] != float64(400) {
				t.Fatalf("payment after the refund: %v", got)
			}

			for _, c := range rec.all() {
				if c.Channel == cc.channel && callbackFacts(t, cc.typ, c).orderNo == payment.OrderNo(id) {
					t.Fatalf("a callback for %s reached the gateway although callbacks were dropped", id)
				}
			}
			g.drainOutbox()
			if a, b := site.count(eventID(id, "payment.succeeded")), site.count(eventID(rid, "refund.succeeded")); a != 1 || b != 1 {
				t.Fatalf("delivered payment.succeeded %d times, refund.succeeded %d times; want once each", a, b)
			}
			m := do(t, mustReq(t, http.MethodGet, g.admin+"/metrics", ""))
			if !strings.Contains(string(m.Body), `paygate_reconciler_resolved_total{kind="payment",status="succeeded"}`) {
				t.Fatal("/metrics does not count what the reconciler resolved")
			}
		})
	}
}

// TestReconcileExpiry moves the clock past a payment's expiry (expire_in
// 60, the minimum; the clock is moved 61 s instead of waiting).
//
// With one clock for the gateway and the simulators, the channel has expired
// the order too and says so. With only the gateway's clock past expiry, the
// channel still holds the order open and the reconciler closes it there.
// Either way the payment is closed, the merchant is told, and the payer can
// no longer pay. Except where the channel cannot close: an Alipay precreate
// code nobody has scanned does not exist at Alipay yet (PROTOCOLS §B: close
// answers ACQ.TRADE_NOT_EXIST) and stays payable until its own time_expire;
// if the payer pays it, the channel wins (CONTRACT §4): the payment becomes
// succeeded, the merchant hears of it after payment.closed, and an ALERT is
// logged.
func TestReconcileExpiry(t *testing.T) {
	rs := storetest.Redis(t)
	for vi, variant := range []struct {
		name      string
		shareWith bool // the simulators use the moved clock too
		// how the gateway learnt it: "query" (the channel said closed) or
		// "expiry" (the reconciler closed it at the channel)
		source   map[string]string
		latePaid map[string]bool
	}{
		{"channel expired it", true, map[string]string{"wechat_native": "query", "alipay_qr": "expiry"}, nil},
		{"closed at the channel", false, map[string]string{"wechat_native": "expiry", "alipay_qr": "expiry"}, map[string]bool{"alipay_qr": true}},
	} {
		t.Run(variant.name, func(t *testing.T) {
			clk := &shiftClock{}
			so := options{now: clk.now}
			if variant.shareWith {
				so.simNow = clk.now
			}
			g := startE2EWith(t, e2eOpts{redisAddr: rs.Addr(), routing: callbackRoutes}, so).with(t)
			site := newMerchantSite(t)
			methods := []string{"wechat_native", "alipay_qr"}
			ids := map[string]string{}
			for _, m := range methods {
				r := g.call(http.MethodPost, "/v1/payments", map[string]any{
					"out_trade_no": fmt.Sprintf("rc-exp-%d-%s", vi, m), "amount": 800, "currency": "CNY", "method": m,
					"subject": "Coffee", "notify_url": site.url(), "expire_in": 60,
				})
				if r.Status != 201 {
					t.Fatalf("%s: %d %s", m, r.Status, r.Body)
				}
				ids[m] = r.obj(t)["payment_id"].(string)
			}
			// Past the expiry and the grace paygate allows channels that cannot
			// close an order (Alipay before the scan) before it calls it closed.
			clk.advance(61*time.Second + time.Minute)
			for _, m := range methods {
				id := ids[m]
				ev := site.waitEvent("payment.closed", id)
				if ev["data"].(map[string]any)["status"] != "closed" {
					t.Fatalf("%s: event %v", m, ev)
				}
				if p := g.get("/v1/payments/" + id); p["status"] != "closed" {
					t.Fatalf("%s: %v", m, p)
				}
				if src := changeSource(g, "payment_id", id, "closed"); src != variant.source[m] {
					t.Fatalf("%s: closed by %q, want %q", m, src, variant.source[m])
				}
				r := g.adminCall(http.MethodPost, "/admin/sandbox/payments/"+id+"/pay", "")
				if variant.latePaid[m] {
					if r.Status != 202 {
						t.Fatalf("%s: the payer could not pay an open code: %d %s", m, r.Status, r.Body)
					}
					p := g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
					if p["paid_at"] == nil {
						t.Fatalf("%s: %v", m, p)
					}
					site.waitEvent("payment.succeeded", id)
					if alerts(g, "ALERT channel reports money taken on a payment paygate had finished", id) == 0 {
						t.Fatalf("%s: money taken after the close, but no ALERT", m)
					}
					continue
				}
				// The payer is too late: the channel refuses to take money.
				if r.Status != 409 {
					t.Fatalf("%s: paying a closed order: %d %s, want 409", m, r.Status, r.Body)
				}
				if p := g.get("/v1/payments/" + id); p["status"] != "closed" {
					t.Fatalf("%s: after the late payer: %v", m, p)
				}
			}
			g.drainOutbox()
			for _, m := range methods {
				want := 0
				if variant.latePaid[m] {
					want = 1
				}
				if n := site.count(eventID(ids[m], "payment.closed")); n != 1 {
					t.Fatalf("%s: payment.closed delivered %d times", m, n)
				}
				if n := site.count(eventID(ids[m], "payment.succeeded")); n != want {
					t.Fatalf("%s: payment.succeeded delivered %d times, want %d", m, n, want)
				}
			}
		})
	}
}

// changeSource is the source the gateway logged for a payment's or refund's
// change to status ("notification", "query", "expiry", "refund", ...); key
// is payment_id or refund_id.
func changeSource(g *running, key, id, status string) string {
	msg := map[string]string{"payment_id": "payment state changed", "refund_id": "refund state changed"}[key]
	for _, e := range g.logs.FilterMessage(msg).All() {
		if c := e.ContextMap(); c[key] == id && c["status"] == status {
			return fmt.Sprint(c["source"])
		}
	}
	return ""
}
