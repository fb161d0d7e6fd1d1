package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/paygate/paygate/gateway/client"
)

// op is one kind of request.
type op uint8

const (
	opCreate op = iota
	opGet
	opRefund
	nOps
)

var opNames = [nOps]string{"create", "get", "refund"}

// SandboxHeader is set to "true" on every answer of a gateway in sandbox
// mode; without it, creates would make real channel orders.
const SandboxHeader = "X-Paygate-Sandbox"

// ErrNotSandbox is the refusal to create payments at a gateway that is not
// in sandbox mode without -allow-real-orders.
var ErrNotSandbox = errors.New("the target is not in sandbox mode: its payments would be REAL channel orders; pass -allow-real-orders if that is what you want")

// job is one scheduled request.
type job struct {
	at    time.Time // scheduled start: latency is measured from here
	seq   int64
	phase int // 0 before, 1 during the fault, 2 after (0 without a scenario)
}

// runner is one run's state.
type runner struct {
	cfg    *Config
	signer *client.Signer
	hc     *fasthttp.HostClient
	host   string
	runID  string // random, keeps out_trade_no and nonces unique across runs
	ops    []op   // the mix, expanded: request seq uses ops[seq%len(ops)]
	start  time.Time

	jobs     chan job
	inflight atomic.Int64
	workers  sync.WaitGroup
	started  int // workers started (scheduler goroutine only)

	ids payments // payments this run created, and those known paid

	mu       sync.Mutex // guards what follows
	total    *tally
	phases   []*tally
	interval *tally                  // the last progress second
	lag      *hdrhistogram.Histogram // actual minus scheduled start (schedule only)
	notSent  int64
	opsSent  [nOps]int64
}

func newRunner(cfg *Config) (*runner, error) {
	u, err := url.Parse(cfg.Target)
	if err != nil {
		return nil, err
	}
	tls := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[tls])
	}
	var rid [8]byte
	rand.Read(rid[:])
	r := &runner{
		cfg:    cfg,
		signer: client.HMAC(cfg.Merchant, []byte(cfg.Secret)),
		host:   u.Host,
		runID:  hex.EncodeToString(rid[:]),
		hc: &fasthttp.HostClient{
			Addr: addr, IsTLS: tls, Name: "paygate-load",
			MaxConns:                      cfg.MaxInFlight,
			ReadTimeout:                   cfg.Timeout,
			WriteTimeout:                  cfg.Timeout,
			MaxIdleConnDuration:           10 * time.Second,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true, // the path sent is the path signed
		},
		jobs:     make(chan job, cfg.MaxInFlight),
		total:    newTally(),
		interval: newTally(),
		lag:      newHist(),
	}
	for o, w := range [nOps]int{cfg.Mix.Create, cfg.Mix.Get, cfg.Mix.Refund} {
		for range w {
			r.ops = append(r.ops, op(o))
		}
	}
	r.phases = []*tally{newTally()}
	if cfg.Scenario != "baseline" {
		r.phases = append(r.phases, newTally(), newTally())
	}
	r.ids.init(65536)
	return r, nil
}

// Run runs the load described by cfg: a signed preflight (which refuses a
// gateway not in sandbox mode unless cfg.AllowRealOrders), then the open
// model for cfg.Duration, the scenario's fault at 1/3 and its clearing at
// 2/3, then it waits up to cfg.Timeout for the answers still due. Progress
// goes to progress every second (live: one line rewritten in place).
// Cancelling ctx stops starting requests; the summary covers what ran.
func Run(ctx context.Context, cfg *Config, progress io.Writer, live bool) (*Summary, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.hc.CloseIdleConnections()
	if err := r.preflight(); err != nil {
		return nil, err
	}
	var sc *scenario
	if cfg.Scenario != "baseline" {
		sc = newScenario(cfg)
		if err := sc.check(); err != nil {
			return nil, err
		}
	}
	r.start = time.Now()
	stopProgress := r.progress(progress, live)
	var scDone chan struct{}
	if sc != nil {
		scDone = make(chan struct{})
		go func() { defer close(scDone); sc.run(ctx, r.start, progress) }()
	}
	end := r.schedule(ctx)
	close(r.jobs)
	r.workers.Wait()
	stopProgress()
	if sc != nil {
		<-scDone
	}
	return r.summary(end, sc), nil
}

