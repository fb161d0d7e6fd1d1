package ledger

import (
	"context"
	"sort"
	"time"

	"github.com/paygate/paygate/store"
)

// The outbox works as the Redis one does (docs/store.md): a claim moves the
// due time of the events it takes to the end of a lease instead of removing
// them, so a worker that dies leaves them due again. FOR UPDATE SKIP LOCKED
// lets concurrent claimers of one merchant take disjoint events without
// waiting for each other.

// ClaimEvents is store.Store.ClaimEvents: up to max of merchant's pending
// events due at or before now, oldest due first (events written with a state
// change first, in the order they were written), made due again at
// now+lease, with their attempt number.
func (l *Ledger) ClaimEvents(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]store.Delivery, error) {
	if claim, err := store.CheckClaim(merchant, lease, max); !claim {
		return nil, err
	}
	rows, err := l.pool.Query(ctx, `WITH due AS (
			SELECT event_id, due_ms, seq FROM outbox_events
			WHERE merchant_id = $1 AND state = 'pending' AND due_ms <= $2
			ORDER BY due_ms, seq LIMIT $4
			FOR UPDATE SKIP LOCKED)
		UPDATE outbox_events o SET due_ms = $3, attempts = o.attempts + 1
		FROM due WHERE o.merchant_id = $1 AND o.event_id = due.event_id
		RETURNING o.event_id, o.attempts, o.notify_url, o.body, due.due_ms, due.seq`,
		merchant, ms(now), ms(now.Add(lease)), max)
	if err != nil {
		return nil, classify("claim events", err, true)
	}
	type claimed struct {
		d        store.Delivery
		due, seq int64
	}
	var cs []claimed
	for rows.Next() {
		var c claimed
		c.d.Merchant = merchant
		if err := rows.Scan(&c.d.ID, &c.d.Attempt, &c.d.NotifyURL, &c.d.Body, &c.due, &c.seq); err != nil {
			rows.Close()
			return nil, classify("claim events", err, true)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("claim events", err, true)
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].due != cs[j].due {
			return cs[i].due < cs[j].due
		}
		return cs[i].seq < cs[j].seq
	})
	out := make([]store.Delivery, len(cs))
	for i, c := range cs {
		out[i] = c.d
	}
	return out, nil
}

// AckEvent is store.Store.AckEvent: the event (pending or dead) is marked
// delivered. Its row stays, so the same event id is never enqueued again,
// until the archive policy removes it (PurgeAcked).
func (l *Ledger) AckEvent(ctx context.Context, merchant, eventID string) error {
	if merchant == "" {
		return store.ErrEmptyMerchant
	}
	_, err := l.exec(ctx, "ack event", `UPDATE outbox_events SET state = 'acked', acked_at = now(), dead_ms = NULL
		WHERE merchant_id = $1 AND event_id = $2 AND state <> 'acked'`, merchant, eventID)
	return err
}

// RetryEvent is store.Store.RetryEvent: only a pending event moves.
func (l *Ledger) RetryEvent(ctx context.Context, merchant, eventID string, at time.Time, lastErr string) error {
	if merchant == "" {
		return store.ErrEmptyMerchant
	}
	_, err := l.exec(ctx, "retry event", `UPDATE outbox_events SET due_ms = $3, last_error = $4
		WHERE merchant_id = $1 AND event_id = $2 AND state = 'pending'`, merchant, eventID, ms(at), lastErr)
	return err
}

// DeadLetter is store.Store.DeadLetter: only a pending event moves.
func (l *Ledger) DeadLetter(ctx context.Context, merchant, eventID string, now time.Time, lastErr string) error {
	if merchant == "" {
		return store.ErrEmptyMerchant
	}
	_, err := l.exec(ctx, "dead-letter event", `UPDATE outbox_events SET state = 'dead', dead_ms = $3, last_error = $4
		WHERE merchant_id = $1 AND event_id = $2 AND state = 'pending'`, merchant, eventID, ms(now), lastErr)
	return err
}

// DeadEvents is store.Store.DeadEvents: newest first, limit ≤ 0 means 100,
// at most 1000.
func (l *Ledger) DeadEvents(ctx context.Context, merchant string, limit int) ([]store.DeadEvent, error) {
	if merchant == "" {
		return nil, store.ErrEmptyMerchant
	}
	rows, err := l.pool.Query(ctx, `SELECT event_id, body, notify_url, attempts, last_error, dead_ms
		FROM outbox_events WHERE merchant_id = $1 AND state = 'dead'
		ORDER BY dead_ms DESC, event_id DESC LIMIT $2`, merchant, store.DeadEventsLimit(limit))
	if err != nil {
		return nil, classify("dead events", err, false)
	}
	defer rows.Close()
	var out []store.DeadEvent
	for rows.Next() {
		d := store.DeadEvent{OutboxEvent: store.OutboxEvent{Merchant: merchant}}
		var dead int64
		if err := rows.Scan(&d.ID, &d.Body, &d.NotifyURL, &d.Attempts, &d.LastError, &dead); err != nil {
			return nil, classify("dead events", err, false)
		}
		d.DeadAt = time.UnixMilli(dead).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("dead events", err, false)
	}
	return out, nil
}

