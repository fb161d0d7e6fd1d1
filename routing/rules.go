package routing

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

// Defaults for zero values the config loader may leave (tests and embedders
// build config.Config directly). They mirror docs/config.md. routing.
// exploration is taken as is: 0 there means no exploration.
const (
	defaultTimeout       = 3 * time.Second
	defaultLatencyTarget = time.Second
	defaultMinRequests   = 20
	defaultFailureRatio  = 0.5
	defaultOpenFor       = 10 * time.Second
	defaultHalfOpen      = 5
	defaultConsecutive   = 5
	defaultInterval      = 30 * time.Second
	defaultTolerance     = 0.05
	defaultHalfLife      = 10 * time.Second
	defaultLatencyPct    = 0.9
	defaultWindow        = 60 * time.Second
	defaultBuckets       = 12
	defaultMinSamples    = 20
	defaultSyncInterval  = 2 * time.Second
	defaultMaxAttempts   = 2
	defaultCurrency      = "CNY"
)

// matcher is a compiled Match. The zero value matches everything.
type matcher struct {
	methods   uint64 // bit per payment.Methods index; 0: any method
	amountMin int64  // inclusive
	amountMax int64  // inclusive; 0: no upper bound
	// Small sets are scanned: a few string compares beat a map lookup.
	currencies  []string
	merchants   []string
	merchantSet map[string]struct{} // instead of merchants when there are many
	meta        []kv
}

type kv struct{ k, v string }

const merchantScanMax = 8

func (m *matcher) matches(req *Request, mi int) bool {
	if m.methods != 0 && (mi < 0 || m.methods&(1<<mi) == 0) {
		return false
	}
	if req.Amount < m.amountMin || (m.amountMax > 0 && req.Amount > m.amountMax) {
		return false
	}
	if len(m.currencies) > 0 && !containsFold(m.currencies, req.Currency) {
		return false
	}
	if m.merchantSet != nil {
		if _, ok := m.merchantSet[req.Merchant]; !ok {
			return false
		}
	} else if len(m.merchants) > 0 && !slices.Contains(m.merchants, req.Merchant) {
		return false
	}
	for _, p := range m.meta {
		if v, ok := req.Metadata[p.k]; !ok || v != p.v {
			return false
		}
	}
	return true
}

