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
	"errors"
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

// compile-time reference so the payment import is used by the contract.
var _ = payment.StatusPending
