package risk_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/risk"
)

// FuzzRules: rules that config validation accepts always compile, and
// judging any request against them (checking and explaining) never panics.
func FuzzRules(f *testing.F) {
	f.Add([]byte(perIP), "203.0.113.7", "o-1", int64(100), "qr")
	f.Add([]byte(`rules: [{name: b, when: {methods: [qr], amount_max: 5}, block: {payer.client_ip: ["::ffff:1.2.3.0/120", "2001:db8::1"], payer.openid: [x]}}]`), "::ffff:1.2.3.4", "x", int64(5), "qr")
	f.Add([]byte(`rules: [{name: a, limit: {amount: 10, per: 744h, by: payer.openid}}, {name: m, limit: {count: 1, per: 1s, by: merchant}}]`), "", "", int64(-1), "cash")
	f.Fuzz(func(t *testing.T, y []byte, ip, openid string, amount int64, method string) {
		var rc config.Risk
		if yaml.Unmarshal(y, &rc) != nil {
			return
		}
		cfg := config.Default()
		cfg.Risk = rc
		valid := true
		var pe *config.ProblemsError
		if errors.As(cfg.Validate(), &pe) {
			for _, p := range pe.Problems {
				if strings.HasPrefix(p.Path, "risk") {
					valid = false
				}
			}
		}
		e, err := risk.New(rc, passingCounter{}, zap.NewNop())
		if valid && err != nil {
			t.Fatalf("rules config accepts do not compile: %v", err)
		}
		if err != nil {
			return
		}
		req := risk.Request{Merchant: "m1", OutTradeNo: "o-1", Method: payment.Method(method), Amount: amount, OpenID: openid, ClientIP: ip}
		_ = e.Check(context.Background(), nil, req)
		if _, err := e.Explain(context.Background(), req); err != nil {
			t.Fatalf("explain: %v", err)
		}
		_ = e.Table().Rules()
		_, _ = risk.MaskOpenID(openid), risk.MaskIP(ip)
	})
}
