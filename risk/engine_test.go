package risk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/risk"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/storetest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// countingStore is a real store that counts the risk round trips.
type countingStore struct {
	*store.Store
	checks atomic.Int64
}

func (c *countingStore) RiskCheck(ctx context.Context, n *store.Nonce, m, otn string, block bool, l []store.RiskLimit, now time.Time) (store.RiskResult, error) {
	c.checks.Add(1)
	return c.Store.RiskCheck(ctx, n, m, otn, block, l, now)
}

// decisions records the observer's calls.
type decisions struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *decisions) RiskDecision(rule, outcome string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[rule+"/"+outcome]++
}

func (d *decisions) get(k string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[k]
}

func rules(t testing.TB, y string) config.Risk {
	t.Helper()
	var r config.Risk
	if err := yaml.Unmarshal([]byte(y), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

type fixture struct {
	st    *countingStore
	eng   *risk.Engine
	now   *atomic.Int64 // unix ms
	dec   *decisions
	logs  *observer.ObservedLogs
	redis *storetest.Server
}

func newFixture(t *testing.T, y string) *fixture {
	t.Helper()
	srv := storetest.Redis(t)
	return newFixtureOn(t, srv, y)
}

func newFixtureOn(t *testing.T, srv *storetest.Server, y string) *fixture {
	t.Helper()
	st, err := store.Open(config.Redis{Addrs: []string{srv.Addr()}, ReadTimeout: config.Duration(10 * time.Second), WriteTimeout: config.Duration(10 * time.Second)}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: &countingStore{Store: st}, now: &atomic.Int64{}, dec: &decisions{}, redis: srv}
	f.now.Store(t0.UnixMilli())
	core, logs := observer.New(zapcore.InfoLevel)
	f.logs = logs
	f.eng, err = risk.New(rules(t, y), f.st, zap.New(core),
		risk.WithClock(func() time.Time { return time.UnixMilli(f.now.Load()) }), risk.WithObserver(f.dec))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) advance(d time.Duration) { f.now.Add(d.Milliseconds()) }

var otnSeq atomic.Int64

func req(ip string) risk.Request {
	return risk.Request{Merchant: "m1", OutTradeNo: fmt.Sprintf("o-%d", otnSeq.Add(1)), Method: payment.MethodQR, Amount: 100, ClientIP: ip}
}

func nonce() *store.Nonce {
	return &store.Nonce{Merchant: "m1", Value: fmt.Sprintf("nonce-%d-abcdefghij", otnSeq.Add(1)), TTL: time.Minute}
}

func rejectedBy(err error) string {
	var re *risk.RejectedError
	if errors.As(err, &re) {
		return re.Rule
	}
	return ""
}

const perIP = `
rules:
  - name: per-ip
    limit: {count: 5, per: 1m, by: payer.client_ip}
`

func TestConcurrentCreatesOneIP(t *testing.T) {
	t.Parallel()
	f := newFixture(t, perIP)
	// A second engine on another client of the same Redis: another instance.
	g := newFixtureOn(t, f.redis, perIP)
	g.now = f.now
	var passed, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := []*risk.Engine{f.eng, g.eng}[i%2]
			switch err := e.Check(context.Background(), nonce(), req("203.0.113.7")); {
			case err == nil:
				passed.Add(1)
			case rejectedBy(err) == "per-ip":
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 5 || refused.Load() != 15 {
		t.Fatalf("passed %d, refused %d; want 5 and 15", passed.Load(), refused.Load())
	}
	// Another address has its own window.
	if err := f.eng.Check(context.Background(), nonce(), req("203.0.113.8")); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if got := f.dec.get("per-ip/refused") + g.dec.get("per-ip/refused"); got != 15 {
		t.Errorf("refused decisions = %d, want 15", got)
	}
	// One log line per refusal, naming the rule, with the address masked.
	lines := f.logs.FilterMessage("payment refused by a risk rule").All()
	if len(lines) == 0 {
		t.Fatal("no refusal logged")
	}
	for _, l := range lines {
		m := l.ContextMap()
		if m["rule"] != "per-ip" || m["client_ip"] != "203.0.x.x" {
			t.Fatalf("log fields = %v", m)
		}
	}
}

func TestWindowSlides(t *testing.T) {
	t.Parallel()
	f := newFixture(t, perIP)
	ctx := context.Background()
	for i := range 5 {
		if err := f.eng.Check(ctx, nil, req("198.51.100.1")); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		f.advance(10 * time.Second)
	}
	// t0+50s: five creates in the last minute.
	if err := f.eng.Check(ctx, nil, req("198.51.100.1")); rejectedBy(err) != "per-ip" {
		t.Fatalf("sixth create: %v, want refused", err)
	}
	// t0+61s: the first create has left the window; one more fits.
	f.advance(11 * time.Second)
	if err := f.eng.Check(ctx, nil, req("198.51.100.1")); err != nil {
		t.Fatalf("after the first left the window: %v", err)
	}
	if err := f.eng.Check(ctx, nil, req("198.51.100.1")); rejectedBy(err) != "per-ip" {
		t.Fatalf("and then: %v, want refused", err)
	}
	// Refusals did not consume the window: 10 s on, one more fits again.
	f.advance(10 * time.Second)
	if err := f.eng.Check(ctx, nil, req("198.51.100.1")); err != nil {
		t.Fatalf("10s later: %v", err)
	}
}

func TestAmountSum(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
rules:
  - name: big-tickets
    when: {amount_min: 1000}
    limit: {amount: 50000, per: 24h, by: payer.openid}
`)
	ctx := context.Background()
	r := func(openid string, amount int64) risk.Request {
		q := req("")
		q.OpenID, q.Amount = openid, amount
		return q
	}
	for _, a := range []int64{20000, 20000, 10000} {
		if err := f.eng.Check(ctx, nil, r("o-payer-0001", a)); err != nil {
			t.Fatalf("%d: %v", a, err)
		}
	}
	if err := f.eng.Check(ctx, nil, r("o-payer-0001", 1000)); rejectedBy(err) != "big-tickets" {
		t.Fatalf("over the sum: %v", err)
	}
	// Below amount_min the rule does not apply, and nothing is asked of the store.
	before := f.st.checks.Load()
	if err := f.eng.Check(ctx, nil, r("o-payer-0001", 999)); err != nil {
		t.Fatalf("below amount_min: %v", err)
	}
	// Without an openid the rule does not apply either.
	if err := f.eng.Check(ctx, nil, r("", 5000)); err != nil {
		t.Fatalf("no openid: %v", err)
	}
	if n := f.st.checks.Load() - before; n != 0 {
		t.Fatalf("%d store round trips for requests no rule applies to", n)
	}
	// Another payer has a window of its own; 23 h later the first one is still full, 24 h later empty.
	if err := f.eng.Check(ctx, nil, r("o-payer-0002", 50000)); err != nil {
		t.Fatalf("another payer: %v", err)
	}
	f.advance(23 * time.Hour)
	if err := f.eng.Check(ctx, nil, r("o-payer-0001", 1000)); rejectedBy(err) != "big-tickets" {
		t.Fatalf("23h later: %v", err)
	}
	f.advance(time.Hour)
	if err := f.eng.Check(ctx, nil, r("o-payer-0001", 50000)); err != nil {
		t.Fatalf("24h later: %v", err)
	}
}

func TestBlock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
rules:
  - name: per-merchant
    limit: {count: 100, per: 1m, by: merchant}
  - name: blocked
    when: {methods: [qr, wechat_jsapi]}
    block: {payer.client_ip: ["203.0.113.0/24", "2001:db8::/32"], payer.openid: [o-fraud-1]}
`)
	ctx := context.Background()
	tests := []struct {
		name, ip, openid string
		method           payment.Method
		want             string
	}{
		{"blocked range", "203.0.113.200", "", payment.MethodQR, "blocked"},
		{"mapped v4 in blocked range", "::ffff:203.0.113.9", "", payment.MethodQR, "blocked"},
		{"blocked v6", "2001:db8::1", "", payment.MethodQR, "blocked"},
		{"zoned v6 in blocked range", "2001:db8::1%eth0", "", payment.MethodQR, "blocked"},
		{"zoned mapped v4 in blocked range", "::ffff:203.0.113.9%1", "", payment.MethodQR, "blocked"},
		{"blocked openid", "", "o-fraud-1", payment.MethodWechatJSAPI, "blocked"},
		{"method out of scope", "203.0.113.200", "", payment.MethodAlipayQR, ""},
		{"other address", "203.0.114.1", "o-good", payment.MethodQR, ""},
	}
	for _, tt := range tests {
		q := req(tt.ip)
		q.OpenID, q.Method = tt.openid, tt.method
		if got := rejectedBy(f.eng.Check(ctx, nil, q)); got != tt.want {
			t.Errorf("%s: refused by %q, want %q", tt.name, got, tt.want)
		}
	}
	// Blocked creates were not counted by the merchant's limit: 2 passed.
	ex, err := f.eng.Explain(ctx, req("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if *ex.Rules[0].Used != 2 {
		t.Fatalf("merchant window holds %d, want 2 (blocked creates are not counted)", *ex.Rules[0].Used)
	}
}

// TestZoneIsNotAnotherPayer: an IPv6 zone ("%eth0") is accepted by the
// address parser but says nothing about the payer; varying it must not give
// a payer a fresh counter.
func TestZoneIsNotAnotherPayer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
rules:
  - name: per-ip
    limit: {count: 2, per: 1m, by: payer.client_ip}
`)
	ctx := context.Background()
	for i, ip := range []string{"2001:db8::7", "2001:db8::7%a", "2001:db8::7%b"} {
		err := f.eng.Check(ctx, nil, req(ip))
		if want := i >= 2; (rejectedBy(err) == "per-ip") != want {
			t.Fatalf("create %d from %s: %v, refused want %v", i+1, ip, err, want)
		}
	}
}

func TestReplayIsNotCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
rules:
  - name: one
    limit: {count: 1, per: 1m, by: merchant}
  - name: blocked
    block: {payer.openid: [o-fraud-1]}
`)
	ctx := context.Background()
	q := req("")
	if err := f.eng.Check(ctx, nil, q); err != nil {
		t.Fatal(err)
	}
	rec := &payment.Record{Payment: payment.Payment{PaymentID: payment.NewPaymentID(), MerchantID: "m1", OutTradeNo: q.OutTradeNo,
		Status: payment.StatusPending, Amount: q.Amount, Currency: "CNY", Method: q.Method, CreatedAt: t0, UpdatedAt: t0}}
	if _, created, err := f.st.CreatePayment(ctx, nil, rec, time.Time{}); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	// The same out_trade_no again passes unjudged, even though the window
	// is full and even for a payer blocked since: the create path answers
	// the existing payment.
	q.OpenID = "o-fraud-1"
	for range 3 {
		if err := f.eng.Check(ctx, nil, q); err != nil {
			t.Fatalf("replay: %v", err)
		}
	}
	if err := f.eng.Check(ctx, nil, req("")); rejectedBy(err) != "one" {
		t.Fatalf("a new out_trade_no: %v, want refused (the replays were not counted, the first create was)", err)
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, `
rules:
  - name: jsapi-only
    when: {methods: [wechat_jsapi]}
    limit: {count: 5, per: 1m, by: payer.openid}
  - name: per-ip
    limit: {count: 2, per: 1m, by: payer.client_ip}
  - name: per-merchant
    limit: {count: 2, per: 1m, by: merchant}
  - name: blocked
    block: {payer.openid: [o-fraud-1]}
`)
	ctx := context.Background()
	for range 2 {
		if err := f.eng.Check(ctx, nil, req("198.51.100.1")); err != nil {
			t.Fatal(err)
		}
	}
	q := req("198.51.100.1")
	ex, err := f.eng.Explain(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Decision != risk.OutcomeRefused || ex.Rule != "per-ip" {
		t.Fatalf("explain = %+v, want refused by per-ip (the first refusing rule)", ex)
	}
	want := []string{"jsapi-only not_applicable", "per-ip refused", "per-merchant refused", "blocked passed"}
	for i, v := range ex.Rules {
		if got := v.Rule + " " + v.Outcome; got != want[i] {
			t.Errorf("rule %d: %s (%s), want %s", i, got, v.Reason, want[i])
		}
	}
	// A blocked payer: the block decides, whatever the limits.
	q.OpenID = "o-fraud-1"
	if ex, err = f.eng.Explain(ctx, q); err != nil || ex.Rule != "blocked" {
		t.Fatalf("explain blocked = %+v, %v", ex, err)
	}
	// Explaining counted nothing: another address still has both its slots
	// in per-ip... but the merchant's window is full.
	ex, err = f.eng.Explain(ctx, req("198.51.100.2"))
	if err != nil || ex.Rule != "per-merchant" || *ex.Rules[1].Used != 0 || *ex.Rules[2].Used != 2 {
		t.Fatalf("explain = %+v, %v", ex, err)
	}
}

func TestReloadIsAtomic(t *testing.T) {
	t.Parallel()
	f := newFixture(t, perIP)
	ctx := context.Background()
	commit, err := f.eng.Prepare(rules(t, `
rules:
  - name: blocked
    block: {payer.client_ip: ["198.51.100.0/24"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Check(ctx, nil, req("198.51.100.1")); err != nil {
		t.Fatalf("before commit: %v", err)
	}
	commit()
	if got := rejectedBy(f.eng.Check(ctx, nil, req("198.51.100.1"))); got != "blocked" {
		t.Fatalf("after commit: refused by %q", got)
	}
	// A broken config changes nothing.
	if _, err := f.eng.Prepare(rules(t, "rules: [{name: x, limit: {count: 1, per: 1ms, by: merchant}}]")); err == nil {
		t.Fatal("a window under 1s compiled")
	}
	if got := f.eng.Table().Rules(); len(got) != 1 || got[0].Name != "blocked" {
		t.Fatalf("rules after a refused reload = %+v", got)
	}
}

func TestStoreDownFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, perIP)
	f.redis.Stop()
	err := f.eng.Check(context.Background(), nil, req("198.51.100.1"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("store down: %v, want ErrUnavailable", err)
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, openid, ip string }{
		{"", "", ""},
		{"o-short", "***", "***"},
		{"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "oUp***6o", "***"},
		{"203.0.113.7", "203***.7", "203.0.x.x"},
		{"::ffff:203.0.113.7", "::f***.7", "203.0.x.x"},
		{"2001:db8:1:2::7", "200***:7", "2001:db8::/32"},
	}
	for _, tt := range tests {
		if got := risk.MaskOpenID(tt.in); got != tt.openid {
			t.Errorf("MaskOpenID(%q) = %q, want %q", tt.in, got, tt.openid)
		}
		if got := risk.MaskIP(tt.in); got != tt.ip {
			t.Errorf("MaskIP(%q) = %q, want %q", tt.in, got, tt.ip)
		}
		if tt.in != "" && strings.Contains(risk.MaskIP(tt.in), tt.in) {
			t.Errorf("MaskIP(%q) keeps the address", tt.in)
		}
	}
}

func TestNoCounterFailsClosed(t *testing.T) {
	t.Parallel()
	e, err := risk.New(rules(t, perIP), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Check(context.Background(), nil, req("192.0.2.1")); err == nil || rejectedBy(err) != "" {
		t.Fatalf("check without a store: %v, want an error", err)
	}
	if err := e.Check(context.Background(), nil, req("")); err != nil {
		t.Fatalf("a request no rule applies to needs no store: %v", err)
	}
}
