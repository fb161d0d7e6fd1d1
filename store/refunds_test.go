package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
)

func testRefunds(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)

	pending := mustCreate(t, e.s, newPayment(m, "order-pending", 1000))
	if _, _, err := e.s.CreateRefund(ctx, nil, newRefund(pending, "rf-0", 100), time.Time{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("refund of a pending payment: %v, want ErrInvalidState", err)
	}
	ghost := newPayment(m, "order-ghost", 1000)
	if _, _, err := e.s.CreateRefund(ctx, nil, newRefund(ghost, "rf-ghost", 100), time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refund of a missing payment: %v, want ErrNotFound", err)
	}

	p := mustSucceededPayment(t, e.s, m, 1000)
	r1 := newRefund(p, "rf-1", 600)
	sweepAt := t0.Add(30 * time.Second)
	got, created, err := e.s.CreateRefund(ctx, newNonce(m), r1, sweepAt)
	if err != nil || !created || got.Version != 1 {
		t.Fatalf("create refund: %+v created=%v err=%v", got, created, err)
	}
	// 600 is reserved: 500 more would exceed 1000 while r1 is pending.
	if _, _, err := e.s.CreateRefund(ctx, nil, newRefund(p, "rf-2", 500), time.Time{}); !errors.Is(err, ErrExceedsPayment) {
		t.Fatalf("over-refund: %v, want ErrExceedsPayment", err)
	}
	// The same out_refund_no again: the stored refund.
	stored, created, err := e.s.CreateRefund(ctx, nil, newRefund(p, "rf-1", 1), time.Time{})
	if err != nil || created || stored.RefundID != r1.RefundID || stored.Amount != 600 {
		t.Fatalf("repeated out_refund_no: %+v created=%v err=%v", stored, created, err)
	}
	byID, err := e.s.GetRefund(ctx, nil, m, r1.RefundID)
	if err != nil || !reflect.DeepEqual(byID, got) {
		t.Fatalf("get refund: %+v, %v\nwant %+v", byID, err, got)
	}
	if _, err := e.s.GetRefund(ctx, nil, m, payment.NewRefundID(p.PaymentID)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing refund: %v", err)
	}
	items, _ := e.s.ClaimSweep(ctx, m, sweepAt, time.Minute, 10)
	if len(items) != 1 || items[0].Kind != SweepRefund || items[0].ID != r1.RefundID {
		t.Fatalf("refund sweep = %+v", items)
	}

	// pending → succeeded: 600 refunded, nothing reserved.
	r1.Status = payment.RefundSucceeded
	r1.ChannelRefundNo = "50300001"
	if err := e.s.UpdateRefund(ctx, r1, Change{}); err != nil || r1.Version != 2 {
		t.Fatalf("refund succeeded: %v (version %d)", err, r1.Version)
	}
	assertRefunded(t, e.s, p, 600, 0)
	// Updating the succeeded refund again (same status) moves no money.
	if err := e.s.UpdateRefund(ctx, r1, Change{}); err != nil {
		t.Fatal(err)
	}
	assertRefunded(t, e.s, p, 600, 0)
	// A final refund cannot change status.
	r1f := *r1
	r1f.Status = payment.RefundFailed
	if err := e.s.UpdateRefund(ctx, &r1f, Change{}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("succeeded → failed: %v, want ErrInvalidState", err)
	}
	// CAS on refunds.
	stale := *r1
	stale.Version = 1
	if err := e.s.UpdateRefund(ctx, &stale, Change{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale refund update: %v, want ErrConflict", err)
	}

	// 400 is what is left; a refund that fails gives it back.
	r2 := newRefund(p, "rf-3", 400)
	if _, created, err := e.s.CreateRefund(ctx, nil, r2, time.Time{}); err != nil || !created {
		t.Fatalf("refund of the rest: %v", err)
	}
	assertRefunded(t, e.s, p, 600, 400)
	if _, _, err := e.s.CreateRefund(ctx, nil, newRefund(p, "rf-4", 1), time.Time{}); !errors.Is(err, ErrExceedsPayment) {
		t.Fatalf("refund past the amount: %v", err)
	}
	r2.Status = payment.RefundFailed
	if err := e.s.UpdateRefund(ctx, r2, Change{}); err != nil {
		t.Fatal(err)
	}
	assertRefunded(t, e.s, p, 600, 0)
	r3 := newRefund(p, "rf-5", 400)
	if _, created, err := e.s.CreateRefund(ctx, nil, r3, time.Time{}); err != nil || !created {
		t.Fatalf("refund after a failed one: %v", err)
	}

	// A refund update naming another payment is refused.
	other := mustSucceededPayment(t, e.s, m, 1000)
	moved := *r3
	moved.PaymentID = other.PaymentID
	if err := e.s.UpdateRefund(ctx, &moved, Change{}); err == nil || errors.Is(err, ErrConflict) {
		t.Fatalf("refund moved to another payment: %v", err)
	}
	assertRefunded(t, e.s, other, 0, 0)
}

// assertRefunded checks the payment's refund counters: refunded through
// the record, reserved through the hash.
func assertRefunded(t *testing.T, s *Store, p *payment.Record, refunded, reserved int64) {
	t.Helper()
	got, err := s.GetPayment(context.Background(), nil, p.MerchantID, p.PaymentID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.rdb.HGet(context.Background(), s.k.payment(p.MerchantID, p.PaymentID), "reserved").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if got.RefundedAmount != refunded || res != reserved {
		t.Fatalf("refunded %d reserved %d, want %d and %d", got.RefundedAmount, res, refunded, reserved)
	}
}

func testRefundsConcurrent(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	const amount, each, workers = 1000, 70, 20
	p := mustSucceededPayment(t, e.s, m, amount)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		succeeded int64
		exceeded  int
	)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rf := newRefund(p, fmt.Sprintf("rf-%d", i), each)
			_, created, err := e.s.CreateRefund(ctx, newNonce(m), rf, time.Time{})
			if errors.Is(err, ErrExceedsPayment) {
				mu.Lock()
				exceeded++
				mu.Unlock()
				return
			}
			if err != nil || !created {
				t.Errorf("create refund %d: created=%v err=%v", i, created, err)
				return
			}
			// Every fourth refund fails at the channel and gives its amount back.
			rf.Status = payment.RefundSucceeded
			if i%4 == 3 {
				rf.Status = payment.RefundFailed
			}
			if err := e.s.UpdateRefund(ctx, rf, Change{}); err != nil {
				t.Errorf("update refund %d: %v", i, err)
				return
			}
			if rf.Status == payment.RefundSucceeded {
				mu.Lock()
				succeeded += each
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if succeeded > amount {
		t.Fatalf("refunded %d of a %d payment", succeeded, amount)
	}
	if exceeded == 0 {
		t.Fatalf("20×70 > 1000 but no refund was refused")
	}
	assertRefunded(t, e.s, p, succeeded, 0)
}

func testRefundNonceAndChange(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	p := mustSucceededPayment(t, e.s, m, 1000)
	n := newNonce(m)
	if err := e.s.ClaimNonce(ctx, *n); err != nil {
		t.Fatal(err)
	}
	rf := newRefund(p, "rf-n", 100)
	if _, _, err := e.s.CreateRefund(ctx, n, rf, t0); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("create refund with a used nonce: %v", err)
	}
	if _, err := e.s.GetRefund(ctx, nil, m, rf.RefundID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refund stored despite the replay: %v", err)
	}
	assertRefunded(t, e.s, p, 0, 0)

	if _, _, err := e.s.CreateRefund(ctx, nil, rf, t0); err != nil {
		t.Fatal(err)
	}
	gn := newNonce(m)
	if _, err := e.s.GetRefund(ctx, gn, m, rf.RefundID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetRefund(ctx, gn, m, rf.RefundID); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("get refund with a used nonce: %v", err)
	}

	id := payment.EventID(rf.RefundID, payment.EventRefundSucceeded)
	ev := &OutboxEvent{ID: id, Merchant: m, NotifyURL: p.NotifyURL, Body: []byte(`{"id":"` + id + `"}`)}
	rf.Status = payment.RefundSucceeded
	if err := e.s.UpdateRefund(ctx, rf, Change{Event: ev}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.UpdateRefund(ctx, rf, Change{Event: ev}); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.ClaimEvents(ctx, m, t0, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != id || string(got[0].Body) != string(ev.Body) {
		t.Fatalf("refund events = %+v, %v", got, err)
	}
	if items, _ := e.s.ClaimSweep(ctx, m, t0.Add(time.Hour), time.Minute, 10); len(items) != 0 {
		t.Fatalf("final refund still scheduled: %+v", items)
	}
	assertRefunded(t, e.s, p, 100, 0)
}