func containsFold(set []string, s string) bool {
	for _, v := range set {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// problems collects validation errors, each with its YAML path.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// compile builds a complete Table from cfg, reusing the health and breaker
// state of old (nil at start) for the channels that remain. It changes
// nothing shared: on error the new state it made is simply dropped.
func (r *Router) compile(cfg *config.Config) (*Table, error) {
	if cfg == nil {
		return nil, errors.New("routing: no config")
	}
	old := r.table.Load()
	var errs problems
	rc := cfg.Routing

	t := &Table{
		rt:          r.rt,
		byID:        make(map[string]*channel, len(cfg.Channels)),
		maxAttempts: rc.Failover.MaxAttempts,
		exploration: rc.Exploration,
		tolerance:   rc.Tolerance,
		scoring:     scoring{minSamples: rc.Health.MinSamples, pct: rc.Health.LatencyPercentile},
		halfLife:    rc.Health.HalfLife.D(),
		window:      rc.Health.Window.D(),
		buckets:     rc.Health.Buckets,
		sync:        rc.Health.SyncInterval.D(),
	}
	if t.maxAttempts < 0 {
		errs.add("routing.failover.max_attempts", "must not be negative")
	} else if t.maxAttempts == 0 {
		t.maxAttempts = defaultMaxAttempts
	}
	if math.IsNaN(t.exploration) || t.exploration < 0 || t.exploration > 1 {
		errs.add("routing.exploration", "must be within 0..1, is %v", t.exploration)
	}
	if t.scoring.minSamples < 0 {
		errs.add("routing.health.min_samples", "must not be negative")
	} else if t.scoring.minSamples == 0 {
		t.scoring.minSamples = defaultMinSamples
	}
	if math.IsNaN(t.tolerance) || t.tolerance < 0 || t.tolerance > 1 {
		errs.add("routing.tolerance", "must be within 0..1, is %v", t.tolerance)
	} else if t.tolerance == 0 {
		t.tolerance = defaultTolerance
	}
	if p := t.scoring.pct; math.IsNaN(p) || p < 0 || p >= 1 {
		errs.add("routing.health.latency_percentile", "must be within 0..1 (exclusive of 1), is %v", p)
	} else if p == 0 {
		t.scoring.pct = defaultLatencyPct
	}
	t.halfLife = orDefault(&errs, "routing.health.half_life", t.halfLife, defaultHalfLife)
	t.window = orDefault(&errs, "routing.health.window", t.window, defaultWindow)
	t.sync = orDefault(&errs, "routing.health.sync_interval", t.sync, defaultSyncInterval)
	if t.buckets < 0 {
		errs.add("routing.health.buckets", "must not be negative")
	} else if t.buckets == 0 {
		t.buckets = defaultBuckets
	}
	if t.buckets > 0 && t.window/time.Duration(t.buckets) < time.Millisecond {
		errs.add("routing.health", "window / buckets must be at least 1ms")
	}
	t.fresh = 3 * t.sync

	// Channels, in config order.
	for i, cc := range cfg.Channels {
		path := "channels[" + strconv.Itoa(i) + "]"
		if cc.ID == "" {
			errs.add(path+".id", "missing")
			continue
		}
		if _, dup := t.byID[cc.ID]; dup {
			errs.add(path+".id", "duplicate channel %q", cc.ID)
			continue
		}
		ch := &channel{id: cc.ID, cfg: cc}
		for j, m := range cc.Methods {
			k := methodIndex(payment.Method(m))
			if k < 0 {
				errs.add(path+".methods["+strconv.Itoa(j)+"]", "unknown method %q", m)
				continue
			}
			ch.methods |= 1 << k
		}
		ch.currencies = cc.Currencies
		if len(ch.currencies) == 0 {
			ch.currencies = []string{defaultCurrency}
		}
		ch.timeout = orDefault(&errs, path+".timeout", cc.Timeout.D(), defaultTimeout)
		ch.target = orDefault(&errs, path+".latency_target", cc.LatencyTarget.D(), defaultLatencyTarget)
		bs := breakerSettings(&errs, path+".breaker", cc.Breaker)

		// State that survives the reload: health while the window shape is
		// unchanged, the breaker while its settings are.
		if prev, ok := old.channel(cc.ID); ok {
			if prev.health.width == t.window/time.Duration(max(t.buckets, 1)) && prev.health.n == int64(t.buckets) {
				ch.health, ch.queries, ch.byMethod = prev.health, prev.queries, prev.byMethod
			}
			if prev.br.settings == bs {
				ch.br = prev.br
			}
		}
		if ch.health == nil && t.buckets > 0 && t.window/time.Duration(t.buckets) >= time.Millisecond {
			ch.health = newHealth(t.window, t.buckets)
			ch.queries = newHealth(t.window, t.buckets)
			ch.byMethod = make([]*health, len(payment.Methods))
		}
		// A method the channel serves gets its window (kept if it had one).
		if ch.byMethod != nil {
			kept := ch.byMethod
			ch.byMethod = make([]*health, len(payment.Methods))
			for mi := range ch.byMethod {
				switch {
				case ch.methods&(1<<mi) == 0:
				case kept[mi] != nil:
					ch.byMethod[mi] = kept[mi]
				default:
					ch.byMethod[mi] = newHealth(t.window, t.buckets)
				}
			}
		}
		if ch.br == nil {
			ch.br = newBreaker(cc.ID, bs, r.rt.now, r.rt.logger)
		}
		t.byID[cc.ID] = ch
		t.channels = append(t.channels, ch)
	}

	// Rules.
	names := make(map[string]bool, len(rc.Rules))
	for i, rl := range rc.Rules {
		path := "routing.rules[" + strconv.Itoa(i) + "]"
		cr := rule{name: rl.Name}
		if cr.name == "" {
			cr.name = "rules[" + strconv.Itoa(i) + "]"
		}
		if cr.name == FallbackRule {
			errs.add(path+".name", "%q is reserved", FallbackRule)
		} else if names[cr.name] {
			errs.add(path+".name", "duplicate rule name %q", cr.name)
		}
		names[cr.name] = true
		cr.match = compileMatch(&errs, path+".when", rl.When)
		if len(rl.Channels) == 0 {
			errs.add(path+".channels", "no channels")
		}
		seen := make(map[string]bool, len(rl.Channels))
		for j, cref := range rl.Channels {
			cp := path + ".channels[" + strconv.Itoa(j) + "]"
			ch, ok := t.byID[cref.ID]
			switch {
			case !ok:
				errs.add(cp, "unknown channel %q", cref.ID)
				continue
			case seen[cref.ID]:
				errs.add(cp, "channel %q listed twice", cref.ID)
				continue
			case math.IsNaN(cref.Weight) || math.IsInf(cref.Weight, 0) || cref.Weight < 0:
				errs.add(cp+".weight", "must be a finite number ≥ 0, is %v", cref.Weight)
				continue
			}
			seen[cref.ID] = true
			cr.refs = append(cr.refs, ref{ch: ch, weight: cref.Weight, priority: cref.Priority})
		}
		cr.summary = summarize(rl.When)
		t.rules = append(t.rules, cr)
	}

	// The fallback: every channel that lists the method, equal weights.
	t.fallback = make([][]ref, len(payment.Methods))
	for mi := range payment.Methods {
		for _, ch := range t.channels {
			if ch.methods&(1<<mi) != 0 {
				t.fallback[mi] = append(t.fallback[mi], ref{ch: ch, weight: 1})
			}
		}
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("routing: invalid config: %w", errors.Join(errs...))
	}

	// Adapters last: building one may read key files; no point before the
	// rest is known to be valid.
	for i, ch := range t.channels {
		a, err := r.build(ch.cfg)
		switch {
		case err != nil:
			errs.add("channels["+strconv.Itoa(i)+"]", "build adapter: %v", err)
		case a == nil:
			errs.add("channels["+strconv.Itoa(i)+"]", "build adapter: builder returned no adapter")
		}
		ch.adapter = a
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("routing: invalid config: %w", errors.Join(errs...))
	}
	return t, nil
}

// channel looks up a channel of a table that may be nil.
func (t *Table) channel(id string) (*channel, bool) {
	if t == nil {
		return nil, false
	}
	c, ok := t.byID[id]
	return c, ok
}

func orDefault(errs *problems, path string, d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		errs.add(path, "must not be negative")
		return def
	case d == 0:
		return def
	}
	return d
}

// breakerSettings applies defaults to b and validates it.
func breakerSettings(errs *problems, path string, b config.Breaker) config.Breaker {
	if b.MinRequests == 0 {
		b.MinRequests = defaultMinRequests
	}
	if b.FailureRatio == 0 {
		b.FailureRatio = defaultFailureRatio
	}
	if math.IsNaN(b.FailureRatio) || b.FailureRatio < 0 || b.FailureRatio > 1 {
		errs.add(path+".failure_ratio", "must be within 0..1, is %v", b.FailureRatio)
	}
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = defaultHalfOpen
	}
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = defaultConsecutive
	}
	b.OpenFor = config.Duration(orDefault(errs, path+".open_for", b.OpenFor.D(), defaultOpenFor))
	b.Interval = config.Duration(orDefault(errs, path+".interval", b.Interval.D(), defaultInterval))
	return b
}

