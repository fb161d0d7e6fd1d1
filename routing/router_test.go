package routing

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
)

func TestReloadUnderConcurrentDecide(t *testing.T) {
	t.Parallel()
	// Two tables that route qr differently; every decision must come whole
	// from one of them.
	cfgA := oneRule(0.1, ref_("wx", 1), ref_("ali", 0))
	cfgA.Routing.Rules[0].Name = "a"
	cfgB := oneRule(0.1, ref_("ali", 3), ref_("bank-a", 0), ref_("wx-usd", 1))
	cfgB.Routing.Rules[0].Name = "b"
	r, _ := newRouter(t, cfgA, nil)

	consistent := func(d Decision) bool {
		c := d.Candidates
		switch d.Rule {
		case "a":
			return len(c) == 2 && c[0].Channel == "wx" && c[0].Eligible && c[1].Channel == "ali" && c[1].Reason == ReasonWeightZero
		case "b":
			return len(c) == 3 && c[0].Channel == "ali" && c[0].Eligible && c[0].Weight == 3 &&
				c[1].Channel == "bank-a" && c[1].Reason == ReasonWeightZero &&
				c[2].Channel == "wx-usd" && c[2].Reason == ReasonCurrency
		}
		return false
	}

	var stop atomic.Bool
	var seenA, seenB, bad atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				tab := r.Table()
				d := tab.Decide(qr100)
				if !consistent(d) {
					bad.Add(1)
					t.Errorf("inconsistent decision %+v", d)
					return
				}
				if _, ok := tab.Channel(d.Candidates[0].Channel); !ok {
					bad.Add(1)
				}
				if d.Rule == "a" {
					seenA.Add(1)
				} else {
					seenB.Add(1)
				}
			}
		}()
	}
	for i := range 300 {
		cfg := cfgA
		if i%2 == 0 {
			cfg = cfgB
		}
		if err := r.Reload(cfg); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	// Let the deciders see the last table too, then stop them.
	for seenA.Load() == 0 || seenB.Load() == 0 {
		if bad.Load() > 0 {
			break
		}
		_ = r.Reload(cfgB)
		_ = r.Reload(cfgA)
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatal("inconsistent decisions")
	}
}

