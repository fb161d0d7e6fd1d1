package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/sandbox/wechatsim"
	"github.com/paygate/paygate/store/storetest"
)

// A channel answers a create with WeChat's "SYSTEM_ERROR, retry with the
// same parameters" although it did create the order. paygate fails over
// (nobody was shown that order, so nobody can pay it), and the reconciler
// later confirms the attempt at its channel: it finds the order and closes
// it there, recording the attempt as abandoned.
func TestAbandonedAttemptIsClosedAtItsChannel(t *testing.T) {
	rs := storetest.Redis(t)

	// Channel A: a real simulator behind a proxy that lets creates through
	// but answers them 500 SYSTEM_ERROR.
	var simA atomic.Pointer[http.Handler]
	simASrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*simA.Load()).ServeHTTP(w, r) }))
	t.Cleanup(simASrv.Close)
	target, _ := url.Parse(simASrv.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v3/pay/transactions/") && !strings.HasSuffix(r.URL.Path, "/close") {
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r) // the order is created at A...
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError) // ...and the answer says it was not
			io.WriteString(w, `{"code":"SYSTEM_ERROR","message":"系统错误"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	cfg := failoverConfig(t, proxy.URL)
	startSim := func(ch config.Channel) sandbox.Sim {
		n := sandbox.NewNotifier(ch.ID, nil, 1, func() bool { return true }, zap.NewNop())
		t.Cleanup(n.Stop)
		sm, err := wechatsim.New(ch, sandbox.Env{ChannelID: ch.ID, Notifier: n, Now: time.Now, OrderCreated: func(string) {}, Logger: zap.NewNop()}, cfg.Sandbox.KeysDir)
		if err != nil {
			t.Fatal(err)
		}
		return sm
	}
	a := startSim(cfg.Channels[0])
	var ah http.Handler = a
	simA.Store(&ah)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	in := startInstance(t, cfg, rs.Addr(), gateway.WithClock(now))
	sg := hmacSigner("m-hmac", hmacSecret)

	r := sg.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("abandon-1", 400, "qr"), reqOpts{})
	if r.status != 201 || r.json(t)["channel"] != "wechat-b" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["payment_id"].(string)
	orderNo := payment.OrderNo(id)
	ctx := context.Background()
	rec, _ := in.st.GetPayment(ctx, nil, "m-hmac", id)
	if len(rec.Attempts) != 2 || rec.Attempts[0].Outcome != payment.OutcomeNotCreated || rec.Attempts[0].Code != "SYSTEM_ERROR" || !rec.Attempts[0].NeedsCheck() {
		t.Fatalf("attempts: %+v", rec.Attempts)
	}

	offset.Store(int64(time.Minute))
	in.reconciler(time.Second, 10*time.Second).SweepOnce(ctx)
	rec, _ = in.st.GetPayment(ctx, nil, "m-hmac", id)
	if at := rec.Attempts[0]; at.Outcome != payment.OutcomeAbandoned || !at.Checked {
		t.Fatalf("attempt at A after the sweep: %+v", at)
	}
	if err := a.Pay(orderNo); err == nil {
		t.Fatal("the abandoned order at A could still be paid")
	}
	if rec.Status != payment.StatusPending || rec.Channel != "wechat-b" {
		t.Fatalf("the payment itself changed: %+v", rec.Payment)
	}
}

// An attempt whose channel never answers again is left to a person after
// many looks (unverified, with an ALERT), not asked about forever.
func TestUnanswerableAttemptEndsUnverified(t *testing.T) {
	rs := storetest.Redis(t)
	var simA atomic.Pointer[http.Handler]
	simASrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*simA.Load()).ServeHTTP(w, r) }))
	t.Cleanup(simASrv.Close)
	// Channel A answers the create "SYSTEM_ERROR" (so paygate moves on)
	// and then never answers anything again.
	var dead atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dead.Load() {
			hj, _ := w.(http.Hijacker)
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"code":"SYSTEM_ERROR","message":"系统错误"}`)
	}))
	t.Cleanup(proxy.Close)
	cfg := failoverConfig(t, proxy.URL)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	in := startInstance(t, cfg, rs.Addr(), gateway.WithClock(now))
	r := hmacSigner("m-hmac", hmacSecret).do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("unverified-1", 400, "qr"), reqOpts{})
	if r.status != 201 || r.json(t)["channel"] != "wechat-b" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["payment_id"].(string)
	dead.Store(true)
	ctx := context.Background()
	rc := in.reconciler(time.Second, 10*time.Second)
	for i := 0; i < 300; i++ {
		offset.Add(int64(10 * time.Minute))
		rc.SweepOnce(ctx)
		rec, _ := in.st.GetPayment(ctx, nil, "m-hmac", id)
		if a := rec.Attempts[0]; a.Checked {
			if a.Outcome != payment.OutcomeUnverified {
				t.Fatalf("attempt at the dead channel: %+v", a)
			}
			return
		}
	}
	t.Fatal("the reconciler never gave up on a channel that does not answer")
}

// failoverConfig routes qr to wechat-main at aURL first, then to wechat-b
// (another merchant account), whose simulator it starts.
func failoverConfig(t *testing.T, aURL string) *config.Config {
	t.Helper()
	simB := newSim(t)
	cfg := testConfig(t, aURL)
	b := cfg.Channels[0]
	b.ID, b.BaseURL = "wechat-b", simB.srv.URL
	b.Credentials.MchID = "1900000002" // one merchant account backs one channel
	cfg.Channels = append(cfg.Channels, b)
	cfg.Routing.Exploration = 0
	cfg.Routing.Rules = []config.Rule{{Name: "a-then-b", When: config.Match{Methods: []string{"qr"}},
		Channels: []config.ChannelRef{{ID: "wechat-main", Weight: 1}, {ID: "wechat-b", Weight: 1, Priority: 1}}}}
	cfgB := *cfg
	cfgB.Channels = []config.Channel{b}
	simB.start(t, &cfgB)
	return cfg
}
