package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway/client"
	"github.com/paygate/paygate/store/storetest"
)

const (
	routesToWechat = `
  rules:
    - name: qr-rule
      when: {methods: [qr]}
      channels: [wechat-main]
  failover: {max_attempts: 2}`
	routesToAlipay = `
  rules:
    - name: qr-rule
      when: {methods: [qr]}
      channels: [alipay-main]
  failover: {max_attempts: 2}`
)

// atomicWrite replaces path the way editors and config-management tools
// do: write a temporary file beside it, then rename it over.
func atomicWrite(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".config.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Ops change config.yaml under load: the new rules take effect without one
// failed request; a bad file changes nothing and is reported.
func TestReloadUnderLoad(t *testing.T) {
	rs := storetest.Redis(t)
	path := writeConfig(t, e2eOpts{redisAddr: rs.Addr(), routing: routesToWechat})
	g := startFrom(t, path, options{notifyPoll: 20 * time.Millisecond})
	site := newMerchantSite(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var (
		stop     atomic.Bool
		seq      atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		byCh     = map[string]int{}
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n := seq.Add(1)
				r := g.create(fmt.Sprintf("reload-%d", n), 100, "qr", site.url())
				if r.Status != 201 {
					failures.Add(1)
					t.Errorf("request %d failed during reload: %d %s", n, r.Status, r.Body)
					continue
				}
				mu.Lock()
				byCh[r.obj(t)["channel"].(string)]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // traffic flowing on the first rules
	atomicWrite(t, path, strings.Replace(string(orig), routesToWechat, routesToAlipay, 1))
	// Wait until new payments land on alipay-main.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := g.create(fmt.Sprintf("probe-%d", seq.Add(1)), 100, "qr", site.url())
		if r.Status == 201 && r.obj(t)["channel"] == "alipay-main" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new rules never took effect (last: %d %s)", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // traffic flowing on the new rules
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	t.Logf("payments by channel across the reload: %v", byCh)
	if byCh["wechat-main"] == 0 || byCh["alipay-main"] == 0 || failures.Load() != 0 {
		t.Fatalf("want traffic on both sides of the reload and no failure: %v, %d failures", byCh, failures.Load())
	}
	mu.Unlock()

	// A bad file (unknown channel in a rule) changes nothing, and the admin
	// reload answers its problems.
	atomicWrite(t, path, strings.Replace(string(orig), "channels: [wechat-main]", "channels: [bank-z]", 1))
	r := g.adminCall(http.MethodPost, "/admin/config/reload", "")
	if r.Status != 422 || !strings.Contains(string(r.Body), `routing.rules[0].channels[0]: unknown channel \"bank-z\"`) {
		t.Fatalf("bad reload: %d %s", r.Status, r.Body)
	}
	p := g.mustCreate("after-bad-reload", 100, "qr", site.url())
	if p["channel"] != "alipay-main" {
		t.Fatalf("a refused reload changed the rules: payment went to %v", p["channel"])
	}
	page := do(t, mustReq(t, http.MethodGet, g.admin+"/", ""))
	if !strings.Contains(string(page.Body), "refused") {
		t.Fatalf("the status page does not show the refused reload")
	}
}

func mustReq(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// -listen on the command line wins over every reloaded config: callback
// URLs the channels are given keep pointing at the listener that exists.
func TestReloadKeepsCommandLineOverrides(t *testing.T) {
	rs := storetest.Redis(t)
	path := writeConfig(t, e2eOpts{redisAddr: rs.Addr()})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	applyFlags(cfg, listen, "")
	a, err := start(cfg, path, zap.NewNop(), options{noWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.stop(ctx)
	})
	g := &running{t: t, app: a, path: path, base: "http://" + a.addr, admin: "http://" + a.adminAddr, signer: client.HMAC("demo", []byte(demoSecret))}
	if a.addr != listen {
		t.Fatalf("listening on %s, want the flag's %s", a.addr, listen)
	}
	backURL := func(otn string) string {
		p := g.mustCreate(otn, 100, "bank_redirect", "http://127.0.0.1:1/n")
		return p["action"].(map[string]any)["fields"].(map[string]any)["backUrl"].(string)
	}
	want := "http://" + listen + "/callbacks/"
	if u := backURL("flags-1"); !strings.HasPrefix(u, want) {
		t.Fatalf("before reload: backUrl %s, want %s...", u, want)
	}
	if r := g.adminCall(http.MethodPost, "/admin/config/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	if u := backURL("flags-2"); !strings.HasPrefix(u, want) {
		t.Fatalf("after reload: backUrl %s, want %s...", u, want)
	}
}

// A reload that removes a channel stops routing to it, but the payments
// already made there still get their callbacks, queries and refunds.
func TestReloadRemovingChannelKeepsItsPayments(t *testing.T) {
	rs := storetest.Redis(t)
	path := writeConfig(t, e2eOpts{redisAddr: rs.Addr()})
	g := startFrom(t, path, options{notifyPoll: 20 * time.Millisecond, noWatch: true})
	site := newMerchantSite(t)
	id := g.mustCreate("removed-1", 500, "wechat_native", site.url())["payment_id"].(string)

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, "  - id: wechat-main"), strings.Index(s, "  - id: alipay-main")
	s = s[:i] + s[j:]
	s = strings.Replace(s, "methods: [qr, wechat_native, wechat_jsapi, alipay_qr, alipay_page, bank_redirect]", "methods: [qr, alipay_qr, alipay_page, bank_redirect]", 1)
	s = strings.Replace(s, "channels: [{id: wechat-main, weight: 60}, {id: alipay-main, weight: 40}]", "channels: [alipay-main]", 1)
	atomicWrite(t, path, s)
	if r := g.adminCall(http.MethodPost, "/admin/config/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	if r := g.create("removed-2", 500, "wechat_native", site.url()); r.Status != 403 {
		t.Fatalf("a method no channel serves any more: %d %s", r.Status, r.Body)
	}
	if p := g.mustCreate("removed-3", 500, "qr", site.url()); p["channel"] != "alipay-main" {
		t.Fatalf("qr routed to %v after the reload", p["channel"])
	}
	g.pay(id) // the payer pays the order at the removed channel; its callback arrives
	g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
	site.waitEvent("payment.succeeded", id)
	r := g.call(http.MethodPost, "/v1/payments/"+id+"/refunds", map[string]any{"out_refund_no": "removed-rf", "amount": 200})
	if r.Status != 201 {
		t.Fatalf("refund on the removed channel: %d %s", r.Status, r.Body)
	}
	g.waitFor("/v1/refunds/"+r.obj(t)["refund_id"].(string), "succeeded", statusIs("succeeded"))
}

// A reload rotates the admin token: the old one stops working at once.
func TestReloadRotatesAdminToken(t *testing.T) {
	rs := storetest.Redis(t)
	path := writeConfig(t, e2eOpts{redisAddr: rs.Addr()})
	g := startFrom(t, path, options{noWatch: true})
	b, _ := os.ReadFile(path)
	atomicWrite(t, path, strings.Replace(string(b), `admin_token: "`+adminToken+`"`, `admin_token: "rotated-admin-token-0123"`, 1))
	if r := g.adminCall(http.MethodPost, "/admin/config/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	if r := g.adminCall(http.MethodGet, "/admin/channels", ""); r.Status != 401 {
		t.Fatalf("the old token still works: %d", r.Status)
	}
	req := mustReq(t, http.MethodGet, g.admin+"/admin/channels", "")
	req.Header.Set("Authorization", "Bearer rotated-admin-token-0123")
	if r := do(t, req); r.Status != 200 {
		t.Fatalf("the new token: %d %s", r.Status, r.Body)
	}
}
