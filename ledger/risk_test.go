package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/paygate/paygate/ledger/pgtest"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/conformance"
	"github.com/paygate/paygate/store/storetest"
)

// TestRiskSkipsKnownOutTradeNo: the velocity counters are in Redis, but the
// out_trade_no index a replay is recognised by is the ledger's. A create
// whose out_trade_no the ledger holds is neither judged nor counted; a new
// one is counted, and a limit without room refuses.
func TestRiskSkipsKnownOutTradeNo(t *testing.T) {
	t.Parallel()
	l := newLedger(t, pgtest.Start(t), storetest.Redis(t).Addr())
	ctx := context.Background()
	now := time.Now()
	limits := []store.RiskLimit{{ID: "per-merchant:count", Max: 1, Add: 1, Window: time.Minute}}
	if _, created, err := l.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "known-1", 10, conformance.T0), time.Time{}); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	for i := 0; i < 3; i++ { // replays: never counted, even past the limit
		res, err := l.RiskCheck(ctx, conformance.Nonce("m"), "m", "known-1", false, limits, now)
		if err != nil || res.Outcome != store.RiskExists {
			t.Fatalf("replay %d: %+v %v, want RiskExists", i, res, err)
		}
	}
	if res, err := l.RiskCheck(ctx, conformance.Nonce("m"), "m", "known-1", true, limits, now); err != nil || res.Outcome != store.RiskExists {
		t.Fatalf("a block rule judged a replay: %+v %v", res, err)
	}
	if use, err := l.RiskUsage(ctx, "m", limits, now); err != nil || use[0] != 0 {
		t.Fatalf("usage after replays %v %v, want 0", use, err)
	}
	if res, err := l.RiskCheck(ctx, conformance.Nonce("m"), "m", "new-1", false, limits, now); err != nil || res.Outcome != store.RiskCounted {
		t.Fatalf("new out_trade_no: %+v %v, want counted", res, err)
	}
	if res, err := l.RiskCheck(ctx, conformance.Nonce("m"), "m", "new-2", false, limits, now); err != nil || res.Outcome != store.RiskRefused || res.Limit != 0 {
		t.Fatalf("over the limit: %+v %v, want refused by limit 0", res, err)
	}
	if use, err := l.RiskUsage(ctx, "m", limits, now); err != nil || use[0] != 1 {
		t.Fatalf("usage %v %v, want 1", use, err)
	}
	// One merchant's out_trade_no is unknown to another.
	if res, err := l.RiskCheck(ctx, conformance.Nonce("n"), "n", "known-1", false, limits, now); err != nil || res.Outcome != store.RiskCounted {
		t.Fatalf("another merchant's out_trade_no: %+v %v", res, err)
	}
}
