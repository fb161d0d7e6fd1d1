package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

var (
	t0       = time.Unix(vecT, 0).UTC()
	loopback = mustPrefixes("127.0.0.0/8")
)

type received struct {
	header http.Header
	body   []byte
	verify error // Verify of the request against the merchant's secret, at receipt
}

// receiver is a merchant endpoint on loopback. answer decides the status of
// the n-th request (1-based); it may block.
type receiver struct {
	mu   sync.Mutex
	reqs []received
	srv  *httptest.Server
}

func newReceiver(t *testing.T, secret []byte, now func() time.Time, answer func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: body,
			verify: Verify(secret, r.Header.Get(SignatureHeader), body, now(), 0)})
		n := len(rc.reqs)
		rc.mu.Unlock()
		w.WriteHeader(answer(n, r))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

func static(ms ...Merchant) MerchantSource { return func() []Merchant { return ms } }

func startDispatcher(t *testing.T, st Store, src MerchantSource, cfg Config, opts ...Option) *Dispatcher {
	t.Helper()
	d := NewDispatcher(st, src, cfg, zaptest.NewLogger(t), opts...)
	d.Start(t.Context())
	t.Cleanup(d.Stop)
	return d
}

func testEvent(t *testing.T, object, merchant, url string, now time.Time) *store.OutboxEvent {
	t.Helper()
	p := payment.Payment{PaymentID: object, MerchantID: merchant, Status: payment.StatusSucceeded, Amount: 100, Currency: "CNY", CreatedAt: now, UpdatedAt: now}
	ev, err := NewEvent(payment.EventPaymentSucceeded, object, merchant, url, p, now)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func sigTime(t *testing.T, h string) int64 {
	t.Helper()
	ts, _, _ := strings.Cut(strings.TrimPrefix(h, "t="), ",")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("signature header %q", h)
	}
	return n
}

// The merchant is down for the first 3 attempts: the 4th delivers, with the
// same event id and body, and a valid, fresh signature every time; each
// retry is scheduled exactly schedule[attempt-1] after the failure.
func TestDispatcherRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	secret := []byte("whsec_merchant_one")
	rc := newReceiver(t, secret, clk.Now, func(n int, _ *http.Request) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	fs := newFakeStore()
	ev := testEvent(t, "pay_A", "m1", rc.srv.URL+"/hook?token=xyz", clk.Now())
	fs.Enqueue(ev, clk.Now())
	sched := []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute}
	obs := &recObserver{}
	d := startDispatcher(t, fs, static(Merchant{ID: "m1", WebhookSecret: secret, AllowNetworks: loopback}),
		Config{Schedule: sched, Workers: 2, Timeout: 5 * time.Second, PollInterval: 5 * time.Millisecond, Jitter: -1},
		WithClock(clk.Now), WithObserver(obs))

	for i := 1; i <= 3; i++ {
		var e fakeEntry
		fs.waitUntil(t, fmt.Sprintf("retry %d", i), func() bool {
			x, ok := fs.events[fkey("m1", ev.ID)]
			if ok {
				e = *x
			}
			return ok && len(x.retryAt) == i
		})
		if want := clk.Now().Add(sched[i-1]); !e.retryAt[i-1].Equal(want) || e.lastErr != "HTTP 503" {
			t.Fatalf("retry %d at %v (%q), want %v", i, e.retryAt[i-1], e.lastErr, want)
		}
		clk.Advance(sched[i-1] - time.Second)
		d.Wake()
		// Not due yet: another poll must not deliver it.
		c := fs.claimCount()
		fs.waitUntil(t, "a poll", func() bool { return fs.claims > c+1 })
		if n := len(rc.requests()); n != i {
			t.Fatalf("%d requests before the retry was due, want %d", n, i)
		}
		clk.Advance(time.Second)
		d.Wake()
	}
	fs.waitUntil(t, "ack", func() bool { return fs.acks[fkey("m1", ev.ID)] == 1 })

	reqs := rc.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	var last int64
	for i, r := range reqs {
		if r.verify != nil {
			t.Errorf("request %d: Verify = %v", i+1, r.verify)
		}
		if got := r.header.Get(EventIDHeader); got != ev.ID {
			t.Errorf("request %d: event id %q, want %q", i+1, got, ev.ID)
		}
		if string(r.body) != string(ev.Body) {
			t.Errorf("request %d: body %s, want %s", i+1, r.body, ev.Body)
		}
		if ct, ua := r.header.Get("Content-Type"), r.header.Get("User-Agent"); ct != "application/json" || ua != "paygate/1" {
			t.Errorf("request %d: Content-Type %q, User-Agent %q", i+1, ct, ua)
		}
		ts := sigTime(t, r.header.Get(SignatureHeader))
		if ts <= last {
			t.Errorf("request %d: signature time %d not fresh (previous %d)", i+1, ts, last)
		}
		last = ts
	}
	if want := t0.Add(sched[0] + sched[1] + sched[2]).Unix(); last != want {
		t.Errorf("last signature time %d, want %d", last, want)
	}
	d.Stop() // the observer hears of an outcome after it is recorded
	delivered, failed, dead := obs.snapshot()
	if !slices.Equal(delivered, []int{4}) || !slices.Equal(failed, []int{1, 2, 3}) || dead != 0 {
		t.Fatalf("observer: delivered %v failed %v dead %d", delivered, failed, dead)
	}
	if _, ok := fs.entry("m1", ev.ID); ok {
		t.Fatal("event still in the outbox after the ack")
	}
}

