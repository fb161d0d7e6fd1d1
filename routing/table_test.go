package routing

import (
	"math"
	"reflect"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

var qr100 = Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY"}

// oneRule is baseConfig with a single qr rule over refs.
func oneRule(exploration float64, refs ...config.ChannelRef) *config.Config {
	cfg := baseConfig()
	cfg.Routing.Rules = []config.Rule{{Name: "r", When: config.Match{Methods: []string{"qr"}}, Channels: refs}}
	cfg.Routing.Exploration = exploration
	return cfg
}

func TestDecidePriorityTiers(t *testing.T) {
	t.Parallel()
	cfg := oneRule(0,
		config.ChannelRef{ID: "bank-a", Weight: 100, Priority: 2},
		config.ChannelRef{ID: "wx", Weight: 1, Priority: 1},
		config.ChannelRef{ID: "ali", Weight: 1, Priority: 1},
		config.ChannelRef{ID: "wx-usd", Weight: 5, Priority: 0}, // excluded: currency
	)
	r, _ := newRouter(t, cfg, nil)
	firsts := map[string]int{}
	for range 200 {
		d := r.Table().Decide(qr100)
		if len(d.Candidates) != 4 {
			t.Fatalf("candidates = %+v", d.Candidates)
		}
		c := d.Candidates
		firsts[c[0].Channel]++
		if c[0].Reason != ReasonWeighted || c[1].Reason != ReasonRanked || c[0].Priority != 1 || c[1].Priority != 1 {
			t.Fatalf("first tier = %+v", c[:2])
		}
		if c[2].Channel != "bank-a" || c[2].Reason != ReasonLaterTier || !c[2].Eligible {
			t.Fatalf("third = %+v, want bank-a in a later tier despite its weight", c[2])
		}
		if c[3].Channel != "wx-usd" || c[3].Eligible || c[3].Reason != ReasonCurrency {
			t.Fatalf("last = %+v, want wx-usd excluded", c[3])
		}
	}
	if firsts["wx"] < 60 || firsts["ali"] < 60 {
		t.Fatalf("equal weights in the first tier should share the first place: %v", firsts)
	}
}

// share runs n decisions and returns how often each channel came first and
// how many first places were explorations.
func share(r *Router, n int) (firsts map[string]float64, explored float64) {
	firsts = map[string]float64{}
	for range n {
		d := r.Table().Decide(qr100)
		firsts[d.Candidates[0].Channel] += 1 / float64(n)
		if d.Candidates[0].Reason == ReasonExploration {
			explored += 1 / float64(n)
		}
	}
	return firsts, explored
}

func TestDecideWeightedShare(t *testing.T) {
	t.Parallel()
	// Equal scores: the first place follows the weights.
	r, _ := newRouter(t, oneRule(0, ref_("wx", 60), ref_("ali", 40)), nil)
	firsts, explored := share(r, 20000)
	if math.Abs(firsts["wx"]-0.6) > 0.02 || explored != 0 {
		t.Fatalf("first places = %v (explored %v), want wx ≈ 0.6 and no exploration", firsts, explored)
	}

	// One failure: wx's estimate (19.6/21 = 0.933) is within the 0.05
	// tolerance of ali's prior 0.98, so the weights still decide.
	r2, _ := newRouter(t, oneRule(0, ref_("wx", 50), ref_("ali", 50)), nil)
	callN(t, r2, "wx", 1, errTech)
	c := candidate(t, r2.Table().Decide(qr100), "wx")
	if c.Eliminated || c.Score >= c.Best || math.Abs(c.Best-0.98) > 1e-12 {
		t.Fatalf("wx = %+v, want a lower estimate within tolerance of the best 0.98", c)
	}
	firsts, _ = share(r2, 20000)
	if math.Abs(firsts["wx"]-0.5) > 0.02 {
		t.Fatalf("wx first share = %v, want ≈ 0.5 (within tolerance: by weight)", firsts["wx"])
	}

	// Eight failures (19.6/28 = 0.7): eliminated. Without exploration it is
	// never first, but stays in the order for failover.
	callN(t, r2, "wx", 7, errTech) // below min_requests: the breaker stays closed
	d := r2.Table().Decide(qr100)
	c = candidate(t, d, "wx")
	if !c.Eliminated || c.Why != WhyFailures || !c.Eligible || c.Reason != ReasonEliminated || d.Candidates[1].Channel != "wx" {
		t.Fatalf("decision = %+v, want wx eliminated for failures, second", d)
	}
	if math.Abs(c.Score-0.7) > 1e-12 || math.Abs(c.Best-0.98) > 1e-12 {
		t.Fatalf("wx score %v best %v, want 0.7 and 0.98", c.Score, c.Best)
	}
	firsts, _ = share(r2, 2000)
	if firsts["wx"] != 0 {
		t.Fatalf("eliminated wx first share = %v, want 0 without exploration", firsts["wx"])
	}
}

func TestExplorationShare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		exploration float64
	}{
		{"off", 0},
		{"two percent", 0.02},
		{"ten percent", 0.1},
		{"thirty percent", 0.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// wx dominates by weight; exploration gives the others a uniform
			// share of the explored first places.
			r, _ := newRouter(t, oneRule(tt.exploration, ref_("wx", 1000), ref_("ali", 1), ref_("bank-a", 1)), nil)
			const n = 30000
			firsts, explored := share(r, n)
			if tol := 4*math.Sqrt(tt.exploration*(1-tt.exploration)/n) + 1e-9; math.Abs(explored-tt.exploration) > tol {
				t.Fatalf("explored share = %v, want %v ± %v", explored, tt.exploration, tol)
			}
			// Weighted choice alone gives ali ~0.1%; exploration adds ε/3.
			wantAli := tt.exploration/3 + (1-tt.exploration)*1.0/1002
			if math.Abs(firsts["ali"]-wantAli) > 0.01 {
				t.Fatalf("ali first share = %v, want ≈ %v", firsts["ali"], wantAli)
			}
		})
	}
}

