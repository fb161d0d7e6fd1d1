package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// A payment row keeps the record as JSON (rec) with its channel attempts:
// they are read and written with the payment, under its compare-and-set,
// and no query looks at them alone. version, refunded and reserved are
// columns, authoritative over what rec says.

// encodePayment is rec without the fields the columns own.
func encodePayment(rec *payment.Record) ([]byte, error) {
	c := *rec
	c.Version, c.RefundedAmount = 0, 0
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("ledger: encode payment: %w", err)
	}
	return b, nil
}

func decodePayment(version, refunded int64, body []byte) (*payment.Record, error) {
	var rec payment.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, faultf("ledger: decode payment: %w", err)
	}
	rec.Version, rec.RefundedAmount = version, refunded
	return &rec, nil
}

const paymentCols = `version, refunded, rec`

func scanPayment(row pgx.Row) (*payment.Record, error) {
	var (
		v, r int64
		body []byte
	)
	if err := row.Scan(&v, &r, &body); err != nil {
		return nil, err
	}
	return decodePayment(v, r, body)
}

// CreatePayment is store.Store.CreatePayment: it claims n in Redis (a replay
// is ErrNonceReplayed and nothing is written), then stores rec as version 1
// unless the merchant's out_trade_no exists (then that payment,
// created=false) and schedules its sweep at sweepAt.
//
// The insert and the sweep entry are one statement (data-modifying CTEs run
// atomically, like a transaction), so the common case costs one round trip.
func (l *Ledger) CreatePayment(ctx context.Context, n *store.Nonce, rec *payment.Record, sweepAt time.Time) (*payment.Record, bool, error) {
	if err := store.CheckNewPayment(rec); err != nil {
		return nil, false, err
	}
	if err := l.claim(ctx, n, rec.MerchantID); err != nil {
		return nil, false, err
	}
	body, err := encodePayment(rec)
	if err != nil {
		return nil, false, err
	}
	sql := `WITH ins AS (
			INSERT INTO payments (payment_id, merchant_id, out_trade_no, status, amount, version, created_at, rec)
			VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
			ON CONFLICT (merchant_id, out_trade_no) DO NOTHING
			RETURNING payment_id)`
	args := []any{rec.PaymentID, rec.MerchantID, rec.OutTradeNo, string(rec.Status), rec.Amount, rec.CreatedAt, body}
	if !sweepAt.IsZero() {
		sql += `, sw AS (
			INSERT INTO sweep (merchant_id, kind, object_id, due_ms)
			SELECT $2, 'payment', payment_id, $8 FROM ins
			ON CONFLICT (merchant_id, kind, object_id) DO UPDATE SET due_ms = EXCLUDED.due_ms)`
		args = append(args, ms(sweepAt))
	}
	var inserted int
	err = l.pool.QueryRow(ctx, sql+` SELECT count(*) FROM ins`, args...).Scan(&inserted)
	if isUnique(err, "payments_pkey") {
		return nil, false, fmt.Errorf("ledger: payment id %s already stored", rec.PaymentID)
	}
	if err != nil {
		return nil, false, classify("create payment", err, true)
	}
	if inserted == 0 {
		// The out_trade_no is taken (also by a create that committed while
		// this insert waited for it): that payment.
		stored, err := l.readPayment(ctx, `SELECT `+paymentCols+` FROM payments WHERE merchant_id = $1 AND out_trade_no = $2`,
			rec.MerchantID, rec.OutTradeNo)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("ledger: create payment: out_trade_no %s taken but not found", rec.OutTradeNo)
		}
		return stored, false, err
	}
	rec.Version, rec.RefundedAmount = 1, 0
	return rec, true, nil
}

// GetPayment is store.Store.GetPayment (the nonce is claimed in Redis first).
func (l *Ledger) GetPayment(ctx context.Context, n *store.Nonce, merchant, paymentID string) (*payment.Record, error) {
	if err := l.claim(ctx, n, merchant); err != nil {
		return nil, err
	}
	return l.readPayment(ctx, `SELECT `+paymentCols+` FROM payments WHERE payment_id = $1 AND merchant_id = $2`, paymentID, merchant)
}

// GetPaymentByOutTradeNo is GetPayment by the merchant's out_trade_no.
func (l *Ledger) GetPaymentByOutTradeNo(ctx context.Context, n *store.Nonce, merchant, outTradeNo string) (*payment.Record, error) {
	if err := l.claim(ctx, n, merchant); err != nil {
		return nil, err
	}
	return l.readPayment(ctx, `SELECT `+paymentCols+` FROM payments WHERE merchant_id = $1 AND out_trade_no = $2`, merchant, outTradeNo)
}

