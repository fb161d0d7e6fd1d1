package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// Risk holds the risk rules checked on every payment create, after
// authentication and before any channel call (package risk compiles them).
// No rules: nothing is checked and no store round trip is spent.
type Risk struct {
	Rules []RiskRule `yaml:"rules"`
}

// RiskRule is one risk rule: exactly one of Limit or Block. Every rule whose
// When matches is checked; the payment is refused when any of them refuses.
type RiskRule struct {
	// Name identifies the rule in logs, metrics and /admin/risk/explain
	// (never to the merchant). 1-64 characters of [A-Za-z0-9_.-], unique.
	Name  string    `yaml:"name"`
	When  RiskMatch `yaml:"when"`
	Limit RiskLimit `yaml:"limit"`
	Block RiskBlock `yaml:"block"`
}

// RiskMatch scopes a rule. Empty fields match everything.
type RiskMatch struct {
	Methods   []string `yaml:"methods"`
	AmountMin int64    `yaml:"amount_min"` // fen, inclusive; 0: no lower bound
	AmountMax int64    `yaml:"amount_max"` // fen, inclusive; 0: no upper bound
}

// RiskLimit is a velocity limit over a sliding window: at most Count creates,
// or at most Amount fen in total, per By value within Per. Exactly one of
// Count and Amount is set (0: unset).
type RiskLimit struct {
	Count  int64    `yaml:"count"`  // creates per window
	Amount int64    `yaml:"amount"` // fen per window (sum of the amounts)
	Per    Duration `yaml:"per"`    // the window, 1s to 744h (31 days)
	// By is what is counted: merchant | payer.openid | payer.client_ip. A
	// request without that value (no payer.openid, say) is not subject to
	// the rule. Counters are per merchant: a payer.client_ip rule counts
	// that address's creates at each merchant separately.
	By string `yaml:"by"`
}

// RiskBlock refuses payers by address range or identifier.
type RiskBlock struct {
	ClientIP []string `yaml:"payer.client_ip"` // CIDRs ("203.0.113.0/24") or single addresses
	OpenID   []string `yaml:"payer.openid"`    // exact openids
}

// IsLimit reports whether the rule's limit is set.
func (r RiskRule) IsLimit() bool {
	l := r.Limit
	return l.Count != 0 || l.Amount != 0 || l.Per != 0 || l.By != ""
}

// IsBlock reports whether the rule's block is set.
func (r RiskRule) IsBlock() bool { return len(r.Block.ClientIP) > 0 || len(r.Block.OpenID) > 0 }

// Risk limit keys (RiskLimit.By).
const (
	RiskByMerchant = "merchant"
	RiskByOpenID   = "payer.openid"
	RiskByClientIP = "payer.client_ip"
)

const (
	maxRiskRules  = 100
	maxRiskWindow = 744 * time.Hour
)

var riskNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseRiskPrefix reads a block entry: a CIDR, or a single address (its
// full-length prefix). IPv4-mapped IPv6 forms are unmapped.
func ParseRiskPrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want a CIDR such as \"203.0.113.0/24\" or an address, got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (v *validator) risk() {
	rules := v.c.Risk.Rules
	if len(rules) > maxRiskRules {
		v.add("risk.rules", "at most %d rules, got %d", maxRiskRules, len(rules))
	}
	names := map[string]int{}
	for i, r := range rules {
		p := fmt.Sprintf("risk.rules[%d]", i)
		switch j, dup := names[r.Name]; {
		case r.Name == "":
			v.add(p+".name", "required")
		case !riskNameRe.MatchString(r.Name):
			v.add(p+".name", "want 1-64 characters of [A-Za-z0-9_.-], got %q", r.Name)
		case dup:
			v.add(p+".name", "duplicate rule name %q (also risk.rules[%d])", r.Name, j)
		default:
			names[r.Name] = i
		}
		w := r.When
		v.methods(p+".when.methods", w.Methods, nil)
		if w.AmountMin < 0 {
			v.add(p+".when.amount_min", "must be at least 0, got %d", w.AmountMin)
		}
		if w.AmountMax < 0 {
			v.add(p+".when.amount_max", "must be at least 0 (0: no upper bound), got %d", w.AmountMax)
		}
		if w.AmountMax > 0 && w.AmountMin > w.AmountMax {
			v.add(p+".when.amount_min", "greater than amount_max (%d > %d)", w.AmountMin, w.AmountMax)
		}
		switch lim, blk := r.IsLimit(), r.IsBlock(); {
		case lim && blk:
			v.add(p, "set either limit or block, not both")
		case lim:
			v.riskLimit(p+".limit", r.Limit)
		case blk:
			v.riskBlock(p+".block", r.Block)
		default:
			v.add(p, "want a limit {count|amount, per, by} or a block {payer.client_ip, payer.openid}")
		}
	}
}

func (v *validator) riskLimit(p string, l RiskLimit) {
	switch {
	case l.Count < 0:
		v.add(p+".count", "must be at least 1, got %d", l.Count)
	case l.Amount < 0:
		v.add(p+".amount", "must be at least 1, got %d", l.Amount)
	case l.Count > 0 && l.Amount > 0:
		v.add(p, "set either count or amount, not both")
	case l.Count == 0 && l.Amount == 0:
		v.add(p, "set count (creates per window) or amount (fen per window)")
	}
	if l.Per < Duration(time.Second) || l.Per > Duration(maxRiskWindow) {
		v.add(p+".per", "must be between 1s and 744h, got %s", l.Per)
	}
	v.oneOf(p+".by", l.By, RiskByMerchant, RiskByOpenID, RiskByClientIP)
}

func (v *validator) riskBlock(p string, b RiskBlock) {
	for i, s := range b.ClientIP {
		if _, err := ParseRiskPrefix(s); err != nil {
			v.add(fmt.Sprintf("%s.payer.client_ip[%d]", p, i), "%s", err)
		}
	}
	for i, s := range b.OpenID {
		if s == "" || len(s) > 128 {
			v.add(fmt.Sprintf("%s.payer.openid[%d]", p, i), "want 1-128 characters, got %d", len(s))
		}
	}
}
