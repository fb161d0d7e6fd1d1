package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/storetest"
)

type countObserver struct{ delivered, failed atomic.Int64 }

func (o *countObserver) Delivered(string, int, time.Duration) { o.delivered.Add(1) }
func (o *countObserver) Failed(string, int, error)            { o.failed.Add(1) }
func (o *countObserver) DeadLettered(string)                  {}

// Two Dispatchers (two gateway instances, each with its own store client)
// drain one real redis-server: every one of 200 events is delivered, none
// is lost, and the leases keep them from delivering the same event twice.
// Every 10th event's first attempt is answered 503, so retries cross
// instances too.
func TestDispatchersShareRedis(t *testing.T) {
	t.Parallel()
	const events, merchants = 200, 4
	srv := storetest.Redis(t)
	open := func() *store.Store {
		st, err := store.Open(config.Redis{Addrs: []string{srv.Addr()}}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st1, st2 := open(), open()

	secret := []byte("whsec_shared_redis")
	var mu sync.Mutex
	ok, seen := map[string]int{}, map[string]int{}
	var badSig atomic.Int64
	allDone := make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if Verify(secret, r.Header.Get(SignatureHeader), body, time.Now(), 0) != nil {
			badSig.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(EventIDHeader)
		mu.Lock()
		defer mu.Unlock()
		seen[id]++
		var n int
		fmt.Sscanf(id, "evt_pay_%d", &n)
		if n%10 == 0 && seen[id] == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok[id]++
		if len(ok) == events && ok[id] == 1 {
			close(allDone)
		}
	}))
	t.Cleanup(rc.Close)

	var ms []Merchant
	for i := range merchants {
		ms = append(ms, Merchant{ID: fmt.Sprintf("m%d", i), WebhookSecret: secret, AllowNetworks: loopback})
	}
	ctx := t.Context()
	now := time.Now()
	for i := range events {
		ev := testEvent(t, fmt.Sprintf("pay_%d", i), ms[i%merchants].ID, rc.URL+"/hook", now)
		if added, err := st1.EnqueueEvent(ctx, *ev, now); err != nil || !added {
			t.Fatalf("enqueue %s: %v %v", ev.ID, added, err)
		}
	}
	cfg := Config{Schedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}, Workers: 4, PollInterval: 10 * time.Millisecond}
	o1, o2 := &countObserver{}, &countObserver{}
	d1 := startDispatcher(t, st1, static(ms...), cfg, WithObserver(o1))
	d2 := startDispatcher(t, st2, static(ms...), cfg, WithObserver(o2))

	select {
	case <-allDone:
	case <-time.After(30 * time.Second):
		mu.Lock()
		t.Fatalf("only %d of %d events delivered", len(ok), events)
	}
	d1.Stop() // graceful: every delivery in flight records its outcome
	d2.Stop()

	mu.Lock()
	defer mu.Unlock()
	for i := range events {
		id := fmt.Sprintf("evt_pay_%d_payment_succeeded", i)
		if ok[id] != 1 {
			t.Errorf("%s acknowledged %d times", id, ok[id])
		}
	}
	if badSig.Load() != 0 {
		t.Errorf("%d requests with a bad signature", badSig.Load())
	}
	for _, m := range ms {
		pending, dead, err := st1.OutboxStats(context.WithoutCancel(ctx), m.ID)
		if err != nil || pending != 0 || dead != 0 {
			t.Errorf("%s: pending %d, dead %d, %v", m.ID, pending, dead, err)
		}
	}
	if got := o1.delivered.Load() + o2.delivered.Load(); got != events {
		t.Errorf("%d deliveries observed, want %d", got, events)
	}
	if got := o1.failed.Load() + o2.failed.Load(); got != events/10 {
		t.Errorf("%d failures observed, want %d", got, events/10)
	}
	t.Logf("instance 1 delivered %d, instance 2 delivered %d", o1.delivered.Load(), o2.delivered.Load())
}
