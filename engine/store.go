package engine

import (
	"context"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// Store is what the engine keeps in the shared store: exactly the methods
// of *store.Store it calls, with their signatures, so that another ledger
// can stand in for it. A method given a *store.Nonce claims that nonce in
// the same atomic step (store.ErrNonceReplayed if it was used).
//
// Errors are the store package's: store.ErrNotFound, store.ErrConflict
// (the compare-and-set of an Update lost), store.ErrInvalidState and
// store.ErrExceedsPayment (CreateRefund), store.ErrUnavailable.
type Store interface {
	ClaimNonce(ctx context.Context, n store.Nonce) error

	CreatePayment(ctx context.Context, n *store.Nonce, rec *payment.Record, sweepAt time.Time) (*payment.Record, bool, error)
	GetPayment(ctx context.Context, n *store.Nonce, merchant, paymentID string) (*payment.Record, error)
	GetPaymentByOutTradeNo(ctx context.Context, n *store.Nonce, merchant, outTradeNo string) (*payment.Record, error)
	PaymentMerchant(ctx context.Context, paymentID string) (string, error)
	UpdatePayment(ctx context.Context, rec *payment.Record, ch store.Change) error
	ListPayments(ctx context.Context, n *store.Nonce, q store.PaymentQuery) ([]*payment.Record, bool, error)

	CreateRefund(ctx context.Context, n *store.Nonce, rf *payment.RefundRecord, sweepAt time.Time) (*payment.RefundRecord, bool, error)
	GetRefund(ctx context.Context, n *store.Nonce, merchant, refundID string) (*payment.RefundRecord, error)
	GetRefundByOutRefundNo(ctx context.Context, n *store.Nonce, merchant, outRefundNo string) (*payment.RefundRecord, error)
	ListRefunds(ctx context.Context, n *store.Nonce, merchant, paymentID string) ([]*payment.RefundRecord, error)
	UpdateRefund(ctx context.Context, rf *payment.RefundRecord, ch store.Change) error

	Throttle(ctx context.Context, merchant, key string, ttl time.Duration) (bool, error)
	ClaimSweep(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]store.SweepItem, error)
	Reschedule(ctx context.Context, merchant, kind, id string, at time.Time) error
}

var _ Store = (*store.Store)(nil)
