package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
)

// Store is the outbox as the Dispatcher needs it; *store.Store implements it.
//
// ClaimEvents returns up to max events of merchant that are due at now, in
// due order, counts the attempt (Delivery.Attempt is 1 on the first claim)
// and makes each invisible to other claimers until now+lease: if this
// process dies mid-delivery, the event comes back after the lease.
// AckEvent removes a delivered event. RetryEvent makes it due again at at.
// DeadLetter moves it to the merchant's dead letters. The last three must
// succeed quietly when the event is no longer in the outbox (another
// instance got it after the lease ran out).
type Store interface {
	ClaimEvents(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]store.Delivery, error)
	AckEvent(ctx context.Context, merchant, eventID string) error
	RetryEvent(ctx context.Context, merchant, eventID string, at time.Time, lastErr string) error
	DeadLetter(ctx context.Context, merchant, eventID string, now time.Time, lastErr string) error
}

// Merchant is what delivery needs of a merchant.
type Merchant struct {
	ID            string
	WebhookSecret []byte         // signs every attempt; never logged
	AllowNetworks []netip.Prefix // notify_allow_networks: exceptions to the SSRF policy
}

// MerchantSource returns the current merchants. It is called on every poll,
// so a config reload takes effect without restarting the Dispatcher; it
// must be cheap and safe for concurrent use, and the caller must not modify
// what it returns.
type MerchantSource func() []Merchant

// Observer is told of every attempt: the hook for metrics. It must be cheap
// and safe for concurrent use. attempt is 1 for the first delivery.
type Observer interface {
	Delivered(merchant string, attempt int, d time.Duration)
	Failed(merchant string, attempt int, err error)
	DeadLettered(merchant string)
}

// Config configures delivery. The zero value of every field means its default.
type Config struct {
	// Schedule is the wait after each failed attempt: a failure of attempt N
	// is retried Schedule[N-1] later; a failure of attempt len(Schedule)+1
	// dead-letters the event. nil means DefaultSchedule() (15 retries, 16
	// attempts, about 24 h). Entries must be positive.
	Schedule []time.Duration
	// Workers is the number of concurrent deliveries (per Dispatcher, across
	// all merchants). Default 8.
	Workers int
	// Timeout bounds one attempt, connect to response headers; a 2xx within
	// it acknowledges. Default 10s.
	Timeout time.Duration
	// Lease is how long a claimed event stays invisible to other claimers.
	// It must exceed Timeout plus the store round trip that records the
	// outcome, or a slow attempt is delivered twice; NewDispatcher raises a
	// lease below Timeout+5s to that. Default 30s.
	Lease time.Duration
	// PollInterval is how often a merchant whose outbox had nothing due is
	// asked again (a merchant with a backlog is asked as soon as a worker is
	// free). Wake skips the wait. Default 1s.
	PollInterval time.Duration
	// Jitter spreads retries by ± this fraction of the scheduled wait, so
	// that events failed together are not retried together. Default 0.1
	// (±10%); negative means none; at most 1.
	Jitter float64
}

// Defaults.
const (
	DefaultWorkers      = 8
	DefaultTimeout      = 10 * time.Second
	DefaultLease        = 30 * time.Second
	DefaultPollInterval = time.Second
	DefaultJitter       = 0.1
)

// storeOpTimeout bounds each store call of the Dispatcher.
const storeOpTimeout = 5 * time.Second

// maxDrain is how much of a merchant's answer is read (and discarded) so
// that the connection can be reused.
const maxDrain = 64 << 10

// DefaultSchedule returns the default retry schedule, WeChat Pay's ladder:
// 15s 15s 30s 3m 10m 20m 30m 30m 30m 1h 3h 3h 3h 6h 6h (24h 4m in total).
func DefaultSchedule() []time.Duration {
	const s, m, h = time.Second, time.Minute, time.Hour
	return []time.Duration{15 * s, 15 * s, 30 * s, 3 * m, 10 * m, 20 * m, 30 * m, 30 * m, 30 * m, 1 * h, 3 * h, 3 * h, 3 * h, 6 * h, 6 * h}
}

