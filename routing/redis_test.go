package routing

import (
	"context"
	"testing"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/storetest"
)

// The health sync through a real redis-server and *store.Store: two gateway
// instances see each other's outcomes, and a store outage neither loses the
// counts made meanwhile nor stops scoring.
func TestHealthSyncThroughRedis(t *testing.T) {
	t.Parallel()
	srv := storetest.Redis(t)
	st, err := store.Open(config.Redis{Addrs: []string{srv.Addr()}, ReadTimeout: config.Duration(500 * time.Millisecond)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	r1, r2, clk := twoInstances(t, st)

	callN(t, r1, "wx", 6, errTech)
	callN(t, r2, "wx", 4, nil)
	mustSync(t, r1, r2, r1)
	for i, r := range []*Router{r1, r2} {
		s := status(t, r, "wx")
		if s.Source != "shared" || s.Samples != 10 || s.SuccessRate != 0.4 {
			t.Fatalf("r%d: %+v, want 10 shared samples at 40%%", i+1, s)
		}
	}
	if a, b := status(t, r1, "wx").Score, status(t, r2, "wx").Score; a != b {
		t.Fatalf("instances disagree: %v vs %v", a, b)
	}

	// Redis dies (its data with it); r1 keeps counting, on its own window
	// once the snapshot is stale.
	srv.Stop()
	clk.Advance(7 * time.Second)
	callN(t, r1, "wx", 3, errTech)
	if err := r1.syncOnce(context.Background(), true); err == nil {
		t.Fatal("sync with Redis down reported no error")
	}
	if s := status(t, r1, "wx"); s.Source != "local" || s.Samples != 9 {
		t.Fatalf("Redis down: %+v, want r1's own 9 outcomes", s)
	}

	// Redis is back, empty: r1 pushes what it has not pushed yet (the 3),
	// and r2 sees them.
	srv.Start()
	mustSync(t, r1, r2)
	if s := status(t, r2, "wx"); s.Source != "shared" || s.Samples != 3 || s.SuccessRate != 0 {
		t.Fatalf("r2 after Redis came back: %+v, want r1's 3 unpushed failures", s)
	}
}