func compileMatch(errs *problems, path string, w config.Match) matcher {
	m := matcher{amountMin: w.AmountMin, amountMax: w.AmountMax}
	for j, s := range w.Methods {
		k := methodIndex(payment.Method(s))
		if k < 0 {
			errs.add(path+".methods["+strconv.Itoa(j)+"]", "unknown method %q", s)
			continue
		}
		m.methods |= 1 << k
	}
	if w.AmountMin < 0 {
		errs.add(path+".amount_min", "must not be negative")
	}
	if w.AmountMax < 0 {
		errs.add(path+".amount_max", "must not be negative")
	}
	if w.AmountMax > 0 && w.AmountMin > w.AmountMax {
		errs.add(path, "amount_min %d is above amount_max %d", w.AmountMin, w.AmountMax)
	}
	m.currencies = slices.Clone(w.Currencies)
	if len(w.Merchants) > merchantScanMax {
		m.merchantSet = make(map[string]struct{}, len(w.Merchants))
		for _, id := range w.Merchants {
			m.merchantSet[id] = struct{}{}
		}
	} else {
		m.merchants = slices.Clone(w.Merchants)
	}
	for k, v := range w.Metadata {
		m.meta = append(m.meta, kv{k, v})
	}
	slices.SortFunc(m.meta, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	return m
}

// summarize describes a match for people: "methods=qr amount≥500000".
func summarize(w config.Match) string {
	var parts []string
	if len(w.Methods) > 0 {
		parts = append(parts, "methods="+strings.Join(w.Methods, ","))
	}
	switch {
	case w.AmountMin > 0 && w.AmountMax > 0:
		parts = append(parts, fmt.Sprintf("amount=%d..%d", w.AmountMin, w.AmountMax))
	case w.AmountMin > 0:
		parts = append(parts, fmt.Sprintf("amount≥%d", w.AmountMin))
	case w.AmountMax > 0:
		parts = append(parts, fmt.Sprintf("amount≤%d", w.AmountMax))
	}
	if len(w.Currencies) > 0 {
		parts = append(parts, "currencies="+strings.Join(w.Currencies, ","))
	}
	if len(w.Merchants) > 0 {
		parts = append(parts, "merchants="+strings.Join(w.Merchants, ","))
	}
	keys := make([]string, 0, len(w.Metadata))
	for k := range w.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, "metadata."+k+"="+w.Metadata[k])
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}

