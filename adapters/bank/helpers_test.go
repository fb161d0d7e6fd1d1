package bank

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/sandbox/banksim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	keysDir      = "../../sandbox/keys"
	merchantFile = keysDir + "/bank-merchant.pem"
	rootFile     = keysDir + "/bank-root-ca.pem"
	caKeyFile    = keysDir + "/bank-root-ca.key.pem"
	middleFile   = keysDir + "/bank-middle-ca.pem"
	middleKey    = keysDir + "/bank-middle-ca.key.pem"
	merA         = "777290058110048"
	merB         = "777290058110097"
	certA        = "69026276696"
)

// start is the harness clock's initial time: 2026-11-29 15:04:05 Beijing.
var start = time.Date(2026, 11, 29, 7, 4, 5, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func merchantKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := config.ParseRSAPrivateKey(mustRead(t, merchantFile))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testRoots(t testing.TB) *x509.CertPool { return certPool(t, rootFile) }

// testMiddles is the pool of the committed middle certificate.
func testMiddles(t testing.TB) *x509.CertPool { return certPool(t, middleFile) }

func certPool(t testing.TB, file string) *x509.CertPool {
	t.Helper()
	p, err := ParseRoots(mustRead(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// received is what the gateway's callback endpoint saw: the raw body and
// the adapter's verdict.
type received struct {
	body []byte
	n    *adapters.Notification
	err  error
}

// harness is a bank simulator on loopback, an adapter pointed at it, and a
// callback endpoint (the adapter's NotifyURL) that runs ParseNotify/Ack.
type harness struct {
	clock  *clock
	sim    sandbox.Sim
	client *Client
	httpc  *http.Client // the payer's browser
	got    chan received

	mu         sync.Mutex
	afterParse func() // run by the callback endpoint between ParseNotify and its answer
}

func (h *harness) setAfterParse(f func()) {
	h.mu.Lock()
	h.afterParse = f
	h.mu.Unlock()
}

type harnessOptions struct {
	id     string
	merID  string
	key    *rsa.PrivateKey // the adapter's signing key; nil: the configured merchant key
	certID string          // the adapter's certId; "": certA
	wrap   func(sim sandbox.Sim) http.Handler
	clock  *clock
	// identity is the channel's cert_identity, for the simulator and the
	// adapter alike ("" the default).
	identity string
	// middle configures middle_cert_file: the simulator issues its
	// certificate from the middle CA and the adapter has the middle pool.
	middle bool
	// adapterMiddle overrides what the adapter gets as middles (nil: as middle says).
	adapterMiddle *x509.CertPool
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	if o.id == "" {
		o.id = "bank-a"
	}
	if o.merID == "" {
		o.merID = merA
	}
	if o.certID == "" {
		o.certID = certA
	}
	if o.key == nil {
		o.key = merchantKey(t)
	}
	if o.clock == nil {
		o.clock = &clock{t: start}
	}
	h := &harness{clock: o.clock, got: make(chan received, 32)}

	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	h.httpc = &http.Client{Transport: transport}

	callbacks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := h.client.ParseNotify(r.Context(), &adapters.Callback{
			Header: r.Header.Clone(), Body: body, ContentType: r.Header.Get("Content-Type"),
		})
		h.mu.Lock()
		hook := h.afterParse
		h.mu.Unlock()
		if hook != nil {
			hook()
		}
		ack := h.client.Ack(err)
		w.Header().Set("Content-Type", ack.ContentType)
		w.WriteHeader(ack.Status)
		w.Write(ack.Body)
		h.got <- received{body: body, n: n, err: err}
	}))
	t.Cleanup(callbacks.Close)

	notifier := sandbox.NewNotifier(o.id, []time.Duration{20 * time.Millisecond}, 1, nil, zap.NewNop())
	t.Cleanup(notifier.Stop)
	ch := config.Channel{
		ID: o.id, Type: "bank", BaseURL: "http://127.0.0.1:0",
		Credentials: config.Credentials{MerID: o.merID, CertID: certA, PrivateKeyFile: merchantFile, CertIdentity: o.identity},
	}
	middles := o.adapterMiddle
	if o.middle {
		ch.Credentials.MiddleCertFile = middleFile
		if middles == nil {
			middles = testMiddles(t)
		}
	}
	sim, err := banksim.New(ch, sandbox.Env{ChannelID: o.id, Notifier: notifier, Now: h.clock.Now,
		OrderCreated: func(string) {}, Logger: zap.NewNop()}, keysDir)
	if err != nil {
		t.Fatal(err)
	}
	h.sim = sim
	var handler http.Handler = sim
	if o.wrap != nil {
		handler = o.wrap(sim)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)

	h.client, err = New(Config{
		ID: o.id, BaseURL: srv.URL, MerID: o.merID, CertID: o.certID, PrivateKey: o.key,
		Roots: testRoots(t), Middles: middles, Identity: o.identity, NotifyURL: callbacks.URL + "/callbacks/" + o.id,
		Client: h.httpc, Now: h.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// next returns the next callback the gateway received.
func (h *harness) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-h.got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no notification reached the callback endpoint")
		return received{}
	}
}

// none checks that no callback arrives for a while.
func (h *harness) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-h.got:
		t.Fatalf("unexpected callback: %+v", r)
	case <-time.After(60 * time.Millisecond):
	}
}

// order returns a create request for a fresh payment created now.
func (h *harness) order(method payment.Method, amount int64) *adapters.CreateRequest {
	now := h.clock.Now()
	return &adapters.CreateRequest{
		OrderNo: payment.OrderNo(payment.NewPaymentID()), Method: method, Amount: amount, Currency: "CNY",
		Subject: "Coffee", CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute),
	}
}

