package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

func testClaimNonce(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	n := Nonce{Merchant: m, Value: "abcdefghijklmnop", TTL: time.Minute}
	if err := e.s.ClaimNonce(ctx, n); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := e.s.ClaimNonce(ctx, n); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("second claim: %v, want ErrNonceReplayed", err)
	}
	// Nonces are kept per merchant.
	if err := e.s.ClaimNonce(ctx, Nonce{Merchant: m + "x", Value: n.Value, TTL: time.Minute}); err != nil {
		t.Fatalf("same nonce, other merchant: %v", err)
	}
}

func testNonceAcrossStores(t *testing.T, e env) {
	ctx := context.Background()
	stores := []*Store{e.s, e.other(t)}
	n := *newNonce(merchantOf(t))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, dupe int
	)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(s *Store) {
			defer wg.Done()
			err := s.ClaimNonce(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrNonceReplayed):
				dupe++
			default:
				t.Errorf("claim: %v", err)
			}
		}(stores[i%2])
	}
	wg.Wait()
	if ok != 1 || dupe != 19 {
		t.Fatalf("claimed %d times, replayed %d; want 1 and 19", ok, dupe)
	}
}

func testCreatePayment(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	rec := newPayment(m, "order-1001", 1999)
	rec.Version = 7        // ignored: a new payment is version 1
	rec.RefundedAmount = 5 // ignored: owned by the store
	sweepAt := t0.Add(30 * time.Second)

	got, created, err := e.s.CreatePayment(ctx, newNonce(m), rec, sweepAt)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	if got.Version != 1 || got.RefundedAmount != 0 {
		t.Fatalf("created version %d refunded %d, want 1 and 0", got.Version, got.RefundedAmount)
	}
	if mm, err := e.s.PaymentMerchant(ctx, rec.PaymentID); err != nil || mm != m {
		t.Fatalf("payment merchant = %q, %v", mm, err)
	}

	byID, err := e.s.GetPayment(ctx, nil, m, rec.PaymentID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !reflect.DeepEqual(byID, got) {
		t.Fatalf("stored record differs:\n got  %+v\n want %+v", byID, got)
	}
	byNo, err := e.s.GetPaymentByOutTradeNo(ctx, nil, m, "order-1001")
	if err != nil || !reflect.DeepEqual(byNo, got) {
		t.Fatalf("get by out_trade_no: %+v, %v", byNo, err)
	}

	// The same out_trade_no again (with a fresh payment id, as the gateway
	// would mint one): the stored payment, nothing created, and the new id's
	// payment → merchant index is gone.
	again := newPayment(m, "order-1001", 5)
	stored, created, err := e.s.CreatePayment(ctx, newNonce(m), again, sweepAt)
	if err != nil || created {
		t.Fatalf("second create: created=%v err=%v", created, err)
	}
	if stored.PaymentID != rec.PaymentID || stored.Amount != 1999 {
		t.Fatalf("second create returned %s amount %d, want the first payment", stored.PaymentID, stored.Amount)
	}
	if _, err := e.s.PaymentMerchant(ctx, again.PaymentID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("orphan payment index: %v, want ErrNotFound", err)
	}
	// A retry of the create that went through (same id) keeps its index.
	if _, created, err := e.s.CreatePayment(ctx, nil, rec, sweepAt); err != nil || created {
		t.Fatalf("retried create: created=%v err=%v", created, err)
	}
	if mm, err := e.s.PaymentMerchant(ctx, rec.PaymentID); err != nil || mm != m {
		t.Fatalf("payment merchant after retry = %q, %v", mm, err)
	}

	// Scheduled for the sweeper at sweepAt, not before.
	if items, err := e.s.ClaimSweep(ctx, m, sweepAt.Add(-time.Millisecond), time.Minute, 10); err != nil || len(items) != 0 {
		t.Fatalf("sweep before due: %v, %v", items, err)
	}
	items, err := e.s.ClaimSweep(ctx, m, sweepAt, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []SweepItem{{Merchant: m, Kind: SweepPayment, ID: rec.PaymentID, Attempt: 1}}
	if !reflect.DeepEqual(items, want) {
		t.Fatalf("sweep = %+v, want %+v", items, want)
	}

	for _, get := range []func() (*payment.Record, error){
		func() (*payment.Record, error) { return e.s.GetPayment(ctx, nil, m, payment.NewPaymentID()) },
		func() (*payment.Record, error) { return e.s.GetPaymentByOutTradeNo(ctx, nil, m, "nope") },
		func() (*payment.Record, error) { return e.s.GetPayment(ctx, nil, m+"x", rec.PaymentID) },
	} {
		if _, err := get(); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing payment: %v, want ErrNotFound", err)
		}
	}
	if _, err := e.s.PaymentMerchant(ctx, payment.NewPaymentID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown payment merchant: %v", err)
	}
}

func testCreatePaymentConcurrent(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	const n = 50
	type result struct {
		mine, got string
		created   bool
		err       error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rec := newPayment(m, "order-race", 100)
			got, created, err := e.s.CreatePayment(ctx, newNonce(m), rec, t0)
			results[i] = result{mine: rec.PaymentID, created: created, err: err}
			if got != nil {
				results[i].got = got.PaymentID
			}
		}(i)
	}
	wg.Wait()
	var winner string
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("create: %v", r.err)
		}
		if r.created {
			if winner != "" {
				t.Fatalf("two payments created: %s and %s", winner, r.mine)
			}
			winner = r.mine
		}
	}
	if winner == "" {
		t.Fatal("no payment created")
	}
	for _, r := range results {
		if r.got != winner {
			t.Fatalf("a caller got payment %q, want %q", r.got, winner)
		}
		_, err := e.s.PaymentMerchant(ctx, r.mine)
		if r.mine == winner && err != nil {
			t.Fatalf("winner's index: %v", err)
		}
		if r.mine != winner && !errors.Is(err, ErrNotFound) {
			t.Fatalf("loser %s left an index: %v", r.mine, err)
		}
	}
	items, err := e.s.ClaimSweep(ctx, m, t0, time.Minute, 100)
	if err != nil || len(items) != 1 || items[0].ID != winner {
		t.Fatalf("sweep schedule = %+v, %v; want only the winner", items, err)
	}
}

