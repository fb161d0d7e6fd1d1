package main

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/store/storetest"
)

// Failover and faults with the sandbox (issue 4): channel A down → every qr
// payment succeeds on B with no error to the merchant; A slower than its
// timeout → the ambiguous payment stays pending on A, is resolved by query
// and never goes to B; A answering 5xx → B; A back → traffic returns within
// the breaker's open interval plus its probe.

// failoverRoutes prefer channel A by priority tier (B only when A cannot
// take the payment or is eliminated), chosen per payment by metadata.route.
// Exploration is off, so nothing else sends a payment to B; without it an
// eliminated channel comes back only as its failures decay, so the half-life
// is short here.
const failoverRoutes = `
  rules:
    - name: wx-first
      when: {methods: [qr], metadata: {route: wx-first}}
      channels: [{id: wechat-main, priority: 0}, {id: alipay-main, priority: 1}]
    - name: ali-first
      when: {methods: [qr], metadata: {route: ali-first}}
      channels: [{id: alipay-main, priority: 0}, {id: wechat-main, priority: 1}]
    - name: bank-first
      when: {methods: [qr], metadata: {route: bank-first}}
      channels: [{id: bank-a, priority: 0}, {id: bank-b, priority: 1}]
  failover: {max_attempts: 2}
  exploration: 0
  health: {half_life: 500ms}`

// The harness's breaker (writeConfig): open_for 2s, half_open_requests 1.
const harnessOpenFor = 2 * time.Second

func (g *running) createRouted(otn, route, notifyURL string) resp {
	g.t.Helper()
	return g.call(http.MethodPost, "/v1/payments", map[string]any{
		"out_trade_no": otn, "amount": 1200, "currency": "CNY", "method": "qr",
		"subject": "Coffee", "notify_url": notifyURL, "metadata": map[string]string{"route": route},
	})
}

// notAt asserts that the simulator of channel never received an order for
// the payment (the simulated payer finds no such order).
func (g *running) notAt(channel, paymentID string) {
	g.t.Helper()
	if err := g.app.sim.Pay(channel, payment.OrderNo(paymentID)); !errors.Is(err, sandbox.ErrNoOrder) {
		g.t.Fatalf("%s has an order for %s (pay: %v)", channel, paymentID, err)
	}
}

// breaker returns a channel's breaker state from GET /admin/channels, and
// whether its success estimate eliminates it.
func (g *running) breaker(channel string) (state string, eliminated bool) {
	g.t.Helper()
	r := g.adminCall(http.MethodGet, "/admin/channels", "")
	for _, c := range r.obj(g.t)["channels"].([]any) {
		if m := c.(map[string]any); m["channel"] == channel {
			return m["breaker"].(string), m["eliminated"] == true
		}
	}
	g.t.Fatalf("no channel %s in %s", channel, r.Body)
	return "", false
}

func TestFailoverChannelDown(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr(), routing: failoverRoutes})
	site := newMerchantSite(t)
	n := 0
	create := func(want string) string {
		t.Helper()
		n++
		r := g.createRouted(fmt.Sprintf("fo-down-%d", n), "wx-first", site.url())
		if r.Status != 201 {
			t.Fatalf("payment %d: %d %s", n, r.Status, r.Body)
		}
		p := r.obj(t)
		if want != "" && p["channel"] != want {
			t.Fatalf("payment %d went to %v, want %s", n, p["channel"], want)
		}
		return p["payment_id"].(string)
	}
	create("wechat-main") // A is preferred while it is up

	g.faults(`{"channel": "wechat-main", "down": true}`)
	var onB []string
	for range 8 {
		onB = append(onB, create("alipay-main"))
	}
	// The first calls to A were refused; its success estimate then
	// eliminates it (or, after min_requests, its breaker opens), and A is
	// not even tried (half-open, if these payments took longer than
	// open_for: its probe then fails and opens it again).
	if st, elim := g.breaker("wechat-main"); st == "closed" && !elim {
		t.Fatalf("wechat-main neither open nor eliminated after it was down for 8 payments")
	}
	for _, id := range onB {
		g.pay(id)
	}
	for _, id := range onB {
		p := g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
		if p["channel"] != "alipay-main" {
			t.Fatalf("%s: %v", id, p)
		}
		site.waitEvent("payment.succeeded", id)
	}
	// Each move from A to B was counted (A was tried until its breaker
	// opened, then skipped), and each payment's success once, on B.
	m := string(do(t, mustReq(t, http.MethodGet, g.admin+"/metrics", "")).Body)
	if n := metricValue(t, m, `paygate_routing_failovers_total{from="wechat-main",to="alipay-main"}`); n < 1 || n > 8 {
		t.Errorf("failovers A→B counted %v times for 8 payments", n)
	}
	if n := metricValue(t, m, `paygate_payments_total{channel="alipay-main",status="succeeded"}`); n != 8 {
		t.Errorf("payments succeeded on B counted %v times, want 8", n)
	}

	// A back: payments keep going to B while the breaker is open or A is
	// eliminated, then the first one after open_for probes A, succeeds, and
	// closes the breaker, or A's failures have decayed (half_life 500ms).
	g.faults(`{"channel": "wechat-main"}`)
	back := time.Now()
	deadline := back.Add(harnessOpenFor + 2*time.Second)
	stillB := 0
	for {
		r := g.createRouted(fmt.Sprintf("fo-back-%d", stillB), "wx-first", site.url())
		if r.Status != 201 {
			t.Fatalf("while A comes back: %d %s", r.Status, r.Body)
		}
		if r.obj(t)["channel"] == "wechat-main" {
			break
		}
		stillB++
		if time.Now().After(deadline) {
			t.Fatalf("traffic did not return to wechat-main within %v (%d payments still on B)", time.Since(back), stillB)
		}
		time.Sleep(50 * time.Millisecond) // a payment every 50 ms while waiting for the breaker
	}
	t.Logf("traffic back on A after %v; %d payments went to B meanwhile", time.Since(back).Round(time.Millisecond), stillB)
	if st, elim := g.breaker("wechat-main"); st != "closed" || elim {
		t.Fatalf("wechat-main breaker %s (eliminated %v) after a successful create (half_open_requests 1)", st, elim)
	}
	for range 5 {
		create("wechat-main")
	}
}

