// Package conformance is a test suite for anything that keeps paygate's
// records: the Redis store (store.Store, also the embedded sandbox ledger)
// and the PostgreSQL ledger (ledger.Ledger). Both must answer the same calls
// with the same results and the same errors; the suite checks what their
// semantics share, including under concurrency.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// Ledger is the method set the suite exercises: the records and the
// notification outbox.
type Ledger interface {
	store.Records
	EnqueueEvent(ctx context.Context, ev store.OutboxEvent, now time.Time) (bool, error)
	ClaimEvents(ctx context.Context, merchant string, now time.Time, lease time.Duration, max int) ([]store.Delivery, error)
	AckEvent(ctx context.Context, merchant, eventID string) error
	RetryEvent(ctx context.Context, merchant, eventID string, at time.Time, lastErr string) error
	DeadLetter(ctx context.Context, merchant, eventID string, now time.Time, lastErr string) error
	DeadEvents(ctx context.Context, merchant string, limit int) ([]store.DeadEvent, error)
	ReplayEvent(ctx context.Context, merchant, eventID string, now time.Time) error
	OutboxStats(ctx context.Context, merchant string) (pending, dead int64, err error)
}

// T0 is the suite's clock: every time it passes is derived from it, so no
// test waits for real time. Millisecond-aligned, as the Redis store keeps
// schedule times in milliseconds.
var T0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

const merchant = "m1"

