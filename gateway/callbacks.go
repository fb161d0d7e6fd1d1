package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// callback serves POST /callbacks/{channel_id} (CONTRACT §6). The adapter
// verifies (and decrypts) the raw bytes before anything is decoded; only a
// verified notification changes state, exactly once; the answer is in the
// channel's own success or failure form.
func (s *Server) callback(ctx *fasthttp.RequestCtx, chID string, rl *reqLog) error {
	table := s.router.Table()
	ch, ok := table.Channel(chID)
	if !ok {
		return apiErr(http.StatusNotFound, codeNotFound, "no channel %s", chID)
	}
	np, ok := ch.(adapters.NotifyParser)
	if !ok {
		return apiErr(http.StatusNotFound, codeNotFound, "channel %s takes no callbacks", chID)
	}
	cb := &adapters.Callback{Header: http.Header{}, Body: append([]byte(nil), ctx.PostBody()...), ContentType: string(ctx.Request.Header.ContentType())}
	for k, v := range ctx.Request.Header.All() {
		cb.Header.Add(string(k), string(v))
	}
	n, err := np.ParseNotify(rl.ctx, cb)
	if err == nil {
		var pid string
		pid, err = s.applyNotification(chID, n)
		rl.paymentID = pid
	}
	if err != nil {
		rl.err = err
		s.logger.Warn("channel notification refused", zap.String("channel", chID), zap.Error(err))
		if ce, ok := adapters.AsError(err); ok && ce.Kind == adapters.KindBadSignature {
			s.queryOnHint(rl.ctx, ch, cb)
		}
	}
	ack := np.Ack(err)
	ctx.SetStatusCode(ack.Status)
	if ack.ContentType != "" {
		ctx.SetContentType(ack.ContentType)
	}
	ctx.SetBody(ack.Body)
	return nil
}

// queryOnHint handles a notification that failed verification: its body is
// not trusted, but if it names a payment paygate knows, the reconciler asks
// the channel about that payment now (at most once per payment per 10 s, so
// forged callbacks cannot turn into a flood of channel queries).
func (s *Server) queryOnHint(ctx context.Context, ch adapters.Channel, cb *adapters.Callback) {
	h, ok := ch.(adapters.NotifyHinter)
	if !ok {
		return
	}
	pid := payment.PaymentIDFromOrderNo(h.NotifyHint(cb))
	if pid == "" {
		return
	}
	merchant, err := s.store.PaymentMerchant(ctx, pid)
	if err != nil {
		return
	}
	if ok, err := s.store.Throttle(ctx, merchant, "hint:"+pid, 10*time.Second); err != nil || !ok {
		return
	}
	if err := s.store.Reschedule(ctx, merchant, store.SweepPayment, pid, s.now()); err != nil {
		s.logger.Warn("cannot schedule a query after a refused notification", zap.String("payment_id", pid), zap.Error(err))
	}
}

var errUnknownOrder = errors.New("notification for an order paygate does not know")

// applyNotification applies a verified notification and returns the payment id.
func (s *Server) applyNotification(chID string, n *adapters.Notification) (string, error) {
	pid := payment.PaymentIDFromOrderNo(n.OrderNo)
	if pid == "" && n.RefundNo != "" {
		pid = payment.PaymentIDFromOrderNo(n.RefundNo)
	}
	if pid == "" {
		return "", errUnknownOrder
	}
	bg := context.Background()
	merchantID, err := s.store.PaymentMerchant(bg, pid)
	if err != nil {
		return pid, fmt.Errorf("%w: %v", errUnknownOrder, err)
	}
	rec, err := s.store.GetPayment(bg, nil, merchantID, pid)
	if err != nil {
		return pid, err
	}
	if !servedBy(rec, chID) {
		s.logger.Error("ALERT notification from a channel the payment was never sent to",
			zap.String("payment_id", pid), zap.String("channel", chID), zap.String("payment_channel", rec.Channel))
		return pid, errUnknownOrder
	}
	switch n.Kind {
	case adapters.NotifyPayment:
		if rec.Channel != chID {
			// Money taken on an attempt paygate had moved away from.
			s.logger.Error("ALERT payment notification from an earlier attempt's channel",
				zap.String("payment_id", pid), zap.String("channel", chID), zap.String("payment_channel", rec.Channel), zap.String("status", n.Status.String()))
			return pid, nil
		}
		_, err = s.applyOrderState(bg, rec, &adapters.OrderState{
			Status: n.Status, ChannelTradeNo: n.ChannelTradeNo, PaidAt: n.PaidAt, Amount: n.Amount, Currency: n.Currency,
		}, "notification")
		return pid, err
	case adapters.NotifyRefund:
		rid := payment.RefundIDFromRefundNo(n.RefundNo)
		if rid == "" {
			return pid, errUnknownOrder
		}
		rf, err := s.store.GetRefund(bg, nil, merchantID, rid)
		if err != nil {
			return pid, err
		}
		if rf.Channel != chID {
			return pid, errUnknownOrder
		}
		_, err = s.applyRefundState(bg, rf, &adapters.RefundState{Status: n.RefundStatus, ChannelRefundNo: n.ChannelRefundNo, Amount: n.Amount}, "notification")
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