func (l *Ledger) readPayment(ctx context.Context, sql string, args ...any) (*payment.Record, error) {
	rec, err := scanPayment(l.pool.QueryRow(ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, classify("get payment", err, false)
	}
	return rec, nil
}

// PaymentMerchant returns the merchant a payment id belongs to; ErrNotFound.
func (l *Ledger) PaymentMerchant(ctx context.Context, paymentID string) (string, error) {
	var m string
	err := l.pool.QueryRow(ctx, `SELECT merchant_id FROM payments WHERE payment_id = $1`, paymentID).Scan(&m)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", classify("payment merchant", err, false)
	}
	return m, nil
}

// UpdatePayment is store.Store.UpdatePayment: compare-and-set on the
// version (ErrConflict, ErrNotFound), and atomically with it ch.Event
// enqueued once per event id and the sweep entry moved to ch.SweepAt (zero
// removes it). rec.RefundedAmount is ignored; rec.Version becomes the new
// version.
//
// The update, the event and the sweep change are one statement: the event
// and the sweep change read the updated row, so they happen only when the
// compare-and-set succeeds. One round trip.
func (l *Ledger) UpdatePayment(ctx context.Context, rec *payment.Record, ch store.Change) error {
	if err := store.CheckPaymentUpdate(rec); err != nil {
		return err
	}
	if ch.Event != nil {
		if err := store.CheckEvent(ch.Event, rec.MerchantID); err != nil {
			return err
		}
	}
	body, err := encodePayment(rec)
	if err != nil {
		return err
	}
	sql := `WITH upd AS (
			UPDATE payments SET status = $3, version = version + 1, rec = $4
			WHERE payment_id = $1 AND merchant_id = $2 AND version = $5
			RETURNING payment_id AS id)`
	args := []any{rec.PaymentID, rec.MerchantID, string(rec.Status), body, rec.Version}
	sql += changeCTE(&args, store.SweepPayment, ch)
	var updated int
	if err := l.pool.QueryRow(ctx, sql+` SELECT count(*) FROM upd`, args...).Scan(&updated); err != nil {
		return classify("update payment", err, true)
	}
	if updated == 0 {
		var one int
		err := l.pool.QueryRow(ctx, `SELECT 1 FROM payments WHERE payment_id = $1 AND merchant_id = $2`, rec.PaymentID, rec.MerchantID).Scan(&one)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return classify("update payment", err, false)
		}
		return store.ErrConflict
	}
	rec.Version++
	return nil
}

// changeCTE appends to a statement whose first CTE "upd" returns the
// changed object's id (0 or 1 row) the CTEs that apply ch: the event (due at
// once: due_ms 0, delivered in seq order; nothing if the event id exists)
// and the sweep entry. $2 must be the merchant; the arguments are appended.
func changeCTE(args *[]any, kind string, ch store.Change) string {
	arg := func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	k := arg(kind)
	var sql string
	if ev := ch.Event; ev != nil {
		sql += `, ev AS (
			INSERT INTO outbox_events (merchant_id, event_id, due_ms, notify_url, body)
			SELECT $2, ` + arg(ev.ID) + `, 0, ` + arg(ev.NotifyURL) + `, ` + arg(ev.Body) + `::bytea FROM upd
			ON CONFLICT (merchant_id, event_id) DO NOTHING)`
	}
	if ch.SweepAt.IsZero() {
		sql += `, sw AS (
			DELETE FROM sweep WHERE merchant_id = $2 AND kind = ` + k + `
			AND object_id IN (SELECT id FROM upd))`
	} else {
		sql += `, sw AS (
			INSERT INTO sweep (merchant_id, kind, object_id, due_ms)
			SELECT $2, ` + k + `, id, ` + arg(ms(ch.SweepAt)) + ` FROM upd
			ON CONFLICT (merchant_id, kind, object_id) DO UPDATE SET due_ms = EXCLUDED.due_ms)`
	}
	return sql
}

// schedule puts an object in the sweep at at (nothing for the zero time),
// keeping its claim count if it is there already.
func schedule(ctx context.Context, q execer, merchant, kind, id string, at time.Time) error {
	if at.IsZero() {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO sweep (merchant_id, kind, object_id, due_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT (merchant_id, kind, object_id) DO UPDATE SET due_ms = EXCLUDED.due_ms`,
		merchant, kind, id, ms(at))
	return err
}

// execer is a transaction or the pool.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
