package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway/client"
	"github.com/paygate/paygate/ledger/pgtest"
	"github.com/paygate/paygate/notify"
	"github.com/paygate/paygate/store/storetest"
)

// End-to-end harness: the whole gateway (edge, router, adapters, store on a
// real redis-server, notification workers, reconciler, admin) with the
// channel simulators, in this process, on loopback ports.

const (
	demoSecret    = "sandbox-demo-secret-0123456789abcdef"
	demoWebhook   = "sandbox-demo-webhook-secret-0123456789"
	adminToken    = "sandbox-admin-token"
	defaultRoutes = `
  rules:
    - name: large-to-bank
      when: {methods: [qr], amount_min: 500000}
      channels: [bank-a, bank-b]
    - name: default-qr
      when: {methods: [qr]}
      channels: [{id: wechat-main, weight: 60}, {id: alipay-main, weight: 40}]
  failover: {max_attempts: 2}`
)

const configTemplate = `
server: {listen: "127.0.0.1:{LISTEN}", admin_listen: "127.0.0.1:{ADMIN}", admin_token: "{TOKEN}", shutdown_timeout: 5s{PUBLIC}}
store: {redis: {addrs: {ADDRS}}{PG}}
sandbox: {enabled: true, control_listen: "", keys_dir: "{KEYS}", time_scale: 1000}
log: {level: warn}
merchants:
  - id: demo
    key: {algorithm: hmac-sha256, secret: "{SECRET}"}
    webhook_secret: "{WEBHOOK}"
    notify_allow_networks: ["127.0.0.0/8", "::1/128"]
    methods: [qr, wechat_native, wechat_jsapi, alipay_qr, alipay_page, bank_redirect]
    limits: {max_amount: 5000000, requests_per_second: 5000}
channels:
  - id: wechat-main
    type: wechat
    base_url: http://127.0.0.1:{WX}
    methods: [qr, wechat_native, wechat_jsapi]
    timeout: {TIMEOUT}
    breaker: {BREAKER}
    credentials:
      mchid: "1900000001"
      appid: wxd678efh567hg6787
      serial_no: 5157F09EFDC096DE15EBE81A47057A7232F1B8E1
      private_key_file: {KEYS}/wechat-merchant.pem
      apiv3_key: sandboxAPIv3key0123456789abcdef0
      platform_public_key_file: {KEYS}/wechat-platform.pub.pem
      platform_serial: PUB_KEY_ID_0114232134912410000000000000
  - id: alipay-main
    type: alipay
    base_url: http://127.0.0.1:{ALI}
    methods: [qr, alipay_qr, alipay_page]
    timeout: {TIMEOUT}
    breaker: {BREAKER}
    credentials:
      app_id: "2021000000000001"
      private_key_file: {KEYS}/alipay-app.pem
      alipay_public_key_file: {KEYS}/alipay-platform.pub.pem
  - id: bank-a
    type: bank
    base_url: http://127.0.0.1:{BA}
    methods: [qr, bank_redirect]
    timeout: {TIMEOUT}
    breaker: {BREAKER}
    credentials: {mer_id: "777290058110048", cert_id: "69629715588", private_key_file: {KEYS}/bank-merchant.pem, root_cert_file: {KEYS}/bank-root-ca.pem, middle_cert_file: {KEYS}/bank-middle-ca.pem}
  - id: bank-b
    type: bank
    base_url: http://127.0.0.1:{BB}
    methods: [qr, bank_redirect]
    timeout: {TIMEOUT}
    breaker: {BREAKER}
    credentials: {mer_id: "777290058110097", cert_id: "69629715588", private_key_file: {KEYS}/bank-merchant.pem, root_cert_file: {KEYS}/bank-root-ca.pem}
routing:
{ROUTING}
notifications: {schedule: {SCHEDULE}, timeout: 2s, lease: 5s}
reconcile: {delays: [1s, 2s], interval: 100ms, lease: 3s}
{EXTRA}
`

// handedOut remembers every port freePort gave in this process: the kernel
// may hand a closed port out again, and two configs of one test (or of
// parallel tests) must not share one.
var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port
		}
	}
	t.Fatal("no fresh loopback port")
	return 0
}

