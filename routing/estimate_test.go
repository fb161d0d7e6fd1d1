package routing

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

// Reconciler queries (and closes, refunds) are kept apart: they never move
// the success estimate nor the breaker, and show as query figures.
func TestQueriesKeptApartFromCreateHealth(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil) // min_requests 10
	for _, op := range []string{"query", "close", "refund", "query_refund"} {
		for range 20 {
			_ = r.Call(context.Background(), "wx", op, func(context.Context) error { return errTech })
		}
	}
	s := status(t, r, "wx")
	if s.Samples != 0 || math.Abs(s.Score-0.98) > 1e-12 || s.Breaker != BreakerClosed {
		t.Fatalf("after 80 failed queries: %+v, want the create estimate and breaker untouched", s)
	}
	if s.QuerySamples != 80 || s.QuerySuccessRate != 0 {
		t.Fatalf("query figures = %d, %v; want 80 samples, rate 0", s.QuerySamples, s.QuerySuccessRate)
	}

	// An open breaker refuses queries too (nothing is sent to a channel
	// known to be failing); they do not take half-open probe slots.
	callN(t, r, "wx", 10, errTech)
	err := r.Call(context.Background(), "wx", "query", func(context.Context) error { t.Fatal("query sent through an open breaker"); return nil })
	if ae, ok := adapters.AsError(err); !ok || ae.Code != "breaker_open" || ae.Op != "query" {
		t.Fatalf("query on an open breaker: %v", err)
	}
}

func TestQueriesDoNotTakeProbeSlots(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t, fastBreaker(1), nil)
	callN(t, r, "wx", 4, errTech)
	waitState(t, r, clk, "wx", BreakerHalfOpen)
	for range 3 {
		if err := r.Call(context.Background(), "wx", "query", func(context.Context) error { return errTech }); err != nil && !strings.Contains(err.Error(), "connect_failed") {
			t.Fatalf("query while half-open: %v", err)
		}
	}
	if s := status(t, r, "wx").Breaker; s != BreakerHalfOpen {
		t.Fatalf("failed queries moved the half-open breaker to %s", s)
	}
	callN(t, r, "wx", 1, nil) // the one probe
	if s := status(t, r, "wx").Breaker; s != BreakerClosed {
		t.Fatalf("after the probe: %s, want closed", s)
	}
}

// The breaker counts a rolling window: failures older than interval no
// longer count, and a failure ratio reached within it trips whatever
// successes came before the window.
func TestBreakerRollingWindow(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Channels[0].Breaker = config.Breaker{MinRequests: 10, FailureRatio: 0.5, OpenFor: config.Duration(time.Minute),
		HalfOpenRequests: 1, Interval: config.Duration(10 * time.Second), ConsecutiveFailures: 1000}
	r, clk := newRouter(t, cfg, nil)
	// A long healthy past does not dilute a burst of failures once it is
	// older than the window (a fixed interval would have counted it all).
	for range 100 {
		callN(t, r, "wx", 10, nil)
		clk.Advance(time.Second)
	}
	clk.Advance(10 * time.Second)
	callN(t, r, "wx", 9, errTech)
	if s := status(t, r, "wx").Breaker; s != BreakerClosed {
		t.Fatalf("9 failures: %s, want closed (fewer than min_requests)", s)
	}
	callN(t, r, "wx", 1, errTech)
	if s := status(t, r, "wx").Breaker; s != BreakerOpen {
		t.Fatalf("10 failures in the window after 1000 successes before it: %s, want open", s)
	}

	// Within the window, successes do dilute: the ratio is of the window.
	r3, _ := newRouter(t, cfg, nil)
	callN(t, r3, "wx", 11, nil)
	callN(t, r3, "wx", 10, errTech)
	if s := status(t, r3, "wx").Breaker; s != BreakerClosed {
		t.Fatalf("10 failures, 11 successes in the window: %s, want closed", s)
	}

	// Failures leave the window: 9 now, 9 more after the window passed do
	// not add up to 10.
	r2, clk2 := newRouter(t, cfg, nil)
	callN(t, r2, "wx", 9, errTech)
	clk2.Advance(11 * time.Second)
	callN(t, r2, "wx", 9, errTech)
	if s := status(t, r2, "wx").Breaker; s != BreakerClosed {
		t.Fatalf("9 + 9 failures a window apart: %s, want closed", s)
	}
	callN(t, r2, "wx", 1, errTech)
	if s := status(t, r2, "wx").Breaker; s != BreakerOpen {
		t.Fatalf("10 failures within the window: %s, want open", s)
	}
}