func TestReloadKeepsState(t *testing.T) {
	t.Parallel()
	var builds atomic.Int64
	counting := func(ch config.Channel) (adapters.Channel, error) {
		builds.Add(1)
		return build(ch)
	}
	clk := newClock()
	r, err := New(baseConfig(), counting, nil, nil, WithClock(clk.Now), WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	callN(t, r, "wx", 10, errTech) // opens wx (open_for 1h)
	callN(t, r, "ali", 5, errTech) // lowers ali's score
	callN(t, r, "bank-a", 3, errAmbig)
	aliScore := status(t, r, "ali").Score
	oldAdapter, _ := r.Table().Channel("ali")
	if status(t, r, "wx").Breaker != BreakerOpen {
		t.Fatal("setup: wx should be open")
	}

	// wx50 is baseConfig with other breaker settings for wx, then f.
	wx50 := func(f func(c *config.Config)) func() *config.Config {
		return func() *config.Config {
			c := baseConfig()
			c.Channels[0].Breaker.MinRequests = 50
			f(c)
			return c
		}
	}
	// Steps build on each other: they run in order, not in parallel.
	tests := []struct {
		step        string
		cfg         func() *config.Config
		wxState     string
		aliScore    float64
		bankSamples int64 // -1: not reported
	}{
		{"same breakers, other rules: state kept", func() *config.Config {
			c := baseConfig()
			c.Routing.Rules = c.Routing.Rules[:2]
			return c
		}, BreakerOpen, aliScore, 3},
		{"wx breaker settings changed: fresh breaker, health kept", wx50(func(*config.Config) {}), BreakerClosed, aliScore, 3},
		{"bank-a removed", wx50(func(c *config.Config) {
			c.Channels = append(c.Channels[:2], c.Channels[3])
			c.Routing.Rules = nil
		}), BreakerClosed, aliScore, -1},
		{"bank-a back: fresh state", wx50(func(*config.Config) {}), BreakerClosed, aliScore, 0},
		{"health window changed: fresh health", wx50(func(c *config.Config) { c.Routing.Health.Buckets = 6 }), BreakerClosed, 0.98, 0},
	}
	bankSamples := func() int64 {
		for _, s := range r.Channels() {
			if s.Channel == "bank-a" {
				return s.Samples
			}
		}
		return -1
	}
	for _, tt := range tests {
		next := tt.cfg()
		before := builds.Load()
		if err := r.Reload(next); err != nil {
			t.Fatalf("%s: reload: %v", tt.step, err)
		}
		if got := builds.Load() - before; got != int64(len(next.Channels)) {
			t.Fatalf("%s: %d adapters built, want %d (all rebuilt)", tt.step, got, len(next.Channels))
		}
		if s := status(t, r, "wx").Breaker; s != tt.wxState {
			t.Fatalf("%s: wx breaker = %s, want %s", tt.step, s, tt.wxState)
		}
		if s := status(t, r, "ali").Score; math.Abs(s-tt.aliScore) > 1e-12 {
			t.Fatalf("%s: ali score = %v, want %v", tt.step, s, tt.aliScore)
		}
		if got := bankSamples(); got != tt.bankSamples {
			t.Fatalf("%s: bank-a samples = %d, want %d", tt.step, got, tt.bankSamples)
		}
	}
	newAdapter, _ := r.Table().Channel("ali")
	if newAdapter == oldAdapter {
		t.Fatal("adapters were not rebuilt")
	}
}

func TestReloadOldTableStaysUsable(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	old := r.Table()
	cfg := baseConfig()
	cfg.Routing.Rules = nil
	cfg.Channels = cfg.Channels[1:] // wx removed
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	// A request that took the old table before the reload still decides and
	// finds its adapters on it.
	d := old.Decide(qr100)
	if d.Rule != "default-qr" {
		t.Fatalf("old table decided %q", d.Rule)
	}
	if _, ok := old.Channel("wx"); !ok {
		t.Fatal("old table lost wx")
	}
	// The new table never routes to wx, but still finds its adapter for the
	// payments already made on it (callbacks, queries, closes, refunds).
	for _, c := range r.Table().Decide(qr100).Candidates {
		if c.Channel == "wx" {
			t.Fatalf("new table routes to the removed channel: %+v", c)
		}
	}
	if _, ok := r.Table().Channel("wx"); !ok {
		t.Fatal("new table lost the removed channel's adapter")
	}
	for _, st := range r.Channels() {
		if st.Channel == "wx" {
			t.Fatal("a removed channel is still listed for ops")
		}
	}
	// A later reload that brings wx back routes to it again.
	if err := r.Reload(baseConfig()); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Table().retired["wx"]; ok {
		t.Fatal("a channel configured again is still retired")
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	// A bare config: every zero value gets its documented default.
	cfg := &config.Config{Channels: []config.Channel{{ID: "wx", Type: "wechat", Methods: []string{"qr"}}}}
	r, err := New(cfg, build, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tab := r.Table()
	ch := tab.byID["wx"]
	wantBr := config.Breaker{MinRequests: 20, FailureRatio: 0.5, OpenFor: config.Duration(10 * time.Second), HalfOpenRequests: 5, Interval: config.Duration(30 * time.Second),
		ConsecutiveFailures: 5}
	if ch.br.settings != wantBr || ch.timeout != 3*time.Second || ch.target != time.Second || ch.currencies[0] != "CNY" {
		t.Fatalf("channel defaults: %+v, timeout %v, target %v, currencies %v", ch.br.settings, ch.timeout, ch.target, ch.currencies)
	}
	if tab.window != time.Minute || tab.buckets != 12 || tab.scoring != (scoring{minSamples: 20, pct: 0.9}) || tab.sync != 2*time.Second || tab.maxAttempts != 2 || tab.exploration != 0 ||
		tab.tolerance != 0.05 || tab.halfLife != 10*time.Second {
		t.Fatalf("routing defaults: %+v", tab)
	}
	if d := tab.Decide(qr100); d.Rule != FallbackRule || len(d.Candidates) != 1 || !d.Candidates[0].Eligible {
		t.Fatalf("decision = %+v", d)
	}
}

// A disabled channel drains: never routed to, excluded with its reason,
// but its adapter still serves the payments already made on it.
func TestDisabledChannelDrains(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Channels[0].Disabled = true // wx
	r, _ := newRouter(t, cfg, nil)
	for range 50 {
		d := r.Table().Decide(qr100)
		c := candidate(t, d, "wx")
		if c.Eligible || c.Reason != ReasonDisabled {
			t.Fatalf("disabled wx: %+v", c)
		}
		if d.Candidates[0].Channel == "wx" {
			t.Fatal("routed to a disabled channel")
		}
	}
	if _, ok := r.Table().Channel("wx"); !ok {
		t.Fatal("a disabled channel's adapter is gone")
	}
}
