package wechatpay_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/adapters/wechatpay"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/sandbox/wechatsim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The committed sandbox test keys (PUBLIC, TEST ONLY).
const (
	keysDir        = "../../sandbox/keys"
	mchID          = "1900000001"
	appID          = "wxd678efh567hg6787"
	merchantSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	platformSerial = "PUB_KEY_ID_0119000000012025SANDBOX000000000001"
	apiv3Key       = "sandbox-apiv3-key-0123456789abcd"
)

// clock is a frozen, movable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	otherKeyOnce sync.Once
	otherKey     *rsa.PrivateKey
)

// wrongKey is an RSA key that neither side has registered.
func wrongKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	otherKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		otherKey = k
	})
	return otherKey
}

func loadPrivateKey(t *testing.T, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(keysDir, name))
	if err != nil {
		t.Fatal(err)
	}
	k, err := config.ParseRSAPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func loadPlatformPublic(t *testing.T) *rsa.PublicKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(keysDir, "wechat-platform.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := config.ParseRSAPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keysDirWithPlatform writes a keys directory whose platform key is k.
func keysDirWithPlatform(t *testing.T, k *rsa.PrivateKey) string {
	t.Helper()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, wechatsim.PlatformKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// simChannel is the channel config the simulator is built from.
func simChannel(baseURL string) config.Channel {
	return config.Channel{
		ID: "wechat-test", Type: "wechat", BaseURL: baseURL,
		Credentials: config.Credentials{
			MchID: mchID, AppID: appID, SerialNo: merchantSerial, APIv3Key: apiv3Key,
			PlatformPublicKeyFile: filepath.Join(keysDir, "wechat-platform.pub.pem"), PlatformSerial: platformSerial,
			PrivateKeyFile: filepath.Join(keysDir, "wechat-merchant.pem"),
		},
	}
}

// received is one notification as the gateway's callback endpoint saw it.
type received struct {
	cb  *adapters.Callback
	n   *adapters.Notification
	err error
}

// harness is a simulator on a loopback listener, an adapter pointed at it,
// and a callback receiver that parses notifications with the adapter.
type harness struct {
	t         *testing.T
	sim       sandbox.Sim
	srv       *httptest.Server
	client    *wechatpay.Client
	cfg       wechatpay.Config
	simClock  *clock
	cliClock  *clock
	notifier  *sandbox.Notifier
	callbacks chan received
	requests  chan *http.Request // every request that reached the channel (clones)
}

type options struct {
	prefix      string
	simKeysDir  string
	wrap        func(sim sandbox.Sim) http.Handler
	mutate      func(*wechatpay.Config)
	simOffset   time.Duration // sim clock minus adapter clock
	schedule    []time.Duration
	simMchID    string
	noRequestCh bool
}

func newHarness(t *testing.T, opt options) *harness {
	t.Helper()
	base := time.Now().Truncate(time.Second)
	h := &harness{
		t: t, simClock: newClock(base.Add(opt.simOffset)), cliClock: newClock(base),
		callbacks: make(chan received, 16), requests: make(chan *http.Request, 64),
	}
	// The gateway's callback endpoint, parsing with whatever client h has then.
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cb := &adapters.Callback{Header: r.Header.Clone(), Body: body, ContentType: r.Header.Get("Content-Type")}
		n, err := h.client.ParseNotify(r.Context(), cb)
		ack := h.client.Ack(err)
		if ack.ContentType != "" {
			w.Header().Set("Content-Type", ack.ContentType)
		}
		w.WriteHeader(ack.Status)
		w.Write(ack.Body)
		h.callbacks <- received{cb: cb, n: n, err: err}
	}))
	t.Cleanup(recv.Close)

	schedule := opt.schedule
	if schedule == nil {
		schedule = []time.Duration{time.Millisecond, time.Millisecond}
	}
	h.notifier = sandbox.NewNotifier("wechat-test", schedule, 1, nil, zap.NewNop())
	t.Cleanup(h.notifier.Stop)

	ch := simChannel("http://127.0.0.1:0" + opt.prefix)
	if opt.simMchID != "" {
		ch.Credentials.MchID = opt.simMchID
	}
	kd := keysDir
	if opt.simKeysDir != "" {
		kd = opt.simKeysDir
	}
	sim, err := wechatsim.New(ch, sandbox.Env{ChannelID: ch.ID, Notifier: h.notifier, Now: h.simClock.Now, Logger: zap.NewNop()}, kd)
	if err != nil {
		t.Fatal(err)
	}
	h.sim = sim
	var handler http.Handler = sim
	if opt.wrap != nil {
		handler = opt.wrap(sim)
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !opt.noRequestCh {
			select {
			case h.requests <- r.Clone(context.Background()):
			default:
			}
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)

	h.cfg = wechatpay.Config{
		ID: "wechat-test", BaseURL: h.srv.URL + opt.prefix, MchID: mchID, AppID: appID, SerialNo: merchantSerial,
		PrivateKey: loadPrivateKey(t, "wechat-merchant.pem"), APIv3Key: []byte(apiv3Key),
		PlatformSerial: platformSerial, PlatformKey: loadPlatformPublic(t),
		NotifyURL: recv.URL + "/callbacks/wechat-test", Client: h.srv.Client(), Now: h.cliClock.Now,
	}
	if opt.mutate != nil {
		opt.mutate(&h.cfg)
	}
	h.client, err = wechatpay.New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// other returns a second adapter on the same simulator with cfg changed.
func (h *harness) other(mutate func(*wechatpay.Config)) *wechatpay.Client {
	h.t.Helper()
	cfg := h.cfg
	mutate(&cfg)
	c, err := wechatpay.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// order returns a fresh create request.
func (h *harness) order(method payment.Method, amount int64) *adapters.CreateRequest {
	return &adapters.CreateRequest{
		OrderNo: payment.OrderNo(payment.NewPaymentID()), Method: method, Amount: amount, Currency: "CNY",
		Subject: "Coffee 咖啡", CreatedAt: h.cliClock.Now(), ExpiresAt: h.cliClock.Now().Add(15 * time.Minute),
		PayerOpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
	}
}

// paidOrder creates a Native order and pays it, draining its notification.
func (h *harness) paidOrder(amount int64) *adapters.CreateRequest {
	h.t.Helper()
	req := h.order(payment.MethodQR, amount)
	if _, err := h.client.Create(context.Background(), req); err != nil {
		h.t.Fatal(err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		h.t.Fatal(err)
	}
	if r := h.nextCallback(); r.err != nil {
		h.t.Fatalf("payment notification: %v", r.err)
	}
	return req
}

func (h *harness) nextCallback() received {
	h.t.Helper()
	select {
	case r := <-h.callbacks:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no notification arrived")
		return received{}
	}
}

// wantKind fails unless err is an *adapters.Error of kind (and code, if not empty).
func wantKind(t *testing.T, err error, kind adapters.Kind, code string) *adapters.Error {
	t.Helper()
	e, ok := adapters.AsError(err)
	if !ok {
		t.Fatalf("error = %v (%T), want *adapters.Error of kind %v", err, err, kind)
	}
	if e.Kind != kind || (code != "" && e.Code != code) {
		t.Fatalf("error = %v (kind %v code %q), want kind %v code %q", err, e.Kind, e.Code, kind, code)
	}
	if e.Channel != "wechat-test" || e.Op == "" {
		t.Fatalf("error %v lacks channel or op", err)
	}
	return e
}

// signAsPlatform signs an answer as WeChat does, with the sandbox platform key.
// It runs in handlers, so it panics instead of failing the test.
func signAsPlatform(key *rsa.PrivateKey, h http.Header, body []byte) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := "n" + ts
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Signature", base64.StdEncoding.EncodeToString(sig))
	h.Set("Wechatpay-Serial", platformSerial)
}
