package routing

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a manual clock for the router (health windows, latency).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeAdapter is a channel adapter that does nothing; routing never calls
// it, it only hands it out.
type fakeAdapter struct{ id string }

func (f *fakeAdapter) ID() string { return f.id }
func (f *fakeAdapter) Create(context.Context, *adapters.CreateRequest) (*adapters.CreateResult, error) {
	return nil, adapters.Unsupported(f.id, "create")
}
func (f *fakeAdapter) Query(context.Context, *adapters.QueryRequest) (*adapters.OrderState, error) {
	return nil, adapters.Unsupported(f.id, "query")
}
func (f *fakeAdapter) Close(context.Context, *adapters.QueryRequest) error {
	return adapters.Unsupported(f.id, "close")
}

var _ adapters.Channel = (*fakeAdapter)(nil)

// build builds fake adapters and fails for a channel whose base_url is
// "fail".
func build(ch config.Channel) (adapters.Channel, error) {
	if ch.BaseURL == "fail" {
		return nil, errors.New("cannot read key file")
	}
	return &fakeAdapter{id: ch.ID}, nil
}

func ref_(id string, w float64) config.ChannelRef { return config.ChannelRef{ID: id, Weight: w} }

// baseConfig has four channels and a few rules; tests copy and modify it.
// Exploration is 0 so that orders are only weighted choices.
func baseConfig() *config.Config {
	// A failure streak long enough never to decide: these tests are about
	// the window's ratio (TestBreakerConsecutiveFailures covers streaks).
	br := config.Breaker{MinRequests: 10, FailureRatio: 0.5, OpenFor: config.Duration(time.Hour), HalfOpenRequests: 2, Interval: config.Duration(time.Hour),
		ConsecutiveFailures: 1000}
	return &config.Config{
		Channels: []config.Channel{
			{ID: "wx", Type: "wechat", Methods: []string{"qr", "wechat_native", "wechat_jsapi"}, Breaker: br},
			{ID: "ali", Type: "alipay", Methods: []string{"qr", "alipay_qr", "alipay_page"}, Breaker: br},
			{ID: "bank-a", Type: "bank", Methods: []string{"qr", "bank_redirect"}, Breaker: br},
			{ID: "wx-usd", Type: "wechat", Methods: []string{"qr", "wechat_jsapi"}, Currencies: []string{"USD"}, Breaker: br},
		},
		Routing: config.Routing{
			Rules: []config.Rule{
				{Name: "merchant-vip", When: config.Match{Merchants: []string{"vip"}}, Channels: []config.ChannelRef{ref_("bank-a", 1)}},
				{Name: "meta-tagged", When: config.Match{Metadata: map[string]string{"region": "north", "tier": "gold"}}, Channels: []config.ChannelRef{ref_("ali", 1)}},
				{Name: "large-to-bank", When: config.Match{Methods: []string{"qr"}, AmountMin: 500000, AmountMax: 1000000},
					Channels: []config.ChannelRef{ref_("bank-a", 1), ref_("wx", 0)}},
				{Name: "usd", When: config.Match{Currencies: []string{"USD"}}, Channels: []config.ChannelRef{ref_("wx-usd", 1)}},
				{Name: "default-qr", When: config.Match{Methods: []string{"qr"}}, Channels: []config.ChannelRef{ref_("wx", 60), ref_("ali", 40)}},
				{Name: "bank-redirect", When: config.Match{Methods: []string{"bank_redirect"}}, Channels: []config.ChannelRef{ref_("wx", 1), ref_("bank-a", 1)}},
			},
			Health: config.Health{Window: config.Duration(60 * time.Second), Buckets: 12, MinSamples: 20, SyncInterval: config.Duration(2 * time.Second)},
		},
	}
}

// newRouter builds a router on baseConfig-like cfg with a manual clock and a
// fixed seed.
func newRouter(t testing.TB, cfg *config.Config, hs HealthStore, opts ...Option) (*Router, *clock) {
	t.Helper()
	clk := newClock()
	opts = append([]Option{WithClock(clk.Now), WithSeed(1)}, opts...)
	r, err := New(cfg, build, hs, nil, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Stop)
	return r, clk
}

