package engine_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The engine's rules with scripted channels: each test builds an engine
// over the embedded store (the real store scripts, in process) and two fake
// channels "a" then "b" (a before b by priority), whose answers the test
// sets.

// fakeChannel is a channel whose answers a test scripts; it counts calls.
type fakeChannel struct {
	id string

	mu      sync.Mutex
	create  func() (*adapters.CreateResult, error) // nil: created, with a code URL
	query   func() (*adapters.OrderState, error)   // nil: pending
	refund  func() (*adapters.RefundState, error)  // nil: accepted, pending
	calls   map[string]int
	refunds []*adapters.RefundRequest
}

func newFakeChannel(id string) *fakeChannel { return &fakeChannel{id: id, calls: map[string]int{}} }

func (f *fakeChannel) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeChannel) called(op string) {
	f.mu.Lock()
	f.calls[op]++
	f.mu.Unlock()
}

func (f *fakeChannel) ID() string { return f.id }

func (f *fakeChannel) Create(_ context.Context, req *adapters.CreateRequest) (*adapters.CreateResult, error) {
	f.called("create")
	if f.create != nil {
		return f.create()
	}
	return &adapters.CreateResult{Action: payment.Action{Type: "qr_code", CodeURL: "weixin://" + f.id + "/" + req.OrderNo}}, nil
}

func (f *fakeChannel) Query(context.Context, *adapters.QueryRequest) (*adapters.OrderState, error) {
	f.called("query")
	if f.query != nil {
		return f.query()
	}
	return &adapters.OrderState{Status: adapters.OrderPending}, nil
}

func (f *fakeChannel) Close(context.Context, *adapters.QueryRequest) error {
	f.called("close")
	return nil
}

func (f *fakeChannel) Refund(_ context.Context, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	f.called("refund")
	f.mu.Lock()
	f.refunds = append(f.refunds, req)
	f.mu.Unlock()
	if f.refund != nil {
		return f.refund()
	}
	return &adapters.RefundState{Status: adapters.RefundPending}, nil
}

func (f *fakeChannel) QueryRefund(context.Context, *adapters.RefundRequest) (*adapters.RefundState, error) {
	f.called("query_refund")
	return &adapters.RefundState{Status: adapters.RefundPending}, nil
}

var (
	_ adapters.Channel  = (*fakeChannel)(nil)
	_ adapters.Refunder = (*fakeChannel)(nil)
)

// observed records what the engine reports to its observer.
type observed struct {
	mu        sync.Mutex
	failovers []string // "from>to"
	finished  []string // "channel:status"
	resolved  []string // "kind:status"
}

func (o *observed) Failover(from, to string) {
	o.mu.Lock()
	o.failovers = append(o.failovers, from+">"+to)
	o.mu.Unlock()
}

func (o *observed) PaymentFinished(channel string, status payment.Status) {
	o.mu.Lock()
	o.finished = append(o.finished, channel+":"+string(status))
	o.mu.Unlock()
}

func (o *observed) Reconciled(kind, status string) {
	o.mu.Lock()
	o.resolved = append(o.resolved, kind+":"+status)
	o.mu.Unlock()
}

func (o *observed) snapshot() (failovers, finished, resolved []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.failovers...), append([]string(nil), o.finished...), append([]string(nil), o.resolved...)
}

type env struct {
	e      *engine.Engine
	st     *store.Store
	a, b   *fakeChannel
	obs    *observed
	events int // events the engine announced (WithEventHook)
	mu     sync.Mutex
}

func (v *env) announced() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.events
}

func testConfig() *config.Config {
	br := config.Breaker{MinRequests: 10, FailureRatio: 0.5, OpenFor: config.Duration(time.Hour), HalfOpenRequests: 2, Interval: config.Duration(time.Hour)}
	return &config.Config{
		Channels: []config.Channel{
			{ID: "a", Type: "wechat", Methods: []string{"qr"}, Timeout: config.Duration(time.Second), Breaker: br},
			{ID: "b", Type: "alipay", Methods: []string{"qr"}, Timeout: config.Duration(time.Second), Breaker: br},
		},
		Routing: config.Routing{
			Rules: []config.Rule{{Name: "qr", When: config.Match{Methods: []string{"qr"}},
				Channels: []config.ChannelRef{{ID: "a", Weight: 1, Priority: 0}, {ID: "b", Weight: 1, Priority: 1}}}},
			Failover: config.Failover{MaxAttempts: 2},
			Health:   config.Health{Window: config.Duration(60 * time.Second), Buckets: 12, MinSamples: 20, SyncInterval: config.Duration(2 * time.Second)},
		},
		Reconcile: config.Reconcile{Delays: []config.Duration{config.Duration(30 * time.Second)}},
	}
}

// newEnv builds the engine; wrap, if not nil, puts something between the
// engine and the store.
func newEnv(t *testing.T, wrap func(*store.Store) engine.Store, opts ...engine.Option) *env {
	t.Helper()
	st, err := store.Open(config.Redis{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v := &env{st: st, a: newFakeChannel("a"), b: newFakeChannel("b"), obs: &observed{}}
	cfg := testConfig()
	build := func(ch config.Channel) (adapters.Channel, error) {
		if ch.ID == "a" {
			return v.a, nil
		}
		return v.b, nil
	}
	router, err := routing.New(cfg, build, nil, zap.NewNop(), routing.WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(router.Stop)
	var es engine.Store = st
	if wrap != nil {
		es = wrap(st)
	}
	opts = append([]engine.Option{engine.WithObserver(v.obs), engine.WithEventHook(func() {
		v.mu.Lock()
		v.events++
		v.mu.Unlock()
	})}, opts...)
	v.e = engine.New(cfg, es, router, zap.NewNop(), opts...)
	return v
}

var nonceSeq atomic.Int64

func nonce(merchant string) *store.Nonce {
	return &store.Nonce{Merchant: merchant, Value: "nonce-" + strconv.FormatInt(nonceSeq.Add(1), 10), TTL: time.Minute}
}

func createReq(otn string) *engine.CreateRequest {
	return &engine.CreateRequest{
		Merchant: "m1", Nonce: nonce("m1"), OutTradeNo: otn, Amount: 1999, Currency: "CNY",
		Method: payment.MethodQR, Subject: "Coffee", NotifyURL: "http://127.0.0.1:1/notify", ExpiresIn: 15 * time.Minute,
	}
}

// unavailable is a channel error that proves nothing was created.
func unavailable(ch string) error {
	return &adapters.Error{Channel: ch, Op: "create", Kind: adapters.KindUnavailable, Code: "connection_refused"}
}

// ambiguous is a channel error after which the order may exist.
func ambiguous(ch string) error {
	return &adapters.Error{Channel: ch, Op: "create", Kind: adapters.KindAmbiguous, Code: "timeout"}
}

// paid is the verified notification of channel ch that rec was paid.
func paid(rec *payment.Record) *adapters.Notification {
	return &adapters.Notification{Kind: adapters.NotifyPayment, OrderNo: rec.ChannelOrderNo, Status: adapters.OrderPaid,
		ChannelTradeNo: "T-" + rec.PaymentID, PaidAt: time.Now(), Amount: rec.Amount, Currency: rec.Currency}
}

func outbox(t *testing.T, st *store.Store, merchant string) int64 {
	t.Helper()
	pending, _, err := st.OutboxStats(context.Background(), merchant)
	if err != nil {
		t.Fatal(err)
	}
	return pending
}
