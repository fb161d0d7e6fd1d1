package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

func encodeRefund(rf *payment.RefundRecord) ([]byte, error) {
	c := *rf
	c.Version = 0
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("ledger: encode refund: %w", err)
	}
	return b, nil
}

const refundCols = `version, rec`

func scanRefund(row pgx.Row) (*payment.RefundRecord, error) {
	var (
		v    int64
		body []byte
	)
	if err := row.Scan(&v, &body); err != nil {
		return nil, err
	}
	var rf payment.RefundRecord
	if err := json.Unmarshal(body, &rf); err != nil {
		return nil, faultf("ledger: decode refund: %w", err)
	}
	rf.Version = v
	return &rf, nil
}

// CreateRefund is store.Store.CreateRefund. After the nonce (in Redis), one
// transaction locks the payment row (so concurrent refunds of one payment
// queue up), then checks in this order: the merchant's out_refund_no exists
// (that refund, created=false); the payment exists (ErrNotFound) and has
// succeeded (ErrInvalidState); refunded + reserved + rf.Amount ≤ the
// payment amount (ErrExceedsPayment). It stores rf as version 1, reserves
// its amount (a refund created already succeeded counts as refunded) and
// schedules its sweep at sweepAt.
func (l *Ledger) CreateRefund(ctx context.Context, n *store.Nonce, rf *payment.RefundRecord, sweepAt time.Time) (*payment.RefundRecord, bool, error) {
	if err := store.CheckNewRefund(rf); err != nil {
		return nil, false, err
	}
	if err := l.claim(ctx, n, rf.MerchantID); err != nil {
		return nil, false, err
	}
	body, err := encodeRefund(rf)
	if err != nil {
		return nil, false, err
	}
	m := rf.MerchantID
	var stored *payment.RefundRecord
	err = l.write(ctx, "create refund", func(tx pgx.Tx) error {
		stored = nil
		var (
			status                     string
			amount, refunded, reserved int64
		)
		perr := tx.QueryRow(ctx, `SELECT status, amount, refunded, reserved FROM payments
			WHERE payment_id = $1 AND merchant_id = $2 FOR UPDATE`, rf.PaymentID, m).
			Scan(&status, &amount, &refunded, &reserved)
		if perr != nil && !errors.Is(perr, pgx.ErrNoRows) {
			return perr
		}
		existing := func() error {
			var err error
			stored, err = scanRefund(tx.QueryRow(ctx, `SELECT `+refundCols+` FROM refunds
				WHERE merchant_id = $1 AND out_refund_no = $2`, m, rf.OutRefundNo))
			return err
		}
		if err := existing(); err == nil {
			return nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		switch {
		case perr != nil:
			return store.ErrNotFound
		case status != string(payment.StatusSucceeded):
			return store.ErrInvalidState
		case rf.Amount > amount-refunded-reserved: // not refunded+reserved+rf.Amount, which overflows for a huge amount
			return store.ErrExceedsPayment
		}
		tag, err := tx.Exec(ctx, `INSERT INTO refunds
			(refund_id, payment_id, merchant_id, out_refund_no, status, amount, version, created_at, rec)
			VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
			ON CONFLICT (merchant_id, out_refund_no) DO NOTHING`,
			rf.RefundID, rf.PaymentID, m, rf.OutRefundNo, string(rf.Status), rf.Amount, rf.CreatedAt, body)
		if isUnique(err, "refunds_pkey") {
			return faultf("ledger: refund id %s already stored", rf.RefundID)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			// Taken meanwhile, for another payment of the merchant.
			return existing()
		}
		switch rf.Status {
		case payment.RefundPending:
			_, err = tx.Exec(ctx, `UPDATE payments SET reserved = reserved + $2 WHERE payment_id = $1`, rf.PaymentID, rf.Amount)
		case payment.RefundSucceeded:
			_, err = tx.Exec(ctx, `UPDATE payments SET refunded = refunded + $2 WHERE payment_id = $1`, rf.PaymentID, rf.Amount)
		}
		if err != nil {
			return err
		}
		return schedule(ctx, tx, m, store.SweepRefund, rf.RefundID, sweepAt)
	})
	if err != nil {
		return nil, false, err
	}
	if stored != nil {
		return stored, false, nil
	}
	rf.Version = 1
	return rf, true, nil
}

// GetRefund is store.Store.GetRefund (the nonce is claimed in Redis first).
func (l *Ledger) GetRefund(ctx context.Context, n *store.Nonce, merchant, refundID string) (*payment.RefundRecord, error) {
	if err := l.claim(ctx, n, merchant); err != nil {
		return nil, err
	}
	return l.readRefund(ctx, `SELECT `+refundCols+` FROM refunds WHERE refund_id = $1 AND merchant_id = $2`, refundID, merchant)
}

// GetRefundByOutRefundNo is GetRefund by the merchant's out_refund_no.
func (l *Ledger) GetRefundByOutRefundNo(ctx context.Context, n *store.Nonce, merchant, outRefundNo string) (*payment.RefundRecord, error) {
	if err := l.claim(ctx, n, merchant); err != nil {
		return nil, err
	}
	return l.readRefund(ctx, `SELECT `+refundCols+` FROM refunds WHERE merchant_id = $1 AND out_refund_no = $2`, merchant, outRefundNo)
}

func (l *Ledger) readRefund(ctx context.Context, sql string, args ...any) (*payment.RefundRecord, error) {
	rf, err := scanRefund(l.pool.QueryRow(ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, classify("get refund", err, false)
	}
	return rf, nil
}

// UpdateRefund is store.Store.UpdateRefund: compare-and-set on the version;
// the payment's counters follow the stored status exactly once (pending →
// succeeded moves the amount from reserved to refunded, pending → failed
// releases it; a final refund cannot change status: ErrInvalidState); the
// event and sweep change go in the same transaction.
func (l *Ledger) UpdateRefund(ctx context.Context, rf *payment.RefundRecord, ch store.Change) error {
	if err := store.CheckRefundUpdate(rf); err != nil {
		return err
	}
	if ch.Event != nil {
		if err := store.CheckEvent(ch.Event, rf.MerchantID); err != nil {
			return err
		}
	}
	body, err := encodeRefund(rf)
	if err != nil {
		return err
	}
	m := rf.MerchantID
	err = l.write(ctx, "update refund", func(tx pgx.Tx) error {
		var (
			ver, amount int64
			old, pid    string
		)
		err := tx.QueryRow(ctx, `SELECT version, status, amount, payment_id FROM refunds
			WHERE refund_id = $1 AND merchant_id = $2 FOR UPDATE`, rf.RefundID, m).Scan(&ver, &old, &amount, &pid)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case ver != rf.Version:
			return store.ErrConflict
		case pid != rf.PaymentID:
			return faultf("ledger: refund %s does not belong to payment %s", rf.RefundID, rf.PaymentID)
		}
		next := string(rf.Status)
		if old != string(payment.RefundPending) && next != old {
			return fmt.Errorf("ledger: refund %s is final: %w", rf.RefundID, store.ErrInvalidState)
		}
		if old == string(payment.RefundPending) && next != old {
			sql := `UPDATE payments SET reserved = reserved - $2 WHERE payment_id = $1`
			if next == string(payment.RefundSucceeded) {
				sql = `UPDATE payments SET reserved = reserved - $2, refunded = refunded + $2 WHERE payment_id = $1`
			}
			if _, err := tx.Exec(ctx, sql, pid, amount); err != nil {
				return err
			}
		}
		args := []any{rf.RefundID, m, next, body}
		sql := `WITH upd AS (
			UPDATE refunds SET status = $3, version = version + 1, rec = $4
			WHERE refund_id = $1 AND merchant_id = $2 RETURNING refund_id AS id)` + changeCTE(&args, store.SweepRefund, ch)
		_, err = tx.Exec(ctx, sql+` SELECT count(*) FROM upd`, args...)
		return err
	})
	if err != nil {
		return err
	}
	rf.Version++
	return nil
}