func TestFailoverErrorRate(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr(), routing: failoverRoutes})
	site := newMerchantSite(t)
	for _, tc := range []struct{ route, a, b string }{
		{"wx-first", "wechat-main", "alipay-main"},
		{"ali-first", "alipay-main", "wechat-main"},
		{"bank-first", "bank-a", "bank-b"},
	} {
		t.Run(tc.a, func(t *testing.T) {
			g := g.with(t)
			// Every answer of A is its channel's "system error, retry"
			// (WeChat 500 SYSTEM_ERROR, Alipay 20000, the bank's 06): the
			// order was not created, so failing over is safe.
			g.faults(fmt.Sprintf(`{"channel": %q, "error_rate": 1}`, tc.a))
			t.Cleanup(func() { g.faults(fmt.Sprintf(`{"channel": %q}`, tc.a)) })
			var ids []string
			for i := range 3 { // fewer than the breaker's min_requests: A is tried every time
				r := g.createRouted(fmt.Sprintf("fo-err-%s-%d", tc.a, i), tc.route, site.url())
				if r.Status != 201 {
					t.Fatalf("payment %d: %d %s", i, r.Status, r.Body)
				}
				p := r.obj(t)
				if p["channel"] != tc.b || p["status"] != "pending" {
					t.Fatalf("payment %d: %v, want pending on %s", i, p, tc.b)
				}
				ids = append(ids, p["payment_id"].(string))
			}
			for _, id := range ids {
				g.notAt(tc.a, id)
			}
			g.pay(ids[0])
			p := g.waitFor("/v1/payments/"+ids[0], "succeeded", statusIs("succeeded"))
			if p["channel"] != tc.b {
				t.Fatalf("paid on %v, want %s", p["channel"], tc.b)
			}
			site.waitEvent("payment.succeeded", ids[0])
		})
	}
}

var paymentIDRe = regexp.MustCompile(`pay_[0-9A-Za-z]{24}`)

func TestFailoverLatencyAmbiguous(t *testing.T) {
	rs := storetest.Redis(t)
	g, rec := startWithRecorder(t, e2eOpts{redisAddr: rs.Addr(), routing: failoverRoutes, timeout: "300ms"}, options{})
	site := newMerchantSite(t)

	// A answers after 800 ms, having created the order; the gateway gives up
	// at 300 ms. The outcome is ambiguous: no failover to B.
	g.faults(`{"channel": "wechat-main", "latency": "800ms"}`)
	r := g.createRouted("fo-slow", "wx-first", site.url())
	if r.Status != 502 || r.code(t) != "channel_error" {
		t.Fatalf("create on a slow channel: %d %s, want 502 channel_error", r.Status, r.Body)
	}
	pid := paymentIDRe.FindString(string(r.Body))
	if pid == "" {
		t.Fatalf("the error names no payment: %s", r.Body)
	}
	// The merchant retries with the same out_trade_no: the same payment,
	// still pending on A, and nothing is created anywhere.
	r = g.createRouted("fo-slow", "wx-first", site.url())
	if r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s", r.Status, r.Body)
	}
	if p := r.obj(t); p["payment_id"] != pid || p["status"] != "pending" || p["channel"] != "wechat-main" {
		t.Fatalf("retry answered %v, want %s pending on wechat-main", p, pid)
	}
	g.notAt("alipay-main", pid)

	// A is fast again but its callbacks are lost: the payer pays at A (the
	// order is there), and only a query can tell the gateway. No GET here:
	// the reconciler must find it by itself.
	g.faults(`{"channel": "wechat-main", "drop_callbacks": true}`)
	g.pay(pid)
	site.waitEvent("payment.succeeded", pid)
	p := g.get("/v1/payments/" + pid)
	if p["status"] != "succeeded" || p["channel"] != "wechat-main" || p["amount"] != float64(1200) {
		t.Fatalf("after reconciliation: %v", p)
	}
	for _, c := range rec.all() {
		if c.Channel == "wechat-main" && strings.Contains(callbackFacts(t, "wechat", c).orderNo, payment.OrderNo(pid)) {
			t.Fatalf("a callback for %s reached the gateway although callbacks were dropped", pid)
		}
	}
	g.notAt("alipay-main", pid)
	g.drainOutbox()
	if n := site.count(eventID(pid, "payment.succeeded")); n != 1 {
		t.Fatalf("payment.succeeded delivered %d times", n)
	}
	m := string(do(t, mustReq(t, http.MethodGet, g.admin+"/metrics", "")).Body)
	if strings.Contains(m, "paygate_routing_failovers_total{") {
		t.Error("an ambiguous create was counted as a failover")
	}
	if n := metricValue(t, m, `paygate_payments_total{channel="wechat-main",status="succeeded"}`); n != 1 {
		t.Errorf("the payment's success counted %v times, want 1", n)
	}
}
