package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/paygate/paygate/payment"
)

// A refund is stored as a hash: rec (JSON of payment.RefundRecord), status,
// ver, amount and pid (its payment id), next to its payment's hash under the
// merchant's tag.

// CreateRefund stores a new refund of rf.PaymentID, in one atomic script that
// checks, in this order: the nonce n (ErrNonceReplayed); the merchant's
// out_refund_no (already indexed: that stored refund, created=false); the
// payment exists (ErrNotFound) and has succeeded (ErrInvalidState); refunded
// + reserved + rf.Amount ≤ the payment amount (ErrExceedsPayment). Then it
// stores rf as Version 1, reserves rf.Amount on the payment (a refund created
// already succeeded counts as refunded instead), indexes it and schedules it
// in the sweep at sweepAt (zero: not scheduled).
func (s *Store) CreateRefund(ctx context.Context, n *Nonce, rf *payment.RefundRecord, sweepAt time.Time) (*payment.RefundRecord, bool, error) {
	if err := CheckNewRefund(rf); err != nil {
		return nil, false, err
	}
	m := rf.MerchantID
	nk, ttl, err := s.nonceArgs(n, m)
	if err != nil {
		return nil, false, err
	}
	body, err := marshalRefund(rf, 1)
	if err != nil {
		return nil, false, err
	}
	keys := []string{nk, s.k.outRefundNo(m, rf.OutRefundNo), s.k.payment(m, rf.PaymentID), s.k.refund(m, rf.RefundID), s.k.sweep(m),
		s.k.refundsOf(m, rf.PaymentID)}
	args := []any{ttl, rf.RefundID, body, string(rf.Status), strconv.FormatInt(rf.Amount, 10),
		sweepMember(SweepRefund, rf.RefundID), msOrEmpty(sweepAt), s.k.refundPrefix(m), rf.PaymentID, ms(rf.CreatedAt)}
	res, err := s.run(ctx, "create refund", scCreateRefund, keys, args...)
	if err != nil {
		return nil, false, err
	}
	switch o := outcome(res); o {
	case "created":
		rf.Version = 1
		return rf, true, nil
	case "exists":
		stored, err := decodeRefund(res[1:])
		if err != nil {
			return nil, false, fmt.Errorf("store: create refund: out_refund_no %s: %w", rf.OutRefundNo, err)
		}
		return stored, false, nil
	case "replay":
		return nil, false, ErrNonceReplayed
	case "notfound":
		return nil, false, ErrNotFound
	case "state":
		return nil, false, ErrInvalidState
	case "exceeds":
		return nil, false, ErrExceedsPayment
	case "dupid":
		return nil, false, fmt.Errorf("store: refund id %s already stored", rf.RefundID)
	default:
		return nil, false, fmt.Errorf("store: create refund: unexpected outcome %q", o)
	}
}

func validRefundStatus(st payment.RefundStatus) bool {
	switch st {
	case payment.RefundPending, payment.RefundSucceeded, payment.RefundFailed:
		return true
	}
	return false
}

func marshalRefund(rf *payment.RefundRecord, version int64) ([]byte, error) {
	c := *rf
	c.Version = version
	b, err := jsonv2.Marshal(&c, storedForm)
	if err != nil {
		return nil, fmt.Errorf("store: encode refund: %w", err)
	}
	return b, nil
}

// decodeRefund decodes {rec, ver} as returned by the scripts.
func decodeRefund(v []any) (*payment.RefundRecord, error) {
	if len(v) < 2 || v[0] == nil {
		return nil, errors.New("index points to a missing refund")
	}
	var rf payment.RefundRecord
	if err := jsonv2.Unmarshal([]byte(str(v[0])), &rf, storedForm); err != nil {
		return nil, fmt.Errorf("decode refund: %w", err)
	}
	rf.Version = num(v[1])
	return &rf, nil
}

// GetRefund returns a refund of merchant, claiming n (if not nil) in the same
// round trip: ErrNonceReplayed, ErrNotFound.
func (s *Store) GetRefund(ctx context.Context, n *Nonce, merchant, refundID string) (*payment.RefundRecord, error) {
	if merchant == "" {
		return nil, errEmptyMerchant
	}
	nk, ttl, err := s.nonceArgs(n, merchant)
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, "get refund", scGet, []string{nk, s.k.refund(merchant, refundID)}, ttl)
	if err != nil {
		return nil, err
	}
	return refundResult(res)
}

func refundResult(res []any) (*payment.RefundRecord, error) {
	switch o := outcome(res); o {
	case "ok":
		rf, err := decodeRefund(res[1:])
		if err != nil {
			return nil, fmt.Errorf("store: get refund: %w", err)
		}
		return rf, nil
	case "notfound":
		return nil, ErrNotFound
	case "replay":
		return nil, ErrNonceReplayed
	default:
		return nil, fmt.Errorf("store: get refund: unexpected outcome %q", o)
	}
}

// UpdateRefund stores rf if the stored version still equals rf.Version
// (compare-and-set; ErrConflict otherwise, nothing changed), as version
// rf.Version+1, and sets rf.Version to it.
//
// The payment's refund accounting follows the stored status, exactly once:
// pending → succeeded moves the amount from reserved to refunded, pending →
// failed releases it. A refund that is final cannot change status again
// (ErrInvalidState). ch.Event and ch.SweepAt are applied as in UpdatePayment.
func (s *Store) UpdateRefund(ctx context.Context, rf *payment.RefundRecord, ch Change) error {
	if err := CheckRefundUpdate(rf); err != nil {
		return err
	}
	m := rf.MerchantID
	next := rf.Version + 1
	body, err := marshalRefund(rf, next)
	if err != nil {
		return err
	}
	ck, ca, err := s.changeArgs(m, SweepRefund, rf.RefundID, ch)
	if err != nil {
		return err
	}
	keys := append([]string{s.k.refund(m, rf.RefundID), s.k.payment(m, rf.PaymentID)}, ck...)
	args := append([]any{strconv.FormatInt(rf.Version, 10), strconv.FormatInt(next, 10), body,
		string(rf.Status), rf.PaymentID}, ca...)
	res, err := s.run(ctx, "update refund", scUpdateRefund, keys, args...)
	if err != nil {
		return err
	}
	switch o := outcome(res); o {
	case "ok":
		rf.Version = next
		return nil
	case "conflict":
		return ErrConflict
	case "notfound":
		return ErrNotFound
	case "state":
		return fmt.Errorf("store: refund %s is final: %w", rf.RefundID, ErrInvalidState)
	case "mismatch":
		return fmt.Errorf("store: refund %s does not belong to payment %s", rf.RefundID, rf.PaymentID)
	default:
		return fmt.Errorf("store: update refund: unexpected outcome %q", o)
	}
}
