package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// maxAttemptChecks is how many looks the reconciler gives an attempt it must
// confirm at a channel that does not answer, before leaving it to a person.
const maxAttemptChecks = 100

// Reconciler makes every pending payment and refund reach the truth without
// a callback: it queries the channel after the configured delays (then at
// expiry), applies what it learns through the same exactly-once path as
// callbacks, and closes an unpaid payment at its channel when it expires.
// Work is shared across instances by leases on the store's sweep schedule,
// so no query is made twice at once.
type Reconciler struct {
	e         *Engine
	merchants func() []string
	interval  time.Duration
	lease     time.Duration
	batch     int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewReconciler builds a Reconciler of e's payments; interval is how often
// it polls, merchants lists the merchants whose work it sweeps (every
// merchant with work that may still be due, including those a reload
// removed).
func NewReconciler(e *Engine, merchants func() []string, interval, lease time.Duration) *Reconciler {
	if interval <= 0 {
		interval = time.Second
	}
	if lease <= 0 {
		lease = 30 * time.Second
	}
	// Items are claimed only as many as are handled at once: each one may
	// cost a query and a close (one channel timeout each) and must finish
	// within its lease, or another instance would claim it again.
	return &Reconciler{e: e, merchants: merchants, interval: interval, lease: lease, batch: 4}
}

// Start runs the sweep loop until Stop.
func (r *Reconciler) Start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			r.SweepOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the loop and waits for it.
func (r *Reconciler) Stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

// SweepOnce claims and handles every due item of every merchant once.
func (r *Reconciler) SweepOnce(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			r.e.logger.Error("panic in reconciler", zap.Any("panic", p), zap.Stack("stack"))
		}
	}()
	for _, m := range r.merchants() {
		for ctx.Err() == nil {
			items, err := r.e.store.ClaimSweep(ctx, m, r.e.now(), r.itemLease(), r.batch)
			if err != nil {
				if ctx.Err() == nil {
					r.e.logger.Warn("reconciler cannot claim", zap.String("merchant", m), zap.Error(err))
				}
				break
			}
			var wg sync.WaitGroup
			for _, it := range items {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() {
						if p := recover(); p != nil {
							r.e.logger.Error("panic in reconciler", zap.Any("panic", p), zap.Stack("stack"))
						}
					}()
					r.handle(ctx, it)
				}()
			}
			wg.Wait()
			if len(items) < r.batch {
				break
			}
		}
	}
}

func (r *Reconciler) handle(ctx context.Context, it store.SweepItem) {
	var next time.Time
	var err error
	switch it.Kind {
	case store.SweepPayment:
		next, err = r.payment(ctx, it)
	case store.SweepRefund:
		next, err = r.refund(ctx, it)
	default:
		err = errors.New("unknown sweep kind " + it.Kind)
	}
	if err != nil {
		r.e.logger.Info("reconcile", zap.String("kind", it.Kind), zap.String("id", it.ID), zap.Int("attempt", it.Attempt), zap.Error(err))
		if errors.Is(err, store.ErrNotFound) {
			next = time.Time{}
		} else if next.IsZero() {
			next = r.e.now().Add(r.e.sweepDelay(it.Attempt))
		}
	}
	if err := r.e.store.Reschedule(ctx, it.Merchant, it.Kind, it.ID, next); err != nil && ctx.Err() == nil {
		r.e.logger.Warn("reconciler cannot reschedule", zap.String("id", it.ID), zap.Error(err))
	}
}

