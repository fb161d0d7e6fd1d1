package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/store"
)

// The risk velocity counters stay in Redis (short-lived, shared, bounded by
// their windows). Redis's check script skips an out_trade_no it finds in
// its own out_trade_no index, so that a replay or a conflict is never
// counted; with the ledger that index does not exist (payments live here),
// so the ledger looks the out_trade_no up first and answers a known one
// itself.

// RiskCheck is store.Store.RiskCheck: an out_trade_no the merchant already
// used in the ledger is store.RiskExists (nothing counted, the nonce left
// unclaimed for the create to answer); otherwise Redis checks and counts.
func (l *Ledger) RiskCheck(ctx context.Context, n *store.Nonce, merchant, outTradeNo string, block bool, limits []store.RiskLimit, now time.Time) (store.RiskResult, error) {
	if merchant == "" {
		return store.RiskResult{}, store.ErrEmptyMerchant
	}
	var one int
	err := l.pool.QueryRow(ctx, `SELECT 1 FROM payments WHERE merchant_id = $1 AND out_trade_no = $2`, merchant, outTradeNo).Scan(&one)
	switch {
	case err == nil:
		return store.RiskResult{Outcome: store.RiskExists, Limit: -1}, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return store.RiskResult{}, classify("risk check", err, false)
	}
	return l.shared.RiskCheck(ctx, n, merchant, outTradeNo, block, limits, now)
}

// RiskUsage is store.Store.RiskUsage, in Redis.
func (l *Ledger) RiskUsage(ctx context.Context, merchant string, limits []store.RiskLimit, now time.Time) ([]int64, error) {
	return l.shared.RiskUsage(ctx, merchant, limits, now)
}
