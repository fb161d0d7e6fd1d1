package banksim

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/sandbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	keysDir   = "../keys"
	testMerID = "777290058110048"
	testCert  = "69026276696"
)

// start is the fixture clock's initial time: 2026-11-29 15:04:05 Beijing.
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

// fixture is a simulator on a loopback listener, a merchant that signs
// requests with the simulator's own codec, and a backUrl that records the
// back notifications it receives.
type fixture struct {
	clock    *clock
	sim      *Sim
	url      string // the simulator's base URL
	merchant *rsa.PrivateKey
	roots    *x509.CertPool
	backURL  string
	created  chan string
	notes    chan map[string]string
	// ackStatus is the HTTP status the backUrl answers (200 by default).
	ackStatus atomic.Int32
	attempts  atomic.Int32
}

func readKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(keysDir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := config.ParseRSAPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testChannel(t testing.TB, baseURL string) config.Channel {
	t.Helper()
	b, err := os.ReadFile(keysDir + "/bank-merchant.pem")
	if err != nil {
		t.Fatal(err)
	}
	return config.Channel{
		ID: "bank-a", Type: "bank", BaseURL: baseURL,
		Credentials: config.Credentials{MerID: testMerID, CertID: testCert, PrivateKey: config.Secret(b)},
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		clock: &clock{t: start}, merchant: readKey(t, "bank-merchant.pem"),
		created: make(chan string, 16), notes: make(chan map[string]string, 16),
	}
	f.ackStatus.Store(http.StatusOK)
	caPEM, err := os.ReadFile(keysDir + "/bank-root-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	f.roots = x509.NewCertPool()
	f.roots.AppendCertsFromPEM(caPEM)

	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.attempts.Add(1)
		body, _ := io.ReadAll(r.Body)
		status := int(f.ackStatus.Load())
		if status == http.StatusOK {
			m, err := formValues(body)
			if err != nil {
				t.Errorf("back notification is not a form: %v", err)
			}
			f.notes <- m
		}
		w.WriteHeader(status)
		io.WriteString(w, "whatever")
	}))
	t.Cleanup(back.Close)
	f.backURL = back.URL + "/callbacks/bank-a"

	notifier := sandbox.NewNotifier("bank-a", []time.Duration{5 * time.Millisecond, 5 * time.Millisecond}, 1, nil, zap.NewNop())
	t.Cleanup(notifier.Stop)
	env := sandbox.Env{
		ChannelID: "bank-a", Notifier: notifier, Now: f.clock.Now,
		OrderCreated: func(no string) { f.created <- no }, Logger: zap.NewNop(),
	}
	sim, err := New(testChannel(t, "http://127.0.0.1:0"), env, keysDir)
	if err != nil {
		t.Fatal(err)
	}
	f.sim = sim.(*Sim)
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// signed signs fields as the merchant and returns them.
func (f *fixture) signed(fields map[string]string) map[string]string {
	if err := signFields(f.merchant, fields); err != nil {
		panic(err) // the committed test key signs
	}
	return fields
}

// post posts raw form fields to path and returns the HTTP answer.
func (f *fixture) post(t *testing.T, path string, fields map[string]string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(f.url+path, "application/x-www-form-urlencoded", strings.NewReader(encode(fields)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// call posts fields to a server endpoint and returns the verified answer.
func (f *fixture) call(t *testing.T, path string, fields map[string]string) map[string]string {
	t.Helper()
	status, body := f.post(t, path, fields)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	ans, err := formValues(body)
	if err != nil {
		t.Fatalf("answer is not a form: %v", err)
	}
	f.verifyBank(t, ans)
	return ans
}

// verifyBank checks a message of the simulator the way a merchant must: the
// certificate chains to the test CA now, and the signature verifies.
func (f *fixture) verifyBank(t *testing.T, m map[string]string) {
	t.Helper()
	block, _ := pem.Decode([]byte(m["signPubKeyCert"]))
	if block == nil {
		t.Fatal("message has no signPubKeyCert")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: f.roots, CurrentTime: f.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("signPubKeyCert does not chain to the test CA: %v", err)
	}
	if !verifyFields(cert.PublicKey.(*rsa.PublicKey), m) {
		t.Fatal("message signature does not verify")
	}
}

func (f *fixture) note(t *testing.T) map[string]string {
	t.Helper()
	select {
	case n := <-f.notes:
		f.verifyBank(t, n)
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no back notification")
		return nil
	}
}

func base(txnType, subType, bizType string) map[string]string {
	return map[string]string{
		"version": "5.1.0", "encoding": "utf-8", "signMethod": "01", "txnType": txnType,
		"txnSubType": subType, "bizType": bizType, "accessType": "0", "merId": testMerID, "certId": testCert,
	}
}

func bj(t time.Time) string { return t.In(beijing).Format(acpLayout) }

// consume is an unsigned front consume of amount fen, created now, payable 15 minutes.
func (f *fixture) consume(orderID string, amount string) map[string]string {
	m := base("01", "01", "000201")
	m["channelType"], m["currencyCode"] = "07", "156"
	m["orderId"], m["txnAmt"] = orderID, amount
	m["txnTime"] = bj(f.clock.Now())
	m["payTimeout"] = bj(f.clock.Now().Add(15 * time.Minute))
	m["backUrl"], m["frontUrl"] = f.backURL, "http://127.0.0.1/"
	return m
}

func (f *fixture) qrApply(orderID string, amount string) map[string]string {
	m := base("01", "07", "000000")
	m["channelType"], m["currencyCode"] = "08", "156"
	m["orderId"], m["txnAmt"] = orderID, amount
	m["txnTime"] = bj(f.clock.Now())
	m["payTimeout"] = bj(f.clock.Now().Add(15 * time.Minute))
	m["backUrl"] = f.backURL
	return m
}

func (f *fixture) refundReq(refundNo, origQryID, amount string) map[string]string {
	m := base("04", "00", "000201")
	m["channelType"], m["currencyCode"] = "07", "156"
	m["orderId"], m["origQryId"], m["txnAmt"] = refundNo, origQryID, amount
	m["txnTime"] = bj(f.clock.Now())
	m["backUrl"] = f.backURL
	return m
}

func queryReq(orderID, txnTime string) map[string]string {
	m := base("00", "00", "000000")
	m["orderId"], m["txnTime"] = orderID, txnTime
	return m
}

// paidQR creates a QR order of amount fen, pays it and returns its queryId.
func (f *fixture) paidQR(t *testing.T, orderID, amount string) string {
	t.Helper()
	ans := f.call(t, pathBack, f.signed(f.qrApply(orderID, amount)))
	if ans["respCode"] != "00" {
		t.Fatalf("qr apply: %s %s", ans["respCode"], ans["respMsg"])
	}
	<-f.created
	if err := f.sim.Pay(orderID); err != nil {
		t.Fatal(err)
	}
	n := f.note(t)
	return n["queryId"]
}