// The merchant is down forever: schedule of 3 → 4 attempts, then a dead
// letter, and nothing more however long we wait.
func TestDispatcherDeadLetters(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	secret := []byte("whsec_down")
	rc := newReceiver(t, secret, clk.Now, func(int, *http.Request) int { return http.StatusInternalServerError })
	fs := newFakeStore()
	ev := testEvent(t, "pay_B", "m1", rc.srv.URL, clk.Now())
	fs.Enqueue(ev, clk.Now())
	obs := &recObserver{}
	d := startDispatcher(t, fs, static(Merchant{ID: "m1", WebhookSecret: secret, AllowNetworks: loopback}),
		Config{Schedule: []time.Duration{time.Minute, time.Minute, time.Minute}, Timeout: 5 * time.Second, PollInterval: 5 * time.Millisecond, Jitter: -1},
		WithClock(clk.Now), WithObserver(obs))

	for i := 1; i <= 3; i++ {
		fs.waitUntil(t, fmt.Sprintf("retry %d", i), func() bool {
			x, ok := fs.events[fkey("m1", ev.ID)]
			return ok && len(x.retryAt) == i
		})
		clk.Advance(time.Minute)
		d.Wake()
	}
	k := fkey("m1", ev.ID)
	fs.waitUntil(t, "dead letter", func() bool { _, ok := fs.dead[k]; return ok })
	fs.mu.Lock()
	dl := fs.dead[k]
	fs.mu.Unlock()
	if dl.Attempts != 4 || dl.LastError != "HTTP 500" || !dl.DeadAt.Equal(clk.Now()) || string(dl.Body) != string(ev.Body) {
		t.Fatalf("dead letter %+v", dl)
	}
	clk.Advance(24 * time.Hour)
	d.Wake()
	c := fs.claimCount()
	fs.waitUntil(t, "more polls", func() bool { return fs.claims > c+2 })
	if n := len(rc.requests()); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
	for i, r := range rc.requests() {
		if r.verify != nil {
			t.Errorf("request %d: %v", i+1, r.verify)
		}
	}
	d.Stop() // the observer hears of an outcome after it is recorded
	delivered, failed, dead := obs.snapshot()
	if len(delivered) != 0 || !slices.Equal(failed, []int{1, 2, 3, 4}) || dead != 1 {
		t.Fatalf("observer: delivered %v failed %v dead %d", delivered, failed, dead)
	}
}

// The same with the real clock, tiny intervals and the default jitter.
func TestDispatcherDeadLettersRealClock(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_down_real")
	rc := newReceiver(t, secret, time.Now, func(int, *http.Request) int { return http.StatusBadGateway })
	fs := newFakeStore()
	ev := testEvent(t, "pay_C", "m1", rc.srv.URL, time.Now())
	fs.Enqueue(ev, time.Now())
	startDispatcher(t, fs, static(Merchant{ID: "m1", WebhookSecret: secret, AllowNetworks: loopback}),
		Config{Schedule: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}, PollInterval: time.Millisecond})
	fs.waitUntil(t, "dead letter", func() bool { _, ok := fs.dead[fkey("m1", ev.ID)]; return ok })
	reqs := rc.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	for i, r := range reqs {
		if r.verify != nil || r.header.Get(EventIDHeader) != ev.ID {
			t.Errorf("request %d: verify %v, id %q", i+1, r.verify, r.header.Get(EventIDHeader))
		}
	}
}

