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

func TestScoreFormula(t *testing.T) {
	t.Parallel()
	sec := time.Second
	tests := []struct {
		name       string
		c          counts
		minSamples int
		target     time.Duration
		want       float64
	}{
		{"no samples: the prior", counts{}, 20, sec, 0.98},
		{"no samples, no prior", counts{}, 0, sec, 1},
		{"all ok", counts{ok: 1000, latMS: 1000 * 100}, 20, sec, (1000 + 19.6) / 1020},
		{"20 failures against a 20-sample prior", counts{fail: 20, latMS: 20 * 100}, 20, sec, 19.6 / 40},
		{"half failing, many samples", counts{ok: 500, fail: 500, latMS: 1000 * 100}, 20, sec, (500 + 19.6) / 1020},
		{"mean latency at the target", counts{ok: 100, latMS: 100 * 1000}, 20, sec, (100 + 19.6) / 120},
		{"mean latency twice the target", counts{ok: 100, latMS: 100 * 2000}, 20, sec, (100 + 19.6) / 120 * 0.5},
		{"latency factor floor", counts{ok: 100, latMS: 100 * 60000}, 20, sec, (100 + 19.6) / 120 * 0.2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.c.score(tt.minSamples, tt.target); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("score = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScoreFallsAndRecovers(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t, baseConfig(), nil) // window 60s in 12 buckets of 5s
	score := func() float64 { return status(t, r, "wx").Score }
	fresh := score()
	if math.Abs(fresh-0.98) > 1e-12 {
		t.Fatalf("new channel score = %v, want the prior 0.98", fresh)
	}
	callN(t, r, "wx", 5, errTech)
	s1 := score()
	callN(t, r, "wx", 4, errTech)
	s2 := score()
	if !(s2 < s1 && s1 < fresh) {
		t.Fatalf("scores %v, %v, %v should fall with each failure", fresh, s1, s2)
	}
	if s := status(t, r, "ali").Score; s != fresh {
		t.Fatalf("ali's score moved to %v: health is per channel", s)
	}

	// Half a window later the failures still count; successes raise it.
	clk.Advance(30 * time.Second)
	if s := score(); s != s2 {
		t.Fatalf("score after 30s = %v, want %v (failures still in the window)", s, s2)
	}
	callN(t, r, "wx", 9, nil)
	s3 := score()
	if s3 <= s2 {
		t.Fatalf("successes should raise the score: %v -> %v", s2, s3)
	}
	// Once the failures' bucket leaves the window only the successes remain.
	clk.Advance(30 * time.Second)
	s4 := score()
	if want := (9 + 19.6) / 29; math.Abs(s4-want) > 1e-12 {
		t.Fatalf("score after the failures aged out = %v, want %v", s4, want)
	}
	clk.Advance(30 * time.Second)
	if s := score(); s != fresh {
		t.Fatalf("score after everything aged out = %v, want the prior %v", s, fresh)
	}
}

func TestLatencyOverTargetLowersScore(t *testing.T) {
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
	if want := (10 + 19.6) / 30; math.Abs(atTarget.Score-want) > 1e-9 {
		t.Fatalf("score under the target = %v, want %v (no latency penalty)", atTarget.Score, want)
	}
	for range 10 {
		_ = r.Call(context.Background(), "wx", "create", slow(700*time.Millisecond))
	}
	// mean = (10×100 + 10×700)/20 = 400ms = 2 × target → factor 0.5.
	s := status(t, r, "wx")
	if want := (20 + 19.6) / 40 * 0.5; math.Abs(s.Score-want) > 1e-9 {
		t.Fatalf("score = %v, want %v", s.Score, want)
	}
	if s.LatencyTargetMS != 200 {
		t.Fatalf("latency_target_ms = %d", s.LatencyTargetMS)
	}
	if math.Abs(s.P50MS-100)/100 > 0.07 || math.Abs(s.P99MS-700)/700 > 0.07 {
		t.Fatalf("p50/p99 = %v/%v, want ≈100/700", s.P50MS, s.P99MS)
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
	if c := h.window(t0, false, 0); c.ok != 1 || c.fail != 0 {
		t.Fatalf("window = %+v, want the one success only", c)
	}
}
