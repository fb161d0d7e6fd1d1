package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRiskParse(t *testing.T) {
	t.Parallel()
	dir := fixtureDir(t)
	cfg, err := Parse([]byte(baseYAML+`
risk:
  rules:
    - name: velocity-per-payer
      when: {methods: [qr], amount_min: 100, amount_max: 900}
      limit: {count: 5, per: 1m, by: payer.openid}
    - name: big-tickets
      limit: {amount: 2000000, per: 24h, by: payer.client_ip}
    - name: blocked-payers
      block: {payer.client_ip: ["203.0.113.0/24", "198.51.100.7"], payer.openid: ["o-fraud-1"]}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []RiskRule{
		{Name: "velocity-per-payer", When: RiskMatch{Methods: []string{"qr"}, AmountMin: 100, AmountMax: 900},
			Limit: RiskLimit{Count: 5, Per: Duration(time.Minute), By: RiskByOpenID}},
		{Name: "big-tickets", Limit: RiskLimit{Amount: 2000000, Per: Duration(24 * time.Hour), By: RiskByClientIP}},
		{Name: "blocked-payers", Block: RiskBlock{ClientIP: []string{"203.0.113.0/24", "198.51.100.7"}, OpenID: []string{"o-fraud-1"}}},
	}
	if !reflect.DeepEqual(cfg.Risk.Rules, want) {
		t.Errorf("rules = %+v\nwant %+v", cfg.Risk.Rules, want)
	}
	if s := cfg.Summary(); !strings.HasPrefix(s, "3 merchants, 4 channels, 2 routing rules, 3 risk rules;") {
		t.Errorf("summary = %q", s)
	}
}

func TestRiskProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		risk string
		want []string
	}{
		{"unknown key", `
    - name: a
      limit: {count: 5, per: 1m, by: merchant, burst: 2}`,
			[]string{`risk.rules[0].limit.burst: unknown key`}},
		{"name missing and duplicate", `
    - limit: {count: 5, per: 1m, by: merchant}
    - name: a
      limit: {count: 5, per: 1m, by: merchant}
    - name: a
      block: {payer.openid: [x]}
    - name: "a b"
      block: {payer.openid: [x]}`,
			[]string{`risk.rules[0].name: required`, `risk.rules[2].name: duplicate rule name "a" (also risk.rules[1])`,
				`risk.rules[3].name: want 1-64 characters of [A-Za-z0-9_.-], got "a b"`}},
		{"neither and both", `
    - name: a
    - name: b
      limit: {count: 5, per: 1m, by: merchant}
      block: {payer.openid: [x]}`,
			[]string{`risk.rules[0]: want a limit {count|amount, per, by} or a block {payer.client_ip, payer.openid}`,
				`risk.rules[1]: set either limit or block, not both`}},
		{"limit fields", `
    - name: a
      limit: {count: 5, amount: 10, per: 1m, by: merchant}
    - name: b
      limit: {per: 0, by: payer.phone}
    - name: c
      limit: {count: -1, per: 800h, by: merchant}
    - name: d
      limit: {count: 1, per: 60, by: merchant}`,
			[]string{`risk.rules[3].limit.per: duration 60 needs a unit, e.g. "60s" or "60ms"`,
				`risk.rules[0].limit: set either count or amount, not both`,
				`risk.rules[1].limit: set count (creates per window) or amount (fen per window)`,
				`risk.rules[1].limit.per: must be between 1s and 744h, got 0s`,
				`risk.rules[1].limit.by: want merchant, payer.openid, payer.client_ip, got "payer.phone"`,
				`risk.rules[2].limit.count: must be at least 1, got -1`,
				`risk.rules[2].limit.per: must be between 1s and 744h, got 800h0m0s`}},
		{"when", `
    - name: a
      when: {methods: [cash], amount_min: 10, amount_max: 5}
      limit: {count: 1, per: 1m, by: merchant}`,
			[]string{`risk.rules[0].when.methods[0]: unknown method "cash" (want one of qr, wechat_native, wechat_jsapi, alipay_qr, alipay_page, bank_redirect)`,
				`risk.rules[0].when.amount_min: greater than amount_max (10 > 5)`}},
		{"block entries", `
    - name: a
      block: {payer.client_ip: ["203.0.113.0/24", "10.0.0.0/33", nope], payer.openid: [""]}`,
			[]string{`risk.rules[0].block.payer.client_ip[1]: want a CIDR such as "203.0.113.0/24" or an address, got "10.0.0.0/33"`,
				`risk.rules[0].block.payer.client_ip[2]: want a CIDR such as "203.0.113.0/24" or an address, got "nope"`,
				`risk.rules[0].block.payer.openid[0]: want 1-128 characters, got 0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(baseYAML+"\nrisk:\n  rules:"+tt.risk+"\n"), fixtureDir(t))
			var pe *ProblemsError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error = %v, want problems", err)
			}
			var got []string
			for _, p := range pe.Problems {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestParseRiskPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"203.0.113.9/24", "203.0.113.0/24"},
		{"198.51.100.7", "198.51.100.7/32"},
		{"::ffff:198.51.100.0/120", "198.51.100.0/24"},
		{"::ffff:198.51.100.7", "198.51.100.7/32"},
		{"2001:db8::/32", "2001:db8::/32"},
	}
	for _, tt := range tests {
		p, err := ParseRiskPrefix(tt.in)
		if err != nil || p.String() != tt.want {
			t.Errorf("ParseRiskPrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
}