// payment handles one pending payment; it returns when to look again (zero:
// never).
func (r *Reconciler) payment(ctx context.Context, it store.SweepItem) (time.Time, error) {
	rec, err := r.e.store.GetPayment(ctx, nil, it.Merchant, it.ID)
	if err != nil {
		return time.Time{}, err
	}
	if rec, err = r.e.checkAttempts(ctx, rec, it.Attempt >= maxAttemptChecks); err != nil {
		return time.Time{}, err
	}
	if rec.Status.Final() {
		return r.e.checksAt(rec), nil
	}
	now := r.e.now()
	if inProgress(rec) {
		if live := r.e.liveCreateWindow(); now.Sub(rec.UpdatedAt) < live {
			return rec.UpdatedAt.Add(live), nil // a live create may still be running
		}
		// The instance that sent it never recorded the answer (it crashed
		// or lost the store mid-call): the outcome is ambiguous, so replays
		// of the create answer the payment instead of request_in_progress,
		// and the channel is asked below.
		if rec, err = r.e.mutatePayment(ctx, rec, func(p *payment.Record) (store.Change, bool, error) {
			if !inProgress(p) {
				return store.Change{}, false, nil
			}
			a := &p.Attempts[len(p.Attempts)-1]
			a.Outcome, a.Error = payment.OutcomeAmbiguous, "no answer was recorded for this attempt"
			p.UpdatedAt = r.e.stamp()
			return store.Change{SweepAt: now.Add(r.e.sweepDelay(it.Attempt))}, true, nil
		}); err != nil {
			return time.Time{}, err
		}
	}
	fresh, err := r.e.refreshPayment(rec)
	if err != nil {
		return time.Time{}, err
	}
	if fresh.Status.Final() {
		r.e.logger.Info("reconciler resolved payment", zap.String("payment_id", rec.PaymentID), zap.String("status", string(fresh.Status)))
		r.found(store.SweepPayment, string(fresh.Status))
		return r.e.checksAt(fresh), nil
	}
	if lostAnswer(fresh) && now.Before(fresh.ExpiresAt) {
		if recovered, err := r.e.recoverAction(ctx, fresh); err == nil {
			fresh = recovered
		} else {
			r.e.logger.Info("could not recover a lost create answer yet", zap.String("payment_id", fresh.PaymentID), zap.Error(err))
		}
	}
	if !now.Before(fresh.ExpiresAt) {
		closed, err := r.e.closeAtChannel(fresh, "expiry")
		if err != nil {
			return time.Time{}, err
		}
		if closed.Status.Final() {
			r.found(store.SweepPayment, string(closed.Status))
			return r.e.checksAt(closed), nil
		}
		// The channel could not close it yet: look again once it is past
		// its expiry and the grace.
		if at := closableAt(closed); now.Before(at) {
			return at, nil
		}
	}
	next := now.Add(r.e.sweepDelay(it.Attempt))
	if next.After(fresh.ExpiresAt) && now.Before(fresh.ExpiresAt) {
		next = fresh.ExpiresAt
	}
	return next, nil
}

// refund handles one pending refund.
func (r *Reconciler) refund(ctx context.Context, it store.SweepItem) (time.Time, error) {
	rf, err := r.e.store.GetRefund(ctx, nil, it.Merchant, it.ID)
	if err != nil {
		return time.Time{}, err
	}
	if rf.Status.Final() {
		return time.Time{}, nil
	}
	pay, err := r.e.store.GetPayment(ctx, nil, it.Merchant, rf.PaymentID)
	if err != nil {
		return time.Time{}, err
	}
	table := r.e.router.Table()
	ch, ok := table.Channel(rf.Channel)
	if !ok {
		return time.Time{}, errors.New("channel " + rf.Channel + " is not configured")
	}
	refunder, ok := ch.(adapters.Refunder)
	if !ok {
		return time.Time{}, adapters.Unsupported(rf.Channel, "query_refund")
	}
	req := refundRequestOf(pay, rf)
	var st *adapters.RefundState
	err = r.e.callChannel(table, rf.Channel, "query_refund", func(ctx context.Context) error {
		var err error
		st, err = refunder.QueryRefund(ctx, req)
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	if st.Status == adapters.RefundNotFound {
		// The channel never got it: send it again with the same refund
		// number (idempotent at the channel).
		rf, err = r.e.refundAtChannel(pay, rf)
		if err != nil {
			return time.Time{}, err
		}
	} else if rf, err = r.e.applyRefundState(ctx, rf, st, "query"); err != nil {
		return time.Time{}, err
	}
	if rf.Status.Final() {
		r.found(store.SweepRefund, string(rf.Status))
		return time.Time{}, nil
	}
	return r.e.now().Add(r.e.sweepDelay(it.Attempt)), nil
}

// found counts what the reconciler resolved.
func (r *Reconciler) found(kind, status string) {
	r.e.obs.Reconciled(kind, status)
}

// liveCreateWindow is the longest a create can run in a live instance: every
// attempt at the longest channel timeout, plus slack for the store writes.
// An attempt without an outcome older than that was abandoned by a dead
// instance.
func (e *Engine) liveCreateWindow() time.Duration {
	return time.Duration(e.router.Table().MaxAttempts())*config.MaxChannelTimeout + 30*time.Second
}

// itemLease is how long a claimed item stays invisible to other instances:
// the configured lease, but never less than the channel calls one item may
// make (checking each abandoned attempt: a query and a close; then a query,
// a create resent, a close and a query), each at the longest timeout.
func (r *Reconciler) itemLease() time.Duration {
	t := r.e.router.Table()
	return max(r.lease, time.Duration(2*t.MaxAttempts()+4)*t.MaxTimeout())
}