// A 302 is a failed attempt, and the Location (a loopback address the
// merchant is allowed to use) is never fetched.
func TestDispatcherDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var fetched atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched.Add(1) }))
	t.Cleanup(target.Close)
	secret := []byte("whsec_redirect")
	rc := newReceiver(t, secret, time.Now, func(_ int, r *http.Request) int { return http.StatusFound })
	rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/steal", http.StatusFound)
	})
	fs := newFakeStore()
	ev := testEvent(t, "pay_D", "m1", rc.srv.URL, t0)
	fs.Enqueue(ev, t0)
	clk := newFakeClock(t0)
	obs := &recObserver{}
	startDispatcher(t, fs, static(Merchant{ID: "m1", WebhookSecret: secret, AllowNetworks: loopback}),
		Config{Schedule: []time.Duration{time.Hour}, PollInterval: 5 * time.Millisecond, Jitter: -1}, WithClock(clk.Now), WithObserver(obs))
	var e fakeEntry
	fs.waitUntil(t, "retry", func() bool {
		x, ok := fs.events[fkey("m1", ev.ID)]
		if ok {
			e = *x
		}
		return ok && len(x.retryAt) == 1
	})
	if !strings.Contains(e.lastErr, "302") {
		t.Fatalf("last error %q", e.lastErr)
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("redirect target fetched %d times", n)
	}
}

// Notify URLs that reach the gateway's own networks are refused at dial
// time for a merchant without an allow list; the canary on 127.0.0.1 sees
// no connection.
func TestDispatcherRefusesSSRF(t *testing.T) {
	t.Parallel()
	c := newCanary(t)
	p := c.port()
	res := newFakeResolver(map[string]string{"merchant.test": "127.0.0.1", "internal.test": "10.0.0.5"})
	urls := []string{
		"http://127.0.0.1:%d/",
		"http://10.0.0.1:%d/",
		"http://169.254.169.254:%d/latest/meta-data/",
		"http://[::1]:%d/",
		"http://[::ffff:127.0.0.1]:%d/",
		"http://2130706433:%d/",
		"http://0x7f000001:%d/",
		"http://017700000001:%d/",
		"http://merchant.test:%d/",
		"http://internal.test:%d/",
	}
	fs := newFakeStore()
	var ids []string
	for i, u := range urls {
		ev := testEvent(t, fmt.Sprintf("pay_%02d", i), "m1", fmt.Sprintf(u, p), t0)
		fs.Enqueue(ev, t0)
		ids = append(ids, ev.ID)
	}
	clk := newFakeClock(t0)
	startDispatcher(t, fs, static(Merchant{ID: "m1", WebhookSecret: []byte("whsec_ssrf")}),
		Config{Schedule: []time.Duration{time.Hour}, PollInterval: 5 * time.Millisecond, Jitter: -1},
		WithClock(clk.Now), WithResolver(res))
	fs.waitUntil(t, "every attempt", func() bool {
		for _, id := range ids {
			e, ok := fs.events[fkey("m1", id)]
			if ok && len(e.retryAt) == 0 {
				return false
			}
		}
		return true
	})
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, id := range ids {
		k := fkey("m1", id)
		var lastErr string
		if e, ok := fs.events[k]; ok {
			lastErr = e.lastErr
		} else {
			lastErr = fs.dead[k].LastError // unusable URL forms are dead-lettered at once
		}
		if !strings.Contains(lastErr, "refused") {
			t.Errorf("%s: last error %q", fmt.Sprintf(urls[i], p), lastErr)
		}
	}
	if len(fs.dead) != 3 {
		t.Errorf("%d dead letters, want the 3 numeric forms", len(fs.dead))
	}
	if n := c.conns.Load(); n != 0 {
		t.Fatalf("canary saw %d connections", n)
	}
}

