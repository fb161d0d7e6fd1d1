package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/paygate/paygate/payment"
)

// ListPayments returns a page of q.Merchant's payments, newest first (by
// created time in milliseconds, then payment id, both descending), and
// whether more follow; the nonce n (if not nil) is claimed in the same
// script. A StartingAfter that is not one of the merchant's payments is
// ErrNotFound. One script reads a sorted-set index (one per merchant, and
// one per merchant and status) and the records: O(log n + limit).
func (s *Store) ListPayments(ctx context.Context, n *Nonce, q PaymentQuery) ([]*payment.Record, bool, error) {
	limit, err := ListLimit(q.Limit)
	if err != nil {
		return nil, false, err
	}
	if q.Merchant == "" {
		return nil, false, errEmptyMerchant
	}
	nk, ttl, err := s.nonceArgs(n, q.Merchant)
	if err != nil {
		return nil, false, err
	}
	index := s.k.payments(q.Merchant)
	if q.Status != "" {
		index = s.k.paymentsByStatus(q.Merchant, string(q.Status))
	}
	hi, lo := "+inf", "-inf"
	if !q.CreatedLT.IsZero() {
		// Scores are whole milliseconds (floored): the highest one below
		// the bound, or the bound's own when it has a fraction of a
		// millisecond (the records are then compared exactly below).
		last := q.CreatedLT.UnixMilli()
		if time.UnixMilli(last).Equal(q.CreatedLT) {
			last--
		}
		hi = strconv.FormatInt(last, 10)
	}
	if !q.CreatedGTE.IsZero() {
		lo = ms(q.CreatedGTE)
	}
	res, err := s.run(ctx, "list payments", scListPayments, []string{nk, index},
		ttl, hi, lo, q.StartingAfter, strconv.Itoa(limit+1), s.k.paymentPrefix(q.Merchant))
	if err != nil {
		return nil, false, err
	}
	switch o := outcome(res); o {
	case "ok":
	case "notfound":
		return nil, false, ErrNotFound
	case "replay":
		return nil, false, ErrNonceReplayed
	default:
		return nil, false, fmt.Errorf("store: list payments: unexpected outcome %q", o)
	}
	out := make([]*payment.Record, 0, limit+1)
	for i := 1; i+2 < len(res); i += 3 {
		rec, err := decodePayment(res[i : i+3])
		if err != nil {
			return nil, false, fmt.Errorf("store: list payments: %w", err)
		}
		// The index has millisecond scores; the bounds are exact.
		if (!q.CreatedGTE.IsZero() && rec.CreatedAt.Before(q.CreatedGTE)) ||
			(!q.CreatedLT.IsZero() && !rec.CreatedAt.Before(q.CreatedLT)) {
			continue
		}
		out = append(out, rec)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// ListRefunds returns the refunds of one of merchant's payments, newest
// first (at most MaxRefundsListed), claiming n in the same script;
// ErrNotFound if the payment is not the merchant's.
func (s *Store) ListRefunds(ctx context.Context, n *Nonce, merchant, paymentID string) ([]*payment.RefundRecord, error) {
	if merchant == "" {
		return nil, errEmptyMerchant
	}
	nk, ttl, err := s.nonceArgs(n, merchant)
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, "list refunds", scListRefunds,
		[]string{nk, s.k.payment(merchant, paymentID), s.k.refundsOf(merchant, paymentID)},
		ttl, strconv.Itoa(MaxRefundsListed), s.k.refundPrefix(merchant))
	if err != nil {
		return nil, err
	}
	switch o := outcome(res); o {
	case "ok":
	case "notfound":
		return nil, ErrNotFound
	case "replay":
		return nil, ErrNonceReplayed
	default:
		return nil, fmt.Errorf("store: list refunds: unexpected outcome %q", o)
	}
	var out []*payment.RefundRecord
	for i := 1; i+1 < len(res); i += 2 {
		rf, err := decodeRefund(res[i : i+2])
		if err != nil {
			return nil, fmt.Errorf("store: list refunds: %w", err)
		}
		out = append(out, rf)
	}
	return out, nil
}

// GetRefundByOutRefundNo is GetRefund by the merchant's out_refund_no.
func (s *Store) GetRefundByOutRefundNo(ctx context.Context, n *Nonce, merchant, outRefundNo string) (*payment.RefundRecord, error) {
	if merchant == "" {
		return nil, errEmptyMerchant
	}
	nk, ttl, err := s.nonceArgs(n, merchant)
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, "get refund", scGetByIndex,
		[]string{nk, s.k.outRefundNo(merchant, outRefundNo)}, ttl, s.k.refundPrefix(merchant))
	if err != nil {
		return nil, err
	}
	return refundResult(res)
}
