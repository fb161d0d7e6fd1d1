package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/notify"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// State changes. Every change of a payment or refund goes through
// mutatePayment / mutateRefund: a compare-and-set on the stored version that
// carries the merchant event in the same atomic store operation. A duplicate
// notification, a late query answer or a second instance applying the same
// fact finds the state already changed and changes nothing; the event id is
// stable per (object, type), so no second event can exist either.

const maxCASRetries = 8

var errTooManyConflicts = errors.New("too many concurrent changes to one object")

// mutatePayment applies fn to rec and stores the result under
// compare-and-set, re-reading and re-applying on a conflict. fn reports
// whether it changed anything.
//
// A change that moves the payment to a final status is reported to the
// observer once, after it was stored.
func (e *Engine) mutatePayment(ctx context.Context, rec *payment.Record, fn func(r *payment.Record) (store.Change, bool, error)) (*payment.Record, error) {
	var was payment.Status // the status of the copy fn last changed
	out, err := mutate(e, rec, func(r *payment.Record) (store.Change, bool, error) {
		was = r.Status
		return fn(r)
	},
		func(r *payment.Record, ch store.Change) error { return e.store.UpdatePayment(ctx, r, ch) },
		func(r *payment.Record) (*payment.Record, error) {
			return e.store.GetPayment(ctx, nil, r.MerchantID, r.PaymentID)
		})
	if err == nil && out.Status != was && out.Status.Final() {
		e.obs.PaymentFinished(out.Channel, out.Status)
	}
	return out, err
}

// mutateRefund is mutatePayment for a refund.
func (e *Engine) mutateRefund(ctx context.Context, rf *payment.RefundRecord, fn func(r *payment.RefundRecord) (store.Change, bool, error)) (*payment.RefundRecord, error) {
	return mutate(e, rf, fn,
		func(r *payment.RefundRecord, ch store.Change) error { return e.store.UpdateRefund(ctx, r, ch) },
		func(r *payment.RefundRecord) (*payment.RefundRecord, error) {
			return e.store.GetRefund(ctx, nil, r.MerchantID, r.RefundID)
		})
}

// mutate is the compare-and-set loop of every state change: apply fn, store
// with the version check (and the change's event, atomically), and on a
// conflict read the object again and re-apply fn to the fresh copy.
func mutate[T any](e *Engine, obj T, fn func(T) (store.Change, bool, error), update func(T, store.Change) error, reload func(T) (T, error)) (T, error) {
	var zero T
	for range maxCASRetries {
		ch, changed, err := fn(obj)
		if err != nil || !changed {
			return obj, err
		}
		err = update(obj, ch)
		if err == nil {
			if ch.Event != nil {
				e.onEvent()
			}
			return obj, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return zero, err
		}
		if obj, err = reload(obj); err != nil {
			return zero, err
		}
	}
	return zero, errTooManyConflicts
}

// event builds the outbox event for an object's final state.
func (e *Engine) event(eventType, objectID string, rec *payment.Record, data any) (*store.OutboxEvent, error) {
	return notify.NewEvent(eventType, objectID, rec.MerchantID, rec.NotifyURL, data, e.stamp())
}

// errAmountMismatch: a channel states another amount or currency than the
// stored payment; the fact is refused and an alert logged.
var errAmountMismatch = errors.New("channel amount or currency does not match the stored object")

