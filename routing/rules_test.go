package routing

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

func TestDecideRuleMatching(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	tests := []struct {
		name         string
		req          Request
		wantRule     string
		wantEligible []string
		wantExcluded map[string]string
	}{
		{
			name:         "method matches the default rule",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY"},
			wantRule:     "default-qr",
			wantEligible: []string{"ali", "wx"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "amount_min is inclusive",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 500000, Currency: "CNY"},
			wantRule:     "large-to-bank",
			wantEligible: []string{"bank-a"},
			wantExcluded: map[string]string{"wx": ReasonWeightZero},
		},
		{
			name:         "amount_max is inclusive",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 1000000, Currency: "CNY"},
			wantRule:     "large-to-bank",
			wantEligible: []string{"bank-a"},
			wantExcluded: map[string]string{"wx": ReasonWeightZero},
		},
		{
			name:         "below amount_min falls through",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 499999, Currency: "CNY"},
			wantRule:     "default-qr",
			wantEligible: []string{"ali", "wx"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "above amount_max falls through",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 1000001, Currency: "CNY"},
			wantRule:     "default-qr",
			wantEligible: []string{"ali", "wx"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "first match wins: merchant rule before amount rule",
			req:          Request{Merchant: "vip", Method: payment.MethodQR, Amount: 500000, Currency: "CNY"},
			wantRule:     "merchant-vip",
			wantEligible: []string{"bank-a"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "merchant rule does not match another merchant",
			req:          Request{Merchant: "vip2", Method: payment.MethodQR, Amount: 100, Currency: "CNY"},
			wantRule:     "default-qr",
			wantEligible: []string{"ali", "wx"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "all metadata keys equal",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY", Metadata: map[string]string{"region": "north", "tier": "gold", "other": "x"}},
			wantRule:     "meta-tagged",
			wantEligible: []string{"ali"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "a missing metadata key does not match",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY", Metadata: map[string]string{"region": "north"}},
			wantRule:     "default-qr",
			wantEligible: []string{"ali", "wx"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "a different metadata value does not match",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY", Metadata: map[string]string{"region": "south", "tier": "gold"}},
			wantRule:     "default-qr",
			wantEligible: []string{"ali", "wx"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "currency rule",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "USD"},
			wantRule:     "usd",
			wantEligible: []string{"wx-usd"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "currency compares case-insensitively",
			req:          Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "usd"},
			wantRule:     "usd",
			wantEligible: []string{"wx-usd"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "rule candidate that does not serve the method",
			req:          Request{Merchant: "demo", Method: payment.MethodBankRedirect, Amount: 100, Currency: "CNY"},
			wantRule:     "bank-redirect",
			wantEligible: []string{"bank-a"},
			wantExcluded: map[string]string{"wx": ReasonMethod},
		},
		{
			name:         "rule candidate that does not take the currency",
			req:          Request{Merchant: "vip", Method: payment.MethodQR, Amount: 100, Currency: "USD"},
			wantRule:     "merchant-vip",
			wantEligible: nil,
			wantExcluded: map[string]string{"bank-a": ReasonCurrency},
		},
		{
			name:         "no rule matches: fallback to channels listing the method",
			req:          Request{Merchant: "demo", Method: payment.MethodAlipayPage, Amount: 100, Currency: "CNY"},
			wantRule:     FallbackRule,
			wantEligible: []string{"ali"},
			wantExcluded: map[string]string{},
		},
		{
			name:         "fallback excludes by currency",
			req:          Request{Merchant: "demo", Method: payment.MethodWechatJSAPI, Amount: 100, Currency: "CNY"},
			wantRule:     FallbackRule,
			wantEligible: []string{"wx"},
			wantExcluded: map[string]string{"wx-usd": ReasonCurrency},
		},
		{
			name:         "unknown method: fallback with no candidates",
			req:          Request{Merchant: "demo", Method: "cash", Amount: 100, Currency: "CNY"},
			wantRule:     FallbackRule,
			wantEligible: nil,
			wantExcluded: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := r.Table().Decide(tt.req)
			if d.Rule != tt.wantRule {
				t.Errorf("rule = %q, want %q", d.Rule, tt.wantRule)
			}
			if got := eligibleIDs(d); !reflect.DeepEqual(got, tt.wantEligible) {
				t.Errorf("eligible = %v, want %v", got, tt.wantEligible)
			}
			if got := excludedReasons(d); !reflect.DeepEqual(got, tt.wantExcluded) {
				t.Errorf("excluded = %v, want %v", got, tt.wantExcluded)
			}
			for _, c := range d.Candidates {
				if c.Rule != d.Rule || c.Breaker != BreakerClosed || c.Score <= 0 || c.Score > 1 || c.Reason == "" {
					t.Errorf("candidate %+v: want rule %q, closed breaker, score in (0,1], a reason", c, d.Rule)
				}
			}
		})
	}
}

func TestDecideFallbackEqualWeights(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Routing.Rules = nil
	r, _ := newRouter(t, cfg, nil)
	d := r.Table().Decide(Request{Merchant: "demo", Method: payment.MethodQR, Amount: 1, Currency: "CNY"})
	if d.Rule != FallbackRule {
		t.Fatalf("rule = %q", d.Rule)
	}
	if got, want := eligibleIDs(d), []string{"ali", "bank-a", "wx"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("eligible = %v, want %v", got, want)
	}
	for _, c := range d.Candidates {
		if c.Eligible && (c.Weight != 1 || c.Priority != 0) {
			t.Errorf("fallback candidate %+v: want weight 1, priority 0", c)
		}
	}
}

func TestInvalidConfigKeepsOldTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(c *config.Config)
		wantErr string
	}{
		{"unknown channel in a rule", func(c *config.Config) { c.Routing.Rules[4].Channels[0].ID = "nope" }, `routing.rules[4].channels[0]: unknown channel "nope"`},
		{"weight below zero", func(c *config.Config) { c.Routing.Rules[4].Channels[1].Weight = -1 }, "routing.rules[4].channels[1].weight"},
		{"weight NaN", func(c *config.Config) { c.Routing.Rules[4].Channels[1].Weight = math.NaN() }, "routing.rules[4].channels[1].weight"},
		{"channel twice in a rule", func(c *config.Config) { c.Routing.Rules[4].Channels[1].ID = "wx" }, `channel "wx" listed twice`},
		{"rule with no channels", func(c *config.Config) { c.Routing.Rules[0].Channels = nil }, "routing.rules[0].channels: no channels"},
		{"unknown method in a rule", func(c *config.Config) { c.Routing.Rules[4].When.Methods = []string{"cash"} }, `routing.rules[4].when.methods[0]: unknown method "cash"`},
		{"amount_min above amount_max", func(c *config.Config) { c.Routing.Rules[2].When.AmountMin = 2000000 }, "amount_min 2000000 is above amount_max 1000000"},
		{"negative amount", func(c *config.Config) { c.Routing.Rules[2].When.AmountMin = -1 }, "routing.rules[2].when.amount_min"},
		{"duplicate rule name", func(c *config.Config) { c.Routing.Rules[1].Name = "merchant-vip" }, `duplicate rule name "merchant-vip"`},
		{"reserved rule name", func(c *config.Config) { c.Routing.Rules[1].Name = FallbackRule }, "is reserved"},
		{"duplicate channel id", func(c *config.Config) { c.Channels[1].ID = "wx" }, `channels[1].id: duplicate channel "wx"`},
		{"unknown channel method", func(c *config.Config) { c.Channels[0].Methods = append(c.Channels[0].Methods, "cash") }, `channels[0].methods[3]: unknown method "cash"`},
		{"failure ratio above 1", func(c *config.Config) { c.Channels[0].Breaker.FailureRatio = 1.5 }, "channels[0].breaker.failure_ratio"},
		{"exploration above 1", func(c *config.Config) { c.Routing.Exploration = 1.5 }, "routing.exploration"},
		{"negative max_attempts", func(c *config.Config) { c.Routing.Failover.MaxAttempts = -1 }, "routing.failover.max_attempts"},
		{"bucket narrower than 1ms", func(c *config.Config) { c.Routing.Health.Window = config.Duration(time.Millisecond) }, "window / buckets"},
		{"builder fails", func(c *config.Config) { c.Channels[2].BaseURL = "fail" }, "channels[2]: build adapter: cannot read key file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := newRouter(t, baseConfig(), nil)
			before := r.Table()
			req := Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY"}
			wantDecision := before.Decide(req)

			bad := baseConfig()
			tt.mutate(bad)
			err := r.Reload(bad)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Reload error = %v, want it to contain %q", err, tt.wantErr)
			}
			if r.Table() != before {
				t.Fatal("a failed reload replaced the table")
			}
			if got := r.Table().Decide(req); got.Rule != wantDecision.Rule || !reflect.DeepEqual(eligibleIDs(got), eligibleIDs(wantDecision)) {
				t.Fatalf("decision changed after a failed reload: %+v, want %+v", got, wantDecision)
			}
			if _, err := New(bad, build, nil, nil); err == nil {
				t.Fatal("New accepted the invalid config")
			}
		})
	}
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Routing.Rules[0].Channels[0].ID = "nope"
	cfg.Routing.Rules[4].Channels[1].Weight = -2
	_, err := New(cfg, build, nil, nil)
	if err == nil {
		t.Fatal("New accepted the invalid config")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Fatalf("want both problems listed separately, got %v", err)
	}
}

