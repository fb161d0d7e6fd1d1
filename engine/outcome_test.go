package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// updatesDown is a store whose updates fail as unreachable: the create was
// stored, then the store went away before the channel's answer was saved.
type updatesDown struct{ *store.Store }

func (u updatesDown) UpdatePayment(context.Context, *payment.Record, store.Change) error {
	return fmt.Errorf("test: %w", store.ErrUnavailable)
}

// A store failure after the payment was stored is never "nothing was done":
// the payment exists (and here its channel order too), so the answer is
// store.ErrOutcomeUnknown, and the same out_trade_no finds the payment.
func TestStoreLostAfterCreateIsOutcomeUnknown(t *testing.T) {
	v := newEnv(t, func(st *store.Store) engine.Store { return updatesDown{st} })
	ctx := context.Background()
	_, err := v.e.CreatePayment(ctx, createReq("lost-1"))
	if !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("create whose update failed: %v, want ErrOutcomeUnknown", err)
	}
	if v.a.count("create")+v.b.count("create") != 1 {
		t.Fatalf("channel creates a=%d b=%d, want 1", v.a.count("create"), v.b.count("create"))
	}
	if _, err := v.st.GetPaymentByOutTradeNo(ctx, nil, "m1", "lost-1"); err != nil {
		t.Fatalf("the payment the answer called unknown: %v", err)
	}
}