// applyOrderState applies what a channel says of a payment (from a verified
// notification or a query). source names it for the logs.
func (e *Engine) applyOrderState(ctx context.Context, rec *payment.Record, st *adapters.OrderState, source string) (*payment.Record, error) {
	if st.Status == adapters.OrderPaid && ((st.Amount != 0 && st.Amount != rec.Amount) || (st.Currency != "" && st.Currency != rec.Currency)) {
		e.logger.Error("ALERT channel reports a different amount; not applied",
			zap.String("payment_id", rec.PaymentID), zap.String("channel", rec.Channel), zap.String("source", source),
			zap.Int64("stored_amount", rec.Amount), zap.Int64("channel_amount", st.Amount), zap.String("channel_currency", st.Currency))
		return rec, errAmountMismatch
	}
	return e.mutatePayment(ctx, rec, func(r *payment.Record) (store.Change, bool, error) {
		now := e.stamp()
		var evType string
		switch st.Status {
		case adapters.OrderPaid:
			if r.Status == payment.StatusSucceeded {
				return store.Change{}, false, nil
			}
			if r.Status != payment.StatusPending {
				e.logger.Error("ALERT channel reports money taken on a payment paygate had finished; the channel wins",
					zap.String("payment_id", r.PaymentID), zap.String("channel", r.Channel), zap.String("was", string(r.Status)), zap.String("source", source))
			}
			r.Status, r.Failure = payment.StatusSucceeded, nil
			paid := st.PaidAt.UTC()
			if st.PaidAt.IsZero() {
				paid = now
			}
			r.PaidAt = &paid
			if st.ChannelTradeNo != "" {
				r.ChannelTradeNo = st.ChannelTradeNo
			}
			evType = payment.EventPaymentSucceeded
		case adapters.OrderClosed:
			if r.Status != payment.StatusPending {
				return store.Change{}, false, nil
			}
			r.Status = payment.StatusClosed
			evType = payment.EventPaymentClosed
		case adapters.OrderFailed:
			if r.Status != payment.StatusPending {
				return store.Change{}, false, nil
			}
			r.Status = payment.StatusFailed
			r.Failure = &payment.Failure{Code: "payment_failed", Message: "the channel reports the payment failed"}
			evType = payment.EventPaymentFailed
		default:
			return store.Change{}, false, nil
		}
		r.UpdatedAt = now
		ev, err := e.event(evType, r.PaymentID, r, View(r))
		if err != nil {
			return store.Change{}, false, err
		}
		e.logger.Info("payment state changed", zap.String("payment_id", r.PaymentID), zap.String("channel", r.Channel),
			zap.String("status", string(r.Status)), zap.String("source", source))
		return store.Change{Event: ev, SweepAt: e.checksAt(r)}, true, nil
	})
}

// refreshPayment asks the payment's channel for its state and applies it.
func (e *Engine) refreshPayment(rec *payment.Record) (*payment.Record, error) {
	st, err := e.queryChannel(rec)
	if err != nil {
		return rec, err
	}
	return e.applyOrderState(context.Background(), rec, st, "query")
}

// queryChannel asks the payment's channel what it has for the payment.
func (e *Engine) queryChannel(rec *payment.Record) (*adapters.OrderState, error) {
	table := e.router.Table()
	ch, ok := table.Channel(rec.Channel)
	if !ok {
		return nil, fmt.Errorf("channel %s is no longer configured", rec.Channel)
	}
	var st *adapters.OrderState
	err := e.callChannel(table, rec.Channel, "query", func(ctx context.Context) error {
		var err error
		st, err = ch.Query(ctx, queryOf(rec))
		return err
	})
	return st, err
}

func queryOf(rec *payment.Record) *adapters.QueryRequest {
	return &adapters.QueryRequest{OrderNo: rec.ChannelOrderNo, CreatedAt: rec.CreatedAt, Amount: rec.Amount, Currency: rec.Currency}
}

// expiryGrace is how long after a payment's expiry paygate waits before it
// trusts that the channel (which was sent that expiry) can no longer take
// money for an order it could not close: clocks differ.
const expiryGrace = time.Minute

// closeAtChannel closes a pending payment at its channel, then records it
// closed. A payment is recorded closed only when its channel can no longer
// take money for it:
//   - the channel closed the order;
//   - or the channel cannot close it, and says so: it reports the order
//     closed or failed (an ACP consume that lapsed), or it has no such order
//     (Alipay before the scan, a create that never arrived) and the
//     payment's expiry, which the channel was given, has passed (plus
//     expiryGrace). An order the channel reports pending is never called
//     closed, whatever the clock says.
//
// Otherwise the payment stays pending (the caller refuses the close or looks again
// later). If the channel reports the order paid, that is applied instead
// (the payment becomes succeeded).
func (e *Engine) closeAtChannel(rec *payment.Record, source string) (*payment.Record, error) {
	table := e.router.Table()
	ch, ok := table.Channel(rec.Channel)
	if !ok {
		return rec, fmt.Errorf("channel %s is no longer configured", rec.Channel)
	}
	err := e.callChannel(table, rec.Channel, "close", func(ctx context.Context) error {
		return ch.Close(ctx, queryOf(rec))
	})
	if err == nil {
		return e.applyOrderState(context.Background(), rec, &adapters.OrderState{Status: adapters.OrderClosed}, source)
	}
	ce, ok := adapters.AsError(err)
	if !ok || (ce.Kind != adapters.KindDeclined && ce.Kind != adapters.KindConflict && ce.Kind != adapters.KindNotFound) {
		return rec, err
	}
	st, qerr := e.queryChannel(rec)
	if qerr != nil {
		return rec, qerr
	}
	switch st.Status {
	case adapters.OrderPaid, adapters.OrderClosed, adapters.OrderFailed:
		return e.applyOrderState(context.Background(), rec, st, "query")
	case adapters.OrderNotFound:
		if !e.now().Before(closableAt(rec)) {
			return e.applyOrderState(context.Background(), rec, &adapters.OrderState{Status: adapters.OrderClosed}, source)
		}
	}
	return rec, nil
}