// One merchant's allow list never serves another: both post to the same
// loopback address, only the one allowed to gets through, even though its
// connection is pooled.
func TestDispatcherAllowListPerMerchant(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, []byte("whsec_a"), time.Now, func(int, *http.Request) int { return http.StatusOK })
	fs := newFakeStore()
	a1 := testEvent(t, "pay_A1", "a", rc.srv.URL, t0)
	fs.Enqueue(a1, t0)
	clk := newFakeClock(t0)
	d := startDispatcher(t, fs, static(
		Merchant{ID: "a", WebhookSecret: []byte("whsec_a"), AllowNetworks: loopback},
		Merchant{ID: "b", WebhookSecret: []byte("whsec_b")},
	), Config{Schedule: []time.Duration{time.Hour}, PollInterval: 5 * time.Millisecond, Jitter: -1}, WithClock(clk.Now))
	fs.waitUntil(t, "a delivered", func() bool { return fs.acks[fkey("a", a1.ID)] == 1 })
	b1 := testEvent(t, "pay_B1", "b", rc.srv.URL, t0)
	fs.Enqueue(b1, t0)
	a2 := testEvent(t, "pay_A2", "a", rc.srv.URL, t0)
	fs.Enqueue(a2, t0)
	d.Wake()
	fs.waitUntil(t, "b refused, a2 delivered", func() bool {
		e, ok := fs.events[fkey("b", b1.ID)]
		return ok && len(e.retryAt) == 1 && fs.acks[fkey("a", a2.ID)] == 1
	})
	e, _ := fs.entry("b", b1.ID)
	if !strings.Contains(e.lastErr, "refused") {
		t.Fatalf("b: %q", e.lastErr)
	}
	if n := len(rc.requests()); n != 2 {
		t.Fatalf("%d requests, want 2 (a's)", n)
	}
}

// A config reload that adds the network to the allow list takes effect on
// the next attempt.
func TestDispatcherAllowListReload(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_reload")
	clk := newFakeClock(t0)
	rc := newReceiver(t, secret, clk.Now, func(int, *http.Request) int { return http.StatusOK })
	var cur atomic.Pointer[[]Merchant]
	cur.Store(&[]Merchant{{ID: "m1", WebhookSecret: secret}})
	fs := newFakeStore()
	ev := testEvent(t, "pay_R", "m1", rc.srv.URL, t0)
	fs.Enqueue(ev, t0)
	d := startDispatcher(t, fs, func() []Merchant { return *cur.Load() },
		Config{Schedule: []time.Duration{time.Minute, time.Minute}, PollInterval: 5 * time.Millisecond, Jitter: -1}, WithClock(clk.Now))
	fs.waitUntil(t, "refused attempt", func() bool {
		e, ok := fs.events[fkey("m1", ev.ID)]
		return ok && len(e.retryAt) == 1
	})
	cur.Store(&[]Merchant{{ID: "m1", WebhookSecret: secret, AllowNetworks: loopback}})
	// A poll that read the old merchants before the reload must not see the
	// event due: let one complete first.
	c := fs.claimCount()
	fs.waitUntil(t, "polls after the reload", func() bool { return fs.claims > c+1 })
	clk.Advance(time.Minute)
	d.Wake()
	fs.waitUntil(t, "delivery", func() bool { return fs.acks[fkey("m1", ev.ID)] == 1 })
	if reqs := rc.requests(); len(reqs) != 1 || reqs[0].verify != nil {
		t.Fatalf("requests %+v", reqs)
	}
}

// The pool is bounded: never more than Workers requests in flight, and
// never more events claimed than there are idle workers.
func TestDispatcherBoundedWorkers(t *testing.T) {
	t.Parallel()
	const workers, events = 2, 7
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int64
	entered := make(chan struct{}, events)
	rc := newReceiver(t, []byte("whsec_b"), time.Now, func(int, *http.Request) int {
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		inFlight.Add(-1)
		return http.StatusOK
	})
	fs := newFakeStore()
	var ids []string
	for i := range events {
		m := []string{"m1", "m2"}[i%2]
		ev := testEvent(t, fmt.Sprintf("pay_W%d", i), m, rc.srv.URL, t0)
		fs.Enqueue(ev, t0)
		ids = append(ids, fkey(m, ev.ID))
	}
	clk := newFakeClock(t0)
	startDispatcher(t, fs, static(
		Merchant{ID: "m1", WebhookSecret: []byte("whsec_b"), AllowNetworks: loopback},
		Merchant{ID: "m2", WebhookSecret: []byte("whsec_b"), AllowNetworks: loopback},
	), Config{Workers: workers, PollInterval: 5 * time.Millisecond}, WithClock(clk.Now))
	<-entered
	<-entered
	fs.mu.Lock()
	leased := fs.leased
	fs.mu.Unlock()
	if leased != workers {
		t.Fatalf("%d events claimed while %d workers are busy", leased, workers)
	}
	close(release)
	fs.waitUntil(t, "all delivered", func() bool {
		for _, k := range ids {
			if fs.acks[k] != 1 {
				return false
			}
		}
		return true
	})
	fs.mu.Lock()
	maxLease := fs.maxLease
	fs.mu.Unlock()
	if maxInFlight.Load() > workers || maxLease > workers {
		t.Fatalf("max in flight %d, max claimed %d, workers %d", maxInFlight.Load(), maxLease, workers)
	}
}

