package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// is ErrNonceReplayed and nothing is written), then in one transaction
// stores rec as version 1 unless the merchant's out_trade_no exists (then
// that payment, created=false) and schedules its sweep at sweepAt.
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
	var stored *payment.Record
	err = l.write(ctx, "create payment", func(tx pgx.Tx) error {
		stored = nil
		tag, err := tx.Exec(ctx, `INSERT INTO payments
			(payment_id, merchant_id, out_trade_no, status, amount, version, created_at, rec)
			VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
			ON CONFLICT (merchant_id, out_trade_no) DO NOTHING`,
			rec.PaymentID, rec.MerchantID, rec.OutTradeNo, string(rec.Status), rec.Amount, rec.CreatedAt, body)
		if isUnique(err, "payments_pkey") {
			return faultf("ledger: payment id %s already stored", rec.PaymentID)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			// The out_trade_no is taken (by a transaction that committed
			// while this insert waited for it, too): that payment.
			stored, err = scanPayment(tx.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments
				WHERE merchant_id = $1 AND out_trade_no = $2`, rec.MerchantID, rec.OutTradeNo))
			return err
		}
		return schedule(ctx, tx, rec.MerchantID, store.SweepPayment, rec.PaymentID, sweepAt)
	})
	if err != nil {
		return nil, false, err
	}
	if stored != nil {
		return stored, false, nil
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
// version (ErrConflict, ErrNotFound), and in the same transaction ch.Event
// enqueued once per event id and the sweep entry moved to ch.SweepAt (zero
// removes it). rec.RefundedAmount is ignored; rec.Version becomes the new
// version.
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
	err = l.write(ctx, "update payment", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE payments SET status = $3, version = version + 1, rec = $4
			WHERE payment_id = $1 AND merchant_id = $2 AND version = $5`,
			rec.PaymentID, rec.MerchantID, string(rec.Status), body, rec.Version)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return missingOrConflict(ctx, tx, `SELECT 1 FROM payments WHERE payment_id = $1 AND merchant_id = $2`, rec.PaymentID, rec.MerchantID)
		}
		return applyChange(ctx, tx, rec.MerchantID, store.SweepPayment, rec.PaymentID, ch)
	})
	if err != nil {
		return err
	}
	rec.Version++
	return nil
}

// missingOrConflict tells a lost compare-and-set (the row exists:
// ErrConflict) from a missing row (ErrNotFound).
func missingOrConflict(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	var one int
	err := tx.QueryRow(ctx, sql, args...).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	return store.ErrConflict
}

// applyChange enqueues ch.Event (due at once: due_ms 0, delivered in seq
// order; nothing if the event id exists) and moves the object's sweep entry.
func applyChange(ctx context.Context, tx pgx.Tx, merchant, kind, id string, ch store.Change) error {
	if ev := ch.Event; ev != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO outbox_events (merchant_id, event_id, due_ms, notify_url, body)
			VALUES ($1, $2, 0, $3, $4) ON CONFLICT (merchant_id, event_id) DO NOTHING`,
			merchant, ev.ID, ev.NotifyURL, ev.Body); err != nil {
			return err
		}
	}
	if ch.SweepAt.IsZero() {
		_, err := tx.Exec(ctx, `DELETE FROM sweep WHERE merchant_id = $1 AND kind = $2 AND object_id = $3`, merchant, kind, id)
		return err
	}
	return schedule(ctx, tx, merchant, kind, id, ch.SweepAt)
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
