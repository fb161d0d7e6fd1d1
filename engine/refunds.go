package engine

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// RefundRequest is a merchant's refund of one of its payments, validated by
// the edge.
type RefundRequest struct {
	Merchant string
	// Nonce is the request's nonce, claimed by the first store operation.
	Nonce       *store.Nonce
	PaymentID   string
	OutRefundNo string
	Amount      int64 // fen
	Reason      string
}

// RefundResult is what a refund did.
type RefundResult struct {
	// Refund is the refund as it is now (nil with most errors).
	Refund *payment.RefundRecord
	// Replayed: the out_refund_no was known and the request was the same;
	// Refund is the existing refund and nothing was sent to the channel.
	Replayed bool
	// Payment is the refunded payment, also with an error once it was read.
	Payment *payment.Record
}

// CreateRefund refunds part or all of a succeeded payment. The refund
// always goes to the channel that took the payment; the store reserves its
// amount atomically, so concurrent refunds can never exceed the payment.
func (e *Engine) CreateRefund(ctx context.Context, req *RefundRequest) (*RefundResult, error) {
	if payment.OrderNo(req.PaymentID) == "" {
		return nil, e.refuseAfterNonce(ctx, req.Nonce, refuse(CodeNotFound, "no payment %s", req.PaymentID))
	}
	// The payment's channel and notify_url are copied onto the refund; the
	// store re-checks the payment's status and amounts atomically.
	pay, err := e.store.GetPayment(ctx, req.Nonce, req.Merchant, req.PaymentID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse(CodeNotFound, "no payment %s", req.PaymentID)
		}
		return nil, err
	}
	res := &RefundResult{Payment: pay}
	now := e.stamp()
	rid := payment.NewRefundID(req.PaymentID)
	rf := &payment.RefundRecord{
		Refund: payment.Refund{
			RefundID: rid, PaymentID: req.PaymentID, OutRefundNo: req.OutRefundNo, Amount: req.Amount,
			Status: payment.RefundPending, Reason: req.Reason, CreatedAt: now, UpdatedAt: now,
		},
		MerchantID: req.Merchant, Channel: pay.Channel, NotifyURL: pay.NotifyURL,
		ChannelOrderNo: pay.ChannelOrderNo, RefundOrderNo: payment.RefundOrderNo(rid),
	}
	stored, created, err := e.store.CreateRefund(ctx, nil, rf, now.Add(e.sweepDelay(0)))
	if err != nil {
		switch {
		case errors.Is(err, store.ErrInvalidState):
			return res, refuse(CodeInvalidState, "payment %s is %s; only succeeded payments can be refunded", req.PaymentID, pay.Status)
		case errors.Is(err, store.ErrExceedsPayment):
			return res, refuse(CodeRefundExceeds, "refunds of payment %s would exceed its amount %d", req.PaymentID, pay.Amount)
		}
		return res, err
	}
	if !created {
		if stored.PaymentID != req.PaymentID || stored.Amount != req.Amount {
			return res, refuse(CodeOutRefundNoConflict, "out_refund_no %s was used for another refund (%s)", req.OutRefundNo, stored.RefundID)
		}
		res.Refund, res.Replayed = stored, true
		return res, nil
	}
	if res.Refund, err = e.refundAtChannel(pay, rf); err != nil {
		return res, afterStored(err)
	}
	return res, nil
}

// Refund answers a merchant's refund by id, with the nonce claimed in the
// same round trip.
func (e *Engine) Refund(ctx context.Context, nonce *store.Nonce, merchant, id string) (*payment.RefundRecord, error) {
	if payment.RefundOrderNo(id) == "" {
		return nil, e.refuseAfterNonce(ctx, nonce, refuse(CodeNotFound, "no refund %s", id))
	}
	rf, err := e.store.GetRefund(ctx, nonce, merchant, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse(CodeNotFound, "no refund %s", id)
		}
		return nil, err
	}
	return rf, nil
}

// refundAtChannel sends a stored pending refund to the payment's channel and
// applies the synchronous answer. A refund the channel provably did not get
// stays pending and is re-sent by the reconciler with the same refund number
// (idempotent at the channel); an ambiguous one is resolved by query.
func (e *Engine) refundAtChannel(pay *payment.Record, rf *payment.RefundRecord) (*payment.RefundRecord, error) {
	table := e.router.Table()
	ch, ok := table.Channel(rf.Channel)
	if !ok {
		return rf, nil // reconciler retries once the channel is configured again
	}
	refunder, ok := ch.(adapters.Refunder)
	if !ok {
		return e.applyRefundState(context.Background(), rf, &adapters.RefundState{Status: adapters.RefundFailed}, "unsupported")
	}
	req := refundRequestOf(pay, rf)
	var st *adapters.RefundState
	err := e.callChannel(table, rf.Channel, "refund", func(ctx context.Context) error {
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
			e.logger.Warn("channel refused refund", zap.String("refund_id", rf.RefundID), zap.String("channel", rf.Channel), zap.Error(err))
			return e.applyRefundState(context.Background(), rf, &adapters.RefundState{Status: adapters.RefundFailed}, "refund")
		}
		e.logger.Warn("refund outcome unknown; the reconciler confirms it", zap.String("refund_id", rf.RefundID), zap.String("channel", rf.Channel), zap.Error(err))
		return rf, nil
	}
	return e.applyRefundState(context.Background(), rf, st, "refund")
}

func refundRequestOf(pay *payment.Record, rf *payment.RefundRecord) *adapters.RefundRequest {
	return &adapters.RefundRequest{
		OrderNo: pay.ChannelOrderNo, ChannelTradeNo: pay.ChannelTradeNo, RefundNo: rf.RefundOrderNo,
		Amount: rf.Amount, Total: pay.Amount, Currency: pay.Currency, Reason: rf.Reason,
		PaymentCreated: pay.CreatedAt, CreatedAt: rf.CreatedAt,
	}
}
