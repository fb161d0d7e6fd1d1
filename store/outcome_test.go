package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/conformance"
	"github.com/paygate/paygate/store/storetest"
)

// A script sent to a Redis that does not answer (frozen: SIGSTOP) may still
// run — and does, once the server resumes — so its failure is
// ErrOutcomeUnknown, never a plain "nothing was done". A Redis nobody
// listens on is ErrUnavailable without ErrOutcomeUnknown: nothing was sent.
func TestFrozenRedisOutcomeUnknown(t *testing.T) {
	rs := storetest.Redis(t)
	st, err := store.Open(config.Redis{Addrs: []string{rs.Addr()}, DialTimeout: config.Duration(200 * time.Millisecond),
		ReadTimeout: config.Duration(300 * time.Millisecond), WriteTimeout: config.Duration(300 * time.Millisecond)}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, _, err := st.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "warm", 10, time.Now()), time.Time{}); err != nil {
		t.Fatal(err)
	}

	rs.Freeze()
	_, _, err = st.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "frozen-1", 10, time.Now()), time.Time{})
	if !errors.Is(err, store.ErrOutcomeUnknown) || !errors.Is(err, store.ErrUnavailable) {
		rs.Thaw()
		t.Fatalf("create on a frozen Redis: %v, want ErrOutcomeUnknown", err)
	}
	// A read changes nothing: a lost reply is a plain ErrUnavailable.
	if _, err := st.GetPaymentByOutTradeNo(ctx, conformance.Nonce("m"), "m", "warm"); !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrOutcomeUnknown) {
		rs.Thaw()
		t.Fatalf("read on a frozen Redis: %v, want ErrUnavailable only", err)
	}
	rs.Thaw()
	// The outcome was indeed unknown: the buffered script ran afterwards.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, err := st.GetPaymentByOutTradeNo(ctx, nil, "m", "frozen-1")
		if err == nil && rec.OutTradeNo == "frozen-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the create sent to the frozen Redis never ran: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	rs.Stop()
	_, _, err = st.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "down-1", 10, time.Now()), time.Time{})
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("create on a stopped Redis: %v, want ErrUnavailable and a known outcome (nothing sent)", err)
	}
}