// RuleInfo describes one rule for the status page.
type RuleInfo struct {
	Name     string        `json:"name"`
	Match    string        `json:"match"` // e.g. "methods=qr amount≥500000", "any"
	Channels []RuleChannel `json:"channels"`
	// Fallback marks the implicit per-method rules that serve requests no
	// rule matches.
	Fallback bool `json:"fallback,omitempty"`
}

// RuleChannel is one candidate of a rule.
type RuleChannel struct {
	ID       string  `json:"id"`
	Weight   float64 `json:"weight"`
	Priority int     `json:"priority"`
}

func (t *Table) ruleInfos() []RuleInfo {
	out := make([]RuleInfo, 0, len(t.rules)+len(payment.Methods))
	for _, rl := range t.rules {
		out = append(out, RuleInfo{Name: rl.name, Match: rl.summary, Channels: ruleChannels(rl.refs)})
	}
	for mi, refs := range t.fallback {
		if len(refs) == 0 {
			continue
		}
		out = append(out, RuleInfo{Name: FallbackRule, Match: "methods=" + string(payment.Methods[mi]), Channels: ruleChannels(refs), Fallback: true})
	}
	return out
}

func ruleChannels(refs []ref) []RuleChannel {
	out := make([]RuleChannel, len(refs))
	for i, rf := range refs {
		out[i] = RuleChannel{ID: rf.ch.id, Weight: rf.weight, Priority: rf.priority}
	}
	return out
}
