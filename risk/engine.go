package risk

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
)

// Counter keeps the velocity counters, shared by every instance
// (implemented by *store.Store).
type Counter interface {
	RiskCheck(ctx context.Context, n *store.Nonce, merchant, outTradeNo string, block bool, limits []store.RiskLimit, now time.Time) (store.RiskResult, error)
	RiskUsage(ctx context.Context, merchant string, limits []store.RiskLimit, now time.Time) ([]int64, error)
}

// Observer counts decisions (paygate_risk_decisions_total{rule,outcome}).
type Observer interface {
	RiskDecision(rule, outcome string)
}

// RejectedError is a create refused by a risk rule. The edge answers 403
// risk_rejected without the rule's name; Rule is for logs and tests.
type RejectedError struct {
	Rule string
}

func (e *RejectedError) Error() string { return "refused by risk rule " + e.Rule }

// errNoCounter: rules apply but the engine was built without a store (a
// wiring mistake); the create fails closed instead of going unchecked.
var errNoCounter = errors.New("risk: rules apply but no counter store is configured")

// Engine checks creates against the current table.
type Engine struct {
	counter Counter
	table   atomic.Pointer[Table]
	logger  *zap.Logger
	now     func() time.Time
	obs     Observer // nil: none
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock injects the clock the windows are read with (tests).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithObserver reports every decision to o.
func WithObserver(o Observer) Option { return func(e *Engine) { e.obs = o } }

// New compiles cfg's rules. c may be nil only while there are no limit or
// block rules to check (tests of other parts).
func New(cfg config.Risk, c Counter, logger *zap.Logger, opts ...Option) (*Engine, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	e := &Engine{counter: c, logger: logger.Named("risk"), now: time.Now}
	for _, o := range opts {
		o(e)
	}
	commit, err := e.Prepare(cfg)
	if err != nil {
		return nil, err
	}
	commit()
	return e, nil
}

// Prepare compiles cfg's rules without changing anything; commit swaps the
// new table in. Requests in flight finish on the table they started with.
func (e *Engine) Prepare(cfg config.Risk) (commit func(), err error) {
	t, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	return func() { e.table.Store(t) }, nil
}

// Table is the table in force.
func (e *Engine) Table() *Table { return e.table.Load() }

// Check decides a create, after authentication and before anything is
// stored or sent to a channel. n is the request's nonce, not yet claimed.
//
// No applicable rule: nil, with no store round trip. Otherwise one atomic
// store script (one round trip) does, in order: a claimed nonce is
// store.ErrNonceReplayed; an out_trade_no the merchant already used passes
// unjudged and uncounted (the create path answers the replay or the
// conflict); a matching block rule refuses; a limit without room refuses
// (the first one in config order); else the create is counted in every
// applicable limit. A refusal counts nothing and is a *RejectedError;
// nothing is stored, so a retry of the same out_trade_no is judged afresh.
//
// Check never claims n: after a pass the create claims it; after any error
// the caller claims it, as for every refused create (the engine's Gate
// contract: refuseAfterNonce).
func (e *Engine) Check(ctx context.Context, n *store.Nonce, req Request) error {
	vs := e.table.Load().judge(req)
	var (
		block  *rule
		limits []store.RiskLimit
		names  []string
	)
	for _, v := range vs {
		switch {
		case !v.applies:
		case v.r.limit:
			limits = append(limits, v.limit)
			names = append(names, v.r.name)
		case v.blocked && block == nil:
			block = v.r
		}
	}
	if block == nil && len(limits) == 0 {
		return nil
	}
	if block != nil {
		limits = nil // refused whatever the limits say; count nothing
	}
	if e.counter == nil {
		return errNoCounter
	}
	res, err := e.counter.RiskCheck(ctx, n, req.Merchant, req.OutTradeNo, block != nil, limits, e.now())
	if err != nil {
		return err
	}
	switch res.Outcome {
	case store.RiskExists:
		return nil
	case store.RiskCounted:
		for _, name := range names {
			e.observe(name, OutcomePassed)
		}
		return nil
	}
	name := ""
	switch {
	case res.Limit < 0 && block != nil:
		name = block.name
	case res.Limit >= 0 && res.Limit < len(names):
		name = names[res.Limit]
	}
	e.observe(name, OutcomeRefused)
	e.logger.Warn("payment refused by a risk rule",
		zap.String("rule", name), zap.String("merchant", req.Merchant), zap.String("out_trade_no", req.OutTradeNo),
		zap.String("method", string(req.Method)), zap.Int64("amount", req.Amount),
		zap.String("openid", MaskOpenID(req.OpenID)), zap.String("client_ip", MaskIP(req.ClientIP)))
	return &RejectedError{Rule: name}
}

func (e *Engine) observe(rule, outcome string) {
	if e.obs != nil {
		e.obs.RiskDecision(rule, outcome)
	}
}

// Verdict is one rule's answer in an Explanation.
type Verdict struct {
	Rule    string `json:"rule"`
	Kind    string `json:"kind"`    // limit | block
	Outcome string `json:"outcome"` // passed | refused | not_applicable
	Reason  string `json:"reason"`
	// Limit rules that apply: what the window holds now, what this payment
	// would add, and the limit.
	Used  *int64 `json:"used,omitempty"`
	Adds  int64  `json:"adds,omitempty"`
	Limit int64  `json:"limit,omitempty"`
}

// Explanation is what the rules would decide of a payment now.
type Explanation struct {
	Decision string    `json:"decision"`       // passed | refused
	Rule     string    `json:"rule,omitempty"` // the deciding rule when refused
	Rules    []Verdict `json:"rules"`
}

// Explain says which rules would pass or refuse req now, and which one
// decides, reading the counters without counting anything. It ignores
// req.OutTradeNo (a create with a known one would pass unjudged).
func (e *Engine) Explain(ctx context.Context, req Request) (*Explanation, error) {
	vs := e.table.Load().judge(req)
	var limits []store.RiskLimit
	for _, v := range vs {
		if v.applies && v.r.limit {
			limits = append(limits, v.limit)
		}
	}
	var used []int64
	if len(limits) > 0 {
		if e.counter == nil {
			return nil, errNoCounter
		}
		var err error
		if used, err = e.counter.RiskUsage(ctx, req.Merchant, limits, e.now()); err != nil {
			return nil, err
		}
	}
	ex := &Explanation{Decision: OutcomePassed, Rules: make([]Verdict, 0, len(vs))}
	var firstLimit string
	k := 0
	for _, v := range vs {
		out := Verdict{Rule: v.r.name, Kind: KindBlock, Outcome: OutcomePassed, Reason: v.reason}
		if v.r.limit {
			out.Kind = KindLimit
		}
		switch {
		case !v.applies:
			out.Outcome = OutcomeNotApplicable
		case v.r.limit:
			out.Reason = v.r.describe()
			u := used[k]
			k++
			out.Used, out.Adds, out.Limit = &u, v.limit.Add, v.limit.Max
			if u+v.limit.Add > v.limit.Max {
				out.Outcome = OutcomeRefused
				if firstLimit == "" {
					firstLimit = v.r.name
				}
			}
		case v.blocked:
			out.Outcome = OutcomeRefused
			if ex.Rule == "" {
				ex.Rule = v.r.name // blocks decide before limits
			}
		}
		ex.Rules = append(ex.Rules, out)
	}
	if ex.Rule == "" {
		ex.Rule = firstLimit
	}
	if ex.Rule != "" {
		ex.Decision = OutcomeRefused
	}
	return ex, nil
}