// A panic in a worker is recovered and logged with its stack, and the
// worker goes on delivering.
func TestDispatcherRecoversPanics(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, []byte("whsec_p"), time.Now, func(int, *http.Request) int { return http.StatusOK })
	fs := newFakeStore()
	e1 := testEvent(t, "pay_P1", "m1", rc.srv.URL, t0)
	fs.Enqueue(e1, t0)
	core, logs := observer.New(zapcore.DebugLevel)
	obs := &recObserver{panicOn: "delivered"}
	clk := newFakeClock(t0)
	d := NewDispatcher(fs, static(Merchant{ID: "m1", WebhookSecret: []byte("whsec_p"), AllowNetworks: loopback}),
		Config{Workers: 1, PollInterval: 5 * time.Millisecond}, zap.New(core), WithObserver(obs), WithClock(clk.Now))
	d.Start(t.Context())
	t.Cleanup(d.Stop)
	fs.waitUntil(t, "first ack", func() bool { return fs.acks[fkey("m1", e1.ID)] == 1 })
	e2 := testEvent(t, "pay_P2", "m1", rc.srv.URL, t0)
	fs.Enqueue(e2, t0)
	d.Wake()
	fs.waitUntil(t, "second ack", func() bool { return fs.acks[fkey("m1", e2.ID)] == 1 })
	d.Stop()
	panics := logs.FilterMessage("notification worker panic").All()
	if len(panics) != 1 {
		t.Fatalf("%d panic logs", len(panics))
	}
	f := panics[0].ContextMap()
	if !strings.Contains(fmt.Sprint(f["stack"]), "deliver") || f["event_id"] != e1.ID || f["panic"] != "observer exploded" {
		t.Fatalf("panic log fields %v", f)
	}
}

// Nothing logged contains the secret, a signature or the notify URL's
// path and query (which may carry the merchant's own credentials).
func TestDispatcherLogsNoSecrets(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_must_not_leak_4242")
	clk := newFakeClock(t0)
	rc := newReceiver(t, secret, clk.Now, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusTeapot
		}
		return http.StatusOK
	})
	fs := newFakeStore()
	ev := testEvent(t, "pay_L", "m1", rc.srv.URL+"/cb/tok_pathsecret?key=querysecret", t0)
	fs.Enqueue(ev, t0)
	core, logs := observer.New(zapcore.DebugLevel)
	d := NewDispatcher(fs, static(Merchant{ID: "m1", WebhookSecret: secret, AllowNetworks: loopback}),
		Config{Schedule: []time.Duration{time.Minute}, PollInterval: 5 * time.Millisecond, Jitter: -1}, zap.New(core), WithClock(clk.Now))
	d.Start(t.Context())
	t.Cleanup(d.Stop)
	fs.waitUntil(t, "retry", func() bool { e, ok := fs.events[fkey("m1", ev.ID)]; return ok && len(e.retryAt) == 1 })
	clk.Advance(time.Minute)
	d.Wake()
	fs.waitUntil(t, "ack", func() bool { return fs.acks[fkey("m1", ev.ID)] == 1 })
	d.Stop()

	forbidden := []string{string(secret), "tok_pathsecret", "querysecret"}
	for _, r := range rc.requests() {
		h := r.header.Get(SignatureHeader)
		forbidden = append(forbidden, h, h[strings.Index(h, "v1=")+3:])
	}
	entries := logs.All()
	if len(entries) < 2 {
		t.Fatalf("only %d log entries", len(entries))
	}
	for _, e := range entries {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, f := range forbidden {
			if strings.Contains(line, f) {
				t.Fatalf("log %q contains %q", line, f)
			}
		}
	}
	attempts := logs.FilterField(zap.String("event_id", ev.ID)).All()
	if len(attempts) != 2 || attempts[0].ContextMap()["status"] != int64(http.StatusTeapot) || attempts[1].ContextMap()["attempt"] != int64(2) {
		t.Fatalf("attempt logs %v", attempts)
	}
}