func TestRulesInfo(t *testing.T) {
	t.Parallel()
	r, _ := newRouter(t, baseConfig(), nil)
	rules := r.Rules()
	want := []struct{ name, match string }{
		{"merchant-vip", "merchants=vip"},
		{"meta-tagged", "metadata.region=north metadata.tier=gold"},
		{"large-to-bank", "methods=qr amount=500000..1000000"},
		{"usd", "currencies=USD"},
		{"default-qr", "methods=qr"},
		{"bank-redirect", "methods=bank_redirect"},
	}
	for i, w := range want {
		if rules[i].Name != w.name || rules[i].Match != w.match || rules[i].Fallback {
			t.Errorf("rules[%d] = %+v, want %s %q", i, rules[i], w.name, w.match)
		}
	}
	if got := rules[4].Channels; !reflect.DeepEqual(got, []RuleChannel{{ID: "wx", Weight: 60}, {ID: "ali", Weight: 40}}) {
		t.Errorf("default-qr channels = %+v", got)
	}
	// Then one fallback per method some channel serves (all six here).
	fb := rules[len(want):]
	if len(fb) != len(payment.Methods) {
		t.Fatalf("fallback rules = %+v", fb)
	}
	if fb[0].Name != FallbackRule || !fb[0].Fallback || fb[0].Match != "methods=qr" || len(fb[0].Channels) != 4 {
		t.Errorf("qr fallback = %+v", fb[0])
	}
}