// A half-open channel is probing: a contender whatever its estimate. Once
// its probes close the breaker, the estimate forgets the outage.
func TestRecoveryAfterProbes(t *testing.T) {
	t.Parallel()
	cfg := fastBreaker(2)
	cfg.Routing.Rules = []config.Rule{{Name: "r", Channels: []config.ChannelRef{ref_("wx", 60), ref_("ali", 40)}}}
	r, clk := newRouter(t, cfg, nil)
	callN(t, r, "ali", 50, nil)
	callN(t, r, "wx", 4, errTech) // trips (min_requests 4)
	clk.Advance(5 * time.Second)  // a later bucket
	callN(t, r, "wx", 0, nil)
	if s := status(t, r, "wx"); s.Breaker != BreakerHalfOpen || s.Score > 0.9 {
		t.Fatalf("wx = %+v, want half-open with a low estimate", s)
	}
	c := candidate(t, r.Table().Decide(qr100), "wx")
	if c.Eliminated || !c.Eligible || !strings.HasPrefix(c.Reason, "probing") {
		t.Fatalf("half-open wx = %+v, want a probing contender, not eliminated", c)
	}
	callN(t, r, "wx", 2, nil) // both probes succeed
	s := status(t, r, "wx")
	if s.Breaker != BreakerClosed || s.Eliminated || s.Samples != 2 {
		t.Fatalf("after the probes: %+v, want closed, counting only what came since", s)
	}
	if want := (2 + 19.6) / 22; math.Abs(s.Score-want) > 1e-9 {
		t.Fatalf("estimate after recovery = %v, want %v (the outage forgotten)", s.Score, want)
	}
	firsts, _ := share(r, 4000)
	if math.Abs(firsts["wx"]-0.6) > 0.03 {
		t.Fatalf("wx first share after recovery = %v, want ≈ 0.6", firsts["wx"])
	}
}

// Explain and /admin/channels agree on the estimate, the best one and the
// elimination.
func TestEliminationShownInStatusAndExplain(t *testing.T) {
	t.Parallel()
	cfg := oneRule(0.02, ref_("wx", 60), ref_("ali", 40))
	r, _ := newRouter(t, cfg, nil)
	callN(t, r, "ali", 100, nil)
	callN(t, r, "wx", 6, nil)
	callN(t, r, "wx", 3, errTech) // (6+19.6)/29 = 0.883: eliminated, not tripped
	d := r.Table().Decide(qr100)
	c, a := candidate(t, d, "wx"), candidate(t, d, "ali")
	s := status(t, r, "wx")
	if !c.Eliminated || c.Why != WhyFailures || c.Best != a.Score || math.Abs(c.Score-(6+19.6)/29) > 1e-9 {
		t.Fatalf("explain wx = %+v (ali %v), want eliminated for failures below ali's estimate", c, a.Score)
	}
	if !s.Eliminated || s.Why != WhyFailures || s.Best != a.Score || s.Score != c.Score {
		t.Fatalf("status wx = %+v, want the same as explain", s)
	}
	if sa := status(t, r, "ali"); sa.Eliminated || sa.Best != sa.Score {
		t.Fatalf("status ali = %+v, want the best, not eliminated", sa)
	}
	firsts, explored := share(r, 20000)
	if want := 0.02 / 2; math.Abs(firsts["wx"]-want) > 0.004 || math.Abs(explored-0.02) > 0.005 {
		t.Fatalf("eliminated wx first share = %v (explored %v), want ≈ %v: exploration only", firsts["wx"], explored, want)
	}
}

