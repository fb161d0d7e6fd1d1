package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// createRefund serves POST /v1/payments/{id}/refunds. The refund always goes
// to the channel that took the payment; the store reserves its amount
// atomically, so concurrent refunds can never exceed the payment.
func (s *Server) createRefund(ctx *fasthttp.RequestCtx, paymentID string, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	rl.paymentID = paymentID
	var req createRefundRequest
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		return s.rejectAfterNonce(rl.ctx, nonce, err)
	}
	if err := req.validate(); err != nil {
		return s.rejectAfterNonce(rl.ctx, nonce, err)
	}
	if payment.OrderNo(paymentID) == "" {
		return s.rejectAfterNonce(rl.ctx, nonce, apiErr(http.StatusNotFound, codeNotFound, "no payment %s", paymentID))
	}
	// The payment's channel and notify_url are copied onto the refund; the
	// store re-checks the payment's status and amounts atomically.
	pay, err := s.store.GetPayment(rl.ctx, nonce, m.id, paymentID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return apiErr(http.StatusNotFound, codeNotFound, "no payment %s", paymentID)
		}
		return err
	}
	rl.channel = pay.Channel
	now := s.stamp()
	rid := payment.NewRefundID(paymentID)
	rf := &payment.RefundRecord{
		Refund: payment.Refund{
			RefundID: rid, PaymentID: paymentID, OutRefundNo: req.OutRefundNo, Amount: req.amount,
			Status: payment.RefundPending, Reason: req.Reason, CreatedAt: now, UpdatedAt: now,
		},
		MerchantID: m.id, Channel: pay.Channel, NotifyURL: pay.NotifyURL,
		ChannelOrderNo: pay.ChannelOrderNo, RefundOrderNo: payment.RefundOrderNo(rid),
	}
	stored, created, err := s.store.CreateRefund(rl.ctx, nil, rf, now.Add(s.sweepDelay(s.snap.Load(), 0)))
	if err != nil {
		switch {
		case errors.Is(err, store.ErrInvalidState):
			return apiErr(http.StatusConflict, codeInvalidState, "payment %s is %s; only succeeded payments can be refunded", paymentID, pay.Status)
		case errors.Is(err, store.ErrExceedsPayment):
			return apiErr(http.StatusUnprocessableEntity, codeRefundExceeds, "refunds of payment %s would exceed its amount %d", paymentID, pay.Amount)
		}
		return err
	}
	if !created {
		if stored.PaymentID != paymentID || stored.Amount != req.amount {
			return apiErr(http.StatusConflict, codeOutRefundNoConflict, "out_refund_no %s was used for another refund (%s)", req.OutRefundNo, stored.RefundID)
		}
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
		writeJSON(ctx, http.StatusOK, &stored.Refund)
		return nil
	}
	out, err := s.refundAtChannel(pay, rf)
	if err != nil {
		return err
	}
	writeJSON(ctx, http.StatusCreated, &out.Refund)
	return nil
}

// refundAtChannel sends a stored pending refund to the payment's channel and
// applies the synchronous answer. A refund the channel provably did not get
// stays pending and is re-sent by the reconciler with the same refund number
// (idempotent at the channel); an ambiguous one is resolved by query.
func (s *Server) refundAtChannel(pay *payment.Record, rf *payment.RefundRecord) (*payment.RefundRecord, error) {
	table := s.router.Table()
	ch, ok := table.Channel(rf.Channel)
	if !ok {
		return rf, nil // reconciler retries once the channel is configured again
	}
	refunder, ok := ch.(adapters.Refunder)
	if !ok {
		return s.applyRefundState(context.Background(), rf, &adapters.RefundState{Status: adapters.RefundFailed}, "unsupported")
	}
	req := refundRequestOf(pay, rf)
	var st *adapters.RefundState
	err := s.callChannel(table, rf.Channel, "refund", func(ctx context.Context) error {
		var err error
		st, err = refunder.Refund(ctx, req)
		return err
	})
	if err != nil {
		// Only a refusal makes the refund failed (and releases its reserved
		// amount). A conflict ("duplicate refund number", as ACP answers a
		// resend) means the refund may well exist: the query decides, never a
		// guess that would let the merchant refund the same money twice.
		ce, _ := adapters.AsError(err)
		if ce != nil && (ce.Kind == adapters.KindDeclined || ce.Kind == adapters.KindInvalid) {
			s.logger.Warn("channel refused refund", zap.String("refund_id", rf.RefundID), zap.String("channel", rf.Channel), zap.Error(err))
			return s.applyRefundState(context.Background(), rf, &adapters.RefundState{Status: adapters.RefundFailed}, "refund")
		}
		s.logger.Warn("refund outcome unknown; the reconciler confirms it", zap.String("refund_id", rf.RefundID), zap.String("channel", rf.Channel), zap.Error(err))
		return rf, nil
	}
	return s.applyRefundState(context.Background(), rf, st, "refund")
}

func refundRequestOf(pay *payment.Record, rf *payment.RefundRecord) *adapters.RefundRequest {
	return &adapters.RefundRequest{
		OrderNo: pay.ChannelOrderNo, ChannelTradeNo: pay.ChannelTradeNo, RefundNo: rf.RefundOrderNo,
		Amount: rf.Amount, Total: pay.Amount, Currency: pay.Currency, Reason: rf.Reason,
		PaymentCreated: pay.CreatedAt, CreatedAt: rf.CreatedAt,
	}
}

// getRefund serves GET /v1/refunds/{id}.
func (s *Server) getRefund(ctx *fasthttp.RequestCtx, id string, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	if payment.RefundOrderNo(id) == "" {
		if err := s.store.ClaimNonce(rl.ctx, *nonce); err != nil {
			return err
		}
		return apiErr(http.StatusNotFound, codeNotFound, "no refund %s", id)
	}
	rf, err := s.store.GetRefund(rl.ctx, nonce, m.id, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return apiErr(http.StatusNotFound, codeNotFound, "no refund %s", id)
		}
		return err
	}
	rl.paymentID, rl.channel = rf.PaymentID, rf.Channel
	writeJSON(ctx, http.StatusOK, &rf.Refund)
	return nil
}
