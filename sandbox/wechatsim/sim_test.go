package wechatsim

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
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

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/sandbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The committed sandbox test keys (PUBLIC, TEST ONLY).
const (
	keysDir        = "../keys"
	mchID          = "1900000001"
	appID          = "wxd678efh567hg6787"
	merchantSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	platformSerial = "PUB_KEY_ID_0119000000012025SANDBOX000000000001"
	apiv3Key       = "sandbox-apiv3-key-0123456789abcd"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func channel() config.Channel {
	return config.Channel{
		ID: "wechat-test", Type: "wechat", BaseURL: "http://127.0.0.1:0",
		Credentials: config.Credentials{
			MchID: mchID, AppID: appID, SerialNo: merchantSerial, APIv3Key: apiv3Key, PlatformSerial: platformSerial,
			PrivateKeyFile: filepath.Join(keysDir, "wechat-merchant.pem"),
		},
	}
}

func readPrivate(t testing.TB, name string) *rsa.PrivateKey {
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

func readPlatformPublic(t testing.TB) *rsa.PublicKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(keysDir, "wechat-platform.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}

// fixture is a simulator behind a loopback listener and a hand-rolled
// merchant client that signs with its own code (neither the simulator's nor
// the adapter's).
type fixture struct {
	t        *testing.T
	sim      *Sim
	srv      *httptest.Server
	clock    *clock
	key      *rsa.PrivateKey
	platform *rsa.PublicKey
	created  atomic.Int32
}

func newFixture(t *testing.T, notifier *sandbox.Notifier) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &clock{t: time.Now().Truncate(time.Second)}, key: readPrivate(t, "wechat-merchant.pem"), platform: readPlatformPublic(t)}
	sim, err := newSim(channel(), sandbox.Env{
		ChannelID: "wechat-test", Notifier: notifier, Now: f.clock.Now, Logger: zap.NewNop(),
		OrderCreated: func(string) { f.created.Add(1) },
	}, keysDir)
	if err != nil {
		t.Fatal(err)
	}
	f.sim = sim
	f.srv = httptest.NewServer(sim)
	t.Cleanup(f.srv.Close)
	return f
}

// call is one request; edit may change the Authorization before it is sent.
type call struct {
	method, uri string
	body        []byte
	key         *rsa.PrivateKey // nil: the merchant key
	ts          int64           // 0: the simulator's clock
	edit        func(a *authorization)
	signURI     string // "": uri
	noAuth      bool
}

type answer struct {
	status int
	header http.Header
	body   []byte
	code   string
	raw    map[string]any
}

func (f *fixture) do(c call) answer {
	f.t.Helper()
	req, err := http.NewRequest(c.method, f.srv.URL+c.uri, bytes.NewReader(c.body))
	if err != nil {
		f.t.Fatal(err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if !c.noAuth {
		key := c.key
		if key == nil {
			key = f.key
		}
		ts := c.ts
		if ts == 0 {
			ts = f.clock.Now().Unix()
		}
		signURI := c.signURI
		if signURI == "" {
			signURI = c.uri
		}
		a := authorization{MchID: mchID, Nonce: "testnonce" + strconv.Itoa(int(ts%1000)), Timestamp: strconv.FormatInt(ts, 10), SerialNo: merchantSerial}
		msg := c.method + "\n" + signURI + "\n" + a.Timestamp + "\n" + a.Nonce + "\n" + string(c.body) + "\n"
		sum := sha256.Sum256([]byte(msg))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			f.t.Fatal(err)
		}
		a.Signature = base64.StdEncoding.EncodeToString(sig)
		if c.edit != nil {
			c.edit(&a)
		}
		req.Header.Set("Authorization", a.String())
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	f.verifyAnswer(resp.Header, body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &a.raw); err != nil {
			f.t.Fatalf("answer is not JSON: %s", body)
		}
		a.code, _ = a.raw["code"].(string)
	}
	return a
}

// verifyAnswer checks the platform signature every answer must carry.
func (f *fixture) verifyAnswer(h http.Header, body []byte) {
	f.t.Helper()
	if h.Get("Wechatpay-Serial") != platformSerial {
		f.t.Fatalf("answer serial %q", h.Get("Wechatpay-Serial"))
	}
	sig, err := base64.StdEncoding.DecodeString(h.Get("Wechatpay-Signature"))
	if err != nil {
		f.t.Fatalf("answer signature: %v", err)
	}
	sum := sha256.Sum256([]byte(h.Get("Wechatpay-Timestamp") + "\n" + h.Get("Wechatpay-Nonce") + "\n" + string(body) + "\n"))
	if err := rsa.VerifyPKCS1v15(f.platform, crypto.SHA256, sum[:], sig); err != nil {
		f.t.Fatalf("answer signature does not verify: %v", err)
	}
	if ts := h.Get("Wechatpay-Timestamp"); ts != strconv.FormatInt(f.clock.Now().Unix(), 10) {
		f.t.Fatalf("answer timestamp %s, simulator clock %d", ts, f.clock.Now().Unix())
	}
}

func orderBody(mod func(m map[string]any)) []byte {
	m := map[string]any{
		"appid": appID, "mchid": mchID, "description": "Coffee", "out_trade_no": "AbCdEfGhIjKlMnOpQrStUvWx",
		"notify_url": "https://gw.example/callbacks/wechat-test", "amount": map[string]any{"total": 100, "currency": "CNY"},
		"payer": map[string]any{"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
	}
	if mod != nil {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		call   func(f *fixture) call
		status int
	}{
		{"genuine", func(f *fixture) call {
			return call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil)}
		}, 200},
		{"other key", func(f *fixture) call {
			return call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil), key: other}
		}, 401},
		{"unknown serial_no", func(f *fixture) call {
			return call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil), edit: func(a *authorization) { a.SerialNo = "00" }}
		}, 401},
		{"other mchid in Authorization", func(f *fixture) call {
			return call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil), edit: func(a *authorization) { a.MchID = "1900000002" }}
		}, 401},
		{"timestamp 301s old", func(f *fixture) call {
			return call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil), ts: f.clock.Now().Unix() - 301}
		}, 401},
		{"timestamp 301s ahead", func(f *fixture) call {
			return call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil), ts: f.clock.Now().Unix() + 301}
		}, 401},
		{"timestamp 300s old is accepted", func(f *fixture) call {
			return call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil), ts: f.clock.Now().Unix() - 300}
		}, 200},
		{"signed without the query", func(f *fixture) call {
			return call{method: "GET", uri: "/v3/pay/transactions/out-trade-no/AbCdEf?mchid=" + mchID, signURI: "/v3/pay/transactions/out-trade-no/AbCdEf"}
		}, 401},
		{"signed another path", func(f *fixture) call {
			return call{method: "GET", uri: "/v3/refund/domestic/refunds/R1", edit: func(a *authorization) {}, signURI: "/v3/refund/domestic/refunds/R2"}
		}, 401},
		{"signature not base64", func(f *fixture) call {
			return call{method: "GET", uri: "/v3/refund/domestic/refunds/R1", edit: func(a *authorization) { a.Signature = "%%%" }}
		}, 401},
		{"no Authorization", func(f *fixture) call {
			return call{method: "GET", uri: "/v3/refund/domestic/refunds/R1", noAuth: true}
		}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			a := f.do(tt.call(f))
			if a.status != tt.status {
				t.Fatalf("status %d (%s), want %d", a.status, a.body, tt.status)
			}
			if tt.status != 401 {
				return
			}
			detail, _ := a.raw["detail"].(map[string]any)
			info, _ := detail["sign_information"].(map[string]any)
			if a.code != "SIGN_ERROR" || detail["location"] != "authorization" || info["url"] == nil {
				t.Errorf("401 body %s lacks WeChat's SIGN_ERROR shape", a.body)
			}
			f.sim.mu.Lock()
			n := len(f.sim.orders)
			f.sim.mu.Unlock()
			if f.created.Load() != 0 || n != 0 {
				t.Error("an unauthenticated request created an order")
			}
		})
	}
}

func TestOrderValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		path  string
		mod   func(m map[string]any)
		code  string
		field string
	}{
		{"appid of another merchant", "native", func(m map[string]any) { m["appid"] = "wx0000000000000000" }, "APPID_MCHID_NOT_MATCH", ""},
		{"mchid of another merchant", "native", func(m map[string]any) { m["mchid"] = "1900000002" }, "APPID_MCHID_NOT_MATCH", ""},
		{"no appid", "native", func(m map[string]any) { delete(m, "appid") }, "PARAM_ERROR", "appid"},
		{"empty description", "native", func(m map[string]any) { m["description"] = "" }, "PARAM_ERROR", "description"},
		{"description of 128 characters", "native", func(m map[string]any) { m["description"] = strings.Repeat("咖", 128) }, "PARAM_ERROR", "description"},
		{"out_trade_no of 5", "native", func(m map[string]any) { m["out_trade_no"] = "abcde" }, "PARAM_ERROR", "out_trade_no"},
		{"out_trade_no of 33", "native", func(m map[string]any) { m["out_trade_no"] = strings.Repeat("a", 33) }, "PARAM_ERROR", "out_trade_no"},
		{"out_trade_no with a dot", "native", func(m map[string]any) { m["out_trade_no"] = "abc.def" }, "PARAM_ERROR", "out_trade_no"},
		{"zero total", "native", func(m map[string]any) { m["amount"] = map[string]any{"total": 0} }, "PARAM_ERROR", "amount.total"},
		{"fractional total", "native", func(m map[string]any) { m["amount"] = map[string]any{"total": 1.5} }, "PARAM_ERROR", "body"},
		{"no amount", "native", func(m map[string]any) { delete(m, "amount") }, "PARAM_ERROR", "amount.total"},
		{"USD", "native", func(m map[string]any) { m["amount"] = map[string]any{"total": 1, "currency": "USD"} }, "PARAM_ERROR", "amount.currency"},
		{"relative notify_url", "native", func(m map[string]any) { m["notify_url"] = "/callbacks/x" }, "PARAM_ERROR", "notify_url"},
		{"notify_url with a query", "native", func(m map[string]any) { m["notify_url"] = "https://gw.example/cb?x=1" }, "PARAM_ERROR", "notify_url"},
		{"ftp notify_url", "native", func(m map[string]any) { m["notify_url"] = "ftp://gw.example/cb" }, "PARAM_ERROR", "notify_url"},
		{"notify_url of 256", "native", func(m map[string]any) { m["notify_url"] = "https://gw.example/" + strings.Repeat("a", 237) }, "PARAM_ERROR", "notify_url"},
		{"time_expire not RFC 3339", "native", func(m map[string]any) { m["time_expire"] = "2025-01-01 10:00:00" }, "PARAM_ERROR", "time_expire"},
		{"time_expire passed", "native", func(m map[string]any) {
			m["time_expire"] = time.Now().Add(-time.Hour).Format(time.RFC3339)
		}, "PARAM_ERROR", "time_expire"},
		{"jsapi without payer", "jsapi", func(m map[string]any) { delete(m, "payer") }, "PARAM_ERROR", "payer.openid"},
		{"jsapi with empty openid", "jsapi", func(m map[string]any) { m["payer"] = map[string]any{"openid": ""} }, "PARAM_ERROR", "payer.openid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			a := f.do(call{method: "POST", uri: "/v3/pay/transactions/" + tt.path, body: orderBody(tt.mod)})
			if a.status != 400 || a.code != tt.code {
				t.Fatalf("answer %d %s, want 400 %s", a.status, a.body, tt.code)
			}
			if tt.field != "" {
				if d, _ := a.raw["detail"].(map[string]any); d["field"] != tt.field {
					t.Errorf("detail %v, want field %q", a.raw["detail"], tt.field)
				}
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		if a := f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: []byte("{")}); a.status != 400 || a.code != "PARAM_ERROR" {
			t.Fatalf("answer %d %s", a.status, a.body)
		}
	})
	t.Run("valid order with the limits' edges", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		body := orderBody(func(m map[string]any) {
			m["description"] = strings.Repeat("咖", 127)
			m["out_trade_no"] = "a_-*12"
			m["notify_url"] = "http://127.0.0.1:8080/" + strings.Repeat("a", 255-len("http://127.0.0.1:8080/"))
			m["time_expire"] = f.clock.Now().Add(time.Minute).In(beijing).Format(time.RFC3339)
		})
		if a := f.do(call{method: "POST", uri: "/v3/pay/transactions/jsapi", body: body}); a.status != 200 || !strings.HasPrefix(a.raw["prepay_id"].(string), "wx") {
			t.Fatalf("answer %d %s", a.status, a.body)
		}
	})
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	first := f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil)})
	again := f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil)})
	code, _ := first.raw["code_url"].(string)
	if first.status != 200 || !strings.HasPrefix(code, "weixin://wxpay/bizpayurl?pr=") || again.raw["code_url"] != code {
		t.Fatalf("first %s, again %s", first.body, again.body)
	}
	if n := f.created.Load(); n != 1 {
		t.Errorf("OrderCreated called %d times, want 1", n)
	}
	for _, tt := range []struct {
		name string
		uri  string
		mod  func(m map[string]any)
	}{
		{"other amount", "/v3/pay/transactions/native", func(m map[string]any) { m["amount"] = map[string]any{"total": 101} }},
		{"other description", "/v3/pay/transactions/native", func(m map[string]any) { m["description"] = "Tea" }},
		{"other trade type", "/v3/pay/transactions/jsapi", nil},
	} {
		if a := f.do(call{method: "POST", uri: tt.uri, body: orderBody(tt.mod)}); a.status != 403 || a.code != "OUT_TRADE_NO_USED" {
			t.Errorf("%s: %d %s, want 403 OUT_TRADE_NO_USED", tt.name, a.status, a.body)
		}
	}
}

