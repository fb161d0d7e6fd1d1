// Package routing chooses the channel instance for each payment and guards
// every channel call.
//
// Rules (config routing.rules) compile into an immutable Table, swapped
// atomically on reload; a request keeps the Table it started with. Each
// channel instance has a health window (technical successes and failures in
// time buckets, shared between gateway instances through the store) and a
// circuit breaker on a rolling window. Table.Decide matches the first rule,
// excludes the candidates that cannot serve the request now, estimates each
// one's success rate, eliminates the ones more than a tolerance below the
// best and orders the rest by priority tier and weight. Router.Call runs one
// channel operation through the channel's breaker and records its outcome.
// See docs/routing.md.
package routing

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// Builder builds the adapter of one channel instance (the wiring passes
// adapter constructors). It is called for every channel on New and on every
// Reload.
type Builder func(ch config.Channel) (adapters.Channel, error)

// HealthStore is the shared health store (implemented by *store.Store).
type HealthStore interface {
	// AddHealth adds the counts of buckets to the stored ones (one
	// pipelined round trip); ttl bounds how long a bucket is kept.
	AddHealth(ctx context.Context, buckets []store.HealthBucket, ttl time.Duration) error
	// ReadHealth returns channel's stored buckets with index from..to.
	ReadHealth(ctx context.Context, channel string, from, to int64) ([]store.HealthBucket, error)
}

// Option configures a Router.
type Option func(*options)

type options struct {
	now    func() time.Time
	seed   uint64
	seeded bool
}

// WithClock sets the clock of the health windows, the breakers and the
// latency measurements (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSeed makes the weighted and exploration choices deterministic: the
// same seed and the same sequence of Decide calls give the same choices.
// Default: a random seed.
func WithSeed(seed uint64) Option { return func(o *options) { o.seed, o.seeded = seed, true } }

// Router owns the current routing Table and the per-channel health and
// breaker state. It is safe for concurrent use.
type Router struct {
	build  Builder
	hs     HealthStore // nil: no sharing, local windows only
	logger *zap.Logger
	rt     *routerState

	reloadMu sync.Mutex // serialises Reload; readers never take it
	table    atomic.Pointer[Table]

	lifeMu sync.Mutex
	cancel context.CancelFunc // of the sync loop; nil when not started
	done   chan struct{}
}