// Stop lets a delivery in flight finish and records its outcome; cancelling
// Start's context aborts it instead, and the event stays claimed until its
// lease runs out.
func TestDispatcherStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		hard     bool
		wantAcks int
	}{
		{name: "graceful Stop", wantAcks: 1},
		{name: "context cancelled", hard: true, wantAcks: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entered, release, left := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var aborted atomic.Bool
			rc := newReceiver(t, []byte("whsec_s"), time.Now, func(_ int, r *http.Request) int {
				defer close(left)
				close(entered)
				select {
				case <-release:
				case <-r.Context().Done():
					aborted.Store(true)
				}
				return http.StatusOK
			})
			fs := newFakeStore()
			ev := testEvent(t, "pay_S", "m1", rc.srv.URL, t0)
			fs.Enqueue(ev, t0)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			d := NewDispatcher(fs, static(Merchant{ID: "m1", WebhookSecret: []byte("whsec_s"), AllowNetworks: loopback}),
				Config{PollInterval: 5 * time.Millisecond}, zaptest.NewLogger(t), WithClock(func() time.Time { return t0 }))
			d.Start(ctx)
			<-entered
			stopped := make(chan struct{})
			go func() {
				if tt.hard {
					cancel()
				}
				d.Stop()
				close(stopped)
			}()
			if !tt.hard {
				// Stop must still be waiting for the delivery.
				select {
				case <-stopped:
					t.Fatal("Stop returned with a delivery in flight")
				case <-time.After(50 * time.Millisecond):
				}
				close(release)
			}
			<-stopped
			select {
			case <-left: // the server notices a hard stop's closed connection asynchronously
			case <-time.After(10 * time.Second):
				t.Fatal("handler never returned")
			}
			fs.mu.Lock()
			acks := fs.acks[fkey("m1", ev.ID)]
			e := fs.events[fkey("m1", ev.ID)]
			fs.mu.Unlock()
			if acks != tt.wantAcks || aborted.Load() != tt.hard {
				t.Fatalf("acks %d (want %d), aborted %v", acks, tt.wantAcks, aborted.Load())
			}
			if tt.hard && (e == nil || !e.leased || len(e.retryAt) != 0) {
				t.Fatalf("after a hard stop the event should stay leased: %+v", e)
			}
		})
	}
}

// Claim errors are survived: the poller backs off and delivers once the
// store is back.
func TestDispatcherStoreOutage(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, []byte("whsec_o"), time.Now, func(int, *http.Request) int { return http.StatusOK })
	fs := newFakeStore()
	fs.claimErr = errStoreDown
	ev := testEvent(t, "pay_O", "m1", rc.srv.URL, t0)
	fs.Enqueue(ev, t0)
	clk := newFakeClock(t0)
	startDispatcher(t, fs, static(Merchant{ID: "m1", WebhookSecret: []byte("whsec_o"), AllowNetworks: loopback}),
		Config{PollInterval: 2 * time.Millisecond}, WithClock(clk.Now))
	fs.waitUntil(t, "failing claims", func() bool { return fs.claims >= 3 })
	fs.mu.Lock()
	fs.claimErr = nil
	fs.mu.Unlock()
	fs.waitUntil(t, "ack", func() bool { return fs.acks[fkey("m1", ev.ID)] == 1 })
}

// A merchant without a webhook secret is never sent unsigned requests, and
// an unusable notify URL is dead-lettered at once.
func TestDispatcherUnusableInputs(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	fs := newFakeStore()
	noSecret := testEvent(t, "pay_N", "m1", srv.URL, t0)
	fs.Enqueue(noSecret, t0)
	badURL := &store.OutboxEvent{ID: "evt_bad", Merchant: "m2", NotifyURL: "ftp://merchant.example/", Body: []byte(`{}`)}
	fs.Enqueue(badURL, t0)
	clk := newFakeClock(t0)
	obs := &recObserver{}
	d := startDispatcher(t, fs, static(
		Merchant{ID: "m1", AllowNetworks: loopback},
		Merchant{ID: "m2", WebhookSecret: []byte("whsec_2"), AllowNetworks: loopback},
	), Config{Schedule: []time.Duration{time.Hour, time.Hour}, PollInterval: 5 * time.Millisecond}, WithClock(clk.Now), WithObserver(obs))
	fs.waitUntil(t, "outcomes", func() bool {
		e, ok := fs.events[fkey("m1", noSecret.ID)]
		_, dead := fs.dead[fkey("m2", badURL.ID)]
		return ok && len(e.retryAt) == 1 && dead
	})
	e, _ := fs.entry("m1", noSecret.ID)
	fs.mu.Lock()
	dl := fs.dead[fkey("m2", badURL.ID)]
	fs.mu.Unlock()
	if !strings.Contains(e.lastErr, "webhook secret") || !strings.Contains(dl.LastError, "scheme") || dl.Attempts != 1 {
		t.Fatalf("no secret: %q; bad url: %+v", e.lastErr, dl)
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests sent", hits.Load())
	}
	d.Stop()
	if _, _, dead := obs.snapshot(); dead != 1 {
		t.Fatalf("%d dead letters observed", dead)
	}
}

