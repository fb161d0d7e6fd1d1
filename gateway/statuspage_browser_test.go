package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/paygate/paygate/routing"
)

// chromium finds Debian's chromium. Outside CI a machine without it skips
// the browser tests; in CI (where .ci/run installs it) its absence fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium): the status page's browser test cannot run")
	return ""
}

// browser starts a headless chromium with a fresh profile, bounded by d.
func browser(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	return bctx
}

// Hostile operator text: each would set window.__pwned if it ran.
const (
	hostileChannel = `ch-x"><script>window.__pwned="channel"</script>`
	hostileRule    = `<img src=x onerror="window.__pwned='rule'">`
	hostileMatch   = `<script>window.__pwned="match"</script>`
	hostileReload  = `</p><svg onload="window.__pwned='reload'">`
)

// The status page in a real browser: one row per channel, each breaker state
// in its own colour (half-open distinct from both others), "no data" for a
// channel without recent calls, the current time and the version, hostile
// names shown as text and never run, and the page reloading itself.
func TestStatusPageInBrowser(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		served.Add(1)
		renderStatus(w, &statusView{
			Now: time.Now(), Version: "v1.2.3-test", RefreshSec: 1,
			Channels: []routing.ChannelStatus{
				{Channel: "ch-closed", Breaker: "closed", Score: 0.99, SuccessRate: 0.995, Samples: 200, P50MS: 40, P99MS: 180},
				{Channel: "ch-half", Breaker: "half-open", Score: 0.4, SuccessRate: 0.5, Samples: 4, P50MS: 90, P99MS: 900},
				{Channel: "ch-open", Breaker: "open", Score: 0.01, SuccessRate: 0.1, Samples: 30, P50MS: 2000, P99MS: 5000},
				{Channel: "ch-idle", Breaker: "closed", Score: 1, SuccessRate: 1, Samples: 0},
				{Channel: hostileChannel, Breaker: "closed", Score: 1, SuccessRate: 1, Samples: 0},
			},
			Rules: []routing.RuleInfo{{Name: hostileRule, Match: hostileMatch,
				Channels: []routing.RuleChannel{{ID: "ch-closed", Weight: 1}}}},
			Reload:    &ReloadStatus{At: time.Now(), OK: false, Error: hostileReload},
			Merchants: []merchantBacklog{{ID: "m1", Pending: 3, Dead: 1, OK: true}},
		})
	}))
	t.Cleanup(srv.Close)
	ctx := browser(t, 25*time.Second)

	// What the test reads of the rendered DOM.
	type page struct {
		Rows                                     int
		ClosedColor, HalfColor, HalfBg, OpenColr string
		IdleText, BusyText, NowAttr, Version     string
		RuleText, MatchText, ReloadText          string
		ChannelText                              string
		Pwned                                    bool
		Scripts                                  int
		Origin                                   float64
	}
	cell := func(ch string) string { return `document.querySelector('tr[data-channel="` + ch + `"] td.breaker')` }
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(`#channels`)); err != nil {
		t.Fatalf("browser: %v", err)
	}
	p, err := chromedp.Run(ctx, chromedp.Evaluate[page](`({
		Rows: document.querySelectorAll('#channels tbody tr').length,
		ClosedColor: getComputedStyle(`+cell("ch-closed")+`).color,
		HalfColor: getComputedStyle(`+cell("ch-half")+`).color,
		HalfBg: getComputedStyle(`+cell("ch-half")+`).backgroundColor,
		OpenColr: getComputedStyle(`+cell("ch-open")+`).color,
		IdleText: document.querySelector('tr[data-channel="ch-idle"] td.nodata').textContent,
		BusyText: document.querySelector('tr[data-channel="ch-closed"]').cells[3].textContent,
		NowAttr: document.querySelector('#now').getAttribute('datetime'),
		Version: document.querySelector('#version').textContent,
		RuleText: document.querySelector('#rules tbody tr').cells[0].textContent,
		MatchText: document.querySelector('#rules tbody tr').cells[1].textContent,
		ReloadText: document.querySelector('#reload').textContent,
		ChannelText: document.querySelectorAll('#channels tbody tr')[4].cells[0].textContent,
		Pwned: window.__pwned !== undefined,
		Scripts: document.querySelectorAll('script, img, svg').length,
		Origin: performance.timeOrigin,
	})`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	rows, closedColor, halfColor, halfBg, openColr := p.Rows, p.ClosedColor, p.HalfColor, p.HalfBg, p.OpenColr
	idleText, busyText, nowAttr, version := p.IdleText, p.BusyText, p.NowAttr, p.Version
	ruleText, matchText, reloadText, channelText := p.RuleText, p.MatchText, p.ReloadText, p.ChannelText
	pwned, scripts, origin1 := p.Pwned, p.Scripts, p.Origin
	if rows != 5 {
		t.Errorf("%d channel rows, want 5", rows)
	}
	if closedColor != "rgb(0, 119, 0)" || halfColor != "rgb(153, 85, 0)" || openColr != "rgb(187, 0, 0)" {
		t.Errorf("breaker colours: closed %s, half-open %s, open %s", closedColor, halfColor, openColr)
	}
	if halfColor == closedColor || halfColor == openColr || halfBg == "rgba(0, 0, 0, 0)" {
		t.Errorf("half-open is not distinct: colour %s background %s", halfColor, halfBg)
	}
	if idleText != "no data" || busyText != "99.5%" {
		t.Errorf("idle channel shows %q, busy one %q", idleText, busyText)
	}
	if at, err := time.Parse(time.RFC3339, nowAttr); err != nil || time.Since(at).Abs() > time.Minute {
		t.Errorf("page time %q is not now (%v)", nowAttr, err)
	}
	if version != "v1.2.3-test" {
		t.Errorf("version %q", version)
	}
	if pwned || scripts != 0 {
		t.Errorf("hostile text ran or became markup: pwned=%v, %d script/img/svg elements", pwned, scripts)
	}
	if ruleText != hostileRule || matchText != hostileMatch || channelText != hostileChannel {
		t.Errorf("hostile text not shown as text: rule %q match %q channel %q", ruleText, matchText, channelText)
	}
	if want := "refused: " + hostileReload; len(reloadText) < len(want) || reloadText[len(reloadText)-len(want):] != want {
		t.Errorf("reload line %q does not end with %q", reloadText, want)
	}

	// The page reloads itself: a new document (a new time origin) and a new
	// request to the server, within a few refresh periods.
	before := served.Load()
	deadline := time.Now().Add(6 * time.Second)
	for {
		origin, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.timeOrigin`))
		if err == nil && origin != origin1 && served.Load() > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not reload itself (served %d times)", served.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Browser is browser for the external test package.
func Browser(t *testing.T, d time.Duration) context.Context { return browser(t, d) }
