// Package risk checks payment creates against the risk rules of the config
// (risk.rules): velocity limits counting creates or summing amounts over a
// sliding window per merchant, payer openid or payer client IP, and blocks
// of address ranges and openids. Rules are compiled into an immutable Table,
// swapped atomically on reload; the counters live in the store, shared by
// every instance. See docs/risk.md.
package risk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// Request is what the rules see of a create.
type Request struct {
	Merchant   string
	OutTradeNo string
	Method     payment.Method
	Amount     int64  // fen
	OpenID     string // "" when the request has none
	ClientIP   string // as sent; "" when the request has none
}

// RequestOf is the Request of a create (payer may be nil).
func RequestOf(merchant, outTradeNo string, method payment.Method, amount int64, payer *payment.Payer) Request {
	r := Request{Merchant: merchant, OutTradeNo: outTradeNo, Method: method, Amount: amount}
	if payer != nil {
		r.OpenID, r.ClientIP = payer.OpenID, payer.ClientIP
	}
	return r
}

// Kinds of rule.
const (
	KindLimit = "limit"
	KindBlock = "block"
)

// Outcomes of a rule for one request (explain, metrics).
const (
	OutcomePassed        = "passed"
	OutcomeRefused       = "refused"
	OutcomeNotApplicable = "not_applicable"
)

// rule is one compiled rule.
type rule struct {
	name      string
	methods   map[payment.Method]bool // empty: every method
	amountMin int64
	amountMax int64 // 0: no upper bound

	limit  bool
	amount bool // sums amounts (else counts creates)
	max    int64
	per    time.Duration
	by     string

	prefixes []netip.Prefix
	openids  map[string]bool
}

// Table is the compiled, immutable rule set. A request uses the table it
// started with; a reload builds a new one and swaps it in.
type Table struct {
	rules []*rule
}

// Compile builds the table of rc (validated by config; Compile checks again
// what it relies on).
func Compile(rc config.Risk) (*Table, error) {
	t := &Table{}
	for i, rr := range rc.Rules {
		p := fmt.Sprintf("risk.rules[%d]", i)
		r := &rule{name: rr.Name, amountMin: rr.When.AmountMin, amountMax: rr.When.AmountMax}
		if r.name == "" {
			return nil, fmt.Errorf("%s.name: required", p)
		}
		if len(rr.When.Methods) > 0 {
			r.methods = map[payment.Method]bool{}
			for _, m := range rr.When.Methods {
				r.methods[payment.Method(m)] = true
			}
		}
		switch {
		case rr.IsLimit() && rr.IsBlock():
			return nil, fmt.Errorf("%s: set either limit or block, not both", p)
		case rr.IsLimit():
			l := rr.Limit
			r.limit, r.amount, r.max, r.per, r.by = true, l.Amount > 0, l.Count, l.Per.D(), l.By
			if r.amount {
				r.max = l.Amount
			}
			if r.max < 1 || r.per < time.Second {
				return nil, fmt.Errorf("%s.limit: needs count or amount and per of at least 1s", p)
			}
			switch r.by {
			case config.RiskByMerchant, config.RiskByOpenID, config.RiskByClientIP:
			default:
				return nil, fmt.Errorf("%s.limit.by: unknown %q", p, r.by)
			}
		case rr.IsBlock():
			for j, s := range rr.Block.ClientIP {
				pfx, err := config.ParseRiskPrefix(s)
				if err != nil {
					return nil, fmt.Errorf("%s.block.payer.client_ip[%d]: %w", p, j, err)
				}
				r.prefixes = append(r.prefixes, pfx)
			}
			r.openids = map[string]bool{}
			for _, o := range rr.Block.OpenID {
				r.openids[o] = true
			}
		default:
			return nil, fmt.Errorf("%s: want a limit or a block", p)
		}
		t.rules = append(t.rules, r)
	}
	return t, nil
}

// Len is the number of rules.
func (t *Table) Len() int { return len(t.rules) }

// verdict is one rule's view of a request.
type verdict struct {
	r       *rule
	applies bool
	reason  string // why it does not apply, or what a block found
	blocked bool   // a block rule that matches
	limit   store.RiskLimit
}