// schedule starts requests at cfg.Rate until cfg.Duration (or ctx ends) and
// returns the end of the window it covered: cfg.Duration, or the moment ctx
// ended. It never waits for answers: a job whose start is due goes to a
// worker at once; it is dropped (and counted) only when MaxInFlight requests
// are already in flight. A start that goes out late (the generator's own
// machine was busy) keeps its scheduled time, so the lateness shows as
// latency, and in the start-lag histogram, never as fewer requests.
func (r *runner) schedule(ctx context.Context) time.Time {
	total := int64(r.cfg.Rate * r.cfg.Duration.Seconds())
	step := float64(time.Second) / r.cfg.Rate
	third := r.cfg.Duration / 3
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := int64(0); seq < total; {
		due := r.start.Add(time.Duration(float64(seq) * step))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return time.Now()
			case <-timer.C:
			}
			continue
		}
		phase := 0
		if len(r.phases) == 3 {
			phase = min(int(due.Sub(r.start)/third), 2)
		}
		r.dispatch(job{at: due, seq: seq, phase: phase})
		record(r.lag, time.Since(due)) // only this goroutine touches r.lag until Run's end
		seq++
	}
	return r.start.Add(r.cfg.Duration)
}

func (r *runner) dispatch(j job) {
	n := r.inflight.Add(1)
	if n > int64(r.cfg.MaxInFlight) {
		r.inflight.Add(-1)
		r.mu.Lock()
		r.notSent++
		r.mu.Unlock()
		return
	}
	if int64(r.started) < n {
		r.started++
		r.workers.Add(1)
		go r.worker()
	}
	r.jobs <- j // the buffer holds MaxInFlight: never blocks
}

func (r *runner) worker() {
	defer r.workers.Done()
	w := newWorker(r)
	defer w.release()
	for j := range r.jobs {
		w.do(j)
		r.inflight.Add(-1)
	}
}

// preflight makes one signed GET of a payment that cannot exist: it proves
// the target answers and accepts the signature, and reads the sandbox header.
// With -get-id it reads that payment instead, which must answer 200; such a
// run only reads, so it needs no sandbox.
func (r *runner) preflight() error {
	w := newWorker(r)
	defer w.release()
	if id := r.cfg.GetID; id != "" {
		w.uri = append(append(w.uri[:0], "/v1/payments/"...), id...)
		w.prepare(methodGet, nil, time.Now().Unix(), -1)
		if err := r.hc.DoTimeout(w.req, w.resp, r.cfg.Timeout); err != nil {
			return fmt.Errorf("preflight: cannot reach %s: %w", r.cfg.Target, err)
		}
		if status := w.resp.StatusCode(); status != fasthttp.StatusOK {
			return fmt.Errorf("preflight: GET of payment %s answered %d %s, want 200", id, status, jsonField(w.resp.Body(), `"code":"`))
		}
		return nil
	}
	w.uri = append(w.uri[:0], "/v1/payments/pay_000000000000000000000000"...)
	w.prepare(methodGet, nil, time.Now().Unix(), -1)
	if err := r.hc.DoTimeout(w.req, w.resp, r.cfg.Timeout); err != nil {
		return fmt.Errorf("preflight: cannot reach %s: %w", r.cfg.Target, err)
	}
	status := w.resp.StatusCode()
	if status == fasthttp.StatusUnauthorized {
		return fmt.Errorf("preflight: the gateway refused the signature (401 %s): check -merchant and the secret", jsonField(w.resp.Body(), `"code":"`))
	}
	if status != fasthttp.StatusNotFound {
		return fmt.Errorf("preflight: GET of an unknown payment answered %d, want 404 (is %s a paygate merchant listener?)", status, r.cfg.Target)
	}
	if string(w.resp.Header.Peek(SandboxHeader)) != "true" && !r.cfg.AllowRealOrders {
		return ErrNotSandbox
	}
	return nil
}