// ReplayEvent is store.Store.ReplayEvent: a dead letter becomes pending,
// due at now, attempts reset; ErrNotFound if it is not dead.
func (l *Ledger) ReplayEvent(ctx context.Context, merchant, eventID string, now time.Time) error {
	if merchant == "" {
		return store.ErrEmptyMerchant
	}
	tag, err := l.exec(ctx, "replay event", `UPDATE outbox_events SET state = 'pending', attempts = 0, dead_ms = NULL, due_ms = $3
		WHERE merchant_id = $1 AND event_id = $2 AND state = 'dead'`, merchant, eventID, ms(now))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// OutboxStats counts merchant's pending (including claimed) and dead events.
func (l *Ledger) OutboxStats(ctx context.Context, merchant string) (pending, dead int64, err error) {
	if merchant == "" {
		return 0, 0, store.ErrEmptyMerchant
	}
	err = l.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox_events WHERE merchant_id = $1 AND state = 'pending'),
		(SELECT count(*) FROM outbox_events WHERE merchant_id = $1 AND state = 'dead')`, merchant).Scan(&pending, &dead)
	if err != nil {
		return 0, 0, classify("outbox stats", err, false)
	}
	return pending, dead, nil
}

// EnqueueEvent is store.Store.EnqueueEvent: ev due at now unless its id was
// enqueued before (false, nothing changed).
func (l *Ledger) EnqueueEvent(ctx context.Context, ev store.OutboxEvent, now time.Time) (bool, error) {
	if ev.Merchant == "" {
		return false, store.ErrEmptyMerchant
	}
	if err := store.CheckEvent(&ev, ev.Merchant); err != nil {
		return false, err
	}
	tag, err := l.exec(ctx, "enqueue event", `INSERT INTO outbox_events (merchant_id, event_id, due_ms, notify_url, body)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, event_id) DO NOTHING`,
		ev.Merchant, ev.ID, ms(now), ev.NotifyURL, ev.Body)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// PurgeAcked deletes up to max delivered events acknowledged before before
// (the archive policy for the outbox; paygate's Redis store keeps them 7
// days) and returns how many it deleted.
func (l *Ledger) PurgeAcked(ctx context.Context, before time.Time, max int) (int64, error) {
	tag, err := l.exec(ctx, "purge acked events", `DELETE FROM outbox_events WHERE (merchant_id, event_id) IN (
		SELECT merchant_id, event_id FROM outbox_events WHERE state = 'acked' AND acked_at < $1 LIMIT $2)`, before, max)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// ClaimSweep is store.Store.ClaimSweep: up to max of merchant's sweep
// entries due at or before now, made due again at now+lease, with their
// claim count (kept across Reschedule, dropped with the entry).
func (l *Ledger) ClaimSweep(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]store.SweepItem, error) {
	if claim, err := store.CheckClaim(merchant, lease, max); !claim {
		return nil, err
	}
	rows, err := l.pool.Query(ctx, `WITH due AS (
			SELECT kind, object_id, due_ms FROM sweep
			WHERE merchant_id = $1 AND due_ms <= $2
			ORDER BY due_ms, kind, object_id LIMIT $4
			FOR UPDATE SKIP LOCKED)
		UPDATE sweep s SET due_ms = $3, attempts = s.attempts + 1
		FROM due WHERE s.merchant_id = $1 AND s.kind = due.kind AND s.object_id = due.object_id
		RETURNING s.kind, s.object_id, s.attempts, due.due_ms`,
		merchant, ms(now), ms(now.Add(lease)), max)
	if err != nil {
		return nil, classify("claim sweep", err, true)
	}
	type claimed struct {
		it  store.SweepItem
		due int64
	}
	var cs []claimed
	for rows.Next() {
		var c claimed
		c.it.Merchant = merchant
		if err := rows.Scan(&c.it.Kind, &c.it.ID, &c.it.Attempt, &c.due); err != nil {
			rows.Close()
			return nil, classify("claim sweep", err, true)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("claim sweep", err, true)
	}
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.due != b.due {
			return a.due < b.due
		}
		if a.it.Kind != b.it.Kind {
			return a.it.Kind < b.it.Kind
		}
		return a.it.ID < b.it.ID
	})
	out := make([]store.SweepItem, len(cs))
	for i, c := range cs {
		out[i] = c.it
	}
	return out, nil
}

// Reschedule is store.Store.Reschedule: the sweep entry moves to at (created
// if needed); the zero at removes it.
func (l *Ledger) Reschedule(ctx context.Context, merchant, kind, id string, at time.Time) error {
	if merchant == "" {
		return store.ErrEmptyMerchant
	}
	if err := store.CheckSweepKind(kind); err != nil {
		return err
	}
	if at.IsZero() {
		_, err := l.exec(ctx, "reschedule", `DELETE FROM sweep WHERE merchant_id = $1 AND kind = $2 AND object_id = $3`, merchant, kind, id)
		return err
	}
	err := schedule(ctx, l.pool, merchant, kind, id, at)
	return classify("reschedule", err, true)
}