func testCreatePaymentReplayedNonce(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	n := newNonce(m)
	if err := e.s.ClaimNonce(ctx, *n); err != nil {
		t.Fatal(err)
	}
	rec := newPayment(m, "order-replayed", 100)
	if _, _, err := e.s.CreatePayment(ctx, n, rec, t0); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("create with a used nonce: %v, want ErrNonceReplayed", err)
	}
	if rec.Version != 0 {
		t.Errorf("record version changed to %d", rec.Version)
	}
	if _, err := e.s.GetPaymentByOutTradeNo(ctx, nil, m, "order-replayed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("out_trade_no indexed: %v", err)
	}
	if _, err := e.s.GetPayment(ctx, nil, m, rec.PaymentID); !errors.Is(err, ErrNotFound) {
		t.Errorf("payment stored: %v", err)
	}
	if _, err := e.s.PaymentMerchant(ctx, rec.PaymentID); !errors.Is(err, ErrNotFound) {
		t.Errorf("payment index left: %v", err)
	}
	if items, err := e.s.ClaimSweep(ctx, m, t0.Add(time.Hour), time.Minute, 10); err != nil || len(items) != 0 {
		t.Errorf("sweep scheduled: %+v, %v", items, err)
	}
	// A call resent with the same nonce after its first run went through
	// (a reply lost on the way) is a replay, but keeps the payment's index.
	n2 := newNonce(m)
	done := newPayment(m, "order-resent", 100)
	if _, created, err := e.s.CreatePayment(ctx, n2, done, t0); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if _, _, err := e.s.CreatePayment(ctx, n2, done, t0); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("resent create: %v, want ErrNonceReplayed", err)
	}
	if mm, err := e.s.PaymentMerchant(ctx, done.PaymentID); err != nil || mm != m {
		t.Fatalf("resent create dropped the payment index: %q, %v", mm, err)
	}
	// The out_trade_no is still free.
	if _, created, err := e.s.CreatePayment(ctx, newNonce(m), rec, t0); err != nil || !created {
		t.Fatalf("create after the replay: created=%v err=%v", created, err)
	}
}

func testGetPaymentClaimsNonce(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	rec := mustCreate(t, e.s, newPayment(m, "order-get", 100))
	n := newNonce(m)
	if _, err := e.s.GetPayment(ctx, n, m, rec.PaymentID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetPayment(ctx, n, m, rec.PaymentID); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("get with a used nonce: %v", err)
	}
	if _, err := e.s.GetPaymentByOutTradeNo(ctx, n, m, "order-get"); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("get by out_trade_no with a used nonce: %v", err)
	}
	// A lookup that finds nothing still consumes its nonce (the request was
	// authenticated; only the body or path was wrong).
	n2 := newNonce(m)
	if _, err := e.s.GetPaymentByOutTradeNo(ctx, n2, m, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := e.s.ClaimNonce(ctx, *n2); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("nonce of a not-found lookup not claimed: %v", err)
	}
	// A nonce of another merchant is refused before anything happens.
	if _, err := e.s.GetPayment(ctx, newNonce(m+"x"), m, rec.PaymentID); err == nil {
		t.Fatal("nonce of another merchant accepted")
	}
}

