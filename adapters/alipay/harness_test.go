package alipay

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/sandbox/alipaysim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of http.DefaultTransport (the sandbox
		// Notifier's client) are the standard library's, not ours.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

const (
	keysDir   = "../../sandbox/keys"
	testAppID = "2021000000000001"
	testChan  = "alipay-test"
)

var (
	appKeyPEM = sync.OnceValue(func() []byte {
		b, err := os.ReadFile(filepath.Join(keysDir, "alipay-app.pem"))
		if err != nil {
			panic(err)
		}
		return b
	})
	appKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := config.ParseRSAPrivateKey(appKeyPEM())
		if err != nil {
			panic(err)
		}
		return k
	})
	platformKey = sync.OnceValue(func() *rsa.PrivateKey {
		b, err := os.ReadFile(filepath.Join(keysDir, "alipay-platform.pem"))
		if err != nil {
			panic(err)
		}
		k, err := config.ParseRSAPrivateKey(b)
		if err != nil {
			panic(err)
		}
		return k
	})
	platformPub = sync.OnceValue(func() *rsa.PublicKey {
		b, err := os.ReadFile(filepath.Join(keysDir, "alipay-platform.pub.pem"))
		if err != nil {
			panic(err)
		}
		k, err := config.ParseRSAPublicKey(b)
		if err != nil {
			panic(err)
		}
		return k
	})
	// otherKey is a key nobody configured: the "wrong key" of the tests.
	otherKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// clock is a settable clock shared by the adapter and the simulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// delivery is one notification as the merchant side (paygate's callback
// endpoint, here a test server) received and parsed it.
type delivery struct {
	body []byte
	n    *adapters.Notification
	err  error
}

// harness is an adapter pointed at an Alipay simulator over loopback HTTP,
// plus a callback endpoint that parses notifications with the adapter.
type harness struct {
	t        *testing.T
	clock    *clock
	sim      sandbox.Sim
	simSrv   *httptest.Server
	client   *Client
	calls    *countingObserver
	created  chan string
	delivery chan delivery
	// ack, if set, decides the callback endpoint's answer per delivery.
	ackMu sync.Mutex
	ack   func(n int, err error) error
	seen  int
}

type harnessOptions struct {
	simKeysDir string // default keysDir
	basePath   string // path prefix of base_url
	cfg        func(*Config)
}

func newHarness(t *testing.T, opts harnessOptions) *harness {
	t.Helper()
	if opts.simKeysDir == "" {
		opts.simKeysDir = keysDir
	}
	h := &harness{
		t:        t,
		clock:    newClock(),
		calls:    &countingObserver{},
		created:  make(chan string, 64),
		delivery: make(chan delivery, 64),
	}
	notifier := sandbox.NewNotifier(testChan, []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}, 1, nil, zap.NewNop())
	ch := config.Channel{
		ID: testChan, Type: "alipay", BaseURL: "http://127.0.0.1:1" + opts.basePath,
		Credentials: config.Credentials{AlipayAppID: testAppID, PrivateKey: config.Secret(appKeyPEM())},
	}
	sim, err := alipaysim.New(ch, sandbox.Env{
		ChannelID: testChan, Notifier: notifier, Now: h.clock.Now, Logger: zap.NewNop(),
		OrderCreated: func(no string) { h.created <- no },
	}, opts.simKeysDir)
	if err != nil {
		t.Fatal(err)
	}
	h.sim = sim
	h.simSrv = httptest.NewServer(sim)

	callbacks := httptest.NewServer(http.HandlerFunc(h.callback))
	transport := &http.Transport{}
	cfg := Config{
		ID: testChan, BaseURL: h.simSrv.URL + opts.basePath, AppID: testAppID,
		PrivateKey: appKey(), AlipayPublicKey: platformPub(),
		NotifyURL: callbacks.URL + "/callbacks/" + testChan,
		Client:    &http.Client{Transport: transport},
		Observer:  h.calls, Now: h.clock.Now,
	}
	if opts.cfg != nil {
		opts.cfg(&cfg)
	}
	h.client, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: stop the notifier before closing the
	// servers it may be posting to.
	t.Cleanup(func() {
		h.simSrv.Close()
		callbacks.Close()
		transport.CloseIdleConnections()
	})
	t.Cleanup(notifier.Stop)
	return h
}

