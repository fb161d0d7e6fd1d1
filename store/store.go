// Package store keeps all of paygate's shared state in Redis (go-redis v9
// UniversalClient: one address is a single node, several are a Redis
// Cluster), or, with no address configured, in an embedded in-process Redis
// (miniredis) that serves a single process and is not durable.
//
// Key layout: every key of a merchant shares the hash tag {M} (M = merchant
// id), so one Lua script can atomically touch a payment, its refunds, its
// out_trade_no index, the merchant's nonces, outbox and sweep schedule, even on
// a Cluster. The only cross-merchant key is the payment → merchant index that
// channel callbacks use. See docs/store.md.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/paygate/paygate/payment"
)

// Errors. Every failure to reach Redis is wrapped with ErrUnavailable, so the
// edge can fail closed with 503 store_unavailable.
var (
	ErrUnavailable    = errors.New("store unavailable")
	ErrNotFound       = errors.New("not found")
	ErrNonceReplayed  = errors.New("nonce already used")
	ErrConflict       = errors.New("stored version changed") // compare-and-set lost; reload and retry
	ErrInvalidState   = errors.New("invalid state")          // refund on a payment that is not succeeded
	ErrExceedsPayment = errors.New("refunds would exceed the payment amount")
	// ErrOutcomeUnknown: the write was sent but its answer was lost (the
	// connection broke after COMMIT or an autocommitted statement went out),
	// so it may or may not have taken effect. It wraps ErrUnavailable, so
	// errors.Is(err, ErrUnavailable) holds too; the edge should say the
	// outcome is unknown and that a retry with the same out_trade_no (or
	// out_refund_no) is safe, never that nothing was done.
	ErrOutcomeUnknown = fmt.Errorf("outcome unknown: %w", ErrUnavailable)
)

// Nonce is a merchant request nonce to claim (SET NX with TTL) in the same
// round trip as the operation it authorises. A nil *Nonce claims nothing.
type Nonce struct {
	Merchant string
	Value    string
	TTL      time.Duration
}

// Change is what accompanies a stored state change, atomically.
type Change struct {
	// Event, if not nil, is enqueued in the merchant's outbox in the same
	// atomic operation, at most once per event id (a second change carrying
	// the same event id enqueues nothing). Body is the exact JSON to deliver.
	Event *OutboxEvent
	// SweepAt is when the reconciliation sweeper should next look at the
	// object; zero removes it from the sweep schedule.
	SweepAt time.Time
}

// OutboxEvent is a merchant notification waiting for delivery.
type OutboxEvent struct {
	ID        string
	Merchant  string
	NotifyURL string
	Body      []byte // {"id","type","created_at","data"}: identical on every attempt
}

// Delivery is an event claimed for one delivery attempt.
type Delivery struct {
	OutboxEvent
	Attempt int // 1 for the first attempt
}

// DeadEvent is a dead-lettered event.
type DeadEvent struct {
	OutboxEvent
	Attempts  int
	LastError string
	DeadAt    time.Time
}

// SweepItem is a pending payment or refund due for an active query.
type SweepItem struct {
	Merchant string
	Kind     string // "payment" | "refund"
	ID       string
	Attempt  int // how many times it has been claimed, 1-based
}

// Sweep kinds.
const (
	SweepPayment = "payment"
	SweepRefund  = "refund"
)

// HealthBucket is one channel's outcome counts in one time bucket.
type HealthBucket struct {
	Channel   string
	Bucket    int64 // bucket index: unix time / bucket width
	OK        int64
	Fail      int64
	LatencyMS int64 // sum over OK+Fail calls
	// Lat counts the OK+Fail calls per latency bin (the router defines the
	// bins' bounds), so that every instance can read a latency percentile.
	Lat [HealthLatencyBins]int64
}

// HealthLatencyBins is the number of latency bins of a HealthBucket.
const HealthLatencyBins = 12

// PaymentQuery selects a merchant's payments for ListPayments, newest first
// (by created_at, then payment id, both descending).
type PaymentQuery struct {
	Merchant string
	// Limit is the page size, 1–100 (0 means 20).
	Limit int
	// StartingAfter is a payment id: the page starts after it. A payment id
	// that is not the merchant's is ErrNotFound.
	StartingAfter string
	// CreatedGTE and CreatedLT bound created_at; zero means unbounded.
	CreatedGTE, CreatedLT time.Time
	// Status, if not empty, keeps only payments in that status.
	Status payment.Status
}

// List bounds.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
	// MaxRefundsListed bounds one ListRefunds answer.
	MaxRefundsListed = 1000
)

// ListLimit checks and defaults a page size.
func ListLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultListLimit, nil
	case n < 1 || n > MaxListLimit:
		return 0, fmt.Errorf("store: list limit %d: must be 1–%d", n, MaxListLimit)
	}
	return n, nil
}

// Records is what keeps payments and refunds: the Redis store (and the
// embedded sandbox store) and the PostgreSQL ledger both implement it, with
// the same results and errors (store/conformance checks both). A method
// given a *Nonce claims that nonce in the same call, first
// (ErrNonceReplayed if it was used, and nothing else happens).
//
// Errors: ErrNotFound, ErrConflict (an Update's compare-and-set lost),
// ErrInvalidState and ErrExceedsPayment (CreateRefund), ErrUnavailable
// (and ErrOutcomeUnknown, which wraps it, when a write was sent but not
// confirmed).
type Records interface {
	ClaimNonce(ctx context.Context, n Nonce) error

	CreatePayment(ctx context.Context, n *Nonce, rec *payment.Record, sweepAt time.Time) (*payment.Record, bool, error)
	GetPayment(ctx context.Context, n *Nonce, merchant, paymentID string) (*payment.Record, error)
	GetPaymentByOutTradeNo(ctx context.Context, n *Nonce, merchant, outTradeNo string) (*payment.Record, error)
	PaymentMerchant(ctx context.Context, paymentID string) (string, error)
	UpdatePayment(ctx context.Context, rec *payment.Record, ch Change) error
	ListPayments(ctx context.Context, n *Nonce, q PaymentQuery) ([]*payment.Record, bool, error)

	CreateRefund(ctx context.Context, n *Nonce, rf *payment.RefundRecord, sweepAt time.Time) (*payment.RefundRecord, bool, error)
	GetRefund(ctx context.Context, n *Nonce, merchant, refundID string) (*payment.RefundRecord, error)
	GetRefundByOutRefundNo(ctx context.Context, n *Nonce, merchant, outRefundNo string) (*payment.RefundRecord, error)
	ListRefunds(ctx context.Context, n *Nonce, merchant, paymentID string) ([]*payment.RefundRecord, error)
	UpdateRefund(ctx context.Context, rf *payment.RefundRecord, ch Change) error

	ClaimSweep(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]SweepItem, error)
	Reschedule(ctx context.Context, merchant, kind, id string, at time.Time) error
}

var _ Records = (*Store)(nil)
