package routing

import (
	"container/heap"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/storetest"
)

// The routing simulation: the shipped config.yaml's default-qr rule
// (wechat-main weight 60, alipay-main weight 40) at 80 payments/s on a
// fake clock, with scripted channel outcomes, one or two router instances
// (sharing one health store). Calls overlap in time as they do in the
// gateway: each one is admitted when it starts and recorded when it ends,
// so the router learns of a slow call only once it is over. The same
// payments also run through an oracle that always knows which channel is
// healthy. TestRoutingSimulation holds the targets of docs/routing.md,
// "Measured: the simulation"; `go test ./routing -run Simulation -v`
// prints the curves that section shows.

const (
	simRate   = 80 // payments per second
	simFault  = 60 * time.Second
	simEnd    = 180 * time.Second
	simSick   = "wechat-main"
	simHealth = "alipay-main"
)

// fault is what the sick channel does from simFault until clear.
type fault struct {
	name    string
	down    bool          // connection refused: not created, at once
	errRate float64       // share of "system error, retry" answers: not created
	latency time.Duration // every answer this slow (beyond the timeout: ambiguous)
	clear   time.Duration // when the fault ends (simEnd: never)
}

func (f fault) active(at time.Duration) bool { return at >= simFault && at < f.clear }

// outcome of one scripted call, decided when it starts.
func (f fault) call(ch string, at time.Duration, rnd uint64, timeout time.Duration) (error, time.Duration) {
	lat := 80*time.Millisecond + time.Duration(rnd%120)*time.Millisecond // 80..200ms when healthy
	if ch != simSick || !f.active(at) {
		return nil, lat
	}
	switch {
	case f.down:
		return &adapters.Error{Channel: ch, Op: "create", Kind: adapters.KindUnavailable, Code: "connect_failed"}, time.Millisecond
	case f.errRate > 0 && unit(splitmix64(rnd)) < f.errRate:
		return &adapters.Error{Channel: ch, Op: "create", Kind: adapters.KindUnavailable, Code: "SYSTEM_ERROR"}, lat
	case f.latency > 0:
		lat += f.latency - 80*time.Millisecond
		if lat >= timeout {
			return &adapters.Error{Channel: ch, Op: "create", Kind: adapters.KindAmbiguous, Code: "timeout"}, timeout
		}
	}
	return nil, lat
}

// simStats are one second's figures.
type simStats struct {
	payments, sickFirst, creates, sickCreates, failovers, ok int
}

func (s *simStats) add(o simStats) {
	s.payments += o.payments
	s.sickFirst += o.sickFirst
	s.creates += o.creates
	s.sickCreates += o.sickCreates
	s.failovers += o.failovers
	s.ok += o.ok
}