// Run runs every case on a fresh ledger from open.
func Run(t *testing.T, open func(t *testing.T) Ledger) {
	cases := []struct {
		name string
		fn   func(t *testing.T, l Ledger)
	}{
		{"CreateGet", testCreateGet},
		{"NonceReplayChangesNothing", testNonceReplay},
		{"ConcurrentIdenticalCreates", testConcurrentCreates},
		{"CompareAndSet", testCAS},
		{"ConcurrentCAS", testConcurrentCAS},
		{"EventOncePerID", testEventOnce},
		{"OutboxLeaseAckRetryDeadReplay", testOutboxLifecycle},
		{"OutboxOrder", testOutboxOrder},
		{"ConcurrentClaimsAreDisjoint", testConcurrentClaims},
		{"Refunds", testRefunds},
		{"ConcurrentRefunds", testConcurrentRefunds},
		{"Sweep", testSweep},
		{"ListPayments", testListPayments},
		{"ListRefunds", testListRefunds},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var nonceSeq atomic.Int64

// Nonce returns a fresh nonce of m.
func Nonce(m string) *store.Nonce {
	return &store.Nonce{Merchant: m, Value: fmt.Sprintf("conf-%016d", nonceSeq.Add(1)), TTL: 10 * time.Minute}
}

// NewPayment is a pending payment of m created at at.
func NewPayment(m, outTradeNo string, amount int64, at time.Time) *payment.Record {
	id := payment.NewPaymentID()
	return &payment.Record{
		Payment: payment.Payment{
			PaymentID: id, MerchantID: m, OutTradeNo: outTradeNo, Status: payment.StatusPending,
			Amount: amount, Currency: "CNY", Method: payment.MethodQR, Channel: "wechat-main",
			Subject: "Coffee", Metadata: map[string]string{"cart": "42"},
			CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(15 * time.Minute),
		},
		NotifyURL:      "https://merchant.example/notify",
		ChannelOrderNo: payment.OrderNo(id),
		Attempts:       []payment.Attempt{{Channel: "wechat-main", Outcome: payment.OutcomeCreated, LatencyMS: 12, At: at}},
	}
}

// NewRefund is a pending refund of p created at at.
func NewRefund(p *payment.Record, outRefundNo string, amount int64, at time.Time) *payment.RefundRecord {
	id := payment.NewRefundID(p.PaymentID)
	return &payment.RefundRecord{
		Refund: payment.Refund{
			RefundID: id, PaymentID: p.PaymentID, OutRefundNo: outRefundNo, Amount: amount,
			Status: payment.RefundPending, Reason: "damaged", CreatedAt: at, UpdatedAt: at,
		},
		MerchantID: p.MerchantID, Channel: p.Channel, NotifyURL: p.NotifyURL,
		ChannelOrderNo: p.ChannelOrderNo, RefundOrderNo: payment.RefundOrderNo(id),
	}
}

func mustCreate(t *testing.T, l Ledger, rec *payment.Record) *payment.Record {
	t.Helper()
	got, created, err := l.CreatePayment(context.Background(), Nonce(rec.MerchantID), rec, time.Time{})
	if err != nil || !created {
		t.Fatalf("create %s: created=%v err=%v", rec.OutTradeNo, created, err)
	}
	return got
}

// succeeded creates a payment and moves it to succeeded.
func succeeded(t *testing.T, l Ledger, otn string, amount int64) *payment.Record {
	t.Helper()
	p := mustCreate(t, l, NewPayment(merchant, otn, amount, T0))
	p.Status = payment.StatusSucceeded
	if err := l.UpdatePayment(context.Background(), p, store.Change{}); err != nil {
		t.Fatalf("succeed %s: %v", otn, err)
	}
	return p
}

func event(id, body string) *store.OutboxEvent {
	return &store.OutboxEvent{ID: id, Merchant: merchant, NotifyURL: "https://merchant.example/notify", Body: []byte(body)}
}

func testCreateGet(t *testing.T, l Ledger) {
	ctx := context.Background()
	rec := NewPayment(merchant, "order-1", 1999, T0)
	got, created, err := l.CreatePayment(ctx, Nonce(merchant), rec, T0.Add(time.Minute))
	if err != nil || !created || got.Version != 1 {
		t.Fatalf("create: %+v created=%v err=%v", got, created, err)
	}
	for name, get := range map[string]func() (*payment.Record, error){
		"by id":  func() (*payment.Record, error) { return l.GetPayment(ctx, Nonce(merchant), merchant, rec.PaymentID) },
		"by otn": func() (*payment.Record, error) { return l.GetPaymentByOutTradeNo(ctx, nil, merchant, "order-1") },
	} {
		p, err := get()
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		if p.PaymentID != rec.PaymentID || p.Version != 1 || p.Amount != 1999 || p.Subject != "Coffee" ||
			p.Metadata["cart"] != "42" || len(p.Attempts) != 1 || p.Attempts[0].LatencyMS != 12 ||
			!p.CreatedAt.Equal(T0) || p.ChannelOrderNo != rec.ChannelOrderNo || p.NotifyURL != rec.NotifyURL {
			t.Fatalf("get %s: %+v", name, p)
		}
	}
	if m, err := l.PaymentMerchant(ctx, rec.PaymentID); err != nil || m != merchant {
		t.Fatalf("payment merchant: %q %v", m, err)
	}
	if _, err := l.PaymentMerchant(ctx, payment.NewPaymentID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("payment merchant of unknown: %v", err)
	}
	// Another merchant sees nothing.
	if _, err := l.GetPayment(ctx, nil, "m2", rec.PaymentID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other merchant's get: %v", err)
	}
	if _, err := l.GetPaymentByOutTradeNo(ctx, nil, "m2", "order-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other merchant's get by otn: %v", err)
	}
	// The same out_trade_no again: the stored payment, nothing created.
	again := NewPayment(merchant, "order-1", 5, T0)
	got, created, err = l.CreatePayment(ctx, Nonce(merchant), again, time.Time{})
	if err != nil || created || got.PaymentID != rec.PaymentID || got.Amount != 1999 {
		t.Fatalf("repeat create: %+v created=%v err=%v", got, created, err)
	}
	if _, err := l.GetPayment(ctx, nil, merchant, again.PaymentID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the repeat's payment id was stored: %v", err)
	}
	// The same out_trade_no at another merchant is another payment.
	other := NewPayment("m2", "order-1", 7, T0)
	if _, created, err := l.CreatePayment(ctx, Nonce("m2"), other, time.Time{}); err != nil || !created {
		t.Fatalf("other merchant's create: %v %v", created, err)
	}
	// Bad input changes nothing.
	bad := NewPayment(merchant, "", 1, T0)
	if _, _, err := l.CreatePayment(ctx, nil, bad, time.Time{}); err == nil {
		t.Fatal("create without out_trade_no succeeded")
	}
	if _, _, err := l.CreatePayment(ctx, Nonce("m2"), NewPayment(merchant, "x", 1, T0), time.Time{}); err == nil {
		t.Fatal("create with another merchant's nonce succeeded")
	}
}

func testNonceReplay(t *testing.T, l Ledger) {
	ctx := context.Background()
	n := Nonce(merchant)
	mustCreateWith := func(otn string) error {
		_, _, err := l.CreatePayment(ctx, n, NewPayment(merchant, otn, 100, T0), time.Time{})
		return err
	}
	if err := mustCreateWith("order-a"); err != nil {
		t.Fatal(err)
	}
	if err := mustCreateWith("order-b"); !errors.Is(err, store.ErrNonceReplayed) {
		t.Fatalf("replayed nonce: %v", err)
	}
	if _, err := l.GetPaymentByOutTradeNo(ctx, nil, merchant, "order-b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a replayed create stored something: %v", err)
	}
	p, _ := l.GetPaymentByOutTradeNo(ctx, nil, merchant, "order-a")
	if _, err := l.GetPayment(ctx, n, merchant, p.PaymentID); !errors.Is(err, store.ErrNonceReplayed) {
		t.Fatalf("get with a used nonce: %v", err)
	}
	if err := l.ClaimNonce(ctx, *n); !errors.Is(err, store.ErrNonceReplayed) {
		t.Fatalf("claim of a used nonce: %v", err)
	}
	p.Status = payment.StatusSucceeded
	if err := l.UpdatePayment(ctx, p, store.Change{}); err != nil {
		t.Fatal(err)
	}
	rf := NewRefund(p, "rf-1", 10, T0)
	if _, _, err := l.CreateRefund(ctx, n, rf, time.Time{}); !errors.Is(err, store.ErrNonceReplayed) {
		t.Fatalf("refund with a used nonce: %v", err)
	}
	if _, err := l.GetRefund(ctx, nil, merchant, rf.RefundID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a replayed refund stored something: %v", err)
	}
	if _, _, err := l.ListPayments(ctx, n, store.PaymentQuery{Merchant: merchant}); !errors.Is(err, store.ErrNonceReplayed) {
		t.Fatalf("list with a used nonce: %v", err)
	}
}