// closableAt is when a payment whose channel cannot close it will be closed.
func closableAt(rec *payment.Record) time.Time { return rec.ExpiresAt.Add(expiryGrace) }

// applyRefundState applies what a channel says of a refund.
func (e *Engine) applyRefundState(ctx context.Context, rf *payment.RefundRecord, st *adapters.RefundState, source string) (*payment.RefundRecord, error) {
	if st.Status == adapters.RefundSucceeded && st.Amount != 0 && st.Amount != rf.Amount {
		e.logger.Error("ALERT channel reports a different refund amount; not applied",
			zap.String("refund_id", rf.RefundID), zap.String("channel", rf.Channel), zap.Int64("stored_amount", rf.Amount), zap.Int64("channel_amount", st.Amount))
		return rf, errAmountMismatch
	}
	return e.mutateRefund(ctx, rf, func(r *payment.RefundRecord) (store.Change, bool, error) {
		if r.Status.Final() {
			return store.Change{}, false, nil
		}
		var evType string
		switch st.Status {
		case adapters.RefundSucceeded:
			r.Status, evType = payment.RefundSucceeded, payment.EventRefundSucceeded
		case adapters.RefundFailed:
			r.Status, evType = payment.RefundFailed, payment.EventRefundFailed
			r.Failure = &payment.Failure{Code: "refund_failed", Message: "the channel reports the refund failed"}
		default:
			if st.ChannelRefundNo != "" && r.ChannelRefundNo == "" {
				r.ChannelRefundNo = st.ChannelRefundNo
				r.UpdatedAt = e.stamp()
				// Keep the configured reconcile schedule (reconcile.delays):
				// the channel accepted the refund and will finish it later.
				return store.Change{SweepAt: e.now().Add(e.sweepDelay(0))}, true, nil
			}
			return store.Change{}, false, nil
		}
		if st.ChannelRefundNo != "" {
			r.ChannelRefundNo = st.ChannelRefundNo
		}
		r.UpdatedAt = e.stamp()
		ev, err := notify.NewEvent(evType, r.RefundID, r.MerchantID, r.NotifyURL, &r.Refund, e.stamp())
		if err != nil {
			return store.Change{}, false, err
		}
		e.logger.Info("refund state changed", zap.String("refund_id", r.RefundID), zap.String("channel", r.Channel),
			zap.String("status", string(r.Status)), zap.String("source", source))
		return store.Change{Event: ev}, true, nil
	})
}

// checksAt is when the reconciler must look at a final payment again: soon,
// if an attempt paygate moved away from still has to be confirmed absent at
// its channel; never (zero) otherwise.
func (e *Engine) checksAt(r *payment.Record) time.Time {
	for i := range r.Attempts {
		if r.Attempts[i].NeedsCheck() {
			return e.now().Add(e.sweepDelay(0))
		}
	}
	return time.Time{}
}