// callback is paygate's /callbacks/{channel} as far as the adapter goes.
func (h *harness) callback(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n, err := h.client.ParseNotify(r.Context(), &adapters.Callback{Header: r.Header, Body: body, ContentType: r.Header.Get("Content-Type")})
	h.ackMu.Lock()
	h.seen++
	ackErr := err
	if h.ack != nil {
		ackErr = h.ack(h.seen, err)
	}
	h.ackMu.Unlock()
	a := h.client.Ack(ackErr)
	w.Header().Set("Content-Type", a.ContentType)
	w.WriteHeader(a.Status)
	w.Write(a.Body)
	h.delivery <- delivery{body: body, n: n, err: err}
}

func (h *harness) nextDelivery() delivery {
	h.t.Helper()
	select {
	case d := <-h.delivery:
		return d
	case <-time.After(10 * time.Second):
		h.t.Fatal("no notification arrived")
		return delivery{}
	}
}

func (h *harness) noDelivery(wait time.Duration) {
	h.t.Helper()
	select {
	case d := <-h.delivery:
		h.t.Fatalf("unexpected notification: %s", d.body)
	case <-time.After(wait):
	}
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// order returns a fresh order number and a create request for it.
func (h *harness) order(method payment.Method, amount int64, subject string) *adapters.CreateRequest {
	id := payment.NewPaymentID()
	return &adapters.CreateRequest{
		OrderNo: payment.OrderNo(id), Method: method, Amount: amount, Currency: "CNY", Subject: subject,
		CreatedAt: h.clock.Now(), ExpiresAt: h.clock.Now().Add(15 * time.Minute),
	}
}

func (h *harness) query(req *adapters.CreateRequest) *adapters.OrderState {
	h.t.Helper()
	st, err := h.client.Query(h.ctx(), &adapters.QueryRequest{OrderNo: req.OrderNo, Amount: req.Amount, Currency: "CNY"})
	if err != nil {
		h.t.Fatalf("query: %v", err)
	}
	return st
}

// paid creates a QR order, pays it and consumes its notification.
func (h *harness) paid(amount int64) *adapters.CreateRequest {
	h.t.Helper()
	req := h.order(payment.MethodQR, amount, "Coffee")
	if _, err := h.client.Create(h.ctx(), req); err != nil {
		h.t.Fatalf("create: %v", err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		h.t.Fatalf("pay: %v", err)
	}
	if d := h.nextDelivery(); d.err != nil {
		h.t.Fatalf("payment notification: %v", d.err)
	}
	return req
}

type countingObserver struct {
	mu  sync.Mutex
	ops []string
}

func (o *countingObserver) ObserveCall(channel, op string, status int, d time.Duration, err error) {
	o.mu.Lock()
	o.ops = append(o.ops, op)
	o.mu.Unlock()
}

func (o *countingObserver) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ops)
}

// wantErr checks that err is an *adapters.Error of kind with code.
func wantErr(t *testing.T, err error, kind adapters.Kind, code string) *adapters.Error {
	t.Helper()
	e, ok := adapters.AsError(err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *adapters.Error", err, err)
	}
	if e.Kind != kind || (code != "" && e.Code != code) {
		t.Fatalf("error = %v; want kind %s code %q", e, kind, code)
	}
	if e.Channel != testChan {
		t.Fatalf("error channel = %q", e.Channel)
	}
	return e
}

// writeKeysDir writes a keys directory whose simulated Alipay key is key.
func writeKeysDir(t *testing.T, key *rsa.PrivateKey) string {
	t.Helper()
	dir := t.TempDir()
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, "alipay-platform.pem"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

var errTestFail = errors.New("test: answer fail")