func testConcurrentCreates(t *testing.T, l Ledger) {
	ctx := context.Background()
	const n = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		ids     = map[string]int{}
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, c, err := l.CreatePayment(ctx, Nonce(merchant), NewPayment(merchant, "same-order", 500, T0), T0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			if c {
				created++
			}
			ids[got.PaymentID]++
		}()
	}
	wg.Wait()
	if created != 1 || len(ids) != 1 {
		t.Fatalf("%d creates reported created, %d distinct payments answered; want 1 and 1", created, len(ids))
	}
	page, _, err := l.ListPayments(ctx, nil, store.PaymentQuery{Merchant: merchant, Limit: 100})
	if err != nil || len(page) != 1 {
		t.Fatalf("stored payments: %d, %v; want 1", len(page), err)
	}
}

func testCAS(t *testing.T, l Ledger) {
	ctx := context.Background()
	p := mustCreate(t, l, NewPayment(merchant, "order-cas", 100, T0))
	stale := *p
	p.ChannelTradeNo = "4200001"
	if err := l.UpdatePayment(ctx, p, store.Change{}); err != nil || p.Version != 2 {
		t.Fatalf("update: v%d %v", p.Version, err)
	}
	stale.Status = payment.StatusClosed
	if err := l.UpdatePayment(ctx, &stale, store.Change{Event: event("evt-stale", "{}")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if stale.Version != 1 {
		t.Fatalf("a lost compare-and-set changed the caller's version to %d", stale.Version)
	}
	if pending, _, _ := l.OutboxStats(ctx, merchant); pending != 0 {
		t.Fatalf("a lost compare-and-set enqueued its event (%d pending)", pending)
	}
	got, _ := l.GetPayment(ctx, nil, merchant, p.PaymentID)
	if got.Version != 2 || got.Status != payment.StatusPending || got.ChannelTradeNo != "4200001" {
		t.Fatalf("after the lost update: %+v", got)
	}
	missing := NewPayment(merchant, "nope", 1, T0)
	missing.Version = 1
	if err := l.UpdatePayment(ctx, missing, store.Change{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing payment: %v", err)
	}
}

func testConcurrentCAS(t *testing.T, l Ledger) {
	ctx := context.Background()
	p := mustCreate(t, l, NewPayment(merchant, "order-race", 100, T0))
	const n = 20
	var (
		wg            sync.WaitGroup
		won, conflict atomic.Int32
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := *p
			c.ChannelTradeNo = fmt.Sprint("ch-", i)
			switch err := l.UpdatePayment(ctx, &c, store.Change{}); {
			case err == nil:
				won.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflict.Add(1)
			default:
				t.Errorf("update: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if won.Load() != 1 || conflict.Load() != n-1 {
		t.Fatalf("%d updates won, %d conflicted; want 1 and %d", won.Load(), conflict.Load(), n-1)
	}
	if got, _ := l.GetPayment(ctx, nil, merchant, p.PaymentID); got.Version != 2 {
		t.Fatalf("version %d after one winning update", got.Version)
	}
}

func testEventOnce(t *testing.T, l Ledger) {
	ctx := context.Background()
	p := mustCreate(t, l, NewPayment(merchant, "order-ev", 100, T0))
	p.Status = payment.StatusSucceeded
	ev := event(payment.EventID(p.PaymentID, payment.EventPaymentSucceeded), `{"type":"payment.succeeded"}`)
	if err := l.UpdatePayment(ctx, p, store.Change{Event: ev}); err != nil {
		t.Fatal(err)
	}
	if err := l.UpdatePayment(ctx, p, store.Change{Event: ev}); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.EnqueueEvent(ctx, *ev, T0); err != nil || ok {
		t.Fatalf("enqueue of an existing event id: %v %v", ok, err)
	}
	if pending, dead, err := l.OutboxStats(ctx, merchant); err != nil || pending != 1 || dead != 0 {
		t.Fatalf("stats: %d %d %v; want 1 pending", pending, dead, err)
	}
	ds, err := l.ClaimEvents(ctx, merchant, T0, time.Minute, 10)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != `{"type":"payment.succeeded"}` || ds[0].Attempt != 1 ||
		ds[0].NotifyURL != ev.NotifyURL || ds[0].Merchant != merchant || ds[0].ID != ev.ID {
		t.Fatalf("claim: %+v %v", ds, err)
	}
	if err := l.AckEvent(ctx, merchant, ev.ID); err != nil {
		t.Fatal(err)
	}
	// Acknowledged: a change carrying the same id enqueues nothing.
	p.ChannelTradeNo = "x"
	if err := l.UpdatePayment(ctx, p, store.Change{Event: ev}); err != nil {
		t.Fatal(err)
	}
	if pending, _, _ := l.OutboxStats(ctx, merchant); pending != 0 {
		t.Fatalf("an acknowledged event was enqueued again (%d pending)", pending)
	}
	if err := l.AckEvent(ctx, merchant, "evt-unknown"); err != nil {
		t.Fatalf("ack of an unknown event: %v", err)
	}
}

func testOutboxLifecycle(t *testing.T, l Ledger) {
	ctx := context.Background()
	if ok, err := l.EnqueueEvent(ctx, *event("e1", "one"), T0); err != nil || !ok {
		t.Fatalf("enqueue: %v %v", ok, err)
	}
	claim := func(at time.Time) []store.Delivery {
		t.Helper()
		ds, err := l.ClaimEvents(ctx, merchant, at, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	if ds := claim(T0.Add(-time.Second)); len(ds) != 0 {
		t.Fatalf("claimed before due: %+v", ds)
	}
	if ds := claim(T0); len(ds) != 1 || ds[0].Attempt != 1 {
		t.Fatalf("first claim: %+v", ds)
	}
	if ds := claim(T0.Add(30 * time.Second)); len(ds) != 0 {
		t.Fatalf("claimed inside the lease: %+v", ds)
	}
	// The worker died: the lease ends and the next claim takes it again.
	if ds := claim(T0.Add(time.Minute)); len(ds) != 1 || ds[0].Attempt != 2 {
		t.Fatalf("claim after the lease: %+v", ds)
	}
	retryAt := T0.Add(10 * time.Minute)
	if err := l.RetryEvent(ctx, merchant, "e1", retryAt, "503 from merchant"); err != nil {
		t.Fatal(err)
	}
	if ds := claim(retryAt.Add(-time.Millisecond)); len(ds) != 0 {
		t.Fatalf("claimed before its retry time: %+v", ds)
	}
	if ds := claim(retryAt); len(ds) != 1 || ds[0].Attempt != 3 {
		t.Fatalf("claim at the retry time: %+v", ds)
	}
	deadAt := retryAt.Add(time.Second)
	if err := l.DeadLetter(ctx, merchant, "e1", deadAt, "gave up"); err != nil {
		t.Fatal(err)
	}
	if pending, dead, _ := l.OutboxStats(ctx, merchant); pending != 0 || dead != 1 {
		t.Fatalf("stats after dead-lettering: %d %d", pending, dead)
	}
	// A late retry from an instance whose lease ran out changes nothing.
	if err := l.RetryEvent(ctx, merchant, "e1", T0, "late"); err != nil {
		t.Fatal(err)
	}
	if ds := claim(deadAt.Add(time.Hour)); len(ds) != 0 {
		t.Fatalf("a dead event was claimed: %+v", ds)
	}
	dead, err := l.DeadEvents(ctx, merchant, 0)
	if err != nil || len(dead) != 1 || dead[0].ID != "e1" || dead[0].Attempts != 3 || dead[0].LastError != "gave up" ||
		!dead[0].DeadAt.Equal(deadAt) || string(dead[0].Body) != "one" || dead[0].NotifyURL == "" {
		t.Fatalf("dead events: %+v %v", dead, err)
	}
	if err := l.ReplayEvent(ctx, merchant, "e-none", deadAt); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replay of an unknown event: %v", err)
	}
	replayAt := deadAt.Add(time.Hour)
	if err := l.ReplayEvent(ctx, merchant, "e1", replayAt); err != nil {
		t.Fatal(err)
	}
	if err := l.ReplayEvent(ctx, merchant, "e1", replayAt); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second replay: %v", err)
	}
	if ds := claim(replayAt); len(ds) != 1 || ds[0].Attempt != 1 {
		t.Fatalf("claim after replay: %+v", ds)
	}
	if err := l.AckEvent(ctx, merchant, "e1"); err != nil {
		t.Fatal(err)
	}
	if pending, dead, _ := l.OutboxStats(ctx, merchant); pending != 0 || dead != 0 {
		t.Fatalf("stats after ack: %d %d", pending, dead)
	}
	// DeadLetter after an ack does nothing: a delivered event is never dead.
	if err := l.DeadLetter(ctx, merchant, "e1", replayAt, "late"); err != nil {
		t.Fatal(err)
	}
	if _, dead, _ := l.OutboxStats(ctx, merchant); dead != 0 {
		t.Fatal("a delivered event was dead-lettered")
	}
}

func testOutboxOrder(t *testing.T, l Ledger) {
	ctx := context.Background()
	var want []string
	for i := 0; i < 5; i++ {
		p := mustCreate(t, l, NewPayment(merchant, fmt.Sprint("order-o", i), 100, T0))
		p.Status = payment.StatusSucceeded
		id := payment.EventID(p.PaymentID, payment.EventPaymentSucceeded)
		if err := l.UpdatePayment(ctx, p, store.Change{Event: event(id, "x")}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	// Fresh events are due whatever the claimer's clock says, in the order
	// they were written, before anything due by time.
	if _, err := l.EnqueueEvent(ctx, *event("timed", "t"), T0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	want = append(want, "timed")
	var got []string
	for {
		ds, err := l.ClaimEvents(ctx, merchant, T0, time.Minute, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			got = append(got, d.ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claim order:\n got %v\nwant %v", got, want)
	}
}

func testRefunds(t *testing.T, l Ledger) {
	ctx := context.Background()
	pending := mustCreate(t, l, NewPayment(merchant, "order-pending", 1000, T0))
	if _, _, err := l.CreateRefund(ctx, Nonce(merchant), NewRefund(pending, "rf-0", 10, T0), time.Time{}); !errors.Is(err, store.ErrInvalidState) {
		t.Fatalf("refund of a pending payment: %v", err)
	}
	ghost := NewPayment(merchant, "ghost", 1000, T0)
	if _, _, err := l.CreateRefund(ctx, nil, NewRefund(ghost, "rf-g", 10, T0), time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refund of an unknown payment: %v", err)
	}
	p := succeeded(t, l, "order-paid", 1000)
	r1 := NewRefund(p, "rf-1", 600, T0)
	got, created, err := l.CreateRefund(ctx, Nonce(merchant), r1, T0.Add(time.Minute))
	if err != nil || !created || got.Version != 1 {
		t.Fatalf("refund: %+v %v %v", got, created, err)
	}
	// Idempotent on out_refund_no, whatever the rest says.
	again, created, err := l.CreateRefund(ctx, Nonce(merchant), NewRefund(p, "rf-1", 999, T0), time.Time{})
	if err != nil || created || again.RefundID != r1.RefundID || again.Amount != 600 {
		t.Fatalf("repeat refund: %+v %v %v", again, created, err)
	}
	if _, _, err := l.CreateRefund(ctx, nil, NewRefund(p, "rf-2", 401, T0), time.Time{}); !errors.Is(err, store.ErrExceedsPayment) {
		t.Fatalf("refund over what is left: %v", err)
	}
	// The largest amount a merchant can send: added to what is already
	// reserved it overflows int64, and must still be refused as too much.
	if _, _, err := l.CreateRefund(ctx, nil, NewRefund(p, "rf-max", math.MaxInt64, T0), time.Time{}); !errors.Is(err, store.ErrExceedsPayment) {
		t.Fatalf("refund of MaxInt64 after a pending refund: %v", err)
	}
	byNo, err := l.GetRefundByOutRefundNo(ctx, Nonce(merchant), merchant, "rf-1")
	if err != nil || byNo.RefundID != r1.RefundID || byNo.Reason != "damaged" {
		t.Fatalf("get by out_refund_no: %+v %v", byNo, err)
	}
	if _, err := l.GetRefundByOutRefundNo(ctx, nil, "m2", "rf-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other merchant's refund by out_refund_no: %v", err)
	}
	// The refund fails: its reservation is released.
	r1.Status = payment.RefundFailed
	if err := l.UpdateRefund(ctx, r1, store.Change{Event: event("evt-rf1-failed", "f")}); err != nil || r1.Version != 2 {
		t.Fatalf("fail refund: v%d %v", r1.Version, err)
	}
	r1.Status = payment.RefundSucceeded
	if err := l.UpdateRefund(ctx, r1, store.Change{}); !errors.Is(err, store.ErrInvalidState) {
		t.Fatalf("a final refund changed status: %v", err)
	}
	r2 := NewRefund(p, "rf-2", 1000, T0)
	if _, _, err := l.CreateRefund(ctx, nil, r2, time.Time{}); err != nil {
		t.Fatalf("full refund after the failed one: %v", err)
	}
	stale := *r2
	r2.Status = payment.RefundSucceeded
	if err := l.UpdateRefund(ctx, r2, store.Change{}); err != nil {
		t.Fatal(err)
	}
	stale.Status = payment.RefundFailed
	if err := l.UpdateRefund(ctx, &stale, store.Change{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale refund update: %v", err)
	}
	got2, err := l.GetRefund(ctx, Nonce(merchant), merchant, r2.RefundID)
	if err != nil || got2.Status != payment.RefundSucceeded || got2.Version != 2 {
		t.Fatalf("get refund: %+v %v", got2, err)
	}
	pp, _ := l.GetPayment(ctx, nil, merchant, p.PaymentID)
	if pp.RefundedAmount != 1000 {
		t.Fatalf("refunded amount %d, want 1000", pp.RefundedAmount)
	}
	if _, _, err := l.CreateRefund(ctx, nil, NewRefund(p, "rf-3", 1, T0), time.Time{}); !errors.Is(err, store.ErrExceedsPayment) {
		t.Fatalf("refund of a fully refunded payment: %v", err)
	}
	missing := NewRefund(p, "rf-x", 1, T0)
	missing.Version = 1
	if err := l.UpdateRefund(ctx, missing, store.Change{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing refund: %v", err)
	}
}

func testConcurrentRefunds(t *testing.T, l Ledger) {
	ctx := context.Background()
	p := succeeded(t, l, "order-big", 1000)
	const n = 20
	var (
		wg                sync.WaitGroup
		created, exceeded atomic.Int32
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, c, err := l.CreateRefund(ctx, Nonce(merchant), NewRefund(p, fmt.Sprint("rf-c", i), 150, T0), time.Time{})
			switch {
			case err == nil && c:
				created.Add(1)
			case errors.Is(err, store.ErrExceedsPayment):
				exceeded.Add(1)
			default:
				t.Errorf("refund %d: created=%v %v", i, c, err)
			}
		}(i)
	}
	wg.Wait()
	if created.Load() != 6 || exceeded.Load() != n-6 {
		t.Fatalf("%d refunds created (%d fen reserved), %d refused; want 6 (900) and %d", created.Load(), 150*created.Load(), exceeded.Load(), n-6)
	}
	rfs, err := l.ListRefunds(ctx, nil, merchant, p.PaymentID)
	if err != nil || len(rfs) != 6 {
		t.Fatalf("listed %d refunds, %v", len(rfs), err)
	}
	// 100 fen are left: exactly that fits.
	if _, _, err := l.CreateRefund(ctx, nil, NewRefund(p, "rf-rest", 100, T0), time.Time{}); err != nil {
		t.Fatalf("refund of the rest: %v", err)
	}
}

func testSweep(t *testing.T, l Ledger) {
	ctx := context.Background()
	rec := NewPayment(merchant, "order-sw", 100, T0)
	due := T0.Add(30 * time.Second)
	if _, _, err := l.CreatePayment(ctx, nil, rec, due); err != nil {
		t.Fatal(err)
	}
	claim := func(at time.Time) []store.SweepItem {
		t.Helper()
		items, err := l.ClaimSweep(ctx, merchant, at, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		return items
	}
	if items := claim(due.Add(-time.Millisecond)); len(items) != 0 {
		t.Fatalf("claimed early: %+v", items)
	}
	items := claim(due)
	if len(items) != 1 || items[0].Kind != store.SweepPayment || items[0].ID != rec.PaymentID || items[0].Attempt != 1 || items[0].Merchant != merchant {
		t.Fatalf("claim: %+v", items)
	}
	if items := claim(due.Add(time.Second)); len(items) != 0 {
		t.Fatalf("claimed inside the lease: %+v", items)
	}
	next := due.Add(2 * time.Second)
	if err := l.Reschedule(ctx, merchant, store.SweepPayment, rec.PaymentID, next); err != nil {
		t.Fatal(err)
	}
	if items := claim(next); len(items) != 1 || items[0].Attempt != 2 {
		t.Fatalf("claim after reschedule: %+v", items)
	}
	// A refund entry sorts with the payment by due time.
	if err := l.Reschedule(ctx, merchant, store.SweepRefund, "rfd_x", next); err != nil {
		t.Fatal(err)
	}
	if err := l.Reschedule(ctx, merchant, "thing", "x", next); err == nil {
		t.Fatal("reschedule of a bad kind succeeded")
	}
	p, _ := l.GetPayment(ctx, nil, merchant, rec.PaymentID)
	p.Status = payment.StatusSucceeded
	if err := l.UpdatePayment(ctx, p, store.Change{}); err != nil { // zero SweepAt: off the schedule
		t.Fatal(err)
	}
	items = claim(next.Add(time.Hour))
	if len(items) != 1 || items[0].Kind != store.SweepRefund || items[0].Attempt != 1 {
		t.Fatalf("after the payment went final: %+v", items)
	}
	if err := l.Reschedule(ctx, merchant, store.SweepRefund, "rfd_x", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if items := claim(next.Add(24 * time.Hour)); len(items) != 0 {
		t.Fatalf("removed entries claimed: %+v", items)
	}
}

func testListPayments(t *testing.T, l Ledger) {
	ctx := context.Background()
	var all []*payment.Record // oldest first
	for i := 0; i < 45; i++ {
		rec := mustCreate(t, l, NewPayment(merchant, fmt.Sprint("order-l", i), int64(100+i), T0.Add(time.Duration(i)*time.Second)))
		if i%3 == 0 {
			rec.Status = payment.StatusSucceeded
			if err := l.UpdatePayment(ctx, rec, store.Change{}); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, rec)
	}
	// Two created in the same instant: the payment id breaks the tie.
	twinA := mustCreate(t, l, NewPayment("m3", "twin-a", 1, T0))
	twinB := mustCreate(t, l, NewPayment("m3", "twin-b", 1, T0))
	mustCreate(t, l, NewPayment("m2", "other", 1, T0))

	page := func(q store.PaymentQuery) ([]*payment.Record, bool) {
		t.Helper()
		recs, more, err := l.ListPayments(ctx, Nonce(q.Merchant), q)
		if err != nil {
			t.Fatalf("list %+v: %v", q, err)
		}
		return recs, more
	}
	var got []string
	q := store.PaymentQuery{Merchant: merchant}
	var sizes []int
	for {
		recs, more := page(q)
		sizes = append(sizes, len(recs))
		for _, r := range recs {
			got = append(got, r.OutTradeNo)
		}
		if !more {
			break
		}
		q.StartingAfter = recs[len(recs)-1].PaymentID
	}
	if fmt.Sprint(sizes) != "[20 20 5]" {
		t.Fatalf("page sizes %v, want [20 20 5]", sizes)
	}
	for i, otn := range got {
		if want := all[44-i].OutTradeNo; otn != want {
			t.Fatalf("item %d is %s, want %s (newest first)", i, otn, want)
		}
	}
	first, _ := page(store.PaymentQuery{Merchant: merchant, Limit: 1})
	if first[0].OutTradeNo != "order-l44" || first[0].Status != payment.StatusPending || first[0].Version != 1 || first[0].Amount != 144 {
		t.Fatalf("listed record: %+v", first[0])
	}
	if s, _ := page(store.PaymentQuery{Merchant: merchant, Status: payment.StatusSucceeded, Limit: 1}); s[0].Version != 2 || s[0].Amount != 142 {
		t.Fatalf("listed succeeded record: %+v", s[0])
	}

	// Status filter: 15 succeeded (i = 0, 3, ..., 42), newest first.
	recs, more := page(store.PaymentQuery{Merchant: merchant, Status: payment.StatusSucceeded, Limit: 10})
	if len(recs) != 10 || !more || recs[0].OutTradeNo != "order-l42" || recs[9].OutTradeNo != "order-l15" {
		t.Fatalf("succeeded page 1: %d more=%v %s…", len(recs), more, recs[0].OutTradeNo)
	}
	recs, more = page(store.PaymentQuery{Merchant: merchant, Status: payment.StatusSucceeded, Limit: 10, StartingAfter: recs[9].PaymentID})
	if len(recs) != 5 || more || recs[4].OutTradeNo != "order-l0" {
		t.Fatalf("succeeded page 2: %d more=%v", len(recs), more)
	}
	if recs, _ := page(store.PaymentQuery{Merchant: merchant, Status: payment.StatusClosed}); len(recs) != 0 {
		t.Fatalf("closed: %d", len(recs))
	}
	// created_gte / created_lt: [10 s, 20 s) holds i = 10..19.
	recs, more = page(store.PaymentQuery{Merchant: merchant, CreatedGTE: T0.Add(10 * time.Second), CreatedLT: T0.Add(20 * time.Second)})
	if len(recs) != 10 || more || recs[0].OutTradeNo != "order-l19" || recs[9].OutTradeNo != "order-l10" {
		t.Fatalf("created range: %d more=%v", len(recs), more)
	}
	recs, _ = page(store.PaymentQuery{Merchant: merchant, CreatedGTE: T0.Add(10 * time.Second), CreatedLT: T0.Add(20 * time.Second),
		Status: payment.StatusSucceeded, StartingAfter: all[18].PaymentID})
	if len(recs) != 2 || recs[0].OutTradeNo != "order-l15" || recs[1].OutTradeNo != "order-l12" {
		t.Fatalf("range, status and cursor: %v", otns(recs))
	}
	// The cursor outside the range: nothing above it is listed.
	if recs, _ := page(store.PaymentQuery{Merchant: merchant, CreatedLT: T0.Add(5 * time.Second), StartingAfter: all[30].PaymentID}); len(recs) != 5 {
		t.Fatalf("cursor after the range: %v", otns(recs))
	}
	if recs, _ := page(store.PaymentQuery{Merchant: merchant, CreatedGTE: T0.Add(40 * time.Second), StartingAfter: all[30].PaymentID}); len(recs) != 0 {
		t.Fatalf("cursor below the range: %v", otns(recs))
	}
	// Ties on created_at: the larger payment id first, and the cursor splits them.
	hi, lo := twinA, twinB
	if lo.PaymentID > hi.PaymentID {
		hi, lo = lo, hi
	}
	recs, more = page(store.PaymentQuery{Merchant: "m3", Limit: 1})
	if len(recs) != 1 || !more || recs[0].PaymentID != hi.PaymentID {
		t.Fatalf("twins page 1: %v", otns(recs))
	}
	recs, more = page(store.PaymentQuery{Merchant: "m3", Limit: 1, StartingAfter: hi.PaymentID})
	if len(recs) != 1 || more || recs[0].PaymentID != lo.PaymentID {
		t.Fatalf("twins page 2: %v more=%v", otns(recs), more)
	}
	// Errors.
	if _, _, err := l.ListPayments(ctx, nil, store.PaymentQuery{Merchant: merchant, StartingAfter: twinA.PaymentID}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another merchant's payment as cursor: %v", err)
	}
	for _, lim := range []int{-1, 101} {
		if _, _, err := l.ListPayments(ctx, nil, store.PaymentQuery{Merchant: merchant, Limit: lim}); err == nil {
			t.Fatalf("limit %d accepted", lim)
		}
	}
	if recs, _ := page(store.PaymentQuery{Merchant: "nobody"}); len(recs) != 0 {
		t.Fatalf("unknown merchant lists %d", len(recs))
	}
}

func otns(recs []*payment.Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, r.OutTradeNo)
	}
	return s
}

func testListRefunds(t *testing.T, l Ledger) {
	ctx := context.Background()
	p := succeeded(t, l, "order-r", 1000)
	var want []string
	for i := 0; i < 4; i++ {
		rf := NewRefund(p, fmt.Sprint("rf-", i), 10, T0.Add(time.Duration(i)*time.Minute))
		if _, _, err := l.CreateRefund(ctx, nil, rf, time.Time{}); err != nil {
			t.Fatal(err)
		}
		want = append([]string{rf.OutRefundNo}, want...)
	}
	rfs, err := l.ListRefunds(ctx, Nonce(merchant), merchant, p.PaymentID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rfs {
		got = append(got, r.OutRefundNo)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("refunds %v, want %v (newest first)", got, want)
	}
	other := succeeded(t, l, "order-r2", 10)
	if rfs, err := l.ListRefunds(ctx, nil, merchant, other.PaymentID); err != nil || len(rfs) != 0 {
		t.Fatalf("a payment without refunds: %d %v", len(rfs), err)
	}
	if _, err := l.ListRefunds(ctx, nil, "m2", p.PaymentID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another merchant's payment: %v", err)
	}
}

// testConcurrentClaims: claimers racing over one merchant's outbox and sweep
// take every due entry exactly once per lease.
func testConcurrentClaims(t *testing.T, l Ledger) {
	ctx := context.Background()
	const n = 60
	for i := 0; i < n; i++ {
		if _, err := l.EnqueueEvent(ctx, *event(fmt.Sprint("ev-", i), "x"), T0); err != nil {
			t.Fatal(err)
		}
		if err := l.Reschedule(ctx, merchant, store.SweepPayment, fmt.Sprint("pay-", i), T0); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]int{}
	)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := l.ClaimEvents(ctx, merchant, T0, time.Hour, 7)
				if err != nil {
					t.Error(err)
					return
				}
				items, err := l.ClaimSweep(ctx, merchant, T0, time.Hour, 7)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				for _, it := range items {
					seen[it.ID]++
				}
				mu.Unlock()
				if len(ds) == 0 && len(items) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 2*n {
		t.Fatalf("claimed %d distinct entries, want %d", len(seen), 2*n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s claimed %d times inside one lease", id, c)
		}
	}
}