// ConfigFrom converts the notifications section of config.yaml.
func ConfigFrom(n config.Notifications) Config {
	c := Config{Workers: n.Workers, Timeout: n.Timeout.D(), Lease: n.Lease.D()}
	for _, d := range n.Schedule {
		c.Schedule = append(c.Schedule, d.D())
	}
	return c
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule()
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	return c
}

// Validate reports the first problem of c after defaults, naming the
// config.yaml key where there is one.
func (c Config) Validate() error {
	c = c.WithDefaults()
	for i, d := range c.Schedule {
		if d <= 0 {
			return fmt.Errorf("notifications.schedule[%d]: must be positive", i)
		}
	}
	switch {
	case c.Workers < 0:
		return errors.New("notifications.workers: must be positive")
	case c.Timeout < 0:
		return errors.New("notifications.timeout: must be positive")
	case c.Lease <= c.Timeout:
		return fmt.Errorf("notifications.lease: must exceed notifications.timeout (%s)", c.Timeout)
	case c.PollInterval < 0:
		return errors.New("notify: poll interval must be positive")
	case c.Jitter > 1:
		return errors.New("notify: jitter must be at most 1")
	}
	return nil
}

// Option configures a Dispatcher.
type Option func(*Dispatcher)

// WithClock sets the clock used for claims, signature timestamps and retry
// times (default time.Now). Attempt latency is always measured in real time.
func WithClock(now func() time.Time) Option { return func(d *Dispatcher) { d.now = now } }

// WithObserver sets the metrics hook (default none).
func WithObserver(o Observer) Option { return func(d *Dispatcher) { d.obs = o } }

// WithResolver sets the resolver of the default per-merchant Dialers
// (default net.DefaultResolver).
func WithResolver(r Resolver) Option { return func(d *Dispatcher) { d.resolver = r } }

// Dispatcher delivers the outbox: one poller claims due events, merchant by
// merchant, never more than there are idle workers (so nothing claimed waits
// out its lease in a queue), and Workers goroutines POST them. It owns its
// goroutines: Start starts them, Stop stops them and waits.
//
// Each merchant gets its own HTTP client and connection pool, built from
// its allow list: a connection one merchant was allowed to open must never
// be reused for another merchant that is not.
type Dispatcher struct {
	st        Store
	merchants MerchantSource
	cfg       Config
	logger    *zap.Logger
	now       func() time.Time
	obs       Observer
	resolver  Resolver
	rnd       func() float64 // [0,1), for jitter

	wake chan struct{}

	mu         sync.Mutex // guards what follows
	clients    map[string]*merchantClient
	started    bool
	stopped    bool
	cancelPoll context.CancelFunc
	cancelRun  context.CancelFunc
	wg         sync.WaitGroup
}

type merchantClient struct {
	key    string // the allow list it was built for
	client *http.Client
}

type job struct {
	m  Merchant
	dl store.Delivery
}