type e2eOpts struct {
	redisAddr string // "" = embedded store
	pgDSN     string // the ledger's PostgreSQL ("" = records in the store above)
	routing   string // YAML under "routing:"; default defaultRoutes
	extra     string // more top-level YAML
	timeout   string // channel timeout; default 2s
	breaker   string
	schedule  string // notifications.schedule
	publicURL string // server.public_url; "" = the default (the merchant listener)
}

// writeConfig writes a sandbox config with the four shipped channels on
// fresh loopback ports and returns its path.
func writeConfig(t testing.TB, o e2eOpts) string {
	t.Helper()
	keys, err := filepath.Abs("../../sandbox/keys")
	if err != nil {
		t.Fatal(err)
	}
	if o.routing == "" {
		o.routing = defaultRoutes
	}
	if o.timeout == "" {
		o.timeout = "2s"
	}
	if o.breaker == "" {
		o.breaker = "{min_requests: 5, failure_ratio: 0.5, open_for: 2s, half_open_requests: 1}"
	}
	if o.schedule == "" {
		o.schedule = "[100ms, 200ms, 400ms]"
	}
	public := ""
	if o.publicURL != "" {
		public = fmt.Sprintf(", public_url: %q", o.publicURL)
	}
	addrs := "[]"
	if o.redisAddr != "" {
		addrs = fmt.Sprintf("[%q]", o.redisAddr)
	}
	pg := ""
	if o.pgDSN != "" {
		pg = fmt.Sprintf(", postgres: {dsn: %q, connect_timeout: 1s}", o.pgDSN)
	}
	port := func() string { return fmt.Sprint(freePort(t)) }
	y := strings.NewReplacer("{PG}", pg,
		"{LISTEN}", port(), "{ADMIN}", port(), "{TOKEN}", adminToken, "{ADDRS}", addrs, "{KEYS}", keys,
		"{SECRET}", demoSecret, "{WEBHOOK}", demoWebhook, "{WX}", port(), "{ALI}", port(), "{BA}", port(), "{BB}", port(),
		"{TIMEOUT}", o.timeout, "{BREAKER}", o.breaker, "{ROUTING}", o.routing, "{SCHEDULE}", o.schedule, "{EXTRA}", o.extra, "{PUBLIC}", public,
	).Replace(configTemplate)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// running is one started gateway with its merchant-side helpers.
type running struct {
	t      testing.TB
	app    *app
	path   string
	base   string
	admin  string
	signer *client.Signer
	logs   *observer.ObservedLogs
}

func startE2E(t testing.TB, o e2eOpts) *running {
	t.Helper()
	path := writeConfig(t, o)
	return startFrom(t, path, options{notifyPoll: 20 * time.Millisecond})
}

func startFrom(t testing.TB, path string, o options) *running {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	core, logs := observer.New(zap.InfoLevel)
	a, err := start(cfg, path, zap.New(core), o)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.stop(ctx); err != nil {
			t.Logf("stop: %v", err)
		}
	})
	return &running{t: t, app: a, path: path, base: "http://" + a.addr, admin: "http://" + a.adminAddr,
		signer: client.HMAC("demo", []byte(demoSecret)), logs: logs}
}

type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.Status, r.Body)
	}
	return m
}

func (r resp) code(t testing.TB) string {
	e, _ := r.obj(t)["error"].(map[string]any)
	if e == nil {
		return ""
	}
	s, _ := e["code"].(string)
	return s
}

// call sends a signed merchant request.
func (g *running) call(method, uri string, body any) resp {
	g.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			g.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, g.base+uri, bytes.NewReader(b))
	if err != nil {
		g.t.Fatal(err)
	}
	if len(b) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := g.signer.SetHeaders(req, b); err != nil {
		g.t.Fatal(err)
	}
	return do(g.t, req)
}

func do(t testing.TB, req *http.Request) resp {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Header: res.Header, Body: body}
}

