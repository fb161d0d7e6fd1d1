package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The outbox of merchant M is a sorted set of event ids scored by the time
// (unix ms) each is next due; each event's body, notify URL, attempt count
// and last error live in a hash next to it. Claiming an event pushes its
// score to now+lease instead of removing it, so an event whose worker dies
// is due again when the lease runs out: nothing is lost and no per-worker
// pending list needs recovering. Dead letters are a second sorted set scored
// by the time they died. See docs/store.md.

// maxDeadEvents bounds one DeadEvents call.
const maxDeadEvents = 1000

// ClaimEvents atomically takes up to max of merchant's events that are due
// at or before now, makes them due again at now+lease (so a worker that dies
// leaves them to be re-claimed when the lease expires), and returns them with
// their attempt number (1 for the first). Another claim inside the lease does
// not return them. The body is the exact bytes enqueued.
func (s *Store) ClaimEvents(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]Delivery, error) {
	if claim, err := CheckClaim(merchant, lease, max); !claim {
		return nil, err
	}
	ob := s.k.outbox(merchant)
	res, err := s.run(ctx, "claim events", scClaim, []string{ob, ob},
		ms(now), ms(now.Add(lease)), strconv.Itoa(max), s.k.eventPrefix(merchant))
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		out = append(out, Delivery{
			OutboxEvent: OutboxEvent{ID: str(res[i]), Merchant: merchant, NotifyURL: str(res[i+2]), Body: []byte(str(res[i+3]))},
			Attempt:     int(num(res[i+1])),
		})
	}
	return out, nil
}

// AckEvent removes a delivered event from the outbox (and from the dead
// letters, should another instance have dead-lettered it meanwhile). Its
// body is kept 7 days, during which enqueuing the same id again is still a
// no-op. Acknowledging an event that is gone does nothing.
func (s *Store) AckEvent(ctx context.Context, merchant, eventID string) error {
	if merchant == "" {
		return errEmptyMerchant
	}
	res, err := s.run(ctx, "ack event", scAck,
		[]string{s.k.outbox(merchant), s.k.dead(merchant), s.k.event(merchant, eventID)},
		eventID, strconv.FormatInt(eventRetention.Milliseconds(), 10))
	if err != nil {
		return err
	}
	return okOrGone("ack event", res)
}

// RetryEvent makes a pending event due at at and records lastErr. It does
// nothing if the event is no longer in the outbox (another instance,
// claiming after this one's lease ran out, acknowledged or dead-lettered it).
func (s *Store) RetryEvent(ctx context.Context, merchant, eventID string, at time.Time, lastErr string) error {
	if merchant == "" {
		return errEmptyMerchant
	}
	res, err := s.run(ctx, "retry event", scRetry,
		[]string{s.k.outbox(merchant), s.k.event(merchant, eventID)}, ms(at), eventID, lastErr)
	if err != nil {
		return err
	}
	return okOrGone("retry event", res)
}

// DeadLetter moves an event from the outbox to the dead letters, recording
// lastErr and now. Like RetryEvent it does nothing if the event is no longer
// in the outbox, so a delivered event is never listed as dead.
func (s *Store) DeadLetter(ctx context.Context, merchant, eventID string, now time.Time, lastErr string) error {
	if merchant == "" {
		return errEmptyMerchant
	}
	res, err := s.run(ctx, "dead-letter event", scDeadLetter,
		[]string{s.k.outbox(merchant), s.k.dead(merchant), s.k.event(merchant, eventID)}, ms(now), eventID, lastErr)
	if err != nil {
		return err
	}
	return okOrGone("dead-letter event", res)
}

// DeadEvents lists up to limit of merchant's dead letters, newest first
// (limit ≤ 0 means 100; at most 1000).
func (s *Store) DeadEvents(ctx context.Context, merchant string, limit int) ([]DeadEvent, error) {
	if merchant == "" {
		return nil, errEmptyMerchant
	}
	limit = DeadEventsLimit(limit)
	res, err := s.run(ctx, "dead events", scDeadEvents, []string{s.k.dead(merchant)},
		strconv.Itoa(limit-1), s.k.eventPrefix(merchant))
	if err != nil {
		return nil, err
	}
	out := make([]DeadEvent, 0, len(res)/6)
	for i := 0; i+5 < len(res); i += 6 {
		d := DeadEvent{
			OutboxEvent: OutboxEvent{ID: str(res[i]), Merchant: merchant, Body: []byte(str(res[i+1])), NotifyURL: str(res[i+2])},
			Attempts:    int(num(res[i+3])),
			LastError:   str(res[i+4]),
		}
		if t := num(res[i+5]); t != 0 {
			d.DeadAt = time.UnixMilli(t).UTC()
		}
		out = append(out, d)
	}
	return out, nil
}

// ReplayEvent moves a dead letter back to the outbox, due at now, with its
// attempt count reset. ErrNotFound if the event is not dead.
func (s *Store) ReplayEvent(ctx context.Context, merchant, eventID string, now time.Time) error {
	if merchant == "" {
		return errEmptyMerchant
	}
	res, err := s.run(ctx, "replay event", scReplay,
		[]string{s.k.dead(merchant), s.k.outbox(merchant), s.k.event(merchant, eventID)}, ms(now), eventID)
	if err != nil {
		return err
	}
	return okOrNotFound("replay event", res)
}

// OutboxStats counts merchant's pending (including claimed) and dead events.
func (s *Store) OutboxStats(ctx context.Context, merchant string) (pending, dead int64, err error) {
	if merchant == "" {
		return 0, 0, errEmptyMerchant
	}
	pipe := s.rdb.Pipeline()
	p := pipe.ZCard(ctx, s.k.outbox(merchant))
	d := pipe.ZCard(ctx, s.k.dead(merchant))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, wrap("outbox stats", err)
	}
	return p.Val(), d.Val(), nil
}

// EnqueueEvent adds ev to its merchant's outbox, due at now, unless an event
// with its id was enqueued before (then it returns false and changes
// nothing). Use Change.Event to enqueue atomically with a state change.
func (s *Store) EnqueueEvent(ctx context.Context, ev OutboxEvent, now time.Time) (bool, error) {
	if ev.Merchant == "" {
		return false, errEmptyMerchant
	}
	if ev.ID == "" {
		return false, errors.New("store: event without id")
	}
	res, err := s.run(ctx, "enqueue event", scEnqueue,
		[]string{s.k.outbox(ev.Merchant), s.k.event(ev.Merchant, ev.ID)}, ms(now), ev.ID, ev.Body, ev.NotifyURL)
	if err != nil {
		return false, err
	}
	switch o := outcome(res); o {
	case "ok":
		return true, nil
	case "exists":
		return false, nil
	default:
		return false, fmt.Errorf("store: enqueue event: unexpected outcome %q", o)
	}
}

// okOrGone: an event that is no longer there is not an error for the
// delivery side (see RetryEvent).
func okOrGone(op string, res []any) error {
	switch o := outcome(res); o {
	case "ok", "gone":
		return nil
	default:
		return fmt.Errorf("store: %s: unexpected outcome %q", op, o)
	}
}

func okOrNotFound(op string, res []any) error {
	switch o := outcome(res); o {
	case "ok":
		return nil
	case "notfound":
		return ErrNotFound
	default:
		return fmt.Errorf("store: %s: unexpected outcome %q", op, o)
	}
}
