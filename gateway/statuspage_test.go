package gateway_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway"
)

// The real admin handler's status page, over a real router built from the
// config, in chromium: a row per configured channel, "no data" for a channel
// no payment has used, the version it was given, the time, and a hostile
// rule name from the config shown as text, never run.
func TestAdminStatusPageInBrowser(t *testing.T) {
	ctx := gateway.Browser(t, 25*time.Second)
	cfg := testConfig(t, "http://127.0.0.1:1")
	const hostile = `<img src=x onerror="window.__pwned=1">`
	cfg.Routing.Rules = append(cfg.Routing.Rules, config.Rule{Name: hostile,
		Channels: []config.ChannelRef{{ID: "wechat-main", Weight: 1}}})
	in := startInstance(t, cfg, "")
	admin := gateway.NewAdmin(in.srv, in.st, gateway.AdminOptions{Token: "the-real-admin-token-0123456789", Version: "v9.9.9-e2e"})
	srv := httptest.NewServer(admin)
	t.Cleanup(srv.Close)

	type page struct {
		Rows             int
		Channel, Cells   string
		Version, NowAttr string
		Rule             string
		Pwned            bool
		Markup           int
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(`#channels`)); err != nil {
		t.Fatalf("browser: %v", err)
	}
	p, err := chromedp.Run(ctx, chromedp.Evaluate[page](`({
		Rows: document.querySelectorAll('#channels tbody tr').length,
		Channel: document.querySelector('#channels tbody tr').cells[0].textContent,
		Cells: document.querySelector('#channels tbody tr td.nodata').textContent,
		Version: document.querySelector('#version').textContent,
		NowAttr: document.querySelector('#now').getAttribute('datetime'),
		Rule: document.querySelector('#rules tbody tr').cells[0].textContent,
		Pwned: window.__pwned !== undefined,
		Markup: document.querySelectorAll('script, img').length,
	})`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if p.Rows != len(cfg.Channels) || p.Channel != "wechat-main" || p.Cells != "no data" {
		t.Errorf("channels: %+v", p)
	}
	if at, err := time.Parse(time.RFC3339, p.NowAttr); err != nil || time.Since(at).Abs() > time.Minute || p.Version != "v9.9.9-e2e" {
		t.Errorf("time %q (%v), version %q", p.NowAttr, err, p.Version)
	}
	if p.Rule != hostile || p.Pwned || p.Markup != 0 {
		t.Errorf("hostile rule name: shown %q, ran %v, %d elements", p.Rule, p.Pwned, p.Markup)
	}
}