func queryOf(req *adapters.CreateRequest) *adapters.QueryRequest {
	return &adapters.QueryRequest{OrderNo: req.OrderNo, CreatedAt: req.CreatedAt, Amount: req.Amount, Currency: req.Currency}
}

// paid creates a QR order of amount, pays it and returns it with its queryId.
func (h *harness) paid(t *testing.T, amount int64) (*adapters.CreateRequest, string) {
	t.Helper()
	req, qid, _ := h.paidWith(t, amount)
	return req, qid
}

// paidWith is paid that also returns the payment notification received.
func (h *harness) paidWith(t *testing.T, amount int64) (*adapters.CreateRequest, string, received) {
	t.Helper()
	req := h.order(payment.MethodQR, amount)
	if _, err := h.client.Create(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	r := h.next(t)
	if r.err != nil || r.n.Status != adapters.OrderPaid || r.n.OrderNo != req.OrderNo {
		t.Fatalf("payment notification: %+v", r)
	}
	return req, r.n.ChannelTradeNo, r
}

// wantErr checks that err is an *adapters.Error of kind and (if code is not
// empty) code.
func wantErr(t *testing.T, err error, kind adapters.Kind, code string) *adapters.Error {
	t.Helper()
	e, ok := adapters.AsError(err)
	if !ok {
		t.Fatalf("error %v (%T), want *adapters.Error %s %s", err, err, kind, code)
	}
	if e.Kind != kind || (code != "" && e.Code != code) {
		t.Fatalf("error %v: kind %s code %q, want %s %q", err, e.Kind, e.Code, kind, code)
	}
	return e
}

// --- hostile answers ---------------------------------------------------------

// issuer is a CA a test can issue certificates from.
type issuer struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
}

func genKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testCA is the committed sandbox CA that the adapter pins.
func testCA(t testing.TB) issuer { return loadIssuer(t, rootFile, caKeyFile) }

// middleCA is the committed sandbox middle CA, issued by testCA.
func middleCA(t testing.TB) issuer { return loadIssuer(t, middleFile, middleKey) }

func loadIssuer(t testing.TB, certFile, keyFile string) issuer {
	t.Helper()
	block, _ := pem.Decode(mustRead(t, certFile))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := config.ParseRSAPrivateKey(mustRead(t, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	return issuer{cert: cert, key: key}
}

// rogueCA is a CA the adapter does not pin.
func rogueCA(t testing.TB) issuer {
	t.Helper()
	key := genKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(666), Subject: pkix.Name{CommonName: "rogue bank root"},
		NotBefore: start.Add(-time.Hour), NotAfter: start.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return issuer{cert: cert, key: key}
}

// signer is a signing key with its certificate (PEM).
type signer struct {
	key     *rsa.PrivateKey
	certPEM string
}

// bankCN is the CN of a UnionPay production signing certificate.
const bankCN = "041@Z12@中国银联股份有限公司@00000001"

// issue makes a signing certificate of the bank (its CN names
// DefaultIdentity) valid from notBefore to notAfter.
func (ca issuer) issue(t testing.TB, notBefore, notAfter time.Time) signer {
	t.Helper()
	return ca.issueAs(t, bankCN, notBefore, notAfter)
}

// issueAs makes a signing certificate for the subject cn.
func (ca issuer) issueAs(t testing.TB, cn string, notBefore, notAfter time.Time) signer {
	t.Helper()
	key := genKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return signer{key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// resign replaces a message's certificate and signature with s's.
func (s signer) resign(t testing.TB, fields map[string]string) map[string]string {
	t.Helper()
	fields["signPubKeyCert"] = s.certPEM
	delete(fields, "signature")
	sig, err := sign(s.key, fields)
	if err != nil {
		t.Fatal(err)
	}
	fields["signature"] = sig
	return fields
}

// rewrite wraps the simulator: its form answers pass through edit.
func rewrite(t *testing.T, edit func(map[string]string) map[string]string) func(sandbox.Sim) http.Handler {
	return func(sim sandbox.Sim) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, r)
			ans, err := parseForm(rec.Body.Bytes())
			if err != nil {
				t.Errorf("simulator answer is not a form: %v", err)
				return
			}
			w.Write([]byte(encodeForm(edit(ans))))
		})
	}
}

// fixed wraps nothing: every request gets status and body.
func fixed(status int, body string) func(sandbox.Sim) http.Handler {
	return func(sandbox.Sim) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(status)
			io.WriteString(w, body)
		})
	}
}

// hang reads the request, reports its arrival, and answers only when the
// client has gone away.
func hang(arrived chan<- struct{}) func(sandbox.Sim) http.Handler {
	return func(sandbox.Sim) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			arrived <- struct{}{}
			<-r.Context().Done()
		})
	}
}

// expiring is a context whose deadline passes when expire is called: a
// per-call timeout that fires after the request was sent, without a test
// depending on how fast the machine is.
type expiring struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newExpiring() *expiring {
	return &expiring{Context: context.Background(), done: make(chan struct{})}
}

func (c *expiring) expire()               { c.once.Do(func() { close(c.done) }) }
func (c *expiring) Done() <-chan struct{} { return c.done }
func (c *expiring) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// busy is the error_rate fault: the simulator's system-busy answer.
func busy(sim sandbox.Sim) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		sim.Unavailable(w)
	})
}

// postForm posts a form action as the payer's browser does.
func (h *harness) postForm(t *testing.T, a *payment.Action) (int, string) {
	t.Helper()
	var body bytes.Buffer
	body.WriteString(encodeForm(a.Fields))
	resp, err := h.httpc.Post(a.URL, "application/x-www-form-urlencoded", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