// answered records an answer.
func (r *runner) answered(j job, status int, channel []byte, d time.Duration) {
	r.mu.Lock()
	r.total.answer(status, channel, d)
	r.phases[j.phase].answer(status, channel, d)
	r.interval.answer(status, channel, d)
	r.mu.Unlock()
}

// sent counts a request as sent.
func (r *runner) sent(j job, o op) {
	r.mu.Lock()
	r.total.sent++
	r.phases[j.phase].sent++
	r.interval.sent++
	r.opsSent[o]++
	r.mu.Unlock()
}

func (r *runner) failed(j job, k errKind) {
	r.mu.Lock()
	r.total.errs[k]++
	r.phases[j.phase].errs[k]++
	r.interval.errs[k]++
	r.mu.Unlock()
}

func (r *runner) summary(end time.Time, sc *scenario) *Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := max(end.Sub(r.start), time.Nanosecond)
	s := &Summary{
		TargetRate: r.cfg.Rate,
		DurationS:  round3(d.Seconds()),
		Sent:       r.total.sent,
		Answered:   r.total.answered,
		NotSent:    r.notSent,
		Status:     r.total.statusMap(),
		Errors:     r.total.errors(),
		Latency:    latencyOf(r.total.hist),
		StartLag:   latencyOf(r.lag),
		Channels:   r.total.channelMap(),
		Ops:        map[string]int64{},
	}
	s.AchievedRate = round3(float64(s.Sent) / d.Seconds())
	for o, n := range r.opsSent {
		s.Ops[opNames[o]] = n
	}
	if sc != nil {
		s.Scenario, s.FaultChannel = r.cfg.Scenario, r.cfg.FaultChannel
		for i, name := range []string{"before", "fault", "after"} {
			s.Phases = append(s.Phases, r.phases[i].phase(name))
		}
	}
	return s
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// jsonField returns the string value after key (e.g. `"channel":"`) in a
// JSON body, without decoding it: the answers are the gateway's own compact
// JSON, and the values read (ids, channel ids, status) have no escapes.
func jsonField(body []byte, key string) []byte {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil
	}
	v := body[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

// payments remembers payment ids this run created (a ring: gets read
// recent ones) and those a get found paid (refunds take them), in fixed
// arrays so that remembering allocates nothing.
type payments struct {
	mu      sync.Mutex
	created []idSlot
	nc      int64 // creates remembered so far
	paid    []idSlot
	np      int // paid ids waiting for a refund (a stack)
	next    int64
}

type idSlot struct {
	n  uint8
	id [40]byte
}

func (p *payments) init(n int) {
	p.created = make([]idSlot, n)
	p.paid = make([]idSlot, n)
}

func validID(id []byte) bool { return len(id) > 0 && len(id) <= len(idSlot{}.id) }

func (s *idSlot) set(id []byte) { s.n = uint8(copy(s.id[:], id)) }

func (p *payments) addCreated(id []byte) {
	if !validID(id) {
		return
	}
	p.mu.Lock()
	p.created[p.nc%int64(len(p.created))].set(id)
	p.nc++
	p.mu.Unlock()
}

// created appends a remembered payment id to dst (round robin over the
// most recent ones); ok is false when there is none yet.
func (p *payments) pickCreated(dst []byte) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nc == 0 {
		return dst, false
	}
	n := min(p.nc, int64(len(p.created)))
	s := &p.created[p.next%n]
	p.next++
	return append(dst, s.id[:s.n]...), true
}

func (p *payments) addPaid(id []byte) {
	if !validID(id) {
		return
	}
	p.mu.Lock()
	if p.np < len(p.paid) {
		p.paid[p.np].set(id)
		p.np++
	}
	p.mu.Unlock()
}

func (p *payments) popPaid(dst []byte) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.np == 0 {
		return dst, false
	}
	p.np--
	s := &p.paid[p.np]
	return append(dst, s.id[:s.n]...), true
}

// itoa36 appends n in base 36.
func itoa36(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 36) }
