package routing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
)

// call is one Call in a breaker scenario: fn returns err; cancel cancels
// the caller's context first (as a merchant hanging up would).
type call struct {
	err    error
	cancel bool
}

func rep(n int, c call) []call {
	out := make([]call, n)
	for i := range out {
		out[i] = c
	}
	return out
}

func seq(parts ...[]call) []call {
	var out []call
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestBreakerTrips(t *testing.T) {
	t.Parallel()
	// baseConfig: min_requests 10, failure_ratio 0.5.
	canceled := &adapters.Error{Channel: "wx", Op: "create", Kind: adapters.KindAmbiguous, Code: "transport_error", Err: context.Canceled}
	tests := []struct {
		name      string
		calls     []call
		wantState string
		wantOK    int64 // health window
		wantFail  int64
	}{
		{"technical failures trip at min_requests", rep(10, call{err: errTech}), BreakerOpen, 0, 10},
		{"ambiguous outcomes are technical", rep(10, call{err: errAmbig}), BreakerOpen, 0, 10},
		{"wrapped technical errors count", rep(10, call{err: fmt.Errorf("create: %w", errTech)}), BreakerOpen, 0, 10},
		{"untyped errors count as technical", rep(10, call{err: errors.New("boom")}), BreakerOpen, 0, 10},
		{"fewer than min_requests do not trip", rep(9, call{err: errTech}), BreakerClosed, 0, 9},
		{"failure ratio below the threshold", seq(rep(6, call{}), rep(4, call{err: errTech})), BreakerClosed, 6, 4},
		{"failure ratio at the threshold", seq(rep(5, call{}), rep(5, call{err: errTech})), BreakerOpen, 5, 5},
		{"business declines never trip nor lower health", rep(50, call{err: errDeclined}), BreakerClosed, 0, 0},
		{"invalid requests never trip nor lower health", rep(50, call{err: errInvalid}), BreakerClosed, 0, 0},
		{"declines count as breaker successes", seq(rep(5, call{err: errDeclined}), rep(5, call{err: errTech})), BreakerOpen, 0, 5},
		{"declines dilute the failure ratio", seq(rep(6, call{err: errDeclined}), rep(4, call{err: errTech})), BreakerClosed, 0, 4},
		{"caller cancels are excluded from both", rep(50, call{err: canceled, cancel: true}), BreakerClosed, 0, 0},
		{"cancels do not count towards min_requests", seq(rep(30, call{err: canceled, cancel: true}), rep(9, call{err: errTech})), BreakerClosed, 0, 9},
		{"a bare context.Canceled is excluded", rep(50, call{err: context.Canceled}), BreakerClosed, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := newRouter(t, baseConfig(), nil)
			for _, c := range tt.calls {
				ctx, cancel := context.WithCancel(context.Background())
				if c.cancel {
					cancel()
				}
				_ = r.Call(ctx, "wx", "create", func(context.Context) error { return c.err })
				cancel()
			}
			s := status(t, r, "wx")
			if s.Breaker != tt.wantState {
				t.Errorf("breaker = %s, want %s", s.Breaker, tt.wantState)
			}
			gotOK := int64(s.SuccessRate*float64(s.Samples) + 0.5)
			if s.Samples != tt.wantOK+tt.wantFail || gotOK != tt.wantOK {
				t.Errorf("health samples = %d (ok %d), want ok %d fail %d", s.Samples, gotOK, tt.wantOK, tt.wantFail)
			}
		})
	}
}

func TestOpenBreakerRefusesAndExcludes(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	callN(t, r, "wx", 10, errTech)

	called := false
	err := r.Call(context.Background(), "wx", "create", func(context.Context) error { called = true; return nil })
	if called {
		t.Fatal("fn called through an open breaker")
	}
	ae, ok := adapters.AsError(err)
	if !ok || ae.Kind != adapters.KindUnavailable || ae.Code != "breaker_open" || ae.Channel != "wx" || ae.Op != "create" || !ae.NotCreated() {
		t.Fatalf("err = %#v, want KindUnavailable breaker_open for wx create", err)
	}
	d := r.Table().Decide(qr100)
	c := candidate(t, d, "wx")
	if c.Eligible || c.Reason != ReasonBreakerOpen || c.Breaker != BreakerOpen {
		t.Fatalf("wx = %+v, want excluded with %q", c, ReasonBreakerOpen)
	}
	if d.Candidates[0].Channel != "ali" || !d.Candidates[0].Eligible || d.Candidates[len(d.Candidates)-1].Channel != "wx" {
		t.Fatalf("order = %+v, want ali first and the excluded wx last", d.Candidates)
	}
}

// waitState lets open_for (1ms in fastBreaker) pass on the router's clock
// and checks that the breaker of channel id shows want.
func waitState(t *testing.T, r *Router, clk *clock, id, want string) {
	t.Helper()
	clk.Advance(time.Millisecond)
	if s := status(t, r, id).Breaker; s != want {
		t.Fatalf("breaker of %s is %s, want %s", id, s, want)
	}
}