// NewDispatcher returns a Dispatcher; cfg is completed with defaults, and
// values Validate would refuse are corrected with a warning (a lease at most
// Timeout is raised to Timeout+5s, jitter above 1 lowered to 1, non-positive
// schedule entries and counts replaced by defaults). A nil logger logs nothing.
func NewDispatcher(st Store, merchants MerchantSource, cfg Config, logger *zap.Logger, opts ...Option) *Dispatcher {
	if logger == nil {
		logger = zap.NewNop()
	}
	logger = logger.Named("notify")
	cfg = fixConfig(cfg.WithDefaults(), logger)
	d := &Dispatcher{
		st: st, merchants: merchants, cfg: cfg, logger: logger,
		now: time.Now, obs: nopObserver{}, rnd: rand.Float64,
		wake:    make(chan struct{}, 1),
		clients: map[string]*merchantClient{},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func fixConfig(c Config, logger *zap.Logger) Config {
	if c.Workers < 0 {
		logger.Warn("notifications.workers must be positive; using the default", zap.Int("workers", c.Workers))
		c.Workers = DefaultWorkers
	}
	if c.Timeout < 0 {
		logger.Warn("notifications.timeout must be positive; using the default", zap.Duration("timeout", c.Timeout))
		c.Timeout = DefaultTimeout
	}
	if c.PollInterval < 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Lease < c.Timeout+storeOpTimeout {
		logger.Warn("notifications.lease too short for the timeout; raised",
			zap.Duration("lease", c.Lease), zap.Duration("raised_to", c.Timeout+storeOpTimeout))
		c.Lease = c.Timeout + storeOpTimeout
	}
	if c.Jitter > 1 {
		c.Jitter = 1
	}
	sched := make([]time.Duration, 0, len(c.Schedule))
	for _, d := range c.Schedule {
		if d <= 0 {
			logger.Warn("non-positive notifications.schedule entry dropped", zap.Duration("entry", d))
			continue
		}
		sched = append(sched, d)
	}
	c.Schedule = sched
	return c
}

// Start starts the poller and the workers; they run until Stop, or until ctx
// is cancelled, which also aborts deliveries in flight (their events come
// back after the lease). Only the first call has an effect.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.stopped {
		return
	}
	d.started = true
	runCtx, cancelRun := context.WithCancel(ctx)
	pollCtx, cancelPoll := context.WithCancel(runCtx)
	d.cancelRun, d.cancelPoll = cancelRun, cancelPoll

	jobs := make(chan job)
	tokens := make(chan struct{}, d.cfg.Workers) // one per idle worker
	for range d.cfg.Workers {
		tokens <- struct{}{}
	}
	d.wg.Add(1 + d.cfg.Workers)
	go func() {
		defer d.wg.Done()
		defer close(jobs)
		d.poll(pollCtx, runCtx, jobs, tokens)
	}()
	for range d.cfg.Workers {
		go func() {
			defer d.wg.Done()
			for j := range jobs {
				d.run(runCtx, j)
				tokens <- struct{}{}
			}
		}()
	}
}

// Stop stops claiming, lets the deliveries in flight finish (each is bounded
// by Timeout) and waits for every goroutine. It is safe to call more than
// once, and before or without Start.
func (d *Dispatcher) Stop() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	started := d.started
	d.mu.Unlock()
	if started {
		d.cancelPoll()
		d.wg.Wait()
		d.cancelRun()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, c := range d.clients {
		c.client.CloseIdleConnections()
		delete(d.clients, id)
	}
}

// Wake makes the poller look at every merchant now instead of at its next
// poll: call it after enqueuing an event for a prompt first attempt. It
// never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// poll claims due events and hands them to the workers. It holds a token
// for each event it claims, so it never claims more than the idle workers
// can take at once. A merchant whose outbox gave fewer events than asked is
// drained and is not asked again before PollInterval (or Wake); one that
// filled its share is asked again as soon as a worker is free.
func (d *Dispatcher) poll(ctx, runCtx context.Context, jobs chan<- job, tokens chan struct{}) {
	idleUntil := map[string]time.Time{} // real time; poller-owned
	rotate := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tokens:
		}
		n := 1
	grab:
		for n < d.cfg.Workers {
			select {
			case <-tokens:
				n++
			default:
				break grab
			}
		}
		if ctx.Err() != nil {
			return // select picked the token although ctx was done too
		}
		select {
		case <-d.wake:
			clear(idleUntil)
		default:
		}

		batch := d.claim(ctx, n, idleUntil, rotate)
		rotate++
		for range n - len(batch) {
			tokens <- struct{}{}
		}
		for _, j := range batch {
			// On Stop (ctx done, runCtx not) the batch is still handed
			// out: the workers hold its tokens and are alive until jobs
			// is closed, and a claimed event left here would wait out its
			// lease.
			select {
			case jobs <- j:
			case <-runCtx.Done():
				return // hard stop: the rest come back after the lease
			}
		}
		if len(batch) > 0 {
			continue
		}
		wait := d.cfg.PollInterval
		realNow := time.Now()
		for _, t := range idleUntil {
			wait = min(wait, t.Sub(realNow))
		}
		wait = max(wait, time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-d.wake:
			t.Stop()
			clear(idleUntil)
		}
	}
}

