package engine

import (
	"context"
	"errors"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// ErrStartingAfter: a list's starting_after is not one of the merchant's
// payments (the edge names the query parameter).
var ErrStartingAfter = errors.New("starting_after is not one of your payments")

// ListPayments answers a page of a merchant's payments, newest first, as
// stored: a list never asks channels (a pending payment read one by one
// is). The store reads the durable ledger when there is one.
func (e *Engine) ListPayments(ctx context.Context, nonce *store.Nonce, q store.PaymentQuery) ([]*payment.Record, bool, error) {
	if q.StartingAfter != "" && payment.OrderNo(q.StartingAfter) == "" {
		return nil, false, e.refuseAfterNonce(ctx, nonce, ErrStartingAfter)
	}
	recs, more, err := e.store.ListPayments(ctx, nonce, q)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, ErrStartingAfter
	}
	return recs, more, err
}

// Refunds answers the refunds of one of a merchant's payments, newest
// first; not_found when the payment is not the merchant's.
func (e *Engine) Refunds(ctx context.Context, nonce *store.Nonce, merchant, paymentID string) ([]*payment.RefundRecord, error) {
	if payment.OrderNo(paymentID) == "" {
		return nil, e.refuseAfterNonce(ctx, nonce, refuse(CodeNotFound, "no payment %s", paymentID))
	}
	rfs, err := e.store.ListRefunds(ctx, nonce, merchant, paymentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(CodeNotFound, "no payment %s", paymentID)
	}
	return rfs, err
}

// RefundByOutRefundNo answers a merchant's refund by its out_refund_no.
func (e *Engine) RefundByOutRefundNo(ctx context.Context, nonce *store.Nonce, merchant, outRefundNo string) (*payment.RefundRecord, error) {
	rf, err := e.store.GetRefundByOutRefundNo(ctx, nonce, merchant, outRefundNo)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(CodeNotFound, "no refund with out_refund_no %s", outRefundNo)
	}
	return rf, err
}