// adminCall calls the admin API with the token.
func (g *running) adminCall(method, path string, body string) resp {
	g.t.Helper()
	req, err := http.NewRequest(method, g.admin+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	return do(g.t, req)
}

func (g *running) create(otn string, amount int64, method, notifyURL string) resp {
	return g.call(http.MethodPost, "/v1/payments", map[string]any{
		"out_trade_no": otn, "amount": amount, "currency": "CNY", "method": method,
		"subject": "Coffee", "notify_url": notifyURL, "payer": map[string]string{"openid": "o-test"},
	})
}

func (g *running) mustCreate(otn string, amount int64, method, notifyURL string) map[string]any {
	g.t.Helper()
	r := g.create(otn, amount, method, notifyURL)
	if r.Status != 201 {
		g.t.Fatalf("create %s: %d %s", otn, r.Status, r.Body)
	}
	return r.obj(g.t)
}

func (g *running) pay(paymentID string) {
	g.t.Helper()
	if r := g.adminCall(http.MethodPost, "/admin/sandbox/payments/"+paymentID+"/pay", ""); r.Status != 202 {
		g.t.Fatalf("sandbox pay %s: %d %s", paymentID, r.Status, r.Body)
	}
}

func (g *running) faults(f string) {
	g.t.Helper()
	if r := g.adminCall(http.MethodPost, "/admin/sandbox/faults", f); r.Status != 200 {
		g.t.Fatalf("faults %s: %d %s", f, r.Status, r.Body)
	}
}

// waitFor polls GET path until cond holds on the object, or fails the test.
func (g *running) waitFor(uri string, what string, cond func(map[string]any) bool) map[string]any {
	g.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last resp
	for time.Now().Before(deadline) {
		last = g.call(http.MethodGet, uri, nil)
		if last.Status == 200 && cond(last.obj(g.t)) {
			return last.obj(g.t)
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("%s never became %s: last %d %s", uri, what, last.Status, last.Body)
	return nil
}

func statusIs(s string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["status"] == s }
}

// merchantSite receives notifications, verifies each signature, and records
// them by event id.
type merchantSite struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	events map[string][]map[string]any // event id -> deliveries (decoded bodies)
	down   func(n int) bool            // answer 503 to the n-th request (1-based) when true
	reqs   int
	bad    int // deliveries whose signature did not verify
}

func newMerchantSite(t testing.TB) *merchantSite {
	m := &merchantSite{t: t, events: map[string][]map[string]any{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *merchantSite) url() string { return m.srv.URL + "/paygate/notify" }

func (m *merchantSite) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs++
	if m.down != nil && m.down(m.reqs) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := notify.Verify([]byte(demoWebhook), r.Header.Get("X-Paygate-Signature"), body, time.Now(), 5*time.Minute); err != nil {
		m.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil || ev["id"] != r.Header.Get("X-Paygate-Event-Id") {
		m.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m.events[ev["id"].(string)] = append(m.events[ev["id"].(string)], ev)
	w.WriteHeader(http.StatusNoContent)
}

// waitEvent waits for an event of type typ about object id.
func (m *merchantSite) waitEvent(typ, objectID string) map[string]any {
	m.t.Helper()
	id := "evt_" + objectID + "_" + strings.ReplaceAll(typ, ".", "_")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		evs := m.events[id]
		m.mu.Unlock()
		if len(evs) > 0 {
			if evs[0]["type"] != typ {
				m.t.Fatalf("event %s has type %v", id, evs[0]["type"])
			}
			return evs[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatalf("no %s event for %s", typ, objectID)
	return nil
}

func (m *merchantSite) count(eventID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events[eventID])
}

var _ = storetest.Redis

// startE2EWith is startE2E with start options of the test's choice
// (injected clocks); notifyPoll defaults to startE2E's.
func startE2EWith(t testing.TB, o e2eOpts, so options) *running {
	t.Helper()
	if so.notifyPoll == 0 {
		so.notifyPoll = 20 * time.Millisecond
	}
	return startFrom(t, writeConfig(t, o), so)
}

// shiftClock is the wall clock plus an offset the test moves forward, so
// that timers and deadlines keep running while "now" jumps.
type shiftClock struct{ off atomic.Int64 }

func (c *shiftClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *shiftClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// get reads one object through the merchant API and fails the test unless
// it answers 200.
func (g *running) get(uri string) map[string]any {
	g.t.Helper()
	r := g.call(http.MethodGet, uri, nil)
	if r.Status != 200 {
		g.t.Fatalf("GET %s: %d %s", uri, r.Status, r.Body)
	}
	return r.obj(g.t)
}

// drainOutbox waits until every merchant event stored so far has been
// delivered (the outbox is empty), so that a count of deliveries taken
// afterwards includes any event a previous step created.
func (g *running) drainOutbox() {
	g.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		pending, _, err := g.app.store.OutboxStats(context.Background(), "demo")
		if err == nil && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("outbox never drained: %d pending, %v", pending, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postCallback delivers a channel notification straight to the gateway.
func (g *running) postCallback(channel string, h http.Header, body []byte) resp {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.base+"/callbacks/"+channel, bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range h {
		if k != "Content-Length" {
			req.Header[k] = append([]string(nil), v...)
		}
	}
	return do(g.t, req)
}

// capturedCallback is one channel notification as the simulator sent it,
// with the gateway's answer.
type capturedCallback struct {
	Channel string // channel id from the path /callbacks/{id}
	Header  http.Header
	Body    []byte
	Status  int    // the gateway's answer
	Answer  []byte // its body
}

// callbackRecorder is a reverse proxy standing where the channels send
// their notifications (server.public_url): it records every POST
// /callbacks/{id} exactly as received and forwards it to the gateway.
type callbackRecorder struct {
	t      testing.TB
	srv    *httptest.Server
	client *http.Client
	mu     sync.Mutex
	target string
	calls  []capturedCallback
}

func newCallbackRecorder(t testing.TB) *callbackRecorder {
	r := &callbackRecorder{t: t, client: &http.Client{Timeout: 10 * time.Second}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *callbackRecorder) url() string { return r.srv.URL }

// forwardTo sets the gateway's base URL once it is listening.
func (r *callbackRecorder) forwardTo(base string) {
	r.mu.Lock()
	r.target = base
	r.mu.Unlock()
}

func (r *callbackRecorder) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	channel, ok := strings.CutPrefix(req.URL.Path, "/callbacks/")
	if err != nil || !ok || req.Method != http.MethodPost {
		http.Error(w, "not a callback", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	target := r.target
	r.mu.Unlock()
	fwd, err := http.NewRequest(http.MethodPost, target+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range req.Header {
		if k != "Content-Length" {
			fwd.Header[k] = append([]string(nil), v...)
		}
	}
	c := capturedCallback{Channel: channel, Header: req.Header.Clone(), Body: body}
	res, err := r.client.Do(fwd)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	c.Answer, _ = io.ReadAll(res.Body)
	res.Body.Close()
	c.Status = res.StatusCode
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	w.Write(c.Answer)
}

// all returns the callbacks recorded so far.
func (r *callbackRecorder) all() []capturedCallback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]capturedCallback(nil), r.calls...)
}

// waitFor waits for a recorded callback that match accepts.
func (r *callbackRecorder) waitFor(t testing.TB, what string, match func(capturedCallback) bool) capturedCallback {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range r.all() {
			if match(c) {
				return c
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no callback %s among %d recorded", what, len(r.all()))
	return capturedCallback{}
}

// versions returns the stored version of a payment (and, with refundID, of
// that refund): it grows with every stored change, even within the second
// that updated_at shows.
func (g *running) versions(paymentID, refundID string) (pay, refund int64) {
	g.t.Helper()
	ctx := context.Background()
	rec, err := g.app.store.GetPayment(ctx, nil, "demo", paymentID)
	if err != nil {
		g.t.Fatalf("stored payment %s: %v", paymentID, err)
	}
	if refundID == "" {
		return rec.Version, 0
	}
	rf, err := g.app.store.GetRefund(ctx, nil, "demo", refundID)
	if err != nil {
		g.t.Fatalf("stored refund %s: %v", refundID, err)
	}
	return rec.Version, rf.Version
}

// metricValue is the value of one series (name and labels exactly as
// exposed) in a /metrics body; 0 if the series is absent.
func metricValue(t testing.TB, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// newPG starts a PostgreSQL server for t (each test its own: a killed or
// stopped server never disturbs another test).
func newPG(t testing.TB) *pgtest.Server { return pgtest.Start(t) }
