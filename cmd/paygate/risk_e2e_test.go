package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/store/storetest"
)

// Risk rules through the whole binary's wiring, on Redis and on the
// embedded store, and with the PostgreSQL ledger (counters in Redis): a
// refusal is 403 with nothing created, a replay is neither judged nor
// counted, the metric and the status page show the rule, and a reload
// changes the limit.
func TestRiskEndToEnd(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testRiskEndToEnd(t, e2eOpts{redisAddr: storetest.Redis(t).Addr()}) })
	t.Run("embedded", func(t *testing.T) { testRiskEndToEnd(t, e2eOpts{}) })
	t.Run("ledger", func(t *testing.T) {
		testRiskEndToEnd(t, e2eOpts{redisAddr: storetest.Redis(t).Addr(), pgDSN: newPG(t).NewDatabase(t)})
	})
}

func testRiskEndToEnd(t *testing.T, o e2eOpts) {
	const rules = `
risk:
  rules:
    - name: per-payer
      limit: {count: 2, per: 1m, by: payer.openid}
`
	o.extra = rules
	path := writeConfig(t, o)
	g := startFrom(t, path, options{notifyPoll: 20 * time.Millisecond, noWatch: true})
	site := newMerchantSite(t)
	g.mustCreate("risk-1", 100, "qr", site.url())
	g.mustCreate("risk-2", 100, "qr", site.url())
	// A replay is answered, not judged, and not counted.
	if r := g.create("risk-2", 100, "qr", site.url()); r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	r := g.create("risk-3", 100, "qr", site.url())
	if r.Status != 403 || !strings.Contains(string(r.Body), `"risk_rejected"`) || strings.Contains(string(r.Body), "per-payer") {
		t.Fatalf("third create from one payer: %d %s", r.Status, r.Body)
	}
	if got := g.call(http.MethodGet, "/v1/payments?out_trade_no=risk-3", nil); got.Status != 404 {
		t.Fatalf("a refused create left a payment: %d %s", got.Status, got.Body)
	}
	metrics := do(t, mustReq(t, http.MethodGet, g.admin+"/metrics", ""))
	for _, want := range []string{`paygate_risk_decisions_total{outcome="refused",rule="per-payer"} 1`, `paygate_risk_decisions_total{outcome="passed",rule="per-payer"} 2`} {
		if !strings.Contains(string(metrics.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The status page (no token) names the rule but not its threshold.
	if page := string(do(t, mustReq(t, http.MethodGet, g.admin+"/", "")).Body); !strings.Contains(page, "<td>per-payer</td>") || strings.Contains(page, "2 creates per") {
		t.Errorf("the status page should name the rule without its threshold:\n%s", page)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	atomicWrite(t, path, strings.Replace(string(b), "count: 2,", "count: 3,", 1))
	if r := g.adminCall(http.MethodPost, "/admin/config/reload", ""); r.Status != 200 {
		t.Fatalf("reload: %d %s", r.Status, r.Body)
	}
	// The counts made under the old limit are kept: one more fits.
	g.mustCreate("risk-3", 100, "qr", site.url())
	if r := g.create("risk-4", 100, "qr", site.url()); r.Status != 403 {
		t.Fatalf("fourth create after raising the limit to 3: %d %s", r.Status, r.Body)
	}
}