func TestDecideSeedIsDeterministic(t *testing.T) {
	t.Parallel()
	seq := func(seed uint64) []string {
		r, _ := newRouter(t, oneRule(0.2, ref_("wx", 1), ref_("ali", 1), ref_("bank-a", 1)), nil, WithSeed(seed))
		var out []string
		for range 100 {
			d := r.Table().Decide(qr100)
			out = append(out, d.Candidates[0].Channel+"/"+d.Candidates[0].Reason)
		}
		return out
	}
	a, b, c := seq(42), seq(42), seq(43)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different decisions")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same 100 decisions")
	}
}

func TestDecideLogsAtDebug(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	r, err := New(baseConfig(), build, nil, zap.New(core), WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	d := r.Table().Decide(Request{Merchant: "demo", Method: payment.MethodQR, Amount: 500000, Currency: "CNY", Metadata: map[string]string{"openid": "secret"}})
	entries := logs.FilterMessage("routing decision").All()
	if len(entries) != 1 {
		t.Fatalf("want one decision log entry, got %d", len(entries))
	}
	f := entries[0].ContextMap()
	if f["rule"] != "large-to-bank" || f["merchant"] != "demo" || f["amount"] != int64(500000) || f["method"] != "qr" {
		t.Fatalf("log fields = %v", f)
	}
	if _, ok := f["metadata"]; ok {
		t.Fatal("metadata may hold payer data and must not be logged")
	}
	cands, ok := f["candidates"].([]any)
	if !ok || len(cands) != len(d.Candidates) {
		t.Fatalf("candidates logged = %#v", f["candidates"])
	}
	first := cands[0].(map[string]any)
	if first["channel"] != d.Candidates[0].Channel || first["reason"] != d.Candidates[0].Reason || first["breaker"] != BreakerClosed {
		t.Fatalf("first logged candidate = %v, decision %+v", first, d.Candidates[0])
	}
	last := cands[1].(map[string]any)
	if last["eligible"] != false || last["reason"] != ReasonWeightZero {
		t.Fatalf("excluded logged candidate = %v", last)
	}
}

func TestDecideAllocatesOnlyTheResult(t *testing.T) {
	r, _ := newRouter(t, baseConfig(), nil)
	tab := r.Table()
	req := Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY", Metadata: map[string]string{"region": "north"}}
	if n := testing.AllocsPerRun(200, func() { _ = tab.Decide(req) }); n != 1 {
		t.Fatalf("Decide allocates %v times per call, want 1 (the candidate slice)", n)
	}
}

func TestMaxAttemptsDefault(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	r, _ := newRouter(t, cfg, nil)
	if got := r.Table().MaxAttempts(); got != 2 {
		t.Fatalf("MaxAttempts = %d, want the default 2", got)
	}
	cfg.Routing.Failover.MaxAttempts = 3
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := r.Table().MaxAttempts(); got != 3 {
		t.Fatalf("MaxAttempts = %d, want 3", got)
	}
}

func TestTableChannelLookups(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	tab := r.Table()
	a, ok := tab.Channel("ali")
	if !ok || a.ID() != "ali" {
		t.Fatalf("Channel(ali) = %v, %v", a, ok)
	}
	cc, ok := tab.ChannelConfig("wx-usd")
	if !ok || cc.Type != "wechat" || !reflect.DeepEqual(cc.Currencies, []string{"USD"}) {
		t.Fatalf("ChannelConfig(wx-usd) = %+v, %v", cc, ok)
	}
	if _, ok := tab.Channel("nope"); ok {
		t.Fatal("Channel(nope) found")
	}
	if _, ok := tab.ChannelConfig("nope"); ok {
		t.Fatal("ChannelConfig(nope) found")
	}
}
