// Package engine is paygate's payment logic, apart from any transport: create
// with safe failover, exactly-once state changes with their outbox events,
// close, refunds, applying verified channel notifications, and the
// reconciler that brings every pending payment and refund to the truth.
//
// The merchant API (gateway), channel callbacks and the reconciler's loop
// call it with a context.Context and typed requests; it answers with
// payment records or a typed *Error whose Code the edge maps to an HTTP
// status. It reaches the store only through Store and the channels only
// through the router.
package engine

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/store"
)

// Engine runs payments and refunds against the store and the channels. It
// is safe for concurrent use; every instance of paygate has one.
type Engine struct {
	logger  *zap.Logger
	store   Store
	router  *routing.Router
	now     func() time.Time
	onEvent func()
	obs     Observer
	gate    Gate

	delays atomic.Pointer[[]time.Duration] // reconcile.delays, swapped on reload
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock injects the clock (tests).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithEventHook sets a function called after a state change enqueued a
// merchant event, so that delivery starts without waiting for a poll.
func WithEventHook(f func()) Option { return func(e *Engine) { e.onEvent = f } }

// WithObserver makes the engine report failovers, finished payments and
// what the reconciler resolved to o.
func WithObserver(o Observer) Option { return func(e *Engine) { e.obs = o } }

// WithGate sets the check every create passes before anything is stored or
// sent to a channel (see Gate).
func WithGate(g Gate) Option { return func(e *Engine) { e.gate = g } }

// Observer is told what the engine did, for metrics. Its methods are called
// on the request's goroutine and must not block.
type Observer interface {
	// Failover: a create moved from channel from to channel to, because
	// from provably did not create the order.
	Failover(from, to string)
	// PaymentFinished: a payment of channel reached a final status (once
	// per transition: a payment a channel reports paid after it was closed
	// finishes twice, closed then succeeded).
	PaymentFinished(channel string, status payment.Status)
	// Reconciled: the reconciler brought a payment or refund (kind is
	// store.SweepPayment or store.SweepRefund) to a final status.
	Reconciled(kind, status string)
}

type nopObserver struct{}

func (nopObserver) Failover(string, string)                {}
func (nopObserver) PaymentFinished(string, payment.Status) {}
func (nopObserver) Reconciled(string, string)              {}

// New builds an Engine over st and router, with the reconcile delays of cfg.
func New(cfg *config.Config, st Store, router *routing.Router, logger *zap.Logger, opts ...Option) *Engine {
	e := &Engine{logger: logger.Named("engine"), store: st, router: router, now: time.Now, onEvent: func() {}, obs: nopObserver{}}
	for _, o := range opts {
		o(e)
	}
	e.Reload(cfg)
	return e
}

// Reload takes the engine's settings from cfg (the reconcile delays).
func (e *Engine) Reload(cfg *config.Config) {
	delays := make([]time.Duration, 0, len(cfg.Reconcile.Delays))
	for _, d := range cfg.Reconcile.Delays {
		delays = append(delays, d.D())
	}
	e.delays.Store(&delays)
}

// stamp is the current time as stored and shown: UTC, whole milliseconds
// (what both stores order lists by, so that "newest first" holds for
// payments made within one second too).
func (e *Engine) stamp() time.Time { return e.now().UTC().Truncate(time.Millisecond) }

// sweepDelay is when the reconciler next looks at a pending object after
// its n-th look (0: first).
func (e *Engine) sweepDelay(n int) time.Duration {
	delays := *e.delays.Load()
	if n < len(delays) {
		return delays[n]
	}
	if len(delays) > 0 {
		return delays[len(delays)-1]
	}
	return 30 * time.Second
}

// callChannel runs one channel operation through the router (breaker and
// health) with the channel's timeout.
func (e *Engine) callChannel(table *routing.Table, chID, op string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.channelTimeout(table, chID))
	defer cancel()
	return e.router.Call(ctx, chID, op, fn)
}

// callCreate is callChannel for a create of a payment of method m: its
// outcome ranks the channel for m's payments too (routing.Router.CallCreate).
func (e *Engine) callCreate(table *routing.Table, chID string, m payment.Method, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.channelTimeout(table, chID))
	defer cancel()
	return e.router.CallCreate(ctx, chID, m, fn)
}

// channelTimeout is the configured per-call timeout of a channel.
func (e *Engine) channelTimeout(table *routing.Table, chID string) time.Duration {
	if cc, ok := table.ChannelConfig(chID); ok && cc.Timeout > 0 {
		return cc.Timeout.D()
	}
	return 3 * time.Second
}

// View is the public payment object of a record, as merchants see it in
// answers and events.
func View(rec *payment.Record) *payment.Payment {
	p := rec.Payment
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	return &p
}

// refuseAfterNonce claims the request's nonce (a refused request still
// used it) and then returns refusal.
func (e *Engine) refuseAfterNonce(ctx context.Context, n *store.Nonce, refusal error) error {
	if n != nil {
		if err := e.store.ClaimNonce(ctx, *n); err != nil {
			return err
		}
	}
	return refusal
}
