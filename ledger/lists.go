package ledger

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// ListPayments returns a page of q.Merchant's payments, newest first, and
// whether more follow. The order is (created_at, payment_id) descending and
// the page after q.StartingAfter continues strictly below that payment's
// key (keyset pagination: no OFFSET, so every page costs the same at any
// depth). A StartingAfter that is not one of the merchant's payments is
// ErrNotFound. Served by index payments_list (payments_list_status with a
// status filter).
func (l *Ledger) ListPayments(ctx context.Context, n *store.Nonce, q store.PaymentQuery) ([]*payment.Record, bool, error) {
	limit, err := store.ListLimit(q.Limit)
	if err != nil {
		return nil, false, err
	}
	if err := l.claim(ctx, n, q.Merchant); err != nil {
		return nil, false, err
	}
	var (
		where strings.Builder
		args  = []any{q.Merchant}
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where.WriteString(`merchant_id = $1`)
	if q.Status != "" {
		where.WriteString(` AND status = ` + arg(string(q.Status)))
	}
	if !q.CreatedGTE.IsZero() {
		where.WriteString(` AND created_at >= ` + arg(q.CreatedGTE))
	}
	if !q.CreatedLT.IsZero() {
		where.WriteString(` AND created_at < ` + arg(q.CreatedLT))
	}
	if q.StartingAfter != "" {
		var at time.Time
		err := l.pool.QueryRow(ctx, `SELECT created_at FROM payments WHERE payment_id = $1 AND merchant_id = $2`,
			q.StartingAfter, q.Merchant).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, false, store.ErrNotFound
		}
		if err != nil {
			return nil, false, classify("list payments", err, false)
		}
		where.WriteString(` AND (created_at, payment_id) < (` + arg(at) + `, ` + arg(q.StartingAfter) + `)`)
	}
	rows, err := l.pool.Query(ctx, `SELECT `+paymentCols+` FROM payments WHERE `+where.String()+
		` ORDER BY created_at DESC, payment_id DESC LIMIT `+arg(limit+1), args...)
	if err != nil {
		return nil, false, classify("list payments", err, false)
	}
	defer rows.Close()
	out := make([]*payment.Record, 0, limit+1)
	for rows.Next() {
		rec, err := scanPayment(rows)
		if err != nil {
			return nil, false, classify("list payments", err, false)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, false, classify("list payments", err, false)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// ListRefunds returns the refunds of one of merchant's payments, newest
// first (at most store.MaxRefundsListed); ErrNotFound if the payment is not
// the merchant's.
func (l *Ledger) ListRefunds(ctx context.Context, n *store.Nonce, merchant, paymentID string) ([]*payment.RefundRecord, error) {
	if err := l.claim(ctx, n, merchant); err != nil {
		return nil, err
	}
	var one int
	err := l.pool.QueryRow(ctx, `SELECT 1 FROM payments WHERE payment_id = $1 AND merchant_id = $2`, paymentID, merchant).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, classify("list refunds", err, false)
	}
	rows, err := l.pool.Query(ctx, `SELECT `+refundCols+` FROM refunds WHERE payment_id = $1 AND merchant_id = $2
		ORDER BY created_at DESC, refund_id DESC LIMIT $3`, paymentID, merchant, store.MaxRefundsListed)
	if err != nil {
		return nil, classify("list refunds", err, false)
	}
	defer rows.Close()
	var out []*payment.RefundRecord
	for rows.Next() {
		rf, err := scanRefund(rows)
		if err != nil {
			return nil, classify("list refunds", err, false)
		}
		out = append(out, rf)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("list refunds", err, false)
	}
	return out, nil
}
