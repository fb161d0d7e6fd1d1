package routing

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/paygate/paygate/config"
)

func TestHistBins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		us   int64
	}{
		{"zero", 0}, {"one", 1}, {"seven", 7}, {"eight", 8}, {"nine", 9}, {"fifteen", 15}, {"sixteen", 16},
		{"1ms", 1000}, {"37ms", 37_123}, {"250ms", 250_000}, {"1s", 1_000_000}, {"3s", 3_000_000},
		{"1min", 60_000_000}, {"top of range", 1<<(histMaxExp+1) - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := histBin(tt.us)
			lo, hi := histBounds(b)
			if b < 0 || b >= histBins || tt.us < lo || tt.us >= hi {
				t.Fatalf("bin %d = [%d, %d) does not hold %d", b, lo, hi, tt.us)
			}
			if w := float64(hi - lo); lo >= histSub && w > float64(lo)/histSub {
				t.Fatalf("bin %d = [%d, %d) wider than 1/%d of its lower bound", b, lo, hi, histSub)
			}
		})
	}
	// Bins tile the range without gaps or overlaps.
	for b := 1; b < histBins; b++ {
		_, prevHi := histBounds(b - 1)
		if lo, _ := histBounds(b); lo != prevHi {
			t.Fatalf("bin %d starts at %d, bin %d ends at %d", b, lo, b-1, prevHi)
		}
	}
	if b := histBin(1 << 50); b != histBins-1 {
		t.Fatalf("overflow bin = %d, want the last", b)
	}
	if b := histBin(-5); b != 0 {
		t.Fatalf("negative bin = %d, want 0", b)
	}
}

