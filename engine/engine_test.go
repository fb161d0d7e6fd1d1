package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

func code(err error) engine.Code {
	var e *engine.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// A channel that provably did not create the order (unavailable) is left
// for the next one; the payment records both attempts and the observer one
// failover.
func TestCreateFailsOverOnlyWhenNotCreated(t *testing.T) {
	v := newEnv(t, nil)
	v.a.create = func() (*adapters.CreateResult, error) { return nil, unavailable("a") }
	res, err := v.e.CreatePayment(context.Background(), createReq("fo-1"))
	if err != nil {
		t.Fatal(err)
	}
	rec := res.Payment
	if rec.Channel != "b" || rec.Status != payment.StatusPending || rec.Action == nil || res.Replayed {
		t.Fatalf("payment: %+v", rec)
	}
	if len(rec.Attempts) != 2 || rec.Attempts[0].Outcome != payment.OutcomeNotCreated || rec.Attempts[1].Outcome != payment.OutcomeCreated {
		t.Fatalf("attempts: %+v", rec.Attempts)
	}
	if v.a.count("create") != 1 || v.b.count("create") != 1 {
		t.Fatalf("creates a=%d b=%d", v.a.count("create"), v.b.count("create"))
	}
	stored, err := v.st.GetPayment(context.Background(), nil, "m1", rec.PaymentID)
	if err != nil || stored.Channel != "b" || len(stored.Attempts) != 2 {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	if f, _, _ := v.obs.snapshot(); !slices.Equal(f, []string{"a>b"}) {
		t.Fatalf("failovers observed: %v", f)
	}
}

// An ambiguous outcome (the order may exist at a) never moves on: the
// payment stays pending on a, b is never asked, and the answer says so.
func TestCreateAmbiguousStaysPending(t *testing.T) {
	v := newEnv(t, nil)
	v.a.create = func() (*adapters.CreateResult, error) { return nil, ambiguous("a") }
	res, err := v.e.CreatePayment(context.Background(), createReq("amb-1"))
	if code(err) != engine.CodeChannelError {
		t.Fatalf("err = %v", err)
	}
	if v.b.count("create") != 0 {
		t.Fatal("an ambiguous create failed over to b")
	}
	stored, err := v.st.GetPayment(context.Background(), nil, "m1", res.Payment.PaymentID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != payment.StatusPending || stored.Channel != "a" || len(stored.Attempts) != 1 || stored.Attempts[0].Outcome != payment.OutcomeAmbiguous {
		t.Fatalf("stored: %+v", stored)
	}
	if f, fin, _ := v.obs.snapshot(); len(f) != 0 || len(fin) != 0 {
		t.Fatalf("observed failovers %v, finished %v", f, fin)
	}
	// The same request again answers the pending payment and sends nothing.
	again, err := v.e.CreatePayment(context.Background(), createReq("amb-1"))
	if err != nil || !again.Replayed || again.Payment.PaymentID != stored.PaymentID {
		t.Fatalf("replay: %+v %v", again, err)
	}
	if v.a.count("create") != 1 {
		t.Fatalf("creates at a: %d", v.a.count("create"))
	}
}

// A channel that refuses the payment fails it: no failover (it answered),
// one terminal transition observed, one event for the merchant.
func TestCreateDeclinedFails(t *testing.T) {
	v := newEnv(t, nil)
	v.a.create = func() (*adapters.CreateResult, error) {
		return nil, &adapters.Error{Channel: "a", Op: "create", Kind: adapters.KindDeclined, Code: "RULE_LIMIT"}
	}
	res, err := v.e.CreatePayment(context.Background(), createReq("dec-1"))
	if code(err) != engine.CodeChannelError {
		t.Fatalf("err = %v", err)
	}
	if res.Payment.Status != payment.StatusFailed || res.Payment.Failure == nil || res.Payment.Failure.Code != "RULE_LIMIT" {
		t.Fatalf("payment: %+v", res.Payment)
	}
	if v.b.count("create") != 0 {
		t.Fatal("a declined create failed over")
	}
	if _, fin, _ := v.obs.snapshot(); !slices.Equal(fin, []string{"a:failed"}) {
		t.Fatalf("finished observed: %v", fin)
	}
	if n := outbox(t, v.st, "m1"); n != 1 {
		t.Fatalf("events: %d", n)
	}
}

// A refund goes to the channel that took the payment, whichever channel
// routing would pick now.
func TestRefundGoesToPaymentsChannel(t *testing.T) {
	v := newEnv(t, nil)
	ctx := context.Background()
	v.a.create = func() (*adapters.CreateResult, error) { return nil, unavailable("a") }
	res, err := v.e.CreatePayment(ctx, createReq("rf-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.ApplyNotification(ctx, "b", paid(res.Payment)); err != nil {
		t.Fatal(err)
	}
	v.a.create = nil // a is healthy again: routing would now pick it
	rr, err := v.e.CreateRefund(ctx, &engine.RefundRequest{Merchant: "m1", Nonce: nonce("m1"), PaymentID: res.Payment.PaymentID, OutRefundNo: "r-1", Amount: 500})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Refund.Channel != "b" || v.b.count("refund") != 1 || v.a.count("refund") != 0 {
		t.Fatalf("refund channel %s, refunds a=%d b=%d", rr.Refund.Channel, v.a.count("refund"), v.b.count("refund"))
	}
	if req := v.b.refunds[0]; req.OrderNo != res.Payment.ChannelOrderNo || req.Amount != 500 || req.Total != 1999 {
		t.Fatalf("refund request: %+v", req)
	}
	// The same out_refund_no again is a replay; sending nothing more.
	again, err := v.e.CreateRefund(ctx, &engine.RefundRequest{Merchant: "m1", Nonce: nonce("m1"), PaymentID: res.Payment.PaymentID, OutRefundNo: "r-1", Amount: 500})
	if err != nil || !again.Replayed || again.Refund.RefundID != rr.Refund.RefundID || v.b.count("refund") != 1 {
		t.Fatalf("replay: %+v %v (refunds at b: %d)", again, err, v.b.count("refund"))
	}
	// A pending payment cannot be refunded.
	res2, err := v.e.CreatePayment(ctx, createReq("rf-2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.CreateRefund(ctx, &engine.RefundRequest{Merchant: "m1", Nonce: nonce("m1"), PaymentID: res2.Payment.PaymentID, OutRefundNo: "r-2", Amount: 1}); code(err) != engine.CodeInvalidState {
		t.Fatalf("refund of a pending payment: %v", err)
	}
}

// conflicting is a store on which another writer changes a payment just
// before each of the engine's next n updates of it, so that the engine's
// compare-and-set loses and must re-read and re-apply.
type conflicting struct {
	*store.Store
	n      int
	change func(r *payment.Record)
	lost   int
}

func (c *conflicting) UpdatePayment(ctx context.Context, rec *payment.Record, ch store.Change) error {
	if c.n > 0 {
		c.n--
		other, err := c.Store.GetPayment(ctx, nil, rec.MerchantID, rec.PaymentID)
		if err != nil {
			return err
		}
		c.change(other)
		if err := c.Store.UpdatePayment(ctx, other, store.Change{}); err != nil {
			return err
		}
	}
	err := c.Store.UpdatePayment(ctx, rec, ch)
	if errors.Is(err, store.ErrConflict) {
		c.lost++
	}
	return err
}

// A state change that loses its compare-and-set is applied again to the
// fresh copy: both writers' changes survive, the event is written once.
func TestStateChangeRetriesOnConflict(t *testing.T) {
	var cs *conflicting
	v := newEnv(t, func(st *store.Store) engine.Store {
		cs = &conflicting{Store: st, change: func(r *payment.Record) { r.CloseRequested = true }}
		return cs
	})
	ctx := context.Background()
	res, err := v.e.CreatePayment(ctx, createReq("cas-1"))
	if err != nil {
		t.Fatal(err)
	}
	cs.n = 2
	if _, err := v.e.ApplyNotification(ctx, "a", paid(res.Payment)); err != nil {
		t.Fatal(err)
	}
	if cs.lost != 2 {
		t.Fatalf("conflicts lost by the engine: %d, want 2", cs.lost)
	}
	got, err := v.st.GetPayment(ctx, nil, "m1", res.Payment.PaymentID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != payment.StatusSucceeded || !got.CloseRequested || got.ChannelTradeNo != "T-"+got.PaymentID {
		t.Fatalf("after the retried change: %+v", got)
	}
	if n := outbox(t, v.st, "m1"); n != 1 {
		t.Fatalf("events: %d, want 1", n)
	}
	if _, fin, _ := v.obs.snapshot(); !slices.Equal(fin, []string{"a:succeeded"}) {
		t.Fatalf("finished observed: %v", fin)
	}

	// A change that keeps losing gives up instead of looping, and stores
	// nothing of its own.
	res2, err := v.e.CreatePayment(ctx, createReq("cas-2"))
	if err != nil {
		t.Fatal(err)
	}
	cs.n = 1000
	if _, err := v.e.ApplyNotification(ctx, "a", paid(res2.Payment)); err == nil {
		t.Fatal("a change that never wins its compare-and-set succeeded")
	}
	cs.n = 0
	if got, _ := v.st.GetPayment(ctx, nil, "m1", res2.Payment.PaymentID); got.Status != payment.StatusPending {
		t.Fatalf("status after giving up: %s", got.Status)
	}
}

// A terminal transition is observed once however often the fact arrives,
// and again only when the status really changes (paid after closed: the
// channel wins).
func TestPaymentFinishedOncePerTransition(t *testing.T) {
	v := newEnv(t, nil)
	ctx := context.Background()
	res, err := v.e.CreatePayment(ctx, createReq("fin-1"))
	if err != nil {
		t.Fatal(err)
	}
	closed, err := v.e.ClosePayment(ctx, nonce("m1"), "m1", res.Payment.PaymentID)
	if err != nil || closed.Status != payment.StatusClosed {
		t.Fatalf("close: %+v %v", closed, err)
	}
	for range 3 {
		if _, err := v.e.ApplyNotification(ctx, "a", paid(res.Payment)); err != nil {
			t.Fatal(err)
		}
	}
	if _, fin, _ := v.obs.snapshot(); !slices.Equal(fin, []string{"a:closed", "a:succeeded"}) {
		t.Fatalf("finished observed: %v", fin)
	}
	if n := outbox(t, v.st, "m1"); n != 2 {
		t.Fatalf("events: %d, want 2 (closed, succeeded)", n)
	}
	if v.announced() != 2 {
		t.Fatalf("events announced: %d", v.announced())
	}
}

// A notification from a channel the payment was never sent to changes
// nothing.
func TestNotificationFromAnotherChannelIsRefused(t *testing.T) {
	v := newEnv(t, nil)
	ctx := context.Background()
	res, err := v.e.CreatePayment(ctx, createReq("foreign-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.ApplyNotification(ctx, "b", paid(res.Payment)); !errors.Is(err, engine.ErrUnknownOrder) {
		t.Fatalf("err = %v", err)
	}
	if got, _ := v.st.GetPayment(ctx, nil, "m1", res.Payment.PaymentID); got.Status != payment.StatusPending {
		t.Fatalf("status: %s", got.Status)
	}
}

// The gate runs before anything is stored or sent: a refused create
// stores nothing, calls no channel, and still uses up its nonce.
func TestGateRefusesBeforeAnything(t *testing.T) {
	refusal := &engine.Error{Code: "risk_rejected", Message: "refused"}
	var seen []string
	v := newEnv(t, nil, engine.WithGate(func(_ context.Context, req *engine.CreateRequest) error {
		seen = append(seen, req.OutTradeNo)
		if req.Amount > 100000 {
			return refusal
		}
		return nil
	}))
	ctx := context.Background()
	big := createReq("gate-1")
	big.Amount = 200000
	if _, err := v.e.CreatePayment(ctx, big); !errors.Is(err, refusal) {
		t.Fatalf("err = %v", err)
	}
	if v.a.count("create")+v.b.count("create") != 0 {
		t.Fatal("a refused create reached a channel")
	}
	if _, err := v.st.GetPaymentByOutTradeNo(ctx, nil, "m1", "gate-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused create was stored: %v", err)
	}
	if err := v.st.ClaimNonce(ctx, *big.Nonce); !errors.Is(err, store.ErrNonceReplayed) {
		t.Fatalf("the refused request's nonce is still free: %v", err)
	}
	if _, err := v.e.CreatePayment(ctx, createReq("gate-2")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"gate-1", "gate-2"}) {
		t.Fatalf("gate saw %v", seen)
	}
}

// The reconciler resolves an ambiguous create by asking the payment's
// channel, never another one, once the first reconcile delay has passed.
func TestReconcilerResolvesAmbiguousByQuery(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	v := newEnv(t, nil, engine.WithClock(now))
	ctx := context.Background()
	v.a.create = func() (*adapters.CreateResult, error) { return nil, ambiguous("a") }
	res, err := v.e.CreatePayment(ctx, createReq("rec-1"))
	if code(err) != engine.CodeChannelError {
		t.Fatalf("err = %v", err)
	}
	v.a.query = func() (*adapters.OrderState, error) {
		return &adapters.OrderState{Status: adapters.OrderPaid, ChannelTradeNo: "T-q", Amount: 1999, Currency: "CNY"}, nil
	}
	rc := engine.NewReconciler(v.e, func() []string { return []string{"m1"} }, time.Second, 10*time.Second)
	rc.SweepOnce(ctx) // not due yet
	if v.a.count("query") != 0 {
		t.Fatal("queried before the first reconcile delay")
	}
	offset.Store(int64(31 * time.Second))
	rc.SweepOnce(ctx)
	got, err := v.st.GetPayment(ctx, nil, "m1", res.Payment.PaymentID)
	if err != nil || got.Status != payment.StatusSucceeded || got.ChannelTradeNo != "T-q" {
		t.Fatalf("after the sweep: %+v %v", got, err)
	}
	if v.a.count("query") != 1 || v.b.count("query")+v.b.count("create") != 0 || v.a.count("create") != 1 {
		t.Fatalf("calls a=%v b=%v", v.a.calls, v.b.calls)
	}
	if _, fin, resolved := v.obs.snapshot(); !slices.Equal(fin, []string{"a:succeeded"}) || !slices.Equal(resolved, []string{"payment:succeeded"}) {
		t.Fatalf("observed finished %v, resolved %v", fin, resolved)
	}
}

// A failover whose compare-and-set loses to a concurrent change (a callback,
// the reconciler) keeps the first attempt's "not created" outcome on the
// fresh copy; else the record would show an attempt without an outcome.
func TestFailoverKeepsOutcomeOnConflict(t *testing.T) {
	var cs *conflicting
	v := newEnv(t, func(st *store.Store) engine.Store {
		cs = &conflicting{Store: st, change: func(r *payment.Record) { r.CloseRequested = true }}
		return cs
	})
	v.a.create = func() (*adapters.CreateResult, error) {
		cs.n = 1 // the failover's save loses once
		return nil, unavailable("a")
	}
	res, err := v.e.CreatePayment(context.Background(), createReq("fo-cas"))
	if err != nil {
		t.Fatal(err)
	}
	if cs.lost != 1 {
		t.Fatalf("conflicts lost: %d, want 1", cs.lost)
	}
	got, err := v.st.GetPayment(context.Background(), nil, "m1", res.Payment.PaymentID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Channel != "b" || !got.CloseRequested || len(got.Attempts) != 2 ||
		got.Attempts[0].Outcome != payment.OutcomeNotCreated || got.Attempts[1].Outcome != payment.OutcomeCreated {
		t.Fatalf("stored after the retried failover: channel %s close %v attempts %+v", got.Channel, got.CloseRequested, got.Attempts)
	}
}