// Many events for many merchants, real clock: each delivered exactly once
// when the merchant answers 2xx, with a valid signature.
func TestDispatcherManyEvents(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_many")
	var mu sync.Mutex
	seen := map[string]int{}
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if Verify(secret, r.Header.Get(SignatureHeader), body, time.Now(), 0) != nil {
			bad.Add(1)
		}
		mu.Lock()
		seen[r.Header.Get(EventIDHeader)]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	fs := newFakeStore()
	var ms []Merchant
	for i := range 5 {
		ms = append(ms, Merchant{ID: fmt.Sprintf("m%d", i), WebhookSecret: secret, AllowNetworks: loopback})
	}
	const n = 200
	for i := range n {
		fs.Enqueue(testEvent(t, fmt.Sprintf("pay_%03d", i), ms[i%len(ms)].ID, srv.URL, time.Now()), time.Now())
	}
	startDispatcher(t, fs, static(ms...), Config{Workers: 4, PollInterval: 10 * time.Millisecond})
	fs.waitUntil(t, "all acked", func() bool { return len(fs.events) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n || bad.Load() != 0 {
		t.Fatalf("%d distinct events received (want %d), %d bad signatures", len(seen), n, bad.Load())
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	sched := []time.Duration{10 * time.Second, time.Hour}
	tests := []struct {
		name    string
		jitter  float64
		rnd     float64
		attempt int
		want    time.Duration
	}{
		{name: "no jitter", jitter: -1, rnd: 0.9, attempt: 2, want: time.Hour},
		{name: "low end", jitter: 0.1, rnd: 0, attempt: 1, want: 9 * time.Second},
		{name: "middle", jitter: 0.1, rnd: 0.5, attempt: 1, want: 10 * time.Second},
		{name: "high end", jitter: 0.1, rnd: 0.75, attempt: 2, want: time.Hour + 3*time.Minute},
		{name: "default jitter", jitter: 0, rnd: 0, attempt: 2, want: 54 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := NewDispatcher(newFakeStore(), static(), Config{Schedule: sched, Jitter: tt.jitter}, nil)
			d.rnd = func() float64 { return tt.rnd }
			if got := d.retryDelay(tt.attempt); got != tt.want {
				t.Fatalf("retryDelay(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	var total time.Duration
	for _, d := range DefaultSchedule() {
		total += d
	}
	if len(DefaultSchedule()) != 15 || total != 24*time.Hour+4*time.Minute {
		t.Fatalf("default schedule: %d entries, %v", len(DefaultSchedule()), total)
	}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "zero value is the defaults", cfg: Config{}, ok: true},
		{name: "lease not above timeout", cfg: Config{Timeout: 30 * time.Second, Lease: 30 * time.Second}},
		{name: "negative schedule entry", cfg: Config{Schedule: []time.Duration{time.Second, -time.Second}}},
		{name: "jitter above 1", cfg: Config{Jitter: 1.5}},
		{name: "negative workers", cfg: Config{Workers: -1}},
		{name: "no retries", cfg: Config{Schedule: []time.Duration{}}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	d := NewDispatcher(newFakeStore(), static(), Config{Timeout: 20 * time.Second, Lease: 10 * time.Second, Schedule: []time.Duration{0, time.Second}}, nil)
	if d.cfg.Lease != 25*time.Second || !slices.Equal(d.cfg.Schedule, []time.Duration{time.Second}) || d.cfg.Workers != DefaultWorkers {
		t.Fatalf("fixed config %+v", d.cfg)
	}
}
