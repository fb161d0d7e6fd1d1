package risk_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/risk"
	"github.com/paygate/paygate/store"
)

// passingCounter answers every check "counted" without a store: the
// benchmark measures the Go side of a check only (rule matching, counter
// ids with their payer hashes); the store's side is store's BenchmarkRiskCheck.
type passingCounter struct{}

func (passingCounter) RiskCheck(context.Context, *store.Nonce, string, string, bool, []store.RiskLimit, time.Time) (store.RiskResult, error) {
	return store.RiskResult{Outcome: store.RiskCounted, Limit: -1}, nil
}

func (passingCounter) RiskUsage(_ context.Context, _ string, l []store.RiskLimit, _ time.Time) ([]int64, error) {
	return make([]int64, len(l)), nil
}

// BenchmarkCheckGoSide: six rules (three limits by merchant, openid and
// client ip, a scoped limit that does not apply, two blocks).
func BenchmarkCheckGoSide(b *testing.B) {
	e, err := risk.New(rules(b, `
rules:
  - name: per-merchant
    limit: {count: 1000, per: 1m, by: merchant}
  - name: per-payer
    limit: {count: 5, per: 1m, by: payer.openid}
  - name: big-tickets
    limit: {amount: 2000000, per: 24h, by: payer.client_ip}
  - name: jsapi
    when: {methods: [wechat_jsapi]}
    limit: {count: 5, per: 1m, by: payer.openid}
  - name: bad-ranges
    block: {payer.client_ip: ["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32"]}
  - name: bad-payers
    block: {payer.openid: [o-fraud-1, o-fraud-2]}
`), passingCounter{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := risk.Request{Merchant: "m1", OutTradeNo: "o-" + strconv.Itoa(i), Method: payment.MethodQR, Amount: 1999,
			OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", ClientIP: "192.0.2.7"}
		if err := e.Check(ctx, nil, req); err != nil {
			b.Fatal(err)
		}
	}
}
