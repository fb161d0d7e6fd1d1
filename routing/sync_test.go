package routing

import (
	"context"
	"math"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
)

// twoInstances are two gateway instances (routers) sharing one store and
// one clock, on baseConfig or the given config.
func twoInstances(t *testing.T, hs HealthStore, cfg ...*config.Config) (r1, r2 *Router, clk *clock) {
	t.Helper()
	clk = newClock()
	c := baseConfig()
	if len(cfg) > 0 {
		c = cfg[0]
	}
	mk := func() *Router {
		r, err := New(c, build, hs, nil, WithClock(clk.Now), WithSeed(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
		return r
	}
	return mk(), mk(), clk
}

func mustSync(t *testing.T, rs ...*Router) {
	t.Helper()
	for _, r := range rs {
		if err := r.syncOnce(context.Background(), true); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
}

func TestHealthSyncSharesOutcomes(t *testing.T) {
	t.Parallel()
	hs := newMemStore()
	r1, r2, _ := twoInstances(t, hs)

	callN(t, r1, "wx", 8, errTech)
	callN(t, r1, "wx", 4, nil)
	local1 := status(t, r1, "wx")
	if local1.Source != "local" {
		t.Fatalf("before any sync: source %q", local1.Source)
	}
	mustSync(t, r1, r2)

	s1, s2 := status(t, r1, "wx"), status(t, r2, "wx")
	if s2.Source != "shared" || s2.Samples != 12 || math.Abs(s2.Score-local1.Score) > 1e-12 {
		t.Fatalf("r2 sees %+v, want r1's 12 outcomes and score %v", s2, local1.Score)
	}
	if s1.Source != "shared" || s1.Samples != 12 || math.Abs(s1.Score-local1.Score) > 1e-12 {
		t.Fatalf("r1 after its own sync: %+v, want the same 12 outcomes, not counted twice", s1)
	}
	// Decide on r2 uses the shared score.
	if c := candidate(t, r2.Table().Decide(qr100), "wx"); math.Abs(c.Score-local1.Score) > 1e-12 {
		t.Fatalf("r2 decides with wx score %v, want %v", c.Score, local1.Score)
	}

	// Unsynced outcomes add to the shared ones; after the next syncs both
	// instances agree on the sum.
	callN(t, r2, "wx", 10, nil)
	if s := status(t, r2, "wx"); s.Samples != 22 {
		t.Fatalf("r2 before pushing: %d samples, want 12 shared + 10 unsynced", s.Samples)
	}
	if s := status(t, r1, "wx"); s.Samples != 12 {
		t.Fatalf("r1 before r2 pushed: %d samples, want 12", s.Samples)
	}
	mustSync(t, r2, r1)
	if a, b := status(t, r1, "wx"), status(t, r2, "wx"); a.Samples != 22 || b.Samples != 22 || a.Score != b.Score {
		t.Fatalf("after both synced: r1 %+v, r2 %+v, want 22 samples and the same score", a, b)
	}
	// Syncing again changes nothing: each delta is pushed once.
	mustSync(t, r1, r2, r1)
	if ok, fail := hs.totals("wx"); ok != 14 || fail != 8 {
		t.Fatalf("store holds ok %d fail %d, want 14/8", ok, fail)
	}
	if a := status(t, r1, "wx"); a.Samples != 22 {
		t.Fatalf("after repeated syncs r1 has %d samples, want 22", a.Samples)
	}
}

func TestHealthSyncOneCallPerPush(t *testing.T) {
	t.Parallel()
	hs := newMemStore()
	r1, _, clk := twoInstances(t, hs)
	callN(t, r1, "wx", 3, nil)
	clk.Advance(5 * time.Second) // another bucket
	callN(t, r1, "wx", 3, errTech)
	callN(t, r1, "ali", 3, nil)
	callN(t, r1, "bank-a", 3, errAmbig)
	mustSync(t, r1)
	if hs.adds != 1 {
		t.Fatalf("AddHealth called %d times, want one batched call", hs.adds)
	}
	mustSync(t, r1) // nothing new: no push at all
	if hs.adds != 1 {
		t.Fatalf("AddHealth called %d times after an idle sync, want still 1", hs.adds)
	}
	if ok, fail := hs.totals("wx"); ok != 3 || fail != 3 {
		t.Fatalf("wx in store: %d/%d", ok, fail)
	}
}

func TestHealthSyncStoreDown(t *testing.T) {
	t.Parallel()
	hs := newMemStore()
	r1, r2, clk := twoInstances(t, hs)
	callN(t, r1, "wx", 5, errTech)
	mustSync(t, r1)

	hs.setFail(true)
	callN(t, r1, "wx", 5, errTech)
	if err := r1.syncOnce(context.Background(), true); err == nil {
		t.Fatal("sync against a down store reported no error")
	}
	// The push failed: the snapshot is still fresh, and the unpushed
	// outcomes count on top of it.
	if s := status(t, r1, "wx"); s.Source != "shared" || s.Samples != 10 {
		t.Fatalf("store just down: %+v, want shared 5 + unsynced 5", s)
	}
	// Down for longer than 3 sync intervals: the local window alone.
	clk.Advance(7 * time.Second)
	if err := r1.syncOnce(context.Background(), true); err == nil {
		t.Fatal("sync against a down store reported no error")
	}
	if s := status(t, r1, "wx"); s.Source != "local" || s.Samples != 10 {
		t.Fatalf("store down: %+v, want local with 10 samples", s)
	}
	hs.setFail(false)
	mustSync(t, r1, r2)
	// The deltas held back were pushed once the store came back.
	if ok, fail := hs.totals("wx"); ok != 0 || fail != 10 {
		t.Fatalf("store holds %d/%d, want 0/10", ok, fail)
	}
	if a, b := status(t, r1, "wx"), status(t, r2, "wx"); a.Samples != 10 || b.Samples != 10 || a.Source != "shared" {
		t.Fatalf("after recovery r1 %+v r2 %+v, want 10 shared samples", a, b)
	}
}

func TestHealthSyncStaleSnapshot(t *testing.T) {
	t.Parallel()
	hs := newMemStore()
	r1, r2, clk := twoInstances(t, hs)
	callN(t, r1, "wx", 5, errTech)
	mustSync(t, r1, r2)
	if s := status(t, r2, "wx"); s.Source != "shared" || s.Samples != 5 {
		t.Fatalf("fresh: %+v", s)
	}
	// No sync for more than 3 sync intervals (2s each): the snapshot is too
	// old to trust; r2 falls back to its own (empty) window.
	clk.Advance(6*time.Second + time.Millisecond)
	if s := status(t, r2, "wx"); s.Source != "local" || s.Samples != 0 {
		t.Fatalf("stale: %+v, want local with 0 samples", s)
	}
}

func TestHealthSyncBucketsAgeOut(t *testing.T) {
	t.Parallel()
	hs := newMemStore()
	r1, r2, clk := twoInstances(t, hs)
	callN(t, r1, "wx", 5, errTech)
	mustSync(t, r1, r2)
	clk.Advance(61 * time.Second)
	mustSync(t, r1, r2)
	if a, b := status(t, r1, "wx"), status(t, r2, "wx"); a.Samples != 0 || b.Samples != 0 || b.Source != "shared" {
		t.Fatalf("after a window: r1 %+v r2 %+v, want no samples", a, b)
	}
}

func TestStartStopFlushes(t *testing.T) {
	t.Parallel()
	hs := newMemStore()
	r, _ := newRouter(t, baseConfig(), hs)
	r.Start(context.Background())
	r.Start(context.Background()) // no second loop (goleak would see it)
	callN(t, r, "wx", 4, errTech)
	r.Stop()
	// Stop pushes what the loop had not: no wait for a tick needed.
	if ok, fail := hs.totals("wx"); ok != 0 || fail != 4 {
		t.Fatalf("store after Stop: %d/%d, want 0/4", ok, fail)
	}
	r.Stop() // idempotent

	// Restartable, and ends with its context too.
	ctx, cancel := context.WithCancel(context.Background())
	r.Start(ctx)
	callN(t, r, "ali", 2, nil)
	cancel()
	r.Stop()
	if ok, _ := hs.totals("ali"); ok != 2 {
		t.Fatalf("ali in store: %d, want 2", ok)
	}
}

func TestStartWithoutStore(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	r.Start(context.Background()) // nothing to sync: no goroutine
	r.Stop()
	r.Stop()
	if err := r.syncOnce(context.Background(), true); err != nil {
		t.Fatal(err)
	}
}

// memStorePanics panics on push: the loop must survive a bug in the store.
type memStorePanics struct{ *memStore }

func (*memStorePanics) AddHealth(context.Context, []store.HealthBucket, time.Duration) error {
	panic("bug")
}

func TestSyncLoopRecoversPanics(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.WarnLevel)
	r, err := New(baseConfig(), build, &memStorePanics{memStore: newMemStore()}, zap.New(core), WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	callN(t, r, "wx", 1, nil)
	r.safeSync(context.Background(), true) // must not panic
	if logs.FilterMessage("health sync panicked").Len() != 1 {
		t.Fatalf("logs = %v", logs.All())
	}
	r.Start(context.Background())
	r.Stop() // the final push panics too; Stop still returns
}