// claim asks the merchants that are not idle, in rotating order, for up to n
// due events in total.
func (d *Dispatcher) claim(ctx context.Context, n int, idleUntil map[string]time.Time, rotate int) (batch []job) {
	defer func() {
		// A panic in the merchant source or the store must not kill the
		// poller; what was claimed before it is still delivered.
		if r := recover(); r != nil {
			d.logger.Error("notification poller panic", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	ms := slices.Clone(d.merchants())
	slices.SortFunc(ms, func(a, b Merchant) int { return strings.Compare(a.ID, b.ID) })
	d.forgetOthers(ms, idleUntil)
	if len(ms) == 0 {
		return nil
	}
	now, realNow := d.now(), time.Now()
	var firstErr error
	failed := 0
	for i := range ms {
		left := n - len(batch)
		if left == 0 {
			break
		}
		m := ms[(rotate+i)%len(ms)]
		if realNow.Before(idleUntil[m.ID]) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, storeOpTimeout)
		dls, err := d.st.ClaimEvents(cctx, m.ID, now, d.cfg.Lease, left)
		cancel()
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
		if len(dls) < left {
			idleUntil[m.ID] = realNow.Add(d.cfg.PollInterval)
		} else {
			delete(idleUntil, m.ID)
		}
		for _, dl := range dls[:min(len(dls), left)] {
			batch = append(batch, job{m: m, dl: dl})
		}
	}
	if failed > 0 && ctx.Err() == nil {
		d.logger.Warn("claiming notifications failed", zap.Int("merchants", failed), zap.Error(firstErr))
	}
	return batch
}

// forgetOthers drops the idle marks and HTTP clients of merchants that are
// no longer configured.
func (d *Dispatcher) forgetOthers(ms []Merchant, idleUntil map[string]time.Time) {
	has := func(id string) bool {
		_, ok := slices.BinarySearchFunc(ms, id, func(m Merchant, id string) int { return strings.Compare(m.ID, id) })
		return ok
	}
	for id := range idleUntil {
		if !has(id) {
			delete(idleUntil, id)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, c := range d.clients {
		if !has(id) {
			c.client.CloseIdleConnections()
			delete(d.clients, id)
		}
	}
}

// run delivers one claimed event, recovering a panic so the worker survives.
// After a panic the event stays claimed and comes back after the lease.
func (d *Dispatcher) run(ctx context.Context, j job) {
	defer func() {
		if r := recover(); r != nil {
			d.logger.Error("notification worker panic",
				zap.String("event_id", j.dl.ID), zap.String("merchant", j.m.ID),
				zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	d.deliver(ctx, j)
}

func (d *Dispatcher) deliver(ctx context.Context, j job) {
	attempt := max(j.dl.Attempt, 1)
	start := time.Now()
	status, err := d.post(ctx, j)
	latency := time.Since(start)
	log := d.logger.With(
		zap.String("event_id", j.dl.ID), zap.String("merchant", j.m.ID), zap.Int("attempt", attempt),
		zap.Int("status", status), zap.Duration("latency", latency), zap.String("host", hostOf(j.dl.NotifyURL)))
	if err != nil && ctx.Err() != nil {
		log.Info("notification attempt aborted by shutdown; the event returns after its lease")
		return
	}
	// The outcome is recorded even when a hard stop arrives meanwhile.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeOpTimeout)
	defer cancel()

	if err == nil {
		log.Info("notification delivered")
		if serr := d.st.AckEvent(sctx, j.m.ID, j.dl.ID); serr != nil {
			log.Error("recording delivery failed; the event will be delivered again", zap.Error(serr))
		}
		d.obs.Delivered(j.m.ID, attempt, latency)
		return
	}

	var perm *permanentError
	if errors.As(err, &perm) || attempt > len(d.cfg.Schedule) {
		log.Warn("notification dead-lettered", zap.Error(err))
		if serr := d.st.DeadLetter(sctx, j.m.ID, j.dl.ID, d.now(), err.Error()); serr != nil {
			log.Error("dead-lettering failed; the event will be tried again after its lease", zap.Error(serr))
		}
		d.obs.Failed(j.m.ID, attempt, err)
		d.obs.DeadLettered(j.m.ID)
		return
	}
	at := d.now().Add(d.retryDelay(attempt))
	log.Info("notification attempt failed", zap.Error(err), zap.Time("retry_at", at))
	if serr := d.st.RetryEvent(sctx, j.m.ID, j.dl.ID, at, err.Error()); serr != nil {
		log.Error("scheduling the retry failed; the event will be tried again after its lease", zap.Error(serr))
	}
	d.obs.Failed(j.m.ID, attempt, err)
}

// retryDelay is the wait after failed attempt (1-based, ≤ len(Schedule)).
func (d *Dispatcher) retryDelay(attempt int) time.Duration {
	base := d.cfg.Schedule[attempt-1]
	if d.cfg.Jitter <= 0 {
		return base
	}
	f := 1 + d.cfg.Jitter*(2*d.rnd()-1)
	return time.Duration(float64(base) * f)
}

// permanentError is a failure no retry can fix (an unusable notify URL): the
// event is dead-lettered at once, to be replayed after the cause is fixed.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// post makes one attempt. Errors never contain the URL (which may carry the
// merchant's credentials), the secret or the signature.
func (d *Dispatcher) post(ctx context.Context, j job) (int, error) {
	if err := ValidateNotifyURL(j.dl.NotifyURL); err != nil {
		return 0, &permanentError{err}
	}
	if len(j.m.WebhookSecret) == 0 {
		return 0, errors.New("merchant has no webhook secret")
	}
	rctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, j.dl.NotifyURL, bytes.NewReader(j.dl.Body))
	if err != nil {
		return 0, &permanentError{errors.New("notify_url: not a URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "paygate/1")
	req.Header.Set(EventIDHeader, j.dl.ID)
	req.Header.Set(SignatureHeader, Sign(j.m.WebhookSecret, d.now().Unix(), j.dl.Body))

	resp, err := d.client(j.m).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return 0, fmt.Errorf("no answer within %s", d.cfg.Timeout)
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		return resp.StatusCode, fmt.Errorf("HTTP %d (redirects are not followed)", resp.StatusCode)
	default:
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
}

// client returns the merchant's HTTP client, rebuilt when its allow list
// changed (config reload); the old pool's idle connections are closed.
func (d *Dispatcher) client(m Merchant) *http.Client {
	key := allowKey(m.AllowNetworks)
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[m.ID]; ok {
		if c.key == key {
			return c.client
		}
		c.client.CloseIdleConnections()
	}
	// Every merchant's client dials through the SSRF-safe Dialer with its
	// own allow list.
	c := &merchantClient{key: key, client: NewClient(NewDialer(m.AllowNetworks, d.resolver), d.cfg.Timeout)}
	d.clients[m.ID] = c
	return c.client
}

func allowKey(ps []netip.Prefix) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String())
		b.WriteByte(' ')
	}
	return b.String()
}

// hostOf is the host[:port] of a notify URL, the only part of it logged.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

type nopObserver struct{}

func (nopObserver) Delivered(string, int, time.Duration) {}
func (nopObserver) Failed(string, int, error)            {}
func (nopObserver) DeadLettered(string)                  {}

// Interface guards.
var _ Observer = nopObserver{}