func fastBreaker(halfOpen uint32) *config.Config {
	cfg := baseConfig()
	cfg.Channels[0].Breaker = config.Breaker{MinRequests: 4, FailureRatio: 0.5, OpenFor: config.Duration(time.Millisecond),
		HalfOpenRequests: halfOpen, Interval: config.Duration(time.Hour)}
	return cfg
}

func TestBreakerHalfOpenProbesThenCloses(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t, fastBreaker(2), nil)
	callN(t, r, "wx", 4, errTech)
	if trips := r.Table().byID["wx"].br.trips.Load(); trips != 1 {
		t.Fatalf("trips = %d, want 1", trips)
	}
	waitState(t, r, clk, "wx", BreakerHalfOpen)

	c := candidate(t, r.Table().Decide(qr100), "wx")
	if !c.Eligible || !strings.HasPrefix(c.Reason, "probing") || c.Breaker != BreakerHalfOpen {
		t.Fatalf("half-open wx = %+v, want eligible and probing", c)
	}
	// A declined probe is a breaker success: the channel answered.
	callN(t, r, "wx", 1, errDeclined)
	if s := status(t, r, "wx").Breaker; s != BreakerHalfOpen {
		t.Fatalf("after one of two probes: %s, want half-open", s)
	}
	callN(t, r, "wx", 1, nil)
	if s := status(t, r, "wx").Breaker; s != BreakerClosed {
		t.Fatalf("after both probes succeeded: %s, want closed", s)
	}
}

func TestBreakerHalfOpenProbeFailureReopens(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t, fastBreaker(2), nil)
	callN(t, r, "wx", 4, errTech)
	waitState(t, r, clk, "wx", BreakerHalfOpen)
	callN(t, r, "wx", 1, errTech)
	if s := status(t, r, "wx").Breaker; s != BreakerOpen {
		t.Fatalf("after a failed probe: %s, want open", s)
	}
	if trips := r.Table().byID["wx"].br.trips.Load(); trips != 2 {
		t.Fatalf("trips = %d, want 2 (a failed probe reopens)", trips)
	}
}

func TestBreakerHalfOpenLimitsProbes(t *testing.T) {
	t.Parallel()
	r, clk := newRouter(t, fastBreaker(1), nil)
	callN(t, r, "wx", 4, errTech)
	waitState(t, r, clk, "wx", BreakerHalfOpen)

	var inner error
	var during Candidate
	innerCalled := false
	err := r.Call(context.Background(), "wx", "create", func(context.Context) error {
		// While the only probe is in flight, a second call is refused and
		// Decide excludes the channel.
		during = candidate(t, r.Table().Decide(qr100), "wx")
		inner = r.Call(context.Background(), "wx", "create", func(context.Context) error { innerCalled = true; return nil })
		return nil
	})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if innerCalled {
		t.Fatal("second call went through a full half-open breaker")
	}
	if ae, ok := adapters.AsError(inner); !ok || ae.Code != "breaker_open" || ae.Op != "create" {
		t.Fatalf("second call err = %v, want breaker_open", inner)
	}
	if during.Eligible || during.Reason != ReasonBreakerProbes {
		t.Fatalf("wx during the probe = %+v, want excluded with %q", during, ReasonBreakerProbes)
	}
	if s := status(t, r, "wx").Breaker; s != BreakerClosed {
		t.Fatalf("after the successful probe: %s, want closed", s)
	}
}

func TestCallPanicCountsAsFailure(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	func() {
		defer func() {
			if p := recover(); p != "adapter bug" {
				t.Fatalf("recovered %v, want the adapter's panic", p)
			}
		}()
		_ = r.Call(context.Background(), "wx", "create", func(context.Context) error { panic("adapter bug") })
	}()
	s := status(t, r, "wx")
	if s.Samples != 1 || s.SuccessRate != 0 {
		t.Fatalf("after a panic: %+v, want one failure", s)
	}
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Channels[0].Timeout = config.Duration(7 * time.Second)
	r, _ := newRouter(t, cfg, nil)
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantMax time.Duration // remaining time fn sees is at most this ...
		wantMin time.Duration // ... and at least this
	}{
		{"no deadline: the channel's timeout", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 7 * time.Second, 6 * time.Second},
		{"caller's deadline kept", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 30*time.Second)
		}, 30 * time.Second, 29 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tt.ctx()
			defer cancel()
			var left time.Duration
			_ = r.Call(ctx, "wx", "query", func(ctx context.Context) error {
				dl, ok := ctx.Deadline()
				if !ok {
					t.Error("fn got no deadline")
				}
				left = time.Until(dl)
				return nil
			})
			if left > tt.wantMax || left < tt.wantMin {
				t.Fatalf("fn had %v left, want %v..%v", left, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestCallUnknownChannelRunsUnguarded(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	want := errors.New("x")
	called := 0
	for range 50 {
		if err := r.Call(context.Background(), "removed", "query", func(context.Context) error { called++; return want }); err != want {
			t.Fatalf("err = %v, want fn's error unchanged", err)
		}
	}
	if called != 50 {
		t.Fatalf("fn called %d times, want 50", called)
	}
}