func (s simStats) share() float64      { return ratio(s.sickFirst, s.payments) }
func (s simStats) failoverPP() float64 { return ratio(s.failovers, s.payments) }
func (s simStats) success() float64    { return ratio(s.ok, s.payments) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// simResult is a run's figures per second since the start.
type simResult []simStats

func (r simResult) over(from, to time.Duration) simStats {
	var s simStats
	for i := int(from / time.Second); i < int(to/time.Second) && i < len(r); i++ {
		s.add(r[i])
	}
	return s
}

// event is a call ending.
type event struct {
	at   time.Duration
	seq  int
	pay  *simPayment
	call inflight
	err  error
}

type events []*event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(*event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

type simPayment struct {
	r       *Router
	order   []string // channels to try
	next    int
	started time.Duration
}

// simulate runs one scenario. instances routers share one memStore and
// sync every sync_interval (staggered); payments alternate between them.
// oracle replaces the router's choice by the healthy channel's.
func simulate(t testing.TB, f fault, instances int, oracle bool) simResult {
	return simulateOn(t, f, instances, oracle, newMemStore())
}

// simulateOn is simulate with the instances sharing hs.
func simulateOn(t testing.TB, f fault, instances int, oracle bool, hs HealthStore) simResult {
	t.Helper()
	cfg, err := config.Load("../config.yaml")
	if err != nil {
		t.Fatalf("shipped config: %v", err)
	}
	start := time.Unix(1_700_000_000, 0)
	var now time.Duration
	clk := func() time.Time { return start.Add(now) }
	routers := make([]*Router, instances)
	for i := range routers {
		var h HealthStore
		if instances > 1 {
			h = hs
		}
		r, err := New(cfg, build, h, nil, WithClock(clk), WithSeed(uint64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		routers[i] = r
	}
	tab := routers[0].Table()
	maxAttempts := tab.MaxAttempts()
	timeout := tab.byID[simSick].timeout
	sync := tab.sync
	req := Request{Merchant: "demo", Method: payment.Method("qr"), Amount: 100, Currency: "CNY"}

	res := make(simResult, int(simEnd/time.Second))
	var q events
	seq := 0
	rnd := uint64(0)
	// attempt starts the payment's next attempt at now, or finishes it.
	var attempt func(p *simPayment, first bool)
	attempt = func(p *simPayment, first bool) {
		sec := &res[int(p.started/time.Second)]
		for p.next < len(p.order) && p.next < maxAttempts {
			ch := p.r.Table().byID[p.order[p.next]]
			p.next++
			if !first {
				sec.failovers++
				p.r.RecordFailover(p.order[p.next-2], ch.id)
			}
			first = false
			c, err := p.r.begin(ch, OpCreate, methodIndex(req.Method))
			sec.creates++
			if ch.id == simSick {
				sec.sickCreates++
			}
			if err != nil {
				continue // breaker_open: not sent, fail over at once
			}
			rnd++
			cerr, lat := f.call(ch.id, now, splitmix64(rnd), timeout)
			seq++
			heap.Push(&q, &event{at: now + lat, seq: seq, pay: p, call: c, err: cerr})
			return
		}
		// No channel left: 503, counted as not ok.
	}
	ctx := context.Background()
	// finish ends the earliest running call: a success is a 201, "not
	// created" fails over, anything else (ambiguous) is a 502.
	finish := func() {
		ev := heap.Pop(&q).(*event)
		now = ev.at
		ev.call.end(classify(ctx, ev.err))
		switch e, _ := adapters.AsError(ev.err); {
		case ev.err == nil:
			res[int(ev.pay.started/time.Second)].ok++
		case e.NotCreated():
			attempt(ev.pay, false)
		}
	}
	step := time.Second / simRate
	for i := 0; now < simEnd; i++ {
		at := time.Duration(i) * step
		// Calls ending and syncs due before this payment, in time order.
		tick := sync / time.Duration(instances) // instance k syncs at k×tick + m×sync
		for {
			nextSync := (now/tick + 1) * tick
			if len(q) > 0 && q[0].at <= at && (instances == 1 || q[0].at < nextSync) {
				finish()
				continue
			}
			if instances > 1 && nextSync <= at {
				now = nextSync
				k := int(now/tick) % instances
				if err := routers[k].syncOnce(ctx, true); err != nil {
					t.Fatal(err)
				}
				continue
			}
			break
		}
		now = at
		if now >= simEnd {
			break
		}
		r := routers[i%instances]
		p := &simPayment{r: r, started: now}
		if oracle {
			p.order = oracleOrder(r, f, now)
		} else {
			for _, c := range r.Table().Decide(req).Candidates {
				if c.Eligible {
					p.order = append(p.order, c.Channel)
				}
			}
		}
		sec := &res[int(now/time.Second)]
		sec.payments++
		if len(p.order) > 0 && p.order[0] == simSick {
			sec.sickFirst++
		}
		attempt(p, true)
	}
	// Calls still running at the end: let them finish.
	for len(q) > 0 {
		finish()
	}
	return res
}

// oracleOrder always knows the healthy channel: during the fault it sends
// everything to alipay-main, otherwise it draws by weight (60/40).
func oracleOrder(r *Router, f fault, now time.Duration) []string {
	if f.active(now) || unit(r.rt.rand()) >= 0.6 {
		return []string{simHealth, simSick}
	}
	return []string{simSick, simHealth}
}

// target is one row of the targets: over [from, to) after the fault
// started (or, with afterClear, after it cleared), the sick channel's
// share of first attempts is at most maxShare (or at least minShare), and
// the merchant success at least minOK.
type target struct {
	from, to           time.Duration
	afterClear         bool
	maxShare, minShare float64
	minOK              float64
}

var simScenarios = []struct {
	f       fault
	targets []target
}{
	{fault{name: "down", down: true, clear: simEnd}, []target{
		{from: 5 * time.Second, to: 15 * time.Second, maxShare: 0.05, minShare: -1, minOK: 0.99},
		{from: 0, to: 60 * time.Second, maxShare: 1, minShare: -1, minOK: 0.99},
	}},
	{fault{name: "error rate 0.3", errRate: 0.3, clear: simEnd}, []target{
		{from: 20 * time.Second, to: 35 * time.Second, maxShare: 0.10, minShare: -1, minOK: 0.99},
		{from: 0, to: 60 * time.Second, maxShare: 1, minShare: -1, minOK: 0.99},
	}},
	{fault{name: "latency 2s", latency: 2 * time.Second, clear: simEnd}, []target{
		{from: 30 * time.Second, to: 45 * time.Second, maxShare: 0.15, minShare: -1},
	}},
	// Not in the targets: answers after the 3s timeout are ambiguous (the
	// order may exist), so those payments answer 502 and are resolved by
	// query; the router's part is to stop sending there.
	{fault{name: "latency 3.5s, over the timeout", latency: 3500 * time.Millisecond, clear: simEnd}, []target{
		{from: 20 * time.Second, to: 35 * time.Second, maxShare: 0.05, minShare: -1, minOK: 0.98},
	}},
	{fault{name: "down 60s, then cleared", down: true, clear: simFault + 60*time.Second}, []target{
		{from: 20 * time.Second, to: 30 * time.Second, afterClear: true, maxShare: 1, minShare: 0.45},
	}},
}

func TestRoutingSimulation(t *testing.T) {
	t.Parallel()
	for _, sc := range simScenarios {
		t.Run(sc.f.name, func(t *testing.T) {
			t.Parallel()
			var runs [2]simResult
			for i, n := range []int{1, 2} {
				runs[i] = simulate(t, sc.f, n, false)
				checkTargets(t, fmt.Sprintf("%d instances", n), sc.f, sc.targets, runs[i])
			}
			if testing.Verbose() {
				t.Log("\n" + simTable(sc.f, runs, simulate(t, sc.f, 1, true)))
			}
		})
	}
}

func checkTargets(t *testing.T, what string, f fault, targets []target, res simResult) {
	t.Helper()
	for _, tg := range targets {
		base := simFault
		if tg.afterClear {
			base = f.clear
		}
		s := res.over(base+tg.from, base+tg.to)
		if s.share() > tg.maxShare || s.share() < tg.minShare || s.success() < tg.minOK {
			t.Errorf("%s, %v..%v: share %.3f (want ≤ %.2f, ≥ %.2f), success %.4f (want ≥ %.2f)",
				what, tg.from, tg.to, s.share(), tg.maxShare, tg.minShare, s.success(), tg.minOK)
		}
	}
}

// The two-instance runs again, sharing through a real redis-server and
// *store.Store instead of the in-memory store: the counts and the latency
// histogram go through Redis hashes as they do in production.
func TestRoutingSimulationThroughRedis(t *testing.T) {
	t.Parallel()
	srv := storetest.Redis(t)
	for i, sc := range simScenarios {
		// Each scenario on its own keys: the same channel names would add up.
		st, err := store.Open(config.Redis{Addrs: []string{srv.Addr()}, KeyPrefix: fmt.Sprintf("sim%d", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		checkTargets(t, sc.f.name+", 2 instances through Redis", sc.f, sc.targets, simulateOn(t, sc.f, 2, false, st))
		if sc.f.latency != 2*time.Second {
			continue
		}
		// The slow creates' latency bins are in the store, for the method's
		// window as for the channel's.
		width := int64(5 * time.Second) // health.window 60s / 12 buckets
		from := time.Unix(1_700_000_000, 0).Add(simFault).UnixNano() / width
		for _, key := range []string{simSick, simSick + "@qr"} {
			bs, err := st.ReadHealth(context.Background(), key, from, from+11)
			if err != nil {
				t.Fatal(err)
			}
			var slow int64
			for _, b := range bs {
				slow += b.Lat[latBin(2050*time.Millisecond)]
			}
			if slow == 0 {
				t.Errorf("%s: no 2s creates in the store's latency bins (%d buckets)", key, len(bs))
			}
		}
	}
}

// simTable prints the curves of docs/routing.md: per time range since the
// fault (and since it cleared), the sick channel's share of first
// attempts, failovers per payment and merchant success, for paygate with
// one and two instances and for the oracle.
func simTable(f fault, runs [2]simResult, oracle simResult) string {
	type span struct {
		base     time.Duration
		label    string
		from, to int
	}
	var spans []span
	for _, p := range [][2]int{{-5, 0}, {0, 5}, {5, 10}, {10, 15}, {15, 20}, {20, 35}, {35, 60}} {
		spans = append(spans, span{simFault, "fault", p[0], p[1]})
	}
	if f.clear < simEnd {
		for _, p := range [][2]int{{0, 5}, {5, 10}, {10, 20}, {20, 30}, {30, 60}} {
			spans = append(spans, span{f.clear, "cleared", p[0], p[1]})
		}
	}
	var b strings.Builder
	b.WriteString("| since | first attempts to the sick channel: 1 / 2 instances / oracle | failovers per payment | merchant success |\n|---|---|---|---|\n")
	for _, sp := range spans {
		from, to := sp.base+time.Duration(sp.from)*time.Second, sp.base+time.Duration(sp.to)*time.Second
		s1, s2, o := runs[0].over(from, to), runs[1].over(from, to), oracle.over(from, to)
		fmt.Fprintf(&b, "| %s %d–%d s | %.1f%% / %.1f%% / %.1f%% | %.3f / %.3f / %.3f | %.2f%% / %.2f%% / %.2f%% |\n",
			sp.label, sp.from, sp.to, 100*s1.share(), 100*s2.share(), 100*o.share(),
			s1.failoverPP(), s2.failoverPP(), o.failoverPP(), 100*s1.success(), 100*s2.success(), 100*o.success())
	}
	return b.String()
}