// judge applies the table to req without any counter: which rules apply,
// which block rule matches, and the store limits of the applicable limit
// rules (in config order).
func (t *Table) judge(req Request) []verdict {
	ip, ipErr := netip.ParseAddr(req.ClientIP)
	// A zone ("%eth0") names an interface of the sender, not the payer:
	// Prefix.Contains never matches a zoned address, and a zone in the
	// counter key would give each spelling its own window.
	ip = ip.Unmap().WithZone("")
	out := make([]verdict, len(t.rules))
	for i, r := range t.rules {
		v := verdict{r: r}
		switch {
		case len(r.methods) > 0 && !r.methods[req.Method]:
			v.reason = fmt.Sprintf("method %s is not in when.methods", req.Method)
		case req.Amount < r.amountMin:
			v.reason = fmt.Sprintf("amount %d is below when.amount_min %d", req.Amount, r.amountMin)
		case r.amountMax > 0 && req.Amount > r.amountMax:
			v.reason = fmt.Sprintf("amount %d is above when.amount_max %d", req.Amount, r.amountMax)
		case r.limit:
			v.limit, v.reason = r.storeLimit(req, ip, ipErr == nil)
			v.applies = v.limit.ID != ""
		default:
			v.applies = true
			switch {
			case req.OpenID != "" && r.openids[req.OpenID]:
				v.blocked, v.reason = true, "payer.openid is blocked"
			case ipErr == nil && containsAddr(r.prefixes, ip):
				v.blocked, v.reason = true, "payer.client_ip is in a blocked range"
			default:
				v.reason = "payer is not blocked"
			}
		}
		out[i] = v
	}
	return out
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// storeLimit is the counter a limit rule uses for req; an empty ID, and
// why, when the request lacks the rule's `by` value (the rule does not apply).
//
// The counter ID names the rule, what it counts and its window, so that
// changing a rule's kind or window starts fresh counters instead of
// misreading old buckets (changing only the count or amount keeps them).
// Payer values are hashed: no openid or address is stored in clear in a key.
func (r *rule) storeLimit(req Request, ip netip.Addr, ipOK bool) (store.RiskLimit, string) {
	kind, add := "count", int64(1)
	if r.amount {
		kind, add = "amount", req.Amount
	}
	id := r.name + ":" + kind + ":" + strconv.FormatInt(r.per.Milliseconds(), 10) + ":"
	switch r.by {
	case config.RiskByMerchant:
		id += "m"
	case config.RiskByOpenID:
		if req.OpenID == "" {
			return store.RiskLimit{}, "the request has no payer.openid"
		}
		id += "o:" + digest(req.OpenID)
	case config.RiskByClientIP:
		if !ipOK {
			return store.RiskLimit{}, "the request has no payer.client_ip"
		}
		id += "ip:" + digest(ip.String())
	}
	return store.RiskLimit{ID: id, Max: r.max, Add: add, Window: r.per}, ""
}

// digest is a short, stable hash of a payer value for counter keys.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

// describe says what a limit rule allows ("5 creates per 1m0s by payer.openid").
func (r *rule) describe() string {
	if r.amount {
		return fmt.Sprintf("%d fen per %s by %s", r.max, r.per, r.by)
	}
	return fmt.Sprintf("%d creates per %s by %s", r.max, r.per, r.by)
}

// RuleInfo describes a rule for people (status page). It never lists the
// blocked identifiers themselves: the status page is not behind the token.
type RuleInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	When string `json:"when"`
	What string `json:"what"`
}

// Rules describes the table's rules in config order.
func (t *Table) Rules() []RuleInfo {
	out := make([]RuleInfo, len(t.rules))
	for i, r := range t.rules {
		info := RuleInfo{Name: r.name, Kind: KindLimit, When: r.when()}
		if r.limit {
			info.What = r.describe()
		} else {
			info.Kind = KindBlock
			info.What = fmt.Sprintf("blocks %d address ranges and %d openids", len(r.prefixes), len(r.openids))
		}
		out[i] = info
	}
	return out
}

func (r *rule) when() string {
	var parts []string
	if len(r.methods) > 0 {
		ms := make([]string, 0, len(r.methods))
		for _, m := range payment.Methods { // a stable order
			if r.methods[m] {
				ms = append(ms, string(m))
			}
		}
		parts = append(parts, "methods "+strings.Join(ms, ", "))
	}
	if r.amountMin > 0 {
		parts = append(parts, fmt.Sprintf("amount ≥ %d", r.amountMin))
	}
	if r.amountMax > 0 {
		parts = append(parts, fmt.Sprintf("amount ≤ %d", r.amountMax))
	}
	if len(parts) == 0 {
		return "every create"
	}
	return strings.Join(parts, "; ")
}