func TestCloseAndQuery(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const no = "AbCdEfGhIjKlMnOpQrStUvWx"
	if a := f.do(call{method: "GET", uri: "/v3/pay/transactions/out-trade-no/" + no + "?mchid=" + mchID}); a.status != 404 || a.code != "ORDER_NOT_EXIST" {
		t.Fatalf("query unknown: %d %s", a.status, a.body)
	}
	f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil)})
	if a := f.do(call{method: "GET", uri: "/v3/pay/transactions/out-trade-no/" + no}); a.status != 400 || a.code != "PARAM_ERROR" {
		t.Fatalf("query without mchid: %d %s", a.status, a.body)
	}
	a := f.do(call{method: "POST", uri: "/v3/pay/transactions/out-trade-no/" + no + "/close", body: []byte(`{"mchid":"` + mchID + `"}`)})
	if a.status != 204 || len(a.body) != 0 {
		t.Fatalf("close: %d %q", a.status, a.body) // do() verified the signature over the empty body
	}
	q := f.do(call{method: "GET", uri: "/v3/pay/transactions/out-trade-no/" + no + "?mchid=" + mchID})
	if q.status != 200 || q.raw["trade_state"] != "CLOSED" || q.raw["transaction_id"] != nil {
		t.Fatalf("query closed: %s", q.body)
	}
	if err := f.sim.Pay(no); !errors.Is(err, sandbox.ErrOrderState) {
		t.Errorf("Pay of a closed order: %v", err)
	}
}

