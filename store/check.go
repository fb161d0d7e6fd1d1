package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/paygate/paygate/payment"
)

// The checks every ledger makes before storing a record, shared so that the
// Redis store and the PostgreSQL ledger refuse exactly the same input.

// ErrEmptyMerchant is returned for a record or call without a merchant id.
var ErrEmptyMerchant = errEmptyMerchant

// CheckNewPayment checks a payment about to be created.
func CheckNewPayment(rec *payment.Record) error {
	switch {
	case rec.MerchantID == "":
		return errEmptyMerchant
	case payment.OrderNo(rec.PaymentID) == "":
		return fmt.Errorf("store: bad payment id %q", rec.PaymentID)
	case rec.OutTradeNo == "":
		return errors.New("store: empty out_trade_no")
	case !validPaymentStatus(rec.Status):
		return fmt.Errorf("store: bad payment status %q", rec.Status)
	}
	return nil
}

// CheckPaymentUpdate checks a payment about to be compare-and-set.
func CheckPaymentUpdate(rec *payment.Record) error {
	if rec.MerchantID == "" {
		return errEmptyMerchant
	}
	if !validPaymentStatus(rec.Status) {
		return fmt.Errorf("store: bad payment status %q", rec.Status)
	}
	return nil
}

// CheckNewRefund checks a refund about to be created.
func CheckNewRefund(rf *payment.RefundRecord) error {
	switch {
	case rf.MerchantID == "":
		return errEmptyMerchant
	case payment.PaymentIDOfRefund(rf.RefundID) != rf.PaymentID || rf.PaymentID == "":
		return fmt.Errorf("store: refund id %q does not belong to payment %q", rf.RefundID, rf.PaymentID)
	case rf.OutRefundNo == "":
		return errors.New("store: empty out_refund_no")
	case rf.Amount < 1:
		return fmt.Errorf("store: refund amount %d", rf.Amount)
	case !validRefundStatus(rf.Status):
		return fmt.Errorf("store: bad refund status %q", rf.Status)
	}
	return nil
}

// CheckRefundUpdate checks a refund about to be compare-and-set.
func CheckRefundUpdate(rf *payment.RefundRecord) error {
	if rf.MerchantID == "" {
		return errEmptyMerchant
	}
	if !validRefundStatus(rf.Status) {
		return fmt.Errorf("store: bad refund status %q", rf.Status)
	}
	return nil
}

// CheckEvent checks an event enqueued with a change of merchant m's object.
func CheckEvent(ev *OutboxEvent, m string) error {
	if ev.ID == "" {
		return errors.New("store: event without id")
	}
	if ev.Merchant != "" && ev.Merchant != m {
		return fmt.Errorf("store: event of merchant %q on an object of merchant %q", ev.Merchant, m)
	}
	return nil
}

// CheckNonceFor checks a nonce claimed for a call on merchant's records.
func CheckNonceFor(n *Nonce, merchant string) error {
	if n.Merchant != merchant {
		return fmt.Errorf("store: nonce of merchant %q used for merchant %q", n.Merchant, merchant)
	}
	return checkNonce(n)
}

// CheckClaim checks the arguments of a claim (ClaimEvents, ClaimSweep):
// an error for an empty merchant or a lease under 1 ms; claim is false,
// with no error, when max asks for nothing.
func CheckClaim(merchant string, lease time.Duration, max int) (claim bool, err error) {
	switch {
	case merchant == "":
		return false, errEmptyMerchant
	case lease < time.Millisecond:
		return false, errors.New("store: lease must be at least 1ms")
	}
	return max >= 1, nil
}

// CheckSweepKind checks a sweep kind.
func CheckSweepKind(kind string) error {
	if kind != SweepPayment && kind != SweepRefund {
		return fmt.Errorf("store: bad sweep kind %q", kind)
	}
	return nil
}

// DeadEventsLimit is the number of dead letters one DeadEvents call returns
// for a requested limit (≤ 0 means 100; at most 1000).
func DeadEventsLimit(limit int) int {
	if limit <= 0 {
		limit = 100
	}
	return min(limit, maxDeadEvents)
}
