package notify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/store"
)

// fakeStore is an in-memory outbox with the semantics the Store interface
// documents: per-merchant due-time order, claims that count the attempt and
// lease the event until now+lease, acks that remove, retries that reschedule,
// dead letters, and quiet no-ops for events that are gone. Every change
// signals changed, so tests wait on state, not on time.
type fakeStore struct {
	mu       sync.Mutex
	events   map[string]*fakeEntry // merchant + "/" + event id
	dead     map[string]store.DeadEvent
	acks     map[string]int
	claims   int // ClaimEvents calls
	leased   int // claimed and not yet acked, retried or dead-lettered
	maxLease int // the most ever leased at once
	claimErr error
	changed  chan struct{}
}

type fakeEntry struct {
	ev       store.OutboxEvent
	due      time.Time
	attempts int
	leased   bool
	lastErr  string
	retryAt  []time.Time // every RetryEvent time, in order
}

func newFakeStore() *fakeStore {
	return &fakeStore{events: map[string]*fakeEntry{}, dead: map[string]store.DeadEvent{}, acks: map[string]int{}, changed: make(chan struct{}, 1)}
}

func fkey(merchant, id string) string { return merchant + "/" + id }

func (s *fakeStore) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Enqueue adds ev due at due, at most once per event id (like the store).
func (s *fakeStore) Enqueue(ev *store.OutboxEvent, due time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fkey(ev.Merchant, ev.ID)
	if _, ok := s.events[k]; ok {
		return
	}
	e := *ev
	e.Body = slices.Clone(ev.Body)
	s.events[k] = &fakeEntry{ev: e, due: due}
	s.signal()
}

func (s *fakeStore) ClaimEvents(ctx context.Context, merchant string, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims++
	defer s.signal()
	if s.claimErr != nil {
		return nil, s.claimErr
	}
	var due []*fakeEntry
	for _, e := range s.events {
		if e.ev.Merchant == merchant && !e.due.After(now) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *fakeEntry) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return strings.Compare(a.ev.ID, b.ev.ID)
	})
	var out []store.Delivery
	for _, e := range due[:min(len(due), limit)] {
		e.attempts++
		e.due = now.Add(lease)
		if !e.leased {
			e.leased = true
			s.leased++
		}
		ev := e.ev
		ev.Body = slices.Clone(e.ev.Body) // as if it came over the wire
		out = append(out, store.Delivery{OutboxEvent: ev, Attempt: e.attempts})
	}
	s.maxLease = max(s.maxLease, s.leased)
	return out, nil
}

func (s *fakeStore) release(e *fakeEntry) {
	if e.leased {
		e.leased = false
		s.leased--
	}
}

func (s *fakeStore) AckEvent(ctx context.Context, merchant, eventID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.signal()
	k := fkey(merchant, eventID)
	s.acks[k]++
	if e, ok := s.events[k]; ok {
		s.release(e)
		delete(s.events, k)
	}
	return nil
}

func (s *fakeStore) RetryEvent(ctx context.Context, merchant, eventID string, at time.Time, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.signal()
	if e, ok := s.events[fkey(merchant, eventID)]; ok {
		s.release(e)
		e.due, e.lastErr = at, lastErr
		e.retryAt = append(e.retryAt, at)
	}
	return nil
}

func (s *fakeStore) DeadLetter(ctx context.Context, merchant, eventID string, now time.Time, lastErr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.signal()
	k := fkey(merchant, eventID)
	e, ok := s.events[k]
	if !ok {
		return nil
	}
	s.release(e)
	delete(s.events, k)
	s.dead[k] = store.DeadEvent{OutboxEvent: e.ev, Attempts: e.attempts, LastError: lastErr, DeadAt: now}
	return nil
}

// entry returns a copy of an outbox entry (ok false once acked or dead).
func (s *fakeStore) entry(merchant, id string) (fakeEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[fkey(merchant, id)]
	if !ok {
		return fakeEntry{}, false
	}
	c := *e
	c.retryAt = slices.Clone(e.retryAt)
	return c, true
}

// waitUntil waits until cond (called with s locked) holds.
func (s *fakeStore) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(15 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

var errStoreDown = errors.New("fake store down")

// fakeClock is a manual clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recObserver records what the Dispatcher reports.
type recObserver struct {
	mu        sync.Mutex
	delivered []int // attempts
	failed    []int
	dead      int
	errs      []string
	panicOn   string // "delivered": panic on the first Delivered
}

func (o *recObserver) Delivered(_ string, attempt int, _ time.Duration) {
	o.mu.Lock()
	o.delivered = append(o.delivered, attempt)
	p := o.panicOn == "delivered" && len(o.delivered) == 1
	o.mu.Unlock()
	if p {
		panic("observer exploded")
	}
}

func (o *recObserver) Failed(_ string, attempt int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed = append(o.failed, attempt)
	o.errs = append(o.errs, err.Error())
}

func (o *recObserver) DeadLettered(string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dead++
}

func (o *recObserver) snapshot() (delivered, failed []int, dead int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	// Sorted: an attempt's outcome is reported after it is recorded, so the
	// next attempt's report can come first.
	return slices.Sorted(slices.Values(o.delivered)), slices.Sorted(slices.Values(o.failed)), o.dead
}

// Interface guards.
var (
	_ Store    = (*fakeStore)(nil)
	_ Observer = (*recObserver)(nil)
)

func (s *fakeStore) claimCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims
}
