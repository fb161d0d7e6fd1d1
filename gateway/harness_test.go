package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/adapters/wechatpay"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/gateway/client"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/sandbox/wechatsim"
	"github.com/paygate/paygate/store"
)

// Test merchants: one per key algorithm.
const (
	hmacSecret    = "test-hmac-secret-0123456789abcdef0123"
	webhookSecret = "test-webhook-secret-0123456789"
)

type merchantKeys struct {
	rsaPriv *rsa.PrivateKey
	edPriv  ed25519.PrivateKey
	rsaPEM  string
	edPEM   string
}

var (
	keysOnce sync.Once
	keys     merchantKeys
)

func testKeys(t testing.TB) merchantKeys {
	keysOnce.Do(func() {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		epub, epriv, _ := ed25519.GenerateKey(rand.Reader)
		rder, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
		eder, _ := x509.MarshalPKIXPublicKey(epub)
		keys = merchantKeys{
			rsaPriv: rk, edPriv: epriv,
			rsaPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rder})),
			edPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: eder})),
		}
	})
	return keys
}

func indent(s, pad string) string {
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// testConfig is a sandbox-mode config with three merchants (one per key
// algorithm) and one WeChat channel at simURL.
func testConfig(t testing.TB, simURL string) *config.Config {
	k := testKeys(t)
	y := fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", admin_token: test-admin-token, public_url: "http://127.0.0.1:1"}
sandbox: {enabled: true, keys_dir: sandbox/keys, control_listen: ""}
security: {timestamp_window: 300s}
merchants:
  - id: m-hmac
    key: {algorithm: hmac-sha256, secret: %q}
    webhook_secret: %q
    notify_allow_networks: ["127.0.0.0/8"]
    methods: [qr, wechat_native, wechat_jsapi]
    limits: {max_amount: 5000000, requests_per_second: 10000}
  - id: m-rsa
    key:
      algorithm: rsa-sha256
      public_key: |
%s
    webhook_secret: %q
    methods: [qr, wechat_native]
    limits: {max_amount: 100000, requests_per_second: 10000}
  - id: m-ed
    key:
      algorithm: ed25519
      public_key: |
%s
    webhook_secret: %q
    methods: [qr]
    limits: {max_amount: 100000, requests_per_second: 10000}
channels:
  - id: wechat-main
    type: wechat
    base_url: %q
    methods: [qr, wechat_native, wechat_jsapi]
    timeout: 2s
    credentials:
      mchid: "1900000001"
      appid: wxd678efh567hg6787
      serial_no: 5157F09EFDC096DE15EBE81A47057A7232F1B8E1
      private_key_file: sandbox/keys/wechat-merchant.pem
      apiv3_key: sandboxAPIv3key0123456789abcdef0
      platform_public_key_file: sandbox/keys/wechat-platform.pub.pem
      platform_serial: PUB_KEY_ID_0114232134912410000000000000
routing:
  failover: {max_attempts: 2}
`, hmacSecret, webhookSecret, indent(k.rsaPEM, "        "), webhookSecret, indent(k.edPEM, "        "), webhookSecret, simURL)
	cfg, err := config.Parse([]byte(y), "..")
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

// sim is a WeChat Pay simulator behind an httptest server that counts the
// orders created at it.
type sim struct {
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	sim     sandbox.Sim
	creates atomic.Int64
	mu      sync.Mutex
	orders  map[string]int
}

func newSim(t testing.TB) *sim {
	s := &sim{orders: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v3/pay/transactions/") && !strings.HasSuffix(r.URL.Path, "/close") {
			s.creates.Add(1)
		}
		(*s.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sim) start(t testing.TB, cfg *config.Config) {
	n := sandbox.NewNotifier("wechat-main", []time.Duration{10 * time.Millisecond}, 1, nil, zap.NewNop())
	t.Cleanup(n.Stop)
	env := sandbox.Env{ChannelID: "wechat-main", Notifier: n, Now: time.Now, OrderCreated: func(string) {}, Logger: zap.NewNop()}
	sm, err := wechatsim.New(cfg.Channels[0], env, cfg.Sandbox.KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	s.sim = sm
	var h http.Handler = sm
	s.handler.Store(&h)
}

// instance is one running gateway edge.
type instance struct {
	srv    *gateway.Server
	router *routing.Router
	st     *store.Store
	url    string
	cfg    *config.Config
}

func startInstance(t testing.TB, cfg *config.Config, redisAddr string, opts ...gateway.Option) *instance {
	return startLogged(t, cfg, redisAddr, zap.NewNop(), opts...)
}

// startLogged is startInstance with the edge logging to logger.
func startLogged(t testing.TB, cfg *config.Config, redisAddr string, logger *zap.Logger, opts ...gateway.Option) *instance {
	rc := cfg.Store.Redis
	if redisAddr != "" {
		rc.Addrs = []string{redisAddr}
		rc.DialTimeout, rc.ReadTimeout, rc.WriteTimeout = config.Duration(200*time.Millisecond), config.Duration(300*time.Millisecond), config.Duration(300*time.Millisecond)
	}
	st, err := store.Open(rc, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	build := func(ch config.Channel) (adapters.Channel, error) {
		c, err := wechatpay.FromConfig(ch, cfg.Server.PublicURL+"/callbacks/"+ch.ID, nil)
		if err != nil || wrapChannel == nil {
			return c, err
		}
		return wrapChannel(c), nil
	}
	router, err := routing.New(cfg, build, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, st, router, logger, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return &instance{srv: srv, router: router, st: st, url: "http://" + ln.Addr().String(), cfg: cfg}
}

// signer signs merchant requests (CONTRACT §2) with the client package.
type signer struct{ c *client.Signer }

func hmacSigner(merchant, secret string) signer { return signer{client.HMAC(merchant, []byte(secret))} }

func rsaSigner(merchant string, k *rsa.PrivateKey) signer { return signer{client.RSA(merchant, k)} }

func edSigner(merchant string, k ed25519.PrivateKey) signer {
	return signer{client.Ed25519(merchant, k)}
}

var nonceSeq atomic.Int64

func newNonce() string {
	return fmt.Sprintf("nonce-%d-%d-abcdefgh", time.Now().UnixNano(), nonceSeq.Add(1))
}

type reqOpts struct {
	ts        int64
	nonce     string
	signURI   string              // sign this URI instead of the one sent
	signBody  []byte              // sign this body instead of the one sent
	omit      string              // header to leave out
	signature string              // send this signature instead
	otherKey  bool                // sign correctly, but with another key of the same algorithm
	extra     map[string][]string // more header lines, names sent exactly as given
	client    *http.Client        // nil: http.DefaultClient
}

type response struct {
	status int
	header http.Header
	body   []byte
	tls    *tls.ConnectionState
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
	return m
}

func (r response) errCode(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	if e == nil {
		return ""
	}
	return e["code"].(string)
}

func (s signer) do(t testing.TB, base, method, uri string, body []byte, o reqOpts) response {
	t.Helper()
	if o.ts == 0 {
		o.ts = time.Now().Unix()
	}
	if o.nonce == "" {
		o.nonce = newNonce()
	}
	signURI, signBody := uri, body
	if o.signURI != "" {
		signURI = o.signURI
	}
	if o.signBody != nil {
		signBody = o.signBody
	}
	ts := strconv.FormatInt(o.ts, 10)
	c := s.c
	if o.otherKey {
		c = otherKeySigner(t, s.c.Merchant)
	}
	sig, err := c.Sign(method, signURI, o.ts, o.nonce, signBody)
	if err != nil {
		t.Fatal(err)
	}
	if o.signature != "" {
		sig = o.signature
	}
	req, err := http.NewRequest(method, base+uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"X-Paygate-Merchant": s.c.Merchant, "X-Paygate-Timestamp": ts, "X-Paygate-Nonce": o.nonce, "X-Paygate-Signature": sig}
	for k, v := range hdr {
		if k != o.omit {
			req.Header.Set(k, v)
		}
	}
	for k, v := range o.extra {
		req.Header[k] = append(req.Header[k], v...)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := o.client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, tls: resp.TLS}
}

func paymentBody(otn string, amount int64, method string) []byte {
	return []byte(fmt.Sprintf(`{"out_trade_no":%q,"amount":%d,"currency":"CNY","method":%q,"subject":"Coffee","notify_url":"http://127.0.0.1:1/notify","payer":{"openid":"o-abc"}}`, otn, amount, method))
}

// otherKeySigner signs for merchant with a key of its algorithm that is not
// its configured one: a well-formed, genuine signature by the wrong key.
func otherKeySigner(t testing.TB, merchant string) *client.Signer {
	switch merchant {
	case "m-rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return client.RSA(merchant, k)
	case "m-ed":
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		return client.Ed25519(merchant, k)
	}
	return client.HMAC(merchant, []byte("another-hmac-secret-0123456789abcdef"))
}

// wrapChannel, when set by a test before startInstance, wraps every adapter
// the instance builds (to make a real channel answer in a way its simulator
// never does). Tests that set it must not run in parallel.
var wrapChannel func(*wechatpay.Client) adapters.Channel

// reconciler is a reconciler of the instance's engine and merchants.
func (in *instance) reconciler(interval, lease time.Duration) *engine.Reconciler {
	return engine.NewReconciler(in.srv.Engine(), in.srv.MerchantIDs, interval, lease)
}