func TestEstimateFormula(t *testing.T) {
	t.Parallel()
	sec := time.Second
	sc := scoring{minSamples: 20, pct: 0.9}
	fast := func(n int64) [latBins]int64 { var h [latBins]int64; h[0] = n; return h } // < 50ms
	slow := func(n int64) [latBins]int64 { var h [latBins]int64; h[8] = n; return h } // 1.5s..2s
	tests := []struct {
		name   string
		c      counts
		sc     scoring
		target time.Duration
		want   float64
	}{
		{"no samples: the prior", counts{}, sc, sec, 0.98},
		{"no samples, no prior", counts{}, scoring{pct: 0.9}, sec, 1},
		{"all ok", counts{ok: 1000, wok: 1000, lat: fast(1000)}, sc, sec, (1000 + 19.6) / 1020},
		{"decayed counts weigh less", counts{ok: 100, fail: 100, wok: 50, wfail: 25, lat: fast(200)}, sc, sec, (50 + 19.6) / 95},
		{"20 failures against a 20-sample prior", counts{fail: 20, wfail: 20, lat: fast(20)}, sc, sec, 19.6 / 40},
		// 100 calls in 1.5..2s and 20 prior ones under 50ms: the 90th
		// percentile (rank 108 of 120) is 88/100 into the slow bin: 1940ms.
		{"p90 over the target", counts{ok: 100, wok: 100, lat: slow(100)}, sc, sec, (100 + 19.6) / 120 * (1000 / 1940.0)},
		{"p90 under a 2s target", counts{ok: 100, wok: 100, lat: slow(100)}, sc, 2 * sec, (100 + 19.6) / 120},
		// 10 slow of 1000: the 90th percentile is a fast call.
		{"a few slow calls do not count", counts{ok: 1000, wok: 1000, lat: func() [latBins]int64 { h := fast(990); h[8] = 10; return h }()}, sc, sec, (1000 + 19.6) / 1020},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.c.estimate(tt.sc, tt.target).value; math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("estimate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLatPercentile(t *testing.T) {
	t.Parallel()
	var h [latBins]int64
	if p := latPercentile(&h, 0, 0.9); p != 0 {
		t.Fatalf("empty = %v", p)
	}
	h[latBin(2500*time.Millisecond)] = 10 // 2s..3s
	if p := latPercentile(&h, 0, 0.5); p != 2500 {
		t.Fatalf("p50 of 10 calls in 2s..3s = %v, want 2500 (interpolated)", p)
	}
	if b := latBin(time.Hour); b != latBins-1 {
		t.Fatalf("an hour lands in bin %d", b)
	}
	if b := latBin(0); b != 0 {
		t.Fatalf("0 lands in bin %d", b)
	}
}

func TestEstimateFallsAndRecovers(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t, baseConfig(), nil) // window 60s in 12 buckets of 5s, half-life 10s
	clk.Advance(2500 * time.Millisecond)      // the middle of a bucket
	score := func() float64 { return status(t, r, "wx").Score }
	fresh := score()
	if math.Abs(fresh-0.98) > 1e-12 {
		t.Fatalf("new channel estimate = %v, want the prior 0.98", fresh)
	}
	callN(t, r, "wx", 5, errTech)
	s1 := score()
	callN(t, r, "wx", 4, errTech)
	s2 := score()
	if !(s2 < s1 && s1 < fresh) {
		t.Fatalf("estimates %v, %v, %v should fall with each failure", fresh, s1, s2)
	}
	if want := 19.6 / 29; math.Abs(s2-want) > 1e-12 {
		t.Fatalf("estimate = %v, want %v", s2, want)
	}
	if s := status(t, r, "ali").Score; s != fresh {
		t.Fatalf("ali's estimate moved to %v: health is per channel", s)
	}
	// One half-life later the failures weigh half.
	clk.Advance(10 * time.Second)
	if s, want := score(), 19.6/(4.5+20); math.Abs(s-want) > 1e-12 {
		t.Fatalf("estimate after a half-life = %v, want %v", s, want)
	}
	callN(t, r, "wx", 9, nil)
	if s, want := score(), (9+19.6)/(9+4.5+20); math.Abs(s-want) > 1e-12 {
		t.Fatalf("estimate with fresh successes = %v, want %v", s, want)
	}
	// Once everything left the window: the prior again.
	clk.Advance(60 * time.Second)
	if s := score(); s != fresh {
		t.Fatalf("estimate after everything aged out = %v, want the prior %v", s, fresh)
	}
}

func TestLatencyOverTargetLowersEstimate(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Channels[0].LatencyTarget = config.Duration(200 * time.Millisecond)
	r, clk := newRouter(t, cfg, nil)
	slow := func(d time.Duration) func(context.Context) error {
		return func(context.Context) error { clk.Advance(d); return nil }
	}
	for range 10 {
		_ = r.Call(context.Background(), "wx", "create", slow(100*time.Millisecond))
	}
	atTarget := status(t, r, "wx")
	if want := (10 + 19.6) / 30; math.Abs(atTarget.Score-want) > 1e-9 || atTarget.Eliminated {
		t.Fatalf("estimate under the target = %+v, want %v (no latency penalty)", atTarget, want)
	}
	for range 40 {
		_ = r.Call(context.Background(), "wx", "create", slow(700*time.Millisecond))
	}
	// 10 + 20 prior calls under 200ms, 40 in 500..750ms: p90 (rank 63 of 70)
	// is 33/40 into that bin: 706.25ms.
	s := status(t, r, "wx")
	if math.Abs(s.LatencyPMS-706.25) > 1e-9 {
		t.Fatalf("p90 = %v, want 706.25", s.LatencyPMS)
	}
	if want := s.Success * 200 / 706.25; math.Abs(s.Score-want) > 1e-9 {
		t.Fatalf("estimate = %v, want %v", s.Score, want)
	}
	if !s.Eliminated || s.Why != WhyLatency || s.Best != status(t, r, "ali").Score {
		t.Fatalf("status = %+v, want eliminated for latency below ali's estimate", s)
	}
	if s.LatencyTargetMS != 200 {
		t.Fatalf("latency_target_ms = %d", s.LatencyTargetMS)
	}
	if math.Abs(s.P50MS-700)/700 > 0.07 || math.Abs(s.P99MS-700)/700 > 0.07 {
		t.Fatalf("p50/p99 = %v/%v, want ≈700/700", s.P50MS, s.P99MS)
	}
}

func TestChannelStatus(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t, baseConfig(), nil)
	for i := range 100 {
		d := time.Duration(i+1) * time.Millisecond // 1..100ms
		_ = r.Call(context.Background(), "ali", "create", func(context.Context) error { clk.Advance(d); return nil })
	}
	callN(t, r, "ali", 3, errAmbig) // zero latency
	callN(t, r, "ali", 7, errDeclined)
	r.RecordFailover("ali", "wx")
	r.RecordFailover("ali", "bank-a")
	r.RecordFailover("nope", "wx") // ignored

	s := status(t, r, "ali")
	if s.Type != "alipay" || s.Breaker != BreakerClosed || s.Samples != 103 || s.Source != "local" || s.FailoversRecent != 2 {
		t.Fatalf("status = %+v", s)
	}
	if math.Abs(s.SuccessRate-100.0/103) > 1e-12 {
		t.Fatalf("success_rate = %v", s.SuccessRate)
	}
	// 103 samples: three at 0ms, then 1..100ms. p50 is the 52nd = 49ms,
	// p99 the 102nd = 99ms, each read at its bin's midpoint.
	if math.Abs(s.P50MS-49)/49 > 0.07 || math.Abs(s.P99MS-99)/99 > 0.07 {
		t.Fatalf("p50/p99 = %v/%v, want ≈49/99", s.P50MS, s.P99MS)
	}
	if w := status(t, r, "wx"); w.Samples != 0 || w.SuccessRate != 1 || w.P50MS != 0 || w.FailoversRecent != 0 {
		t.Fatalf("untouched wx = %+v", w)
	}
	clk.Advance(61 * time.Second)
	if s := status(t, r, "ali"); s.Samples != 0 || s.FailoversRecent != 0 || s.P99MS != 0 {
		t.Fatalf("after the window = %+v, want everything aged out", s)
	}
	if got := len(r.Channels()); got != 4 {
		t.Fatalf("Channels() has %d entries, want 4", got)
	}
}

func TestHealthClockGoingBackwards(t *testing.T) {
	t.Parallel()
	h := newHealth(60*time.Second, 12)
	t0 := time.Unix(1_700_000_000, 0)
	h.observe(t0, true, time.Millisecond)
	// More than a window in the past: dropped, and the newer bucket kept.
	h.observe(t0.Add(-2*time.Minute), false, time.Millisecond)
	if c := h.window(t0, false, 0, time.Second, time.Time{}); c.ok != 1 || c.fail != 0 {
		t.Fatalf("window = %+v, want the one success only", c)
	}
}