// checkAttempts confirms, at their channels, the attempts paygate moved away
// from after a "retry, nothing done" answer (issue: an abandoned attempt that
// was created after all is closed at its channel). Absent → checked; created
// and unpaid → closed there and recorded as abandoned; paid → an ALERT for a
// person (money taken on an order nobody was shown). Attempts it could not
// confirm now stay for the next look.
//
// giveUp (the reconciler has looked many times) turns attempts that still
// cannot be asked into "unverified", with an ALERT, instead of asking
// forever.
func (e *Engine) checkAttempts(ctx context.Context, rec *payment.Record, giveUp bool) (*payment.Record, error) {
	table := e.router.Table()
	type finding struct {
		idx     int
		outcome string
	}
	var found []finding
	unanswered := func(i int, a payment.Attempt, why error) {
		e.logger.Warn("cannot confirm an attempt at its channel yet", zap.String("payment_id", rec.PaymentID), zap.String("channel", a.Channel), zap.Error(why))
		if giveUp {
			e.logger.Error("ALERT could not confirm an abandoned attempt at its channel; check that channel by hand",
				zap.String("payment_id", rec.PaymentID), zap.String("channel", a.Channel))
			found = append(found, finding{i, payment.OutcomeUnverified})
		}
	}
	for i := range rec.Attempts {
		a := rec.Attempts[i]
		if !a.NeedsCheck() {
			continue
		}
		ch, ok := table.Channel(a.Channel)
		if !ok {
			unanswered(i, a, fmt.Errorf("channel %s is not configured", a.Channel))
			continue
		}
		q := queryOf(rec)
		var st *adapters.OrderState
		if err := e.callChannel(table, a.Channel, "query", func(ctx context.Context) error {
			var err error
			st, err = ch.Query(ctx, q)
			return err
		}); err != nil {
			unanswered(i, a, err)
			continue
		}
		switch st.Status {
		case adapters.OrderNotFound, adapters.OrderClosed, adapters.OrderFailed:
			found = append(found, finding{i, payment.OutcomeNotCreated})
		case adapters.OrderPending:
			if err := e.callChannel(table, a.Channel, "close", func(ctx context.Context) error { return ch.Close(ctx, q) }); err != nil {
				continue
			}
			e.logger.Warn("closed an abandoned attempt that the channel had created", zap.String("payment_id", rec.PaymentID), zap.String("channel", a.Channel))
			found = append(found, finding{i, payment.OutcomeAbandoned})
		case adapters.OrderPaid:
			e.logger.Error("ALERT money taken on an abandoned attempt; refund it at that channel",
				zap.String("payment_id", rec.PaymentID), zap.String("channel", a.Channel), zap.String("payment_channel", rec.Channel))
			found = append(found, finding{i, payment.OutcomeAbandoned})
		}
	}
	if len(found) == 0 {
		return rec, nil
	}
	return e.mutatePayment(ctx, rec, func(r *payment.Record) (store.Change, bool, error) {
		for _, f := range found {
			if f.idx < len(r.Attempts) {
				r.Attempts[f.idx].Outcome, r.Attempts[f.idx].Checked = f.outcome, true
			}
		}
		sweep := e.checksAt(r)
		if !r.Status.Final() && sweep.IsZero() {
			sweep = e.now().Add(e.sweepDelay(0))
		}
		return store.Change{SweepAt: sweep}, true, nil
	})
}

// lostAnswer reports whether the payment's create was ambiguous and its
// action (the code the payer needs) is missing.
func lostAnswer(rec *payment.Record) bool {
	n := len(rec.Attempts)
	return rec.Status == payment.StatusPending && rec.Action == nil && !rec.CloseRequested && n > 0 && rec.Attempts[n-1].Outcome == payment.OutcomeAmbiguous
}

// recoverAction sends the create of a payment whose answer was lost once
// more, identically, to the same channel. A channel that got the first one
// answers with that order's code (WeChat Pay and Alipay answer a repeated
// order number with identical content so; ACP refuses it as a duplicate,
// which changes nothing here), and one that never got it makes the order
// now: either way the payment has one order, at the one channel it was sent
// to, and a replay of the merchant's create then shows the action.
func (e *Engine) recoverAction(ctx context.Context, rec *payment.Record) (*payment.Record, error) {
	table := e.router.Table()
	ch, ok := table.Channel(rec.Channel)
	if !ok {
		return rec, fmt.Errorf("channel %s is no longer configured", rec.Channel)
	}
	var res *adapters.CreateResult
	if err := e.callCreate(table, rec.Channel, rec.Method, func(ctx context.Context) error {
		var err error
		res, err = ch.Create(ctx, createRequestOf(rec))
		return err
	}); err != nil {
		return rec, err
	}
	return e.mutatePayment(ctx, rec, func(r *payment.Record) (store.Change, bool, error) {
		if !lostAnswer(r) {
			return store.Change{}, false, nil
		}
		action := res.Action
		r.Action = &action
		if res.ChannelTradeNo != "" {
			r.ChannelTradeNo = res.ChannelTradeNo
		}
		a := &r.Attempts[len(r.Attempts)-1]
		a.Outcome, a.Error, a.Code = payment.OutcomeCreated, "", ""
		r.UpdatedAt = e.stamp()
		e.logger.Info("recovered the lost answer of an ambiguous create", zap.String("payment_id", r.PaymentID), zap.String("channel", r.Channel))
		return store.Change{SweepAt: e.now().Add(e.sweepDelay(0))}, true, nil
	})
}