// New compiles cfg and builds every channel's adapter with build. hs may be
// nil (a nil interface, not a typed nil pointer): scores then use this
// instance's outcomes only. logger may be nil.
func New(cfg *config.Config, build Builder, hs HealthStore, logger *zap.Logger, opts ...Option) (*Router, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if !o.seeded {
		o.seed = rand.Uint64()
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	logger = logger.Named("routing")
	r := &Router{
		build:  build,
		hs:     hs,
		logger: logger,
		rt:     &routerState{now: o.now, logger: logger, shared: hs != nil, seed: o.seed},
	}
	if build == nil {
		r.build = func(config.Channel) (adapters.Channel, error) { return nil, nil }
	}
	t, err := r.compile(cfg)
	if err != nil {
		return nil, err
	}
	r.table.Store(t)
	return r, nil
}

// Reload builds and validates a new Table from cfg completely (adapters
// included), then swaps it in atomically. On error nothing changes and the
// error lists every problem with its YAML path. Channels that remain keep
// their health window (unless routing.health.window or buckets changed) and
// their breaker (unless their breaker settings changed).
func (r *Router) Reload(cfg *config.Config) error {
	commit, err := r.Prepare(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare builds and validates the table of cfg (adapters included) without
// changing anything; the returned commit swaps it in. Reloads that change
// several components prepare them all before committing any.
func (r *Router) Prepare(cfg *config.Config) (commit func(), err error) {
	r.reloadMu.Lock()
	t, err := r.compile(cfg)
	r.reloadMu.Unlock()
	if err != nil {
		return nil, err
	}
	return func() {
		r.reloadMu.Lock()
		defer r.reloadMu.Unlock()
		t.retire(r.table.Load())
		r.table.Store(t)
		r.logger.Info("routing table reloaded", zap.Int("rules", len(t.rules)), zap.Int("channels", len(t.channels)))
	}, nil
}

// Table is the current routing table. Keep it for the whole request.
func (r *Router) Table() *Table { return r.table.Load() }

// OpCreate is the operation whose outcomes rank the channels: only creates
// feed the success estimate and the breaker.
const OpCreate = "create"

// Call runs one channel operation through that channel's breaker and
// records the outcome. A create (op OpCreate) counts in the channel's
// create window — what the success estimate is made of — and for its
// breaker:
//
//   - nil: breaker success, health success;
//   - a technical *adapters.Error (Technical()) or an untyped error: breaker
//     failure, health failure;
//   - another *adapters.Error (declined, invalid, not found, ...): breaker
//     success, health unaffected;
//   - context.Canceled (the caller gave up): neither.
//
// Every other operation (the reconciler's queries, closes, refunds) counts
// the same way in a separate query window shown on /admin/channels, never
// in the estimate nor the breaker; it is refused only while the breaker is
// open and takes no half-open probe slot.
//
// If the breaker refuses, fn is not called and Call returns an
// *adapters.Error{Kind: KindUnavailable, Code: "breaker_open"}. If ctx has
// no deadline, Call puts the channel's timeout on it. A panic in fn counts
// as a technical failure and is re-raised.
//
// A channel that is not in the current table (a reload removed it while a
// request was using the old table) runs fn unguarded and unrecorded.
func (r *Router) Call(ctx context.Context, channel, op string, fn func(ctx context.Context) error) error {
	return r.call(ctx, channel, op, -1, fn)
}

// CallCreate is Call for a create of a payment by method: its outcome also
// counts in the channel's window of that method, which gives the estimate
// for that method's payments once it has min_samples creates.
func (r *Router) CallCreate(ctx context.Context, channel string, method payment.Method, fn func(ctx context.Context) error) error {
	return r.call(ctx, channel, OpCreate, methodIndex(method), fn)
}

func (r *Router) call(ctx context.Context, channel, op string, mi int, fn func(ctx context.Context) error) error {
	ch, ok := r.table.Load().byID[channel]
	if !ok {
		return fn(ctx)
	}
	c, err := r.begin(ch, op, mi)
	if err != nil {
		return err
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ch.timeout)
		defer cancel()
	}
	returned := false
	defer func() {
		if !returned { // fn panicked; the panic continues after this
			c.end(outcomeTechnical)
		}
	}()
	err = fn(ctx)
	returned = true
	c.end(classify(ctx, err))
	return err
}

// inflight is one admitted channel call, from begin to end.
type inflight struct {
	r     *Router
	ch    *channel
	tk    ticket
	win   *health
	mwin  *health // the method's window of a create, or nil
	start time.Time
}

// begin admits one call of op (for a create: of method index mi, -1 if
// unknown) on ch through its breaker; end records it. Call is begin, fn,
// end; the simulation test runs many calls at once on one clock with them.
func (r *Router) begin(ch *channel, op string, mi int) (inflight, error) {
	create := op == OpCreate
	tk, allowed := ch.br.allow(create)
	if !allowed {
		return inflight{}, &adapters.Error{Channel: ch.id, Op: op, Kind: adapters.KindUnavailable, Code: "breaker_open",
			Message: "circuit breaker open; request not sent", Err: errBreakerRefused}
	}
	c := inflight{r: r, ch: ch, tk: tk, win: ch.health, start: r.rt.now()}
	switch {
	case !create:
		c.win = ch.queries
	case mi >= 0 && mi < len(ch.byMethod):
		c.mwin = ch.byMethod[mi]
	}
	return c, nil
}

func (c inflight) end(o outcome) {
	now := c.r.rt.now()
	c.ch.br.done(c.tk, o)
	if o != outcomeSuccess && o != outcomeTechnical {
		return
	}
	c.win.observe(now, o == outcomeSuccess, now.Sub(c.start))
	if c.mwin != nil {
		c.mwin.observe(now, o == outcomeSuccess, now.Sub(c.start))
	}
}

// RecordFailover counts a failover from one channel to another; it shows in
// from's ChannelStatus.FailoversRecent for one health window.
func (r *Router) RecordFailover(from, to string) {
	if ch, ok := r.table.Load().byID[from]; ok {
		ch.health.failover(r.rt.now())
	}
	r.logger.Debug("failover", zap.String("from", from), zap.String("to", to))
}

// ChannelStatus is one channel's figures for GET /admin/channels and the
// status page. Score, SuccessRate, Samples and the estimate's parts are of
// creates only.
type ChannelStatus struct {
	Channel string `json:"channel"`
	Type    string `json:"type"`
	// Score is the success estimate in (0, 1] that Decide ranks by:
	// Success × the latency factor of LatencyPMS against the target.
	Score      float64 `json:"score"`
	Success    float64 `json:"success"`
	LatencyPMS float64 `json:"latency_p_ms"`
	// Best is the best Score among the enabled channels that serve one of
	// this channel's methods (this one included); Eliminated says this
	// channel is more than routing.tolerance below it (and not probing),
	// Why says whether failures or latency put it there.
	Best       float64 `json:"best"`
	Eliminated bool    `json:"eliminated"`
	Why        string  `json:"why,omitempty"`
	Breaker    string  `json:"breaker"` // closed | half-open | open
	// SuccessRate is ok / (ok + technical failures) over the window, 1 when
	// Samples is 0. Business declines are in neither count.
	SuccessRate float64 `json:"success_rate"`
	Samples     int64   `json:"samples"`
	// P50MS and P99MS are this instance's latency percentiles over the
	// window (±6%), 0 with no samples.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	// FailoversRecent counts payments that failed over away from this
	// channel within the window, on this instance.
	FailoversRecent int64 `json:"failovers_recent"`
	LatencyTargetMS int64 `json:"latency_target_ms"`
	// QuerySuccessRate and QuerySamples are the same for every other
	// operation (queries, closes, refunds) on this instance: kept apart
	// from the estimate.
	QuerySuccessRate float64 `json:"query_success_rate"`
	QuerySamples     int64   `json:"query_samples"`
	// Source says where Score, SuccessRate and Samples come from: "shared"
	// (all gateway instances, through the store) or "local" (this one).
	Source string `json:"source"`
}

// Channels reports every channel of the current table, in config order.
func (r *Router) Channels() []ChannelStatus {
	t := r.Table()
	now := r.rt.now()
	out := make([]ChannelStatus, 0, len(t.channels))
	for _, ch := range t.channels {
		st, _, recovered := ch.br.status()
		c := ch.health.window(now, r.rt.shared, t.fresh, t.halfLife, recovered)
		e := c.estimate(t.scoring, ch.target)
		q := ch.queries.window(now, false, 0, 0, time.Time{})
		ls := ch.health.local(now)
		s := ChannelStatus{
			Channel:          ch.id,
			Type:             ch.cfg.Type,
			Score:            e.value,
			Success:          e.success,
			LatencyPMS:       e.pqMS,
			Breaker:          stateName(st),
			SuccessRate:      c.successRate(),
			Samples:          c.samples(),
			P50MS:            ls.p50MS,
			P99MS:            ls.p99MS,
			FailoversRecent:  ls.failovers,
			LatencyTargetMS:  ch.target.Milliseconds(),
			QuerySuccessRate: q.successRate(),
			QuerySamples:     q.samples(),
			Source:           "local",
		}
		if c.shared {
			s.Source = "shared"
		}
		out = append(out, s)
	}
	// Best among the enabled, not open channels sharing a method.
	for i, ch := range t.channels {
		s := &out[i]
		s.Best = s.Score
		for j, o := range t.channels {
			if o.methods&ch.methods != 0 && !o.cfg.Disabled && out[j].Breaker != BreakerOpen {
				s.Best = max(s.Best, out[j].Score)
			}
		}
		if !ch.cfg.Disabled && s.Breaker == BreakerClosed && s.Score < s.Best-t.tolerance {
			s.Eliminated, s.Why = true, WhyLatency
			if s.Success < s.Best-t.tolerance {
				s.Why = WhyFailures
			}
		}
	}
	return out
}

// Rules describes the current rules in order, then the implicit fallback
// rule of each method that some channel serves.
func (r *Router) Rules() []RuleInfo { return r.Table().ruleInfos() }
