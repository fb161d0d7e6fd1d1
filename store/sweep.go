package store

import (
	"context"
	"strconv"
	"time"
)

// The sweep schedule of merchant M is a sorted set of "payment:<id>" and
// "refund:<id>" scored by when the reconciliation sweeper should next query
// the channel about them, with the same lease pattern as the outbox; a hash
// next to it counts the claims of each entry.

// ClaimSweep atomically takes up to max of merchant's sweep entries due at or
// before now, makes them due again at now+lease (a sweeper that dies leaves
// them to the next one) and returns them with their claim count. The claim
// count survives Reschedule and is dropped with the entry.
func (s *Store) ClaimSweep(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]SweepItem, error) {
	if claim, err := CheckClaim(merchant, lease, max); !claim {
		return nil, err
	}
	res, err := s.run(ctx, "claim sweep", scClaim, []string{s.k.sweep(merchant), s.k.sweepAttempts(merchant)},
		ms(now), ms(now.Add(lease)), strconv.Itoa(max), "")
	if err != nil {
		return nil, err
	}
	out := make([]SweepItem, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		kind, id := parseSweepMember(str(res[i]))
		out = append(out, SweepItem{Merchant: merchant, Kind: kind, ID: id, Attempt: int(num(res[i+1]))})
	}
	return out, nil
}

// Reschedule moves the sweep entry of a payment or refund (kind SweepPayment
// or SweepRefund) to at, creating it if needed; the zero at removes it.
func (s *Store) Reschedule(ctx context.Context, merchant, kind, id string, at time.Time) error {
	if merchant == "" {
		return errEmptyMerchant
	}
	if err := CheckSweepKind(kind); err != nil {
		return err
	}
	member := sweepMember(kind, id)
	if at.IsZero() {
		_, err := s.run(ctx, "reschedule", scUnschedule, []string{s.k.sweep(merchant), s.k.sweepAttempts(merchant)}, member)
		return err
	}
	return wrap("reschedule", s.rdb.ZAdd(ctx, s.k.sweep(merchant), redisZ(at, member)).Err())
}
