package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/paygate/paygate/store/storetest"
)

// backends runs f on each store paygate serves from: Redis alone (sandbox)
// and the PostgreSQL ledger with Redis for the shared short-lived state.
func backends(t *testing.T, f func(t *testing.T, o e2eOpts)) {
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		f(t, e2eOpts{redisAddr: storetest.Redis(t).Addr()})
	})
	t.Run("ledger", func(t *testing.T) {
		t.Parallel()
		f(t, e2eOpts{redisAddr: storetest.Redis(t).Addr(), pgDSN: newPG(t).NewDatabase(t)})
	})
}

// ids are the payment ids of a list answer, in order.
func ids(t testing.TB, page map[string]any) []string {
	t.Helper()
	data, ok := page["data"].([]any)
	if !ok {
		t.Fatalf("no data array: %v", page)
	}
	out := make([]string, len(data))
	for i, d := range data {
		out[i] = d.(map[string]any)["payment_id"].(string)
	}
	return out
}

// TestListPaymentsE2E: 45 payments page as 20 + 20 + 5, newest first, with
// has_more telling when to stop; filters by status and creation time; bad
// query parameters are invalid_request naming the parameter.
func TestListPaymentsE2E(t *testing.T) {
	backends(t, func(t *testing.T, o e2eOpts) {
		g := startE2E(t, o)
		site := newMerchantSite(t)
		var created []string // oldest first
		var createdAt []string
		for i := range 45 {
			p := g.mustCreate(fmt.Sprintf("list-%02d", i), int64(100+i), "wechat_native", site.url())
			created = append(created, p["payment_id"].(string))
			createdAt = append(createdAt, p["created_at"].(string))
		}
		var got []string
		after := ""
		for _, want := range []struct {
			n    int
			more bool
		}{{20, true}, {20, true}, {5, false}} {
			uri := "/v1/payments"
			if after != "" {
				uri += "?starting_after=" + after
			}
			page := g.get(uri)
			pg := ids(t, page)
			if len(pg) != want.n || page["has_more"] != want.more {
				t.Fatalf("GET %s: %d payments, has_more %v; want %d, %v", uri, len(pg), page["has_more"], want.n, want.more)
			}
			got = append(got, pg...)
			after = pg[len(pg)-1]
		}
		for i, id := range got {
			if want := created[len(created)-1-i]; id != want {
				t.Fatalf("position %d: %s, want %s (newest first)", i, id, want)
			}
		}
		if page := g.get("/v1/payments?limit=100"); len(ids(t, page)) != 45 || page["has_more"] != false {
			t.Fatalf("limit=100: %d, has_more %v", len(ids(t, page)), page["has_more"])
		}

		// Filters.
		g.pay(created[3])
		g.waitFor("/v1/payments/"+created[3], "succeeded", statusIs("succeeded"))
		if pg := ids(t, g.get("/v1/payments?status=succeeded")); len(pg) != 1 || pg[0] != created[3] {
			t.Fatalf("status=succeeded: %v, want [%s]", pg, created[3])
		}
		if pg := ids(t, g.get("/v1/payments?status=pending&limit=100")); len(pg) != 44 {
			t.Fatalf("status=pending: %d payments, want 44", len(pg))
		}
		q := url.Values{"created_gte": {createdAt[40]}, "created_lt": {createdAt[44]}}
		if pg := ids(t, g.get("/v1/payments?"+q.Encode())); len(pg) != 4 || pg[0] != created[43] || pg[3] != created[40] {
			t.Fatalf("created in [40, 44): %v", pg)
		}

		// Bad parameters change nothing and name themselves.
		for uri, param := range map[string]string{
			"/v1/payments?limit=0":                    "limit",
			"/v1/payments?limit=101":                  "limit",
			"/v1/payments?limit=ten":                  "limit",
			"/v1/payments?created_gte=yesterday":      "created_gte",
			"/v1/payments?created_lt=2026-13-01":      "created_lt",
			"/v1/payments?status=refunded":            "status",
			"/v1/payments?starting_after=pay_nothing": "starting_after",
			"/v1/payments?colour=red":                 "colour",
			"/v1/payments?limit=1&limit=2":            "limit",
		} {
			r := g.call(http.MethodGet, uri, nil)
			msg, _ := r.obj(t)["error"].(map[string]any)["message"].(string)
			if r.Status != 400 || r.code(t) != "invalid_request" || len(msg) < len(param) || msg[:len(param)] != param {
				t.Errorf("GET %s: %d %s; want 400 invalid_request naming %s", uri, r.Status, r.Body, param)
			}
		}
	})
}

// TestListRefundsE2E: a payment's refunds newest first, and a refund found
// by its out_refund_no.
func TestListRefundsE2E(t *testing.T) {
	backends(t, func(t *testing.T, o e2eOpts) {
		g := startE2E(t, o)
		site := newMerchantSite(t)
		p := g.mustCreate("refunds-list", 1000, "wechat_native", site.url())
		id := p["payment_id"].(string)
		empty := g.get("/v1/payments/" + id + "/refunds")
		if d, ok := empty["data"].([]any); !ok || len(d) != 0 || empty["has_more"] != false {
			t.Fatalf("no refunds yet: %v", empty)
		}
		g.pay(id)
		g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
		var rids []string
		for i := range 3 {
			r := g.call(http.MethodPost, "/v1/payments/"+id+"/refunds", map[string]any{"out_refund_no": fmt.Sprintf("rl-%d", i), "amount": 100})
			if r.Status != 201 {
				t.Fatalf("refund %d: %d %s", i, r.Status, r.Body)
			}
			rids = append(rids, r.obj(t)["refund_id"].(string))
		}
		list := g.get("/v1/payments/" + id + "/refunds")
		data := list["data"].([]any)
		if len(data) != 3 || list["has_more"] != false {
			t.Fatalf("refunds: %v", list)
		}
		for i, d := range data {
			if got := d.(map[string]any)["refund_id"]; got != rids[2-i] {
				t.Fatalf("refund %d is %v, want %s (newest first)", i, got, rids[2-i])
			}
		}
		rf := g.get("/v1/refunds?out_refund_no=rl-1")
		if rf["refund_id"] != rids[1] || rf["payment_id"] != id || rf["amount"] != float64(100) {
			t.Fatalf("by out_refund_no: %v", rf)
		}
		for uri, want := range map[string]int{
			"/v1/refunds?out_refund_no=rl-9":     404,
			"/v1/refunds":                        400,
			"/v1/refunds?out_refund_no=bad%20no": 400,
			"/v1/payments/pay_nothing/refunds":   404,
			"/v1/payments/" + id + "x/refunds":   404,
		} {
			if r := g.call(http.MethodGet, uri, nil); r.Status != want {
				t.Errorf("GET %s: %d %s, want %d", uri, r.Status, r.Body, want)
			}
		}
		if r := g.call(http.MethodDelete, "/v1/payments/"+id+"/refunds", nil); r.Status != 405 || r.Header.Get("Allow") != "GET, POST" {
			t.Errorf("DELETE refunds: %d Allow %q", r.Status, r.Header.Get("Allow"))
		}
	})
}