func TestPayFailUnavailable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if err := f.sim.Pay("nope"); !errors.Is(err, sandbox.ErrNoOrder) {
		t.Errorf("Pay unknown: %v", err)
	}
	f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil)})
	if err := f.sim.Pay("AbCdEfGhIjKlMnOpQrStUvWx"); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.Pay("AbCdEfGhIjKlMnOpQrStUvWx"); !errors.Is(err, sandbox.ErrOrderState) {
		t.Errorf("Pay twice: %v", err)
	}
	if err := f.sim.Fail("AbCdEfGhIjKlMnOpQrStUvWx"); !errors.Is(err, sandbox.ErrUnsupported) {
		t.Errorf("Fail: %v", err)
	}
	a := f.do(call{method: "POST", uri: "/v3/pay/transactions/out-trade-no/AbCdEfGhIjKlMnOpQrStUvWx/close", body: []byte(`{"mchid":"` + mchID + `"}`)})
	if a.status != 400 || a.code != "ORDERPAID" {
		t.Errorf("close of a paid order: %d %s", a.status, a.body)
	}
	rec := httptest.NewRecorder()
	f.sim.Unavailable(rec)
	f.verifyAnswer(rec.Header(), rec.Body.Bytes())
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"SYSTEM_ERROR"`) {
		t.Errorf("Unavailable: %d %s", rec.Code, rec.Body)
	}
}

func TestRefundRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	const no = "AbCdEfGhIjKlMnOpQrStUvWx"
	refund := func(rno string, amount, total int64) answer {
		b, _ := json.Marshal(map[string]any{"out_trade_no": no, "out_refund_no": rno,
			"amount": map[string]any{"refund": amount, "total": total, "currency": "CNY"}})
		return f.do(call{method: "POST", uri: "/v3/refund/domestic/refunds", body: b})
	}
	if a := refund("R1", 10, 100); a.status != 404 || a.code != "RESOURCE_NOT_EXISTS" {
		t.Fatalf("refund of unknown order: %d %s", a.status, a.body)
	}
	f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil)})
	if a := refund("R1", 10, 100); a.status != 400 || a.code != "INVALID_REQUEST" {
		t.Fatalf("refund of unpaid order: %d %s", a.status, a.body)
	}
	if err := f.sim.Pay(no); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		rno           string
		amount, total int64
		status        int
		code          string
		refundStatus  string
	}{
		{"first part", "R1", 60, 100, 200, "", "PROCESSING"},
		{"retry of the first part", "R1", 60, 100, 200, "", "SUCCESS"},
		{"same number other amount", "R1", 61, 100, 400, "INVALID_REQUEST", ""},
		{"wrong total", "R2", 10, 99, 400, "INVALID_REQUEST", ""},
		{"over the rest", "R2", 41, 100, 403, "NOT_ENOUGH", ""},
		{"the rest", "R2", 40, 100, 200, "", "PROCESSING"},
		{"one more fen", "R3", 1, 100, 403, "NOT_ENOUGH", ""},
		{"zero", "R4", 0, 100, 400, "PARAM_ERROR", ""},
		{"bad refund number", "R 5", 1, 100, 400, "PARAM_ERROR", ""},
	}
	for _, tt := range tests { // sequential: each step depends on the last
		a := refund(tt.rno, tt.amount, tt.total)
		if a.status != tt.status || a.code != tt.code || (tt.refundStatus != "" && a.raw["status"] != tt.refundStatus) {
			t.Fatalf("%s: %d %s", tt.name, a.status, a.body)
		}
	}
	q := f.do(call{method: "GET", uri: "/v3/refund/domestic/refunds/R2"})
	if q.status != 200 || q.raw["status"] != "SUCCESS" || q.raw["out_trade_no"] != no {
		t.Fatalf("query refund: %s", q.body)
	}
	if q := f.do(call{method: "GET", uri: "/v3/refund/domestic/refunds/R9"}); q.status != 404 || q.code != "RESOURCE_NOT_EXISTS" {
		t.Fatalf("query unknown refund: %d %s", q.status, q.body)
	}
	if q := f.do(call{method: "GET", uri: "/v3/pay/transactions/out-trade-no/" + no + "?mchid=" + mchID}); q.raw["trade_state"] != "REFUND" {
		t.Fatalf("order after refunds: %s", q.body)
	}
}

// TestNotificationRetry: a receiver that fails twice and then answers 204
// gets exactly three deliveries of the same signed, encrypted notification.
func TestNotificationRetry(t *testing.T) {
	t.Parallel()
	type delivery struct {
		header http.Header
		body   []byte
	}
	var (
		mu   sync.Mutex
		got  []delivery
		done = make(chan struct{})
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, delivery{r.Header.Clone(), body})
		n := len(got)
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"code":"FAIL","message":"失败"}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
		close(done)
	}))
	t.Cleanup(recv.Close)
	notifier := sandbox.NewNotifier("wechat-test", []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}, 1, nil, zap.NewNop())
	f := newFixture(t, notifier)
	f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(func(m map[string]any) { m["notify_url"] = recv.URL + "/callbacks/wechat-test" })})
	if err := f.sim.Pay("AbCdEfGhIjKlMnOpQrStUvWx"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("notification never acknowledged")
	}
	notifier.Stop() // waits for the delivery goroutine: no further attempts can follow
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3", len(got))
	}
	for i, d := range got {
		// Same body every time; each delivery is signed anew and verifies.
		if !bytes.Equal(d.body, got[0].body) {
			t.Errorf("delivery %d body differs from the first", i+1)
		}
		if i > 0 && d.header.Get("Wechatpay-Nonce") == got[0].header.Get("Wechatpay-Nonce") {
			t.Errorf("delivery %d reuses the first delivery's nonce: not signed anew", i+1)
		}
		f.verifyAnswer(d.header, d.body)
	}
	d := got[0]
	if d.header.Get("Wechatpay-Signature-Type") != authScheme {
		t.Errorf("Wechatpay-Signature-Type = %q", d.header.Get("Wechatpay-Signature-Type"))
	}
	f.verifyAnswer(d.header, d.body)
	var env envelope
	if err := json.Unmarshal(d.body, &env); err != nil {
		t.Fatal(err)
	}
	if env.EventType != "TRANSACTION.SUCCESS" || env.ResourceType != "encrypt-resource" || env.Resource.Algorithm != "AEAD_AES_256_GCM" || len(env.Resource.Nonce) != 12 {
		t.Fatalf("envelope %s", d.body)
	}
	// Decrypt with the test's own AES-GCM, not the simulator's.
	ct, _ := base64.StdEncoding.DecodeString(env.Resource.Ciphertext)
	block, _ := aes.NewCipher([]byte(apiv3Key))
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, []byte(env.Resource.Nonce), ct, []byte(env.Resource.AssociatedData))
	if err != nil {
		t.Fatal(err)
	}
	var tx map[string]any
	json.Unmarshal(plain, &tx)
	amount, _ := tx["amount"].(map[string]any)
	if tx["mchid"] != mchID || tx["out_trade_no"] != "AbCdEfGhIjKlMnOpQrStUvWx" || tx["trade_state"] != "SUCCESS" ||
		amount["total"] != float64(100) || tx["transaction_id"] == nil || tx["success_time"] == nil {
		t.Fatalf("plaintext %s", plain)
	}
}

func TestPathPrefix(t *testing.T) {
	t.Parallel()
	ch := channel()
	ch.BaseURL = "http://127.0.0.1:0/wx/"
	sim, err := newSim(ch, sandbox.Env{}, keysDir)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil)
	f.sim = sim
	sim.now = f.clock.Now
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	f.srv = srv
	if a := f.do(call{method: "POST", uri: "/wx/v3/pay/transactions/native", body: orderBody(nil)}); a.status != 200 {
		t.Fatalf("with prefix: %d %s", a.status, a.body)
	}
	if a := f.do(call{method: "POST", uri: "/v3/pay/transactions/native", body: orderBody(nil)}); a.status != 404 {
		t.Fatalf("without prefix: %d %s", a.status, a.body)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(ch *config.Channel, dir *string)
	}{
		{"no mchid", func(ch *config.Channel, _ *string) { ch.Credentials.MchID = "" }},
		{"no platform serial", func(ch *config.Channel, _ *string) { ch.Credentials.PlatformSerial = "" }},
		{"short apiv3 key", func(ch *config.Channel, _ *string) { ch.Credentials.APIv3Key = "short" }},
		{"no private key", func(ch *config.Channel, _ *string) { ch.Credentials.PrivateKeyFile = "" }},
		{"no platform key", func(_ *config.Channel, dir *string) { *dir = "/nonexistent/wechatsim-keys" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch, dir := channel(), keysDir
			tt.mod(&ch, &dir)
			if _, err := New(ch, sandbox.Env{}, dir); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	if _, err := New(channel(), sandbox.Env{}, keysDir); err != nil {
		t.Fatal(err)
	}
}
