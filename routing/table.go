package routing

import (
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

// FallbackRule is Decision.Rule when no rule matched: the request is served
// by every channel that lists its method, with equal weights (CONTRACT §8).
const FallbackRule = "(fallback)"

// Exclusion reasons (Candidate.Reason of a candidate that is not eligible).
const (
	ReasonWeightZero    = "weight 0"
	ReasonDisabled      = "channel disabled (draining)"
	ReasonMethod        = "does not serve method"
	ReasonCurrency      = "currency not supported"
	ReasonBreakerOpen   = "breaker open"
	ReasonBreakerProbes = "breaker half-open, all probe slots taken"
)

// Reasons of eligible candidates. ReasonExploration is exact; the others
// get the "probing (breaker half-open): " prefix when the breaker is
// half-open.
const (
	ReasonExploration = "exploration"
	ReasonWeighted    = "weighted random choice by weight among the candidates within tolerance of the best estimate"
	ReasonRanked      = "within tolerance of the best estimate, ranked by weight × estimate"
	ReasonLaterTier   = "within tolerance of the best estimate, in a later priority tier"
	ReasonEliminated  = "eliminated: only exploration and failover after the candidates within tolerance"
	probingPrefix     = "probing (breaker half-open): "
)

// Why a candidate is eliminated (Candidate.Why).
const (
	WhyFailures = "success estimate more than tolerance below the best estimate"
	WhyLatency  = "latency percentile over the channel's target pulls its estimate more than tolerance below the best"
)

// Reason strings are constants so that Decide does not build strings per
// request; index [probing].
var (
	reasonExploration = [2]string{ReasonExploration, probingPrefix + ReasonExploration}
	reasonWeighted    = [2]string{ReasonWeighted, probingPrefix + ReasonWeighted}
	reasonRanked      = [2]string{ReasonRanked, probingPrefix + ReasonRanked}
	reasonLaterTier   = [2]string{ReasonLaterTier, probingPrefix + ReasonLaterTier}
)

// Request is what routing matches on.
type Request struct {
	Merchant string            `json:"merchant"`
	Method   payment.Method    `json:"method"`
	Amount   int64             `json:"amount"` // minor units (fen)
	Currency string            `json:"currency"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Decision is the outcome of routing one request: the candidates of the
// matched rule (or of the fallback), eligible ones first in the order to
// try, then the excluded ones in rule order, each with its reason.
type Decision struct {
	Rule       string      `json:"rule"`
	Candidates []Candidate `json:"candidates"`
}

// Candidate is one channel of a decision.
type Candidate struct {
	Channel  string  `json:"channel"`
	Rule     string  `json:"rule"`
	Weight   float64 `json:"weight"`
	Priority int     `json:"priority"`
	// Score is the channel's success estimate in (0, 1]: Success × the
	// latency factor (docs/routing.md, "Success estimate").
	Score float64 `json:"score"`
	// Success is the success-rate part of Score; LatencyPMS the latency
	// percentile (routing.health.latency_percentile) in ms, 0 with no calls.
	Success    float64 `json:"success"`
	LatencyPMS float64 `json:"latency_p_ms"`
	// PerMethod says the estimate is of the request's method alone: it is
	// when that method's window has at least min_samples (decayed) creates;
	// otherwise it is of all the channel's creates.
	PerMethod bool `json:"per_method"`
	// Best is the best Score among the eligible candidates; a candidate
	// more than routing.tolerance below it is Eliminated, for Why.
	Best       float64 `json:"best"`
	Eliminated bool    `json:"eliminated"`
	Why        string  `json:"why,omitempty"`
	Breaker    string  `json:"breaker"` // closed | half-open | open
	Eligible   bool    `json:"eligible"`
	Reason     string  `json:"reason"`
}

// Table is an immutable compiled routing table. Take it once per request
// (Router.Table) and use it for the whole request: a reload swaps in a new
// Table and never changes this one. The health and breaker state it reads
// is live and shared with the tables before and after it.
type Table struct {
	rt       *routerState
	rules    []rule
	fallback [][]ref // by method index (payment.Methods order)
	channels []*channel
	byID     map[string]*channel
	// retired are channels a reload removed: never routed to again, but
	// their adapters still serve callbacks, queries, closes and refunds of
	// the payments already made on them.
	retired     map[string]*channel
	maxAttempts int
	exploration float64
	tolerance   float64 // routing.tolerance
	scoring     scoring
	halfLife    time.Duration // health.half_life
	window      time.Duration
	buckets     int
	sync        time.Duration // health.sync_interval
	fresh       time.Duration // how old a shared snapshot may be and still be scored on
}

// routerState is what a Table shares with its Router and the other tables.
type routerState struct {
	now    func() time.Time
	logger *zap.Logger
	shared bool // a HealthStore is configured
	seed   uint64
	draws  atomic.Uint64
}

// rand returns the next 64 random bits: SplitMix64 over an atomic counter,
// so concurrent Decide calls need no lock, and a seeded router makes the
// same draws in the same order.
func (rt *routerState) rand() uint64 {
	return splitmix64(rt.seed + rt.draws.Add(1)*0x9e3779b97f4a7c15)
}

func splitmix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// unit maps 64 random bits to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// channel is one channel instance in a table: its config and adapter (per
// table) and its health and breaker (shared across tables).
type channel struct {
	id         string
	cfg        config.Channel
	adapter    adapters.Channel
	methods    uint64 // bit i: serves payment.Methods[i]
	currencies []string
	timeout    time.Duration
	target     time.Duration // latency target
	health     *health       // creates: the success estimate
	// byMethod[i] is the create window of payment.Methods[i] alone, for the
	// methods the channel serves (nil for the others); shared like health
	// under the key "<id>@<method>".
	byMethod []*health
	queries  *health // every other operation, kept apart; this instance only
	br       *breaker
}

// windows lists the channel's shared windows with their store keys.
func (c *channel) windows(yield func(key string, h *health) bool) {
	if !yield(c.id, c.health) {
		return
	}
	for mi, h := range c.byMethod {
		if h != nil && !yield(c.id+"@"+string(payment.Methods[mi]), h) {
			return
		}
	}
}

func (c *channel) servesCurrency(cur string) bool {
	for _, s := range c.currencies {
		if strings.EqualFold(s, cur) {
			return true
		}
	}
	return false
}

// ref is one candidate of a rule.
type ref struct {
	ch       *channel
	weight   float64
	priority int
}

// rule is a compiled routing rule.
type rule struct {
	name    string
	match   matcher
	refs    []ref
	summary string
}

// Channel returns the adapter of channel id, also of a channel a reload
// removed (see retired).
func (t *Table) Channel(id string) (adapters.Channel, bool) {
	c, ok := t.lookup(id)
	if !ok {
		return nil, false
	}
	return c.adapter, true
}

// ChannelConfig returns the configuration of channel id, as configured
// (for a removed channel: as it was last configured).
func (t *Table) ChannelConfig(id string) (config.Channel, bool) {
	c, ok := t.lookup(id)
	if !ok {
		return config.Channel{}, false
	}
	return c.cfg, true
}

func (t *Table) lookup(id string) (*channel, bool) {
	if c, ok := t.byID[id]; ok {
		return c, true
	}
	c, ok := t.retired[id]
	return c, ok
}

// retire carries over, from the table being replaced, every channel the new
// table no longer has.
func (t *Table) retire(old *Table) {
	if old == nil {
		return
	}
	t.retired = map[string]*channel{}
	for _, m := range []map[string]*channel{old.retired, old.byID} {
		for id, c := range m {
			if _, still := t.byID[id]; !still {
				t.retired[id] = c
			}
		}
	}
}

// MaxAttempts is routing.failover.max_attempts: how many channels one
// payment may be tried on.
func (t *Table) MaxAttempts() int { return t.maxAttempts }

// MaxTimeout is the longest per-call timeout of the table's channels.
func (t *Table) MaxTimeout() time.Duration {
	var m time.Duration
	for _, c := range t.channels {
		m = max(m, c.timeout)
	}
	return m
}

// Decide routes req: the first matching rule (or the fallback) gives the
// candidates; the ones that cannot serve it now are excluded with a reason.
// Every candidate gets its success estimate; the eligible ones within
// routing.tolerance of the best estimate (and any half-open one, which is
// probing) are the contenders, the others are eliminated. The first place
// is a weighted random choice among the contenders of the first priority
// tier by weight; the other contenders follow by tier and weight ×
// estimate, then the eliminated ones by estimate, for failover. With
// probability routing.exploration the first place instead goes to a
// uniformly random eligible candidate, eliminated ones included: that is
// the only traffic an eliminated channel gets first. It reads live breaker
// and health state, allocates only the result slice, and logs the decision
// at debug level.
func (t *Table) Decide(req Request) Decision {
	mi := methodIndex(req.Method)
	d := Decision{Rule: FallbackRule}
	var refs []ref
	matched := false
	for i := range t.rules {
		if t.rules[i].match.matches(&req, mi) {
			d.Rule, refs, matched = t.rules[i].name, t.rules[i].refs, true
			break
		}
	}
	if !matched && mi >= 0 {
		refs = t.fallback[mi]
	}
	if len(refs) > 0 {
		d.Candidates = t.rank(&req, mi, d.Rule, refs)
	}
	if ce := t.rt.logger.Check(zap.DebugLevel, "routing decision"); ce != nil {
		ce.Write(
			zap.String("merchant", req.Merchant),
			zap.String("method", string(req.Method)),
			zap.Int64("amount", req.Amount),
			zap.String("currency", req.Currency),
			zap.String("rule", d.Rule),
			zap.Array("candidates", candidates(d.Candidates)),
		)
	}
	return d
}

func (t *Table) rank(req *Request, mi int, name string, refs []ref) []Candidate {
	out := make([]Candidate, len(refs))
	now := t.rt.now()
	ne, nx := 0, 0
	for _, rf := range refs {
		ch := rf.ch
		c := Candidate{Channel: ch.id, Rule: name, Weight: rf.weight, Priority: rf.priority}
		st, full, recovered := ch.br.status()
		cw := ch.health.window(now, t.rt.shared, t.fresh, t.halfLife, recovered)
		if mi >= 0 && mi < len(ch.byMethod) && ch.byMethod[mi] != nil {
			if mw := ch.byMethod[mi].window(now, t.rt.shared, t.fresh, t.halfLife, recovered); mw.wok+mw.wfail >= float64(t.scoring.minSamples) {
				cw, c.PerMethod = mw, true
			}
		}
		e := cw.estimate(t.scoring, ch.target)
		c.Score, c.Success, c.LatencyPMS = e.value, e.success, e.pqMS
		c.Breaker = stateName(st)
		switch {
		case ch.cfg.Disabled:
			c.Reason = ReasonDisabled
		case rf.weight == 0:
			c.Reason = ReasonWeightZero
		case mi < 0 || ch.methods&(1<<mi) == 0:
			c.Reason = ReasonMethod
		case !ch.servesCurrency(req.Currency):
			c.Reason = ReasonCurrency
		case st == stateOpen:
			c.Reason = ReasonBreakerOpen
		case full:
			c.Reason = ReasonBreakerProbes
		default:
			c.Eligible = true
		}
		if c.Eligible {
			out[ne] = c
			ne++
		} else {
			nx++
			out[len(out)-nx] = c
		}
	}
	reverse(out[ne:]) // excluded were filled from the back: restore rule order
	best := 0.0
	for i := range out[:ne] {
		best = max(best, out[i].Score)
	}
	for i := range out {
		c := &out[i]
		c.Best = best
		if i >= ne || c.Breaker == BreakerHalfOpen || c.Score >= best-t.tolerance {
			continue
		}
		c.Eliminated = true
		c.Why = WhyLatency
		if c.Success < best-t.tolerance {
			c.Why = WhyFailures
		}
	}
	if ne == 0 {
		return out
	}
	el := out[:ne]
	sortEligible(el)

	x := t.rt.rand()
	first := el[0].Priority // the first contender's tier
	explore := ne > 1 && unit(x) < t.exploration
	if explore {
		moveToFront(el, min(int(unit(splitmix64(x))*float64(ne)), ne-1))
	} else {
		// el[0] is a contender (the best is one); draw among the
		// contenders of its tier by weight.
		tier := 1
		sum := el[0].Weight
		for tier < ne && el[tier].Priority == first && !el[tier].Eliminated {
			sum += el[tier].Weight
			tier++
		}
		u := unit(splitmix64(x)) * sum
		j := 0
		for ; j < tier-1; j++ {
			u -= el[j].Weight
			if u < 0 {
				break
			}
		}
		moveToFront(el, j)
	}
	for i := range el {
		p := 0
		if el[i].Breaker == BreakerHalfOpen {
			p = 1
		}
		switch {
		case i == 0 && explore:
			el[i].Reason = reasonExploration[p]
		case el[i].Eliminated:
			el[i].Reason = ReasonEliminated
		case i == 0:
			el[i].Reason = reasonWeighted[p]
		case el[i].Priority == first:
			el[i].Reason = reasonRanked[p]
		default:
			el[i].Reason = reasonLaterTier[p]
		}
	}
	return out
}

// sortEligible orders the contenders before the eliminated candidates; the
// contenders by priority (lower first), then weight × estimate (higher
// first); the eliminated ones by estimate (higher first), then priority;
// rule order on ties. Insertion sort: a handful of candidates, no
// allocation, stable.
func sortEligible(c []Candidate) {
	less := func(a, b *Candidate) bool {
		if a.Eliminated != b.Eliminated {
			return !a.Eliminated
		}
		if a.Eliminated {
			if a.Score != b.Score {
				return a.Score > b.Score
			}
			return a.Priority < b.Priority
		}
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		return a.Weight*a.Score > b.Weight*b.Score
	}
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && less(&c[j], &c[j-1]); j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}

// moveToFront moves c[j] to c[0], shifting c[:j] one to the right.
func moveToFront(c []Candidate, j int) {
	if j <= 0 {
		return
	}
	v := c[j]
	copy(c[1:j+1], c[:j])
	c[0] = v
}

func reverse(c []Candidate) {
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
}

// methodIndex is m's index in payment.Methods, -1 if unknown.
func methodIndex(m payment.Method) int {
	for i, k := range payment.Methods {
		if k == m {
			return i
		}
	}
	return -1
}

// MarshalLogObject logs a candidate with the same facts as the explain API.
func (c Candidate) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("channel", c.Channel)
	enc.AddFloat64("weight", c.Weight)
	enc.AddInt("priority", c.Priority)
	enc.AddFloat64("score", c.Score)
	enc.AddBool("per_method", c.PerMethod)
	enc.AddFloat64("best", c.Best)
	enc.AddBool("eliminated", c.Eliminated)
	if c.Why != "" {
		enc.AddString("why", c.Why)
	}
	enc.AddString("breaker", c.Breaker)
	enc.AddBool("eligible", c.Eligible)
	enc.AddString("reason", c.Reason)
	return nil
}

type candidates []Candidate

func (cs candidates) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for i := range cs {
		if err := enc.AppendObject(cs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Interface guards.
var (
	_ zapcore.ObjectMarshaler = Candidate{}
	_ zapcore.ArrayMarshaler  = candidates(nil)
)
