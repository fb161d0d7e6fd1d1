package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/store/storetest"
)

// A merchant down for the first attempts gets the event on a later one with
// the same id; a merchant down for the whole (compressed) schedule has it
// dead-lettered, listed on the admin API, and delivered by a replay.
func TestDeadLetterAndReplay(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr(), schedule: "[50ms, 50ms, 50ms]"})
	site := newMerchantSite(t)
	site.mu.Lock()
	site.down = func(int) bool { return true }
	site.mu.Unlock()

	p := g.mustCreate("dead-1", 500, "wechat_native", site.url())
	id := p["payment_id"].(string)
	g.pay(id)
	g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
	eventID := "evt_" + id + "_payment_succeeded"

	var dead []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := g.adminCall(http.MethodGet, "/admin/notifications/dead", "")
		var body struct {
			Dead []map[string]any `json:"dead"`
		}
		json.Unmarshal(r.Body, &body)
		if len(body.Dead) > 0 {
			dead = body.Dead
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event never dead-lettered: %d %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dead[0]["event_id"] != eventID || dead[0]["attempts"] != float64(4) || !strings.Contains(dead[0]["last_error"].(string), "503") {
		t.Fatalf("dead letter: %v", dead[0])
	}
	site.mu.Lock()
	attempts := site.reqs
	site.down = nil
	site.mu.Unlock()
	if attempts != 4 {
		t.Fatalf("%d attempts before the dead letter, want 4 (first + 3 retries)", attempts)
	}
	if r := g.adminCall(http.MethodPost, "/admin/notifications/evt_pay_nope_payment_succeeded/replay", ""); r.Status != 404 {
		t.Fatalf("replay of an unknown event: %d %s", r.Status, r.Body)
	}
	if r := g.adminCall(http.MethodPost, "/admin/notifications/"+eventID+"/replay", ""); r.Status != 202 {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	ev := site.waitEvent("payment.succeeded", id)
	if ev["id"] != eventID {
		t.Fatalf("replayed event id %v", ev["id"])
	}
	r := g.adminCall(http.MethodGet, "/admin/notifications/dead", "")
	if strings.Contains(string(r.Body), eventID) {
		t.Fatalf("replayed event still dead: %s", r.Body)
	}
	// Without the token the admin API refuses.
	req := mustReq(t, http.MethodGet, g.admin+"/admin/notifications/dead", "")
	if res := do(t, req); res.Status != 401 || res.code(t) != "missing_auth" {
		t.Fatalf("no token: %d %s", res.Status, res.Body)
	}
}

// A merchant down for its first two attempts gets the event on the third,
// with the same event id and a valid fresh signature each time.
func TestMerchantDownThenUp(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr(), schedule: "[50ms, 50ms, 50ms]"})
	site := newMerchantSite(t)
	site.mu.Lock()
	site.down = func(n int) bool { return n <= 2 }
	site.mu.Unlock()
	p := g.mustCreate("downup-1", 500, "alipay_qr", site.url())
	id := p["payment_id"].(string)
	g.pay(id)
	ev := site.waitEvent("payment.succeeded", id)
	site.mu.Lock()
	defer site.mu.Unlock()
	if site.reqs != 3 || ev["id"] != "evt_"+id+"_payment_succeeded" || site.bad != 0 {
		t.Fatalf("requests %d, event %v, bad signatures %d", site.reqs, ev["id"], site.bad)
	}
}