func testUpdatePaymentCAS(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	rec := mustCreate(t, e.s, newPayment(m, "order-cas", 100))
	stale := *rec

	rec.Status = payment.StatusSucceeded
	rec.ChannelTradeNo = "4200001"
	rec.RefundedAmount = 99 // ignored
	if err := e.s.UpdatePayment(ctx, rec, Change{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if rec.Version != 2 {
		t.Fatalf("version after update = %d, want 2", rec.Version)
	}

	stale.Status = payment.StatusClosed
	if err := e.s.UpdatePayment(ctx, &stale, Change{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if stale.Version != 1 {
		t.Errorf("stale record's version changed to %d", stale.Version)
	}
	got, err := e.s.GetPayment(ctx, nil, m, rec.PaymentID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != payment.StatusSucceeded || got.ChannelTradeNo != "4200001" || got.Version != 2 || got.RefundedAmount != 0 {
		t.Fatalf("stored after conflict: status %s trade %q version %d refunded %d", got.Status, got.ChannelTradeNo, got.Version, got.RefundedAmount)
	}

	missing := newPayment(m, "order-missing", 1)
	missing.Version = 1
	if err := e.s.UpdatePayment(ctx, missing, Change{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing payment: %v", err)
	}
}

func testUpdatePaymentConcurrentCAS(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	base := mustCreate(t, e.s, newPayment(m, "order-cas-race", 100))
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rec := *base
			rec.Subject = "writer " + string(rune('a'+i))
			errs[i] = e.s.UpdatePayment(ctx, &rec, Change{})
		}(i)
	}
	wg.Wait()
	var won []int
	for i, err := range errs {
		switch {
		case err == nil:
			won = append(won, i)
		case !errors.Is(err, ErrConflict):
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d updates won the same version, want 1", len(won))
	}
	got, _ := e.s.GetPayment(ctx, nil, m, base.PaymentID)
	if got.Version != 2 || got.Subject != "writer "+string(rune('a'+won[0])) {
		t.Fatalf("stored version %d subject %q; winner was %d", got.Version, got.Subject, won[0])
	}
}

func testUpdatePaymentEventOnce(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	rec := mustCreate(t, e.s, newPayment(m, "order-evt", 100))
	id := payment.EventID(rec.PaymentID, payment.EventPaymentSucceeded)
	body := []byte(`{"id":"` + id + `","type":"payment.succeeded","data":{"amount":100,"x":"\u00e9"}}` + "\n")
	ev := &OutboxEvent{ID: id, Merchant: m, NotifyURL: rec.NotifyURL, Body: body}

	rec.Status = payment.StatusSucceeded
	if err := e.s.UpdatePayment(ctx, rec, Change{Event: ev}); err != nil {
		t.Fatal(err)
	}
	// A second change carrying the same event (a duplicate callback) enqueues nothing.
	other := *ev
	other.Body = []byte(`{"different":true}`)
	if err := e.s.UpdatePayment(ctx, rec, Change{Event: &other}); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.s.EnqueueEvent(ctx, other, t0); err != nil || ok {
		t.Fatalf("standalone enqueue of the same id: %v, %v", ok, err)
	}
	if p, d, err := e.s.OutboxStats(ctx, m); err != nil || p != 1 || d != 0 {
		t.Fatalf("outbox stats = %d pending, %d dead, %v; want 1, 0", p, d, err)
	}
	got, err := e.s.ClaimEvents(ctx, m, t0, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Delivery{{OutboxEvent: OutboxEvent{ID: id, Merchant: m, NotifyURL: rec.NotifyURL, Body: body}, Attempt: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claimed %+v\nwant %+v", got, want)
	}
	// The event stays enqueued once even after it was delivered.
	if err := e.s.AckEvent(ctx, m, id); err != nil {
		t.Fatal(err)
	}
	if err := e.s.UpdatePayment(ctx, rec, Change{Event: ev}); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := e.s.OutboxStats(ctx, m); p != 0 {
		t.Fatalf("acknowledged event enqueued again: %d pending", p)
	}
	// An event is refused if it belongs to another merchant (another slot).
	bad := *ev
	bad.ID, bad.Merchant = "evt_other", m+"x"
	if err := e.s.UpdatePayment(ctx, rec, Change{Event: &bad}); err == nil {
		t.Fatal("event of another merchant accepted")
	}
}

func testUpdatePaymentSweep(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	rec := newPayment(m, "order-sweep", 100)
	if _, _, err := e.s.CreatePayment(ctx, nil, rec, t0); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(2 * time.Minute)
	if err := e.s.UpdatePayment(ctx, rec, Change{SweepAt: later}); err != nil {
		t.Fatal(err)
	}
	if items, _ := e.s.ClaimSweep(ctx, m, later.Add(-time.Millisecond), time.Minute, 10); len(items) != 0 {
		t.Fatalf("rescheduled entry claimed early: %+v", items)
	}
	if items, _ := e.s.ClaimSweep(ctx, m, later, time.Minute, 10); len(items) != 1 {
		t.Fatalf("rescheduled entry not claimed: %+v", items)
	}
	rec.Status = payment.StatusSucceeded
	if err := e.s.UpdatePayment(ctx, rec, Change{}); err != nil { // zero SweepAt: done
		t.Fatal(err)
	}
	if items, _ := e.s.ClaimSweep(ctx, m, later.Add(time.Hour), time.Minute, 10); len(items) != 0 {
		t.Fatalf("removed entry claimed: %+v", items)
	}
}

// The stored form omits zero fields; a record stored before (encoding/json,
// every field present) decodes to the same record, and a channel's invalid
// UTF-8 is replaced rather than refused, as encoding/json did.
func TestStoredFormReadsTheEarlierLayout(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 3, 55, 811656696, time.UTC)
	recs := []payment.Record{
		{Payment: payment.Payment{PaymentID: "pay_1", MerchantID: "m", OutTradeNo: "o-1", Status: payment.StatusPending,
			Amount: 1500, Currency: "CNY", Method: "wechat_native", Channel: "wechat-main", Subject: "<tea & cake>",
			Action: &payment.Action{Type: "qr_code", CodeURL: "weixin://x"}, Metadata: map[string]string{"k": "v"},
			CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour)},
			NotifyURL: "https://m.example/n", Payer: &payment.Payer{OpenID: "o"}, ChannelOrderNo: "PG1"},
		{Payment: payment.Payment{PaymentID: "pay_2", MerchantID: "m", Status: payment.StatusSucceeded, Amount: 1,
			ChannelTradeNo: "42", Metadata: map[string]string{}, PaidAt: &at, Failure: &payment.Failure{Code: "c"}},
			Attempts:       []payment.Attempt{{Channel: "a", Outcome: "created", At: at}, {Channel: "b", Outcome: "not_created", Checked: true}},
			CloseRequested: true},
	}
	for _, rec := range recs {
		old, err := json.Marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		fromOld, err := decodePayment([]any{string(old), "3", "7"})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := marshalPayment(&rec, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) >= len(old) {
			t.Errorf("stored form %d bytes, not shorter than %d", len(stored), len(old))
		}
		fromNew, err := decodePayment([]any{string(stored), "3", "7"})
		if err != nil {
			t.Fatal(err)
		}
		want := rec
		want.Version, want.RefundedAmount = 3, 7
		if !reflect.DeepEqual(fromOld, &want) || !reflect.DeepEqual(fromNew, &want) {
			t.Fatalf("round trip:\nwant %+v\nold  %+v\nnew  %+v", want, *fromOld, *fromNew)
		}
	}
	bad := recs[0]
	bad.ChannelTradeNo = "x\xffy"
	stored, err := marshalPayment(&bad, 1)
	if err != nil {
		t.Fatalf("invalid UTF-8 from a channel: %v", err)
	}
	got, err := decodePayment([]any{string(stored), "1", "0"})
	if err != nil || got.ChannelTradeNo != "x\uFFFDy" {
		t.Fatalf("invalid UTF-8: %q, %v", got.ChannelTradeNo, err)
	}
}

// GetPayment claims its nonce whether or not the payment exists, and a
// replayed nonce is refused before anything is answered, even for a payment
// that does not exist (the claim and the read are one pipeline, not a
// script, so the order of the answers is what keeps this).
func TestGetPaymentClaimsTheNonceFirst(t *testing.T) {
	s := openAddrs(t, storetest.Redis(t).Addr())
	ctx := context.Background()
	n := &Nonce{Merchant: "m1", Value: "get-nonce-0123456789", TTL: time.Minute}
	if _, err := s.GetPayment(ctx, n, "m1", payment.NewPaymentID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing payment: %v", err)
	}
	if _, err := s.GetPayment(ctx, n, "m1", payment.NewPaymentID()); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("replayed nonce on a missing payment: %v", err)
	}
	if err := s.ClaimNonce(ctx, *n); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("the get did not claim its nonce: %v", err)
	}
	rec, _, err := s.CreatePayment(ctx, nil, newPayment("m1", "order-get", 100), t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPayment(ctx, n, "m1", rec.PaymentID); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("replayed nonce on a stored payment: %v", err)
	}
	got, err := s.GetPayment(ctx, nil, "m1", rec.PaymentID)
	if err != nil || got.PaymentID != rec.PaymentID || got.Version != 1 {
		t.Fatalf("get without a nonce: %+v %v", got, err)
	}
}