// eligibleIDs and excludedReasons summarise a decision.
func eligibleIDs(d Decision) []string {
	var out []string
	for _, c := range d.Candidates {
		if c.Eligible {
			out = append(out, c.Channel)
		}
	}
	sort.Strings(out)
	return out
}

func excludedReasons(d Decision) map[string]string {
	out := map[string]string{}
	for _, c := range d.Candidates {
		if !c.Eligible {
			out[c.Channel] = c.Reason
		}
	}
	return out
}

func candidate(t *testing.T, d Decision, id string) Candidate {
	t.Helper()
	for _, c := range d.Candidates {
		if c.Channel == id {
			return c
		}
	}
	t.Fatalf("no candidate %s in %+v", id, d)
	return Candidate{}
}

func status(t *testing.T, r *Router, id string) ChannelStatus {
	t.Helper()
	for _, s := range r.Channels() {
		if s.Channel == id {
			return s
		}
	}
	t.Fatalf("no channel %s", id)
	return ChannelStatus{}
}

// Outcomes for Call.
var (
	errTech     = &adapters.Error{Channel: "x", Op: "create", Kind: adapters.KindUnavailable, Code: "connect_failed"}
	errAmbig    = &adapters.Error{Channel: "x", Op: "create", Kind: adapters.KindAmbiguous, Code: "timeout"}
	errDeclined = &adapters.Error{Channel: "x", Op: "create", Kind: adapters.KindDeclined, Code: "NOTENOUGH"}
	errInvalid  = &adapters.Error{Channel: "x", Op: "create", Kind: adapters.KindInvalid, Code: "PARAM_ERROR"}
)

// callN runs n calls on channel id that return err.
func callN(t testing.TB, r *Router, id string, n int, err error) {
	t.Helper()
	for range n {
		_ = r.Call(context.Background(), id, "create", func(context.Context) error { return err })
	}
}

// memStore is an in-memory HealthStore with the store contract's
// semantics: AddHealth adds, ReadHealth returns buckets from..to inclusive.
// It lets the sync tests inject failures cheaply; redis_test.go runs the
// same flow against redis-server and *store.Store.
type memStore struct {
	mu      sync.Mutex
	buckets map[string]map[int64]store.HealthBucket
	fail    bool
	adds    int // AddHealth calls
}

func newMemStore() *memStore { return &memStore{buckets: map[string]map[int64]store.HealthBucket{}} }

var errStoreDown = errors.New("store unavailable")

func (m *memStore) AddHealth(_ context.Context, bs []store.HealthBucket, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errStoreDown
	}
	if ttl <= 0 {
		return errors.New("ttl must be positive")
	}
	m.adds++
	for _, b := range bs {
		ch := m.buckets[b.Channel]
		if ch == nil {
			ch = map[int64]store.HealthBucket{}
			m.buckets[b.Channel] = ch
		}
		cur := ch[b.Bucket]
		cur.Channel, cur.Bucket = b.Channel, b.Bucket
		cur.OK += b.OK
		cur.Fail += b.Fail
		cur.LatencyMS += b.LatencyMS
		for i := range b.Lat {
			cur.Lat[i] += b.Lat[i]
		}
		ch[b.Bucket] = cur
	}
	return nil
}

func (m *memStore) ReadHealth(_ context.Context, channel string, from, to int64) ([]store.HealthBucket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errStoreDown
	}
	var out []store.HealthBucket
	for idx, b := range m.buckets[channel] {
		if idx >= from && idx <= to {
			out = append(out, b)
		}
	}
	return out, nil
}

func (m *memStore) totals(channel string) (ok, fail int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.buckets[channel] {
		ok += b.OK
		fail += b.Fail
	}
	return ok, fail
}

func (m *memStore) setFail(v bool) {
	m.mu.Lock()
	m.fail = v
	m.mu.Unlock()
}

var _ HealthStore = (*memStore)(nil)
