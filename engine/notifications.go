package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// ErrUnknownOrder: a notification names an order paygate does not know, or
// one the notifying channel was never sent.
var ErrUnknownOrder = errors.New("notification for an order paygate does not know")

// QueryOnHint handles a notification that failed verification: its body is
// not trusted, but if the channel order number it names (orderNo, from the
// adapter's hint) is a payment paygate knows, the reconciler asks the
// channel about that payment now (at most once per payment per 10 s, so
// forged callbacks cannot turn into a flood of channel queries).
func (e *Engine) QueryOnHint(ctx context.Context, orderNo string) {
	pid := payment.PaymentIDFromOrderNo(orderNo)
	if pid == "" {
		return
	}
	merchant, err := e.store.PaymentMerchant(ctx, pid)
	if err != nil {
		return
	}
	if ok, err := e.store.Throttle(ctx, merchant, "hint:"+pid, 10*time.Second); err != nil || !ok {
		return
	}
	if err := e.store.Reschedule(ctx, merchant, store.SweepPayment, pid, e.now()); err != nil {
		e.logger.Warn("cannot schedule a query after a refused notification", zap.String("payment_id", pid), zap.Error(err))
	}
}

// ApplyNotification applies a notification channel chID sent, verified
// and parsed by its adapter, exactly once; it returns the payment id it
// concerns (for the log). A notification about an order the channel was
// never sent changes nothing (ErrUnknownOrder).
func (e *Engine) ApplyNotification(ctx context.Context, chID string, n *adapters.Notification) (string, error) {
	pid := payment.PaymentIDFromOrderNo(n.OrderNo)
	if pid == "" && n.RefundNo != "" {
		pid = payment.PaymentIDFromOrderNo(n.RefundNo)
	}
	if pid == "" {
		return "", ErrUnknownOrder
	}
	merchantID, err := e.store.PaymentMerchant(ctx, pid)
	if err != nil {
		return pid, fmt.Errorf("%w: %v", ErrUnknownOrder, err)
	}
	rec, err := e.store.GetPayment(ctx, nil, merchantID, pid)
	if err != nil {
		return pid, err
	}
	if !servedBy(rec, chID) {
		e.logger.Error("ALERT notification from a channel the payment was never sent to",
			zap.String("payment_id", pid), zap.String("channel", chID), zap.String("payment_channel", rec.Channel))
		return pid, ErrUnknownOrder
	}
	switch n.Kind {
	case adapters.NotifyPayment:
		if rec.Channel != chID {
			// Money taken on an attempt paygate had moved away from.
			e.logger.Error("ALERT payment notification from an earlier attempt's channel",
				zap.String("payment_id", pid), zap.String("channel", chID), zap.String("payment_channel", rec.Channel), zap.String("status", n.Status.String()))
			return pid, nil
		}
		_, err = e.applyOrderState(ctx, rec, &adapters.OrderState{
			Status: n.Status, ChannelTradeNo: n.ChannelTradeNo, PaidAt: n.PaidAt, Amount: n.Amount, Currency: n.Currency,
		}, "notification")
		return pid, err
	case adapters.NotifyRefund:
		rid := payment.RefundIDFromRefundNo(n.RefundNo)
		if rid == "" {
			return pid, ErrUnknownOrder
		}
		rf, err := e.store.GetRefund(ctx, nil, merchantID, rid)
		if err != nil {
			return pid, err
		}
		if rf.Channel != chID {
			return pid, ErrUnknownOrder
		}
		_, err = e.applyRefundState(ctx, rf, &adapters.RefundState{Status: n.RefundStatus, ChannelRefundNo: n.ChannelRefundNo, Amount: n.Amount}, "notification")
		return pid, err
	}
	return pid, fmt.Errorf("unknown notification kind %d", n.Kind)
}

// servedBy reports whether the payment was ever sent to channel chID.
func servedBy(rec *payment.Record, chID string) bool {
	if rec.Channel == chID {
		return true
	}
	for _, a := range rec.Attempts {
		if a.Channel == chID {
			return true
		}
	}
	return false
}