// A channel failing for one method only: once that method's window has
// min_samples creates, its payments are routed on the method's estimate,
// and the channel's other methods keep theirs. The method windows are
// shared between instances like the channel's.
func TestPerMethodEstimate(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Routing.Rules = []config.Rule{
		{Name: "jsapi", When: config.Match{Methods: []string{"wechat_jsapi"}}, Channels: []config.ChannelRef{ref_("wx", 60), ref_("wx-usd", 40)}},
		{Name: "qr", When: config.Match{Methods: []string{"qr"}}, Channels: []config.ChannelRef{ref_("wx", 60), ref_("ali", 40)}},
	}
	cfg.Channels[3].Currencies = nil // wx-usd: CNY too
	hs := newMemStore()
	r1, r2, _ := twoInstances(t, hs, cfg)
	create := func(r *Router, m payment.Method, n int, err error) {
		for range n {
			_ = r.CallCreate(context.Background(), "wx", m, func(context.Context) error { return err })
		}
	}
	create(r1, payment.MethodQR, 200, nil)
	create(r1, payment.MethodWechatJSAPI, 9, errTech) // fewer than min_requests (10): the breaker stays closed
	create(r1, payment.MethodWechatJSAPI, 30, nil)
	mustSync(t, r1, r2)

	jsapi := Request{Merchant: "demo", Method: payment.MethodWechatJSAPI, Amount: 100, Currency: "CNY"}
	for _, r := range []*Router{r1, r2} {
		q := candidate(t, r.Table().Decide(qr100), "wx")
		j := candidate(t, r.Table().Decide(jsapi), "wx")
		if !q.PerMethod || q.Eliminated || q.Score < 0.99 {
			t.Fatalf("qr: wx = %+v, want its qr estimate, not eliminated", q)
		}
		// jsapi: (30 + 19.6) / (39 + 20) = 0.84 against wx-usd's prior 0.98.
		if !j.PerMethod || !j.Eliminated || math.Abs(j.Score-(30+19.6)/59) > 1e-9 {
			t.Fatalf("jsapi: wx = %+v, want its jsapi estimate 0.84, eliminated", j)
		}
	}
	// The channel's own estimate mixes both: (230 + 19.6)/(239 + 20).
	if s := status(t, r2, "wx"); math.Abs(s.Score-(230+19.6)/259) > 1e-9 {
		t.Fatalf("channel estimate = %v", s.Score)
	}
	// Too few creates of a method: the channel's estimate is used.
	create(r1, payment.MethodWechatNative, 5, nil)
	native := Request{Merchant: "demo", Method: payment.MethodWechatNative, Amount: 100, Currency: "CNY"}
	if c := candidate(t, r1.Table().Decide(native), "wx"); c.PerMethod || c.Score != status(t, r1, "wx").Score {
		t.Fatalf("native with 5 creates: %+v, want the channel's estimate", c)
	}
}

// A failure streak trips the breaker whatever the window holds: an
// eliminated channel gets so few creates that min_requests may never be
// reached, and its breaker must still open to be probed back.
func TestBreakerConsecutiveFailures(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Channels[0].Breaker.ConsecutiveFailures = 3
	r, _ := newRouter(t, cfg, nil)
	callN(t, r, "wx", 100, nil)
	callN(t, r, "wx", 2, errTech)
	callN(t, r, "wx", 1, errDeclined) // an answer: ends the streak
	callN(t, r, "wx", 2, errTech)
	if s := status(t, r, "wx").Breaker; s != BreakerClosed {
		t.Fatalf("two streaks of 2: %s, want closed", s)
	}
	callN(t, r, "wx", 1, errTech)
	if s := status(t, r, "wx").Breaker; s != BreakerOpen {
		t.Fatalf("3 failures in a row after 100 successes: %s, want open", s)
	}
}
