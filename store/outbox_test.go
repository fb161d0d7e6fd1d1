package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
)

func enqueue(t *testing.T, s *Store, m, id string, at time.Time) OutboxEvent {
	t.Helper()
	ev := OutboxEvent{ID: id, Merchant: m, NotifyURL: "https://merchant.example/n", Body: []byte(`{"id":"` + id + `"}`)}
	ok, err := s.EnqueueEvent(context.Background(), ev, at)
	if err != nil || !ok {
		t.Fatalf("enqueue %s: %v, %v", id, ok, err)
	}
	return ev
}

func ids(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%s#%d", d.ID, d.Attempt)
	}
	return out
}

func testOutboxLease(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	const lease = 30 * time.Second
	enqueue(t, e.s, m, "evt_a", t0)
	enqueue(t, e.s, m, "evt_later", t0.Add(time.Hour))

	got, err := e.s.ClaimEvents(ctx, m, t0, lease, 10)
	if err != nil || fmt.Sprint(ids(got)) != "[evt_a#1]" {
		t.Fatalf("first claim = %v, %v", ids(got), err)
	}
	// Inside the lease nobody gets it again.
	if got, _ := e.s.ClaimEvents(ctx, m, t0.Add(lease-time.Millisecond), lease, 10); len(got) != 0 {
		t.Fatalf("claimed inside the lease: %v", ids(got))
	}
	// The worker died: when the lease runs out the event is claimed again,
	// as attempt 2.
	got, err = e.s.ClaimEvents(ctx, m, t0.Add(lease), lease, 10)
	if err != nil || fmt.Sprint(ids(got)) != "[evt_a#2]" {
		t.Fatalf("claim after the lease = %v, %v", ids(got), err)
	}
	if p, d, err := e.s.OutboxStats(ctx, m); err != nil || p != 2 || d != 0 {
		t.Fatalf("stats = %d, %d, %v", p, d, err)
	}
	if err := e.s.AckEvent(ctx, m, "evt_a"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.AckEvent(ctx, m, "evt_a"); err != nil {
		t.Fatalf("second ack: %v", err)
	}
	if err := e.s.AckEvent(ctx, m, "evt_unknown"); err != nil {
		t.Fatalf("ack of an unknown event: %v", err)
	}
	// A late retry or dead-lettering by a worker whose lease had run out
	// leaves the delivered event alone.
	if err := e.s.RetryEvent(ctx, m, "evt_a", t0, "late"); err != nil {
		t.Fatalf("retry of an acknowledged event: %v", err)
	}
	if err := e.s.DeadLetter(ctx, m, "evt_a", t0, "late"); err != nil {
		t.Fatalf("dead-letter of an acknowledged event: %v", err)
	}
	if p, d, _ := e.s.OutboxStats(ctx, m); p != 1 || d != 0 {
		t.Fatalf("stats after late calls = %d pending, %d dead; want 1 (evt_later), 0", p, d)
	}
	if got, _ := e.s.ClaimEvents(ctx, m, t0.Add(10*lease), lease, 10); len(got) != 0 {
		t.Fatalf("acknowledged event claimed: %v", ids(got))
	}
	// The body of an acknowledged event is kept (7 days).
	ttl, err := e.s.rdb.PTTL(ctx, e.s.k.event(m, "evt_a")).Result()
	if err != nil || ttl <= 6*24*time.Hour || ttl > eventRetention {
		t.Fatalf("acknowledged event ttl = %v, %v", ttl, err)
	}
	// max bounds a claim; due order is kept.
	for i := 0; i < 5; i++ {
		enqueue(t, e.s, m, fmt.Sprintf("evt_b%d", i), t0.Add(time.Duration(i)*time.Second))
	}
	got, _ = e.s.ClaimEvents(ctx, m, t0.Add(time.Minute), lease, 2)
	if fmt.Sprint(ids(got)) != "[evt_b0#1 evt_b1#1]" {
		t.Fatalf("bounded claim = %v", ids(got))
	}
	if got, _ := e.s.ClaimEvents(ctx, m, t0, lease, 0); got != nil {
		t.Fatalf("max 0 claimed %v", ids(got))
	}
}

func testOutboxRetryDeadReplay(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	const lease = 30 * time.Second
	ev := enqueue(t, e.s, m, "evt_r", t0)
	enqueue(t, e.s, m, "evt_s", t0)

	if got, _ := e.s.ClaimEvents(ctx, m, t0, lease, 1); len(got) != 1 || got[0].ID != "evt_r" {
		t.Fatalf("claim = %v", ids(got))
	}
	retryAt := t0.Add(15 * time.Second) // before the lease would end: the schedule wins
	if err := e.s.RetryEvent(ctx, m, "evt_r", retryAt, "merchant answered 500"); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.s.ClaimEvents(ctx, m, retryAt.Add(-time.Millisecond), lease, 10); len(got) != 1 || got[0].ID != "evt_s" {
		t.Fatalf("claim before the retry = %v", ids(got))
	}
	got, _ := e.s.ClaimEvents(ctx, m, retryAt, lease, 10)
	if len(got) != 1 || got[0].ID != "evt_r" || got[0].Attempt != 2 || string(got[0].Body) != string(ev.Body) {
		t.Fatalf("retry claim = %+v", got)
	}

	deadAt := t0.Add(time.Hour)
	if err := e.s.DeadLetter(ctx, m, "evt_r", deadAt, "timeout"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeadLetter(ctx, m, "evt_s", deadAt.Add(time.Second), "refused"); err != nil {
		t.Fatal(err)
	}
	// A retry racing the dead-lettering does not resurrect the event.
	if err := e.s.RetryEvent(ctx, m, "evt_r", t0, "late"); err != nil {
		t.Fatalf("retry of a dead event: %v", err)
	}
	if err := e.s.DeadLetter(ctx, m, "evt_none", deadAt, "x"); err != nil {
		t.Fatalf("dead-letter of an unknown event: %v", err)
	}
	if got, _ := e.s.ClaimEvents(ctx, m, deadAt.Add(time.Hour), lease, 10); len(got) != 0 {
		t.Fatalf("dead events claimed: %v", ids(got))
	}
	if p, d, _ := e.s.OutboxStats(ctx, m); p != 0 || d != 2 {
		t.Fatalf("stats = %d pending, %d dead", p, d)
	}
	dead, err := e.s.DeadEvents(ctx, m, 10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead events = %+v, %v", dead, err)
	}
	// Newest first.
	if dead[0].ID != "evt_s" || dead[1].ID != "evt_r" {
		t.Fatalf("dead order = %s, %s", dead[0].ID, dead[1].ID)
	}
	r := dead[1]
	if r.Attempts != 2 || r.LastError != "timeout" || !r.DeadAt.Equal(deadAt) || string(r.Body) != string(ev.Body) ||
		r.NotifyURL != ev.NotifyURL || r.Merchant != m {
		t.Fatalf("dead event = %+v", r)
	}
	if one, _ := e.s.DeadEvents(ctx, m, 1); len(one) != 1 || one[0].ID != "evt_s" {
		t.Fatalf("limit 1 = %+v", one)
	}

	replayAt := deadAt.Add(time.Minute)
	if err := e.s.ReplayEvent(ctx, m, "evt_r", replayAt); err != nil {
		t.Fatal(err)
	}
	if err := e.s.ReplayEvent(ctx, m, "evt_r", replayAt); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of an event that is not dead: %v", err)
	}
	got, _ = e.s.ClaimEvents(ctx, m, replayAt, lease, 10)
	if fmt.Sprint(ids(got)) != "[evt_r#1]" || string(got[0].Body) != string(ev.Body) {
		t.Fatalf("replayed claim = %v", ids(got))
	}
	if p, d, _ := e.s.OutboxStats(ctx, m); p != 1 || d != 1 {
		t.Fatalf("stats after replay = %d pending, %d dead", p, d)
	}
}

func testOutboxTwoStores(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	const total, lease = 200, time.Minute
	for i := 0; i < total; i++ {
		enqueue(t, e.s, m, fmt.Sprintf("evt_%03d", i), t0)
	}
	stores := []*Store{e.s, e.other(t)}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(s *Store) {
			defer wg.Done()
			for round := 0; ; round++ {
				if round > total { // each round claims at least one event
					t.Errorf("claims never ran dry")
					return
				}
				got, err := s.ClaimEvents(ctx, m, t0, lease, 7)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		}(stores[w%2])
	}
	wg.Wait()
	if len(seen) != total {
		t.Fatalf("claimed %d distinct events, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("event %s claimed %d times inside its lease", id, n)
		}
	}
}

func testSweep(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	const lease = 30 * time.Second
	if err := e.s.Reschedule(ctx, m, SweepPayment, "pay_1", t0); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Reschedule(ctx, m, SweepRefund, "rfd_1", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.ClaimSweep(ctx, m, t0.Add(time.Second), lease, 10)
	want := fmt.Sprint([]SweepItem{{m, SweepPayment, "pay_1", 1}, {m, SweepRefund, "rfd_1", 1}})
	if err != nil || fmt.Sprint(got) != want {
		t.Fatalf("sweep = %v, %v; want %v", got, err, want)
	}
	if got, _ := e.s.ClaimSweep(ctx, m, t0.Add(lease), lease, 10); len(got) != 0 {
		t.Fatalf("claimed inside the lease: %v", got)
	}
	// The sweeper queried and was told "still pending": next look in 2 min.
	next := t0.Add(2 * time.Minute)
	if err := e.s.Reschedule(ctx, m, SweepPayment, "pay_1", next); err != nil {
		t.Fatal(err)
	}
	// The refund's sweeper died: after its lease it is claimed again.
	got, _ = e.s.ClaimSweep(ctx, m, t0.Add(time.Second+lease), lease, 10)
	if fmt.Sprint(got) != fmt.Sprint([]SweepItem{{m, SweepRefund, "rfd_1", 2}}) {
		t.Fatalf("after the lease = %v", got)
	}
	if err := e.s.Reschedule(ctx, m, SweepRefund, "rfd_1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = e.s.ClaimSweep(ctx, m, next, lease, 10)
	if fmt.Sprint(got) != fmt.Sprint([]SweepItem{{m, SweepPayment, "pay_1", 2}}) {
		t.Fatalf("rescheduled = %v", got)
	}
	// Removing an entry drops its claim count too.
	if err := e.s.Reschedule(ctx, m, SweepPayment, "pay_1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.s.ClaimSweep(ctx, m, next.Add(time.Hour), lease, 10); len(got) != 1 || got[0].ID != "rfd_1" {
		t.Fatalf("after removal = %v", got)
	}
	if err := e.s.Reschedule(ctx, m, SweepPayment, "pay_1", next); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.s.ClaimSweep(ctx, m, next, lease, 10); len(got) != 1 || got[0].Attempt != 1 {
		t.Fatalf("re-added entry = %v", got)
	}
	if err := e.s.Reschedule(ctx, m, "order", "x", t0); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func testThrottle(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	ok, err := e.s.Throttle(ctx, m, "query:pay_1", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first: %v, %v", ok, err)
	}
	if ok, _ := e.s.Throttle(ctx, m, "query:pay_1", time.Minute); ok {
		t.Fatal("second caller inside the ttl may proceed")
	}
	if ok, _ := e.s.Throttle(ctx, m, "query:pay_2", time.Minute); !ok {
		t.Fatal("another key throttled")
	}
	if ok, _ := e.s.Throttle(ctx, m+"x", "query:pay_1", time.Minute); !ok {
		t.Fatal("another merchant throttled")
	}
	ttl, err := e.s.rdb.PTTL(ctx, e.s.k.throttle(m, "query:pay_1")).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("throttle ttl = %v, %v", ttl, err)
	}
}

func testHealth(t *testing.T, e env) {
	ctx := context.Background()
	ch := merchantOf(t) // unique channel name
	in := []HealthBucket{
		{Channel: ch, Bucket: 100, OK: 3, Fail: 1, LatencyMS: 400, Lat: [HealthLatencyBins]int64{0: 3, 3: 1}},
		{Channel: ch, Bucket: 102, OK: 1, LatencyMS: 50},
		{Channel: ch + "-other", Bucket: 100, Fail: 9},
	}
	if err := e.s.AddHealth(ctx, in, time.Minute); err != nil {
		t.Fatal(err)
	}
	// A second instance adds its own counts.
	if err := e.s.AddHealth(ctx, []HealthBucket{{Channel: ch, Bucket: 100, OK: 2, LatencyMS: 100, Lat: [HealthLatencyBins]int64{0: 2, 11: 1}}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.ReadHealth(ctx, ch, 99, 103)
	want := []HealthBucket{
		{Channel: ch, Bucket: 100, OK: 5, Fail: 1, LatencyMS: 500, Lat: [HealthLatencyBins]int64{0: 5, 3: 1, 11: 1}},
		{Channel: ch, Bucket: 102, OK: 1, LatencyMS: 50},
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("health = %v, %v; want %v", got, err, want)
	}
	ttl, err := e.s.rdb.PTTL(ctx, e.s.k.health(ch, 100)).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("bucket ttl = %v, %v", ttl, err)
	}
	if got, err := e.s.ReadHealth(ctx, ch, 5, 4); err != nil || got != nil {
		t.Fatalf("empty range = %v, %v", got, err)
	}
	if _, err := e.s.ReadHealth(ctx, ch, 0, maxHealthBuckets); err == nil {
		t.Fatal("huge range accepted")
	}
	if err := e.s.AddHealth(ctx, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func testValidation(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	p := newPayment(m, "order-v", 100)
	cases := []struct {
		name string
		call func() error
	}{
		{"empty nonce", func() error { return e.s.ClaimNonce(ctx, Nonce{Merchant: m, TTL: time.Minute}) }},
		{"nonce without ttl", func() error { return e.s.ClaimNonce(ctx, Nonce{Merchant: m, Value: "x"}) }},
		{"nonce without merchant", func() error { return e.s.ClaimNonce(ctx, Nonce{Value: "x", TTL: time.Minute}) }},
		{"payment without merchant", func() error {
			q := *p
			q.MerchantID = ""
			_, _, err := e.s.CreatePayment(ctx, nil, &q, t0)
			return err
		}},
		{"bad payment id", func() error {
			q := *p
			q.PaymentID = "pay_short"
			_, _, err := e.s.CreatePayment(ctx, nil, &q, t0)
			return err
		}},
		{"bad status", func() error {
			q := *p
			q.Status = "paid"
			_, _, err := e.s.CreatePayment(ctx, nil, &q, t0)
			return err
		}},
		{"get without merchant", func() error { _, err := e.s.GetPayment(ctx, nil, "", p.PaymentID); return err }},
		{"refund of another payment", func() error {
			rf := newRefund(p, "rf", 1)
			rf.PaymentID = payment.NewPaymentID()
			_, _, err := e.s.CreateRefund(ctx, nil, rf, t0)
			return err
		}},
		{"zero refund", func() error { _, _, err := e.s.CreateRefund(ctx, nil, newRefund(p, "rf", 0), t0); return err }},
		{"claim without lease", func() error { _, err := e.s.ClaimEvents(ctx, m, t0, 0, 1); return err }},
		{"enqueue without id", func() error { _, err := e.s.EnqueueEvent(ctx, OutboxEvent{Merchant: m}, t0); return err }},
		{"throttle without ttl", func() error { _, err := e.s.Throttle(ctx, m, "k", 0); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("err = %v, want a validation error", err)
			}
		})
	}
}
