package alipaysim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/sandbox"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

const (
	keysDir = "../keys"
	appID   = "2021000000000001"
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
	otherKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// received is a notification as the merchant's endpoint saw it.
type received struct {
	body   string
	params url.Values
}

type fixture struct {
	t        *testing.T
	sim      *Sim
	srv      *httptest.Server
	clock    *clock
	created  chan string
	received chan received
	// answer decides the merchant endpoint's body for the n-th delivery.
	answer   func(n int) string
	mu       sync.Mutex
	n        int
	notifyTo string
}

func newFixture(t *testing.T, basePath string) *fixture {
	t.Helper()
	f := &fixture{
		t: t, clock: &clock{t: time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)},
		created: make(chan string, 64), received: make(chan received, 64),
		answer: func(int) string { return "success" },
	}
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		v, _ := url.ParseQuery(string(b))
		f.mu.Lock()
		f.n++
		ans := f.answer(f.n)
		f.mu.Unlock()
		io.WriteString(w, ans)
		f.received <- received{body: string(b), params: v}
	}))
	f.notifyTo = merchant.URL + "/callbacks/alipay-main"
	notifier := sandbox.NewNotifier("alipay-main", []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}, 1, nil, zap.NewNop())
	sim, err := newSim(config.Channel{
		ID: "alipay-main", Type: "alipay", BaseURL: "http://127.0.0.1:9201" + basePath,
		Credentials: config.Credentials{AlipayAppID: appID, PrivateKey: config.Secret(appKeyPEM())},
	}, sandbox.Env{ChannelID: "alipay-main", Notifier: notifier, Now: f.clock.Now, Logger: zap.NewNop(),
		OrderCreated: func(no string) { f.created <- no }}, keysDir)
	if err != nil {
		t.Fatal(err)
	}
	f.sim = sim
	f.srv = httptest.NewServer(sim)
	t.Cleanup(func() { f.srv.Close(); merchant.Close() })
	t.Cleanup(notifier.Stop)
	return f
}

// params builds a signed request the way an Alipay SDK does.
func (f *fixture) params(method string, biz map[string]string, key *rsa.PrivateKey) url.Values {
	b, _ := json.Marshal(biz)
	p := map[string]string{
		"app_id": appID, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
		"timestamp": f.clock.Now().In(beijing).Format(timeLayout), "version": "1.0", "biz_content": string(b),
		"notify_url": f.notifyTo,
	}
	return signed(p, key)
}

func signed(p map[string]string, key *rsa.PrivateKey) url.Values {
	v := url.Values{}
	for k, x := range p {
		v.Set(k, x)
	}
	v.Set("sign", rsa2Sign(key, []byte(signContent(p, "sign"))))
	return v
}

func resign(v url.Values, key *rsa.PrivateKey) url.Values {
	p := map[string]string{}
	for k := range v {
		if k != "sign" {
			p[k] = v.Get(k)
		}
	}
	return signed(p, key)
}

// reply is a parsed simulator reply; its signature was checked.
type reply struct {
	member string
	signed bool
	fields map[string]string
}

func (f *fixture) post(v url.Values) reply {
	f.t.Helper()
	resp, err := http.Post(f.srv.URL+gatewayPath, "application/x-www-form-urlencoded;charset=utf-8", strings.NewReader(v.Encode()))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	return parseAnswer(f.t, resp)
}

func parseAnswer(t *testing.T, resp *http.Response) reply {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("answer %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("answer is not JSON: %s", body)
	}
	var a reply
	for k, v := range top {
		if k == "sign" {
			continue
		}
		a.member = k
		var sign string
		if s, ok := top["sign"]; ok {
			json.Unmarshal(s, &sign)
			if !rsa2Verify(&platformKey().PublicKey, v, sign) {
				t.Fatalf("answer signature does not verify over %s", v)
			}
			a.signed = true
		}
		if err := json.Unmarshal(v, &a.fields); err != nil {
			t.Fatalf("answer fields: %v in %s", err, v)
		}
	}
	return a
}

func (a reply) is(t *testing.T, member, code, subCode string) {
	t.Helper()
	if a.member != member || a.fields["code"] != code || a.fields["sub_code"] != subCode {
		t.Fatalf("answer = %s %v, want %s %s %s", a.member, a.fields, member, code, subCode)
	}
}

func (f *fixture) next() received {
	f.t.Helper()
	select {
	case r := <-f.received:
		return r
	case <-time.After(10 * time.Second):
		f.t.Fatal("no notification")
		return received{}
	}
}

func (f *fixture) none(wait time.Duration) {
	f.t.Helper()
	select {
	case r := <-f.received:
		f.t.Fatalf("unexpected notification %s", r.body)
	case <-time.After(wait):
	}
}

// verifyNotification checks the V1 rule: sign and sign_type both excluded.
func verifyNotification(t *testing.T, v url.Values) {
	t.Helper()
	p := map[string]string{}
	for k := range v {
		if len(v[k]) != 1 {
			t.Fatalf("parameter %s repeated", k)
		}
		p[k] = v.Get(k)
	}
	if !rsa2Verify(&platformKey().PublicKey, []byte(signContent(p, "sign", "sign_type")), p["sign"]) {
		t.Fatal("notification signature does not verify (V1 rule)")
	}
}

func precreateBiz(no, amount string) map[string]string {
	return map[string]string{"out_trade_no": no, "total_amount": amount, "subject": "Coffee"}
}

func TestSignContentVector(t *testing.T) {
	t.Parallel()
	p := map[string]string{"sign": "x", "sign_type": "RSA2", "b": "2", "a": "1", "empty": "", "B": "upper", "biz_content": `{"k":"v&w=1"}`}
	if got, want := signContent(p, "sign"), `B=upper&a=1&b=2&biz_content={"k":"v&w=1"}&sign_type=RSA2`; got != want {
		t.Fatalf("request content %q, want %q", got, want)
	}
	if got, want := signContent(p, "sign", "sign_type"), `B=upper&a=1&b=2&biz_content={"k":"v&w=1"}`; got != want {
		t.Fatalf("notification content %q, want %q", got, want)
	}
}

func TestYuan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		fen  int64
		okay bool
	}{
		{"0.01", 1, true}, {"88.88", 8888, true}, {"100", 10000, true}, {"1.5", 150, true}, {"100000000.00", 10000000000, true},
		{"1.234", 0, false}, {"-1", 0, false}, {"abc", 0, false}, {"", 0, false}, {"01.00", 0, false}, {"1.", 0, false}, {".5", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			fen, ok := fenOf(tt.in)
			if ok != tt.okay || fen != tt.fen {
				t.Fatalf("fenOf(%q) = %d, %v", tt.in, fen, ok)
			}
			if back, ok2 := fenOf(yuan(fen)); ok && (!ok2 || back != fen) {
				t.Fatalf("round trip of %d through %q: %d", fen, yuan(fen), back)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	const m = "alipay_trade_query_response"
	biz := map[string]string{"out_trade_no": "A1"}
	good := func() url.Values { return f.params(methodQuery, biz, appKey()) }
	tests := []struct {
		name    string
		v       func() url.Values
		member  string
		code    string
		subCode string
		signed  bool
	}{
		{name: "valid", v: good, member: m, code: "40004", subCode: "ACQ.TRADE_NOT_EXIST", signed: true},
		{name: "signed with another key", v: func() url.Values { return f.params(methodQuery, biz, otherKey()) },
			member: m, code: "40002", subCode: "isv.invalid-signature", signed: true},
		{name: "biz_content changed after signing", v: func() url.Values {
			v := good()
			v.Set("biz_content", `{"out_trade_no":"A2"}`)
			return v
		}, member: m, code: "40002", subCode: "isv.invalid-signature", signed: true},
		{name: "sign_type not signed", v: func() url.Values {
			// Signing without sign_type (the notification rule) is wrong for requests.
			v := good()
			p := map[string]string{}
			for k := range v {
				p[k] = v.Get(k)
			}
			v.Set("sign", rsa2Sign(appKey(), []byte(signContent(p, "sign", "sign_type"))))
			return v
		}, member: m, code: "40002", subCode: "isv.invalid-signature", signed: true},
		{name: "unknown app", v: func() url.Values {
			v := good()
			v.Set("app_id", "2021000000000999")
			return resign(v, appKey())
		}, member: "error_response", code: "40002", subCode: "isv.invalid-app-id"},
		{name: "no app id", v: func() url.Values {
			v := good()
			v.Del("app_id")
			return resign(v, appKey())
		}, member: "error_response", code: "40002", subCode: "isv.invalid-app-id"},
		{name: "no method", v: func() url.Values {
			v := good()
			v.Del("method")
			return resign(v, appKey())
		}, member: "error_response", code: "40001", subCode: "isv.missing-method", signed: true},
		{name: "unknown method", v: func() url.Values {
			v := good()
			v.Set("method", "alipay.trade.pay.everything")
			return resign(v, appKey())
		}, member: "error_response", code: "40002", subCode: "isv.invalid-method", signed: true},
		{name: "no sign", v: func() url.Values {
			v := good()
			v.Del("sign")
			return v
		}, member: m, code: "40001", subCode: "isv.missing-signature", signed: true},
		{name: "legacy RSA", v: func() url.Values {
			v := good()
			v.Set("sign_type", "RSA")
			return resign(v, appKey())
		}, member: m, code: "40002", subCode: "isv.invalid-signature-type", signed: true},
		{name: "no timestamp", v: func() url.Values {
			v := good()
			v.Del("timestamp")
			return resign(v, appKey())
		}, member: m, code: "40001", subCode: "isv.missing-timestamp", signed: true},
		{name: "timestamp in UTC instead of Beijing", v: func() url.Values {
			v := good()
			v.Set("timestamp", f.clock.Now().UTC().Format(timeLayout))
			return resign(v, appKey())
		}, member: m, code: "40002", subCode: "isv.invalid-timestamp", signed: true},
		{name: "timestamp 14 minutes old", v: func() url.Values {
			v := good()
			v.Set("timestamp", f.clock.Now().Add(-14*time.Minute).In(beijing).Format(timeLayout))
			return resign(v, appKey())
		}, member: m, code: "40004", subCode: "ACQ.TRADE_NOT_EXIST", signed: true},
		{name: "timestamp 16 minutes ahead", v: func() url.Values {
			v := good()
			v.Set("timestamp", f.clock.Now().Add(16*time.Minute).In(beijing).Format(timeLayout))
			return resign(v, appKey())
		}, member: m, code: "40002", subCode: "isv.invalid-timestamp", signed: true},
		{name: "version", v: func() url.Values {
			v := good()
			v.Set("version", "2.0")
			return resign(v, appKey())
		}, member: m, code: "40002", subCode: "isv.invalid-version", signed: true},
		{name: "biz_content not JSON", v: func() url.Values {
			v := good()
			v.Set("biz_content", "out_trade_no=A1")
			return resign(v, appKey())
		}, member: m, code: "40002", subCode: "isv.invalid-parameter", signed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := f.post(tt.v())
			a.is(t, tt.member, tt.code, tt.subCode)
			if a.signed != tt.signed {
				t.Fatalf("signed = %v, want %v", a.signed, tt.signed)
			}
		})
	}
	t.Run("repeated parameter", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Post(f.srv.URL+gatewayPath+"?app_id="+appID, "application/x-www-form-urlencoded", strings.NewReader(good().Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		parseAnswer(t, resp).is(t, "error_response", "40002", "isv.invalid-parameter")
	})
}

// TestQueryStringParams: the Java SDK sends the common parameters in the
// query string and biz_content in the body.
func TestQueryStringParams(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "/alipay")
	v := f.params(methodPrecreate, precreateBiz("A1", "1.00"), appKey())
	body := url.Values{"biz_content": {v.Get("biz_content")}}
	v.Del("biz_content")
	resp, err := http.Post(f.srv.URL+"/alipay"+gatewayPath+"?"+v.Encode(), "application/x-www-form-urlencoded;charset=utf-8", strings.NewReader(body.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := parseAnswer(t, resp)
	a.is(t, "alipay_trade_precreate_response", "10000", "")
	if !a.signed || !strings.HasPrefix(a.fields["qr_code"], "https://qr.alipay.com/") || a.fields["out_trade_no"] != "A1" {
		t.Fatalf("precreate = %+v", a)
	}
	// Without the base path prefix nothing is served.
	r, err := http.Post(f.srv.URL+gatewayPath, "application/x-www-form-urlencoded", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("unprefixed path: %d", r.StatusCode)
	}
}

func TestPrecreateScanPayNotify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	f.answer = func(n int) string {
		if n == 1 {
			return "SUCCESS" // not exactly "success": resent
		}
		return "success"
	}
	f.post(f.params(methodPrecreate, precreateBiz("A1", "12.34"), appKey())).is(t, "alipay_trade_precreate_response", "10000", "")
	if no := <-f.created; no != "A1" {
		t.Fatalf("OrderCreated(%q)", no)
	}
	// Before the scan the trade does not exist.
	f.post(f.params(methodQuery, map[string]string{"out_trade_no": "A1"}, appKey())).is(t, "alipay_trade_query_response", "40004", "ACQ.TRADE_NOT_EXIST")
	f.post(f.params(methodClose, map[string]string{"out_trade_no": "A1"}, appKey())).is(t, "alipay_trade_close_response", "40004", "ACQ.TRADE_NOT_EXIST")

	if err := f.sim.Pay("A1"); err != nil {
		t.Fatal(err)
	}
	first := f.next()
	verifyNotification(t, first.params)
	p := first.params
	if p.Get("notify_type") != "trade_status_sync" || p.Get("trade_status") != "TRADE_SUCCESS" || p.Get("total_amount") != "12.34" ||
		p.Get("out_trade_no") != "A1" || p.Get("app_id") != appID || p.Get("sign_type") != "RSA2" || p.Get("notify_id") == "" ||
		p.Get("gmt_payment") != "2025-03-01 10:00:00" || p.Get("out_biz_no") != "" {
		t.Fatalf("notification = %v", p)
	}
	second := f.next()
	if second.body != first.body {
		t.Fatalf("resend differs:\n%s\n%s", first.body, second.body)
	}
	f.none(50 * time.Millisecond)

	q := f.post(f.params(methodQuery, map[string]string{"out_trade_no": "A1"}, appKey()))
	q.is(t, "alipay_trade_query_response", "10000", "")
	if q.fields["trade_status"] != "TRADE_SUCCESS" || q.fields["trade_no"] != p.Get("trade_no") || q.fields["total_amount"] != "12.34" ||
		q.fields["send_pay_date"] != "2025-03-01 10:00:00" {
		t.Fatalf("query = %v", q.fields)
	}
	// Query by trade_no works too.
	f.post(f.params(methodQuery, map[string]string{"trade_no": p.Get("trade_no")}, appKey())).is(t, "alipay_trade_query_response", "10000", "")
	f.post(f.params(methodClose, map[string]string{"out_trade_no": "A1"}, appKey())).is(t, "alipay_trade_close_response", "40004", "ACQ.TRADE_STATUS_ERROR")
	f.post(f.params(methodPrecreate, precreateBiz("A1", "12.34"), appKey())).is(t, "alipay_trade_precreate_response", "40004", "ACQ.TRADE_HAS_SUCCESS")
}

func TestPrecreateRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	first := f.post(f.params(methodPrecreate, precreateBiz("A1", "1.00"), appKey()))
	again := f.post(f.params(methodPrecreate, precreateBiz("A1", "1.00"), appKey()))
	if first.fields["qr_code"] == "" || again.fields["qr_code"] != first.fields["qr_code"] {
		t.Fatalf("repeat: %v vs %v", first.fields, again.fields)
	}
	f.post(f.params(methodPrecreate, precreateBiz("A1", "2.00"), appKey())).is(t, "alipay_trade_precreate_response", "40004", "ACQ.CONTEXT_INCONSISTENT")
	for _, bad := range []map[string]string{
		precreateBiz("A-2", "1.00"), precreateBiz("A2", "1.001"), precreateBiz("A2", "0.00"), precreateBiz("A2", "100000000.01"),
		{"out_trade_no": "A2", "total_amount": "1.00"},
		{"out_trade_no": "A2", "total_amount": "1.00", "subject": "x", "time_expire": "tomorrow"},
	} {
		f.post(f.params(methodPrecreate, bad, appKey())).is(t, "alipay_trade_precreate_response", "40004", "ACQ.INVALID_PARAMETER")
	}
	// Numbers are accepted for amounts, as Alipay does.
	b, _ := json.Marshal(map[string]any{"out_trade_no": "A3", "total_amount": 88.8, "subject": "x"})
	v := f.params(methodPrecreate, nil, appKey())
	v.Set("biz_content", string(b))
	f.post(resign(v, appKey())).is(t, "alipay_trade_precreate_response", "10000", "")
}

func TestPayControl(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	if err := f.sim.Pay("nope"); !errors.Is(err, sandbox.ErrNoOrder) {
		t.Fatalf("unknown order: %v", err)
	}
	if err := f.sim.Fail("nope"); !errors.Is(err, sandbox.ErrUnsupported) {
		t.Fatalf("fail: %v", err)
	}
	biz := precreateBiz("A1", "1.00")
	biz["time_expire"] = f.clock.Now().Add(10 * time.Minute).In(beijing).Format(timeLayout)
	f.post(f.params(methodPrecreate, biz, appKey())).is(t, "alipay_trade_precreate_response", "10000", "")
	f.clock.Advance(11 * time.Minute)
	if err := f.sim.Pay("A1"); !errors.Is(err, sandbox.ErrOrderState) {
		t.Fatalf("pay of an expired code: %v", err)
	}
	f.post(f.params(methodPrecreate, precreateBiz("A1", "1.00"), appKey())).is(t, "alipay_trade_precreate_response", "40004", "ACQ.TRADE_HAS_CLOSE")

	f.post(f.params(methodPrecreate, precreateBiz("A2", "1.00"), appKey())).is(t, "alipay_trade_precreate_response", "10000", "")
	if err := f.sim.Pay("A2"); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.Pay("A2"); !errors.Is(err, sandbox.ErrOrderState) {
		t.Fatalf("second pay: %v", err)
	}
	f.next()
}

func TestRefundRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	f.post(f.params(methodPrecreate, precreateBiz("A1", "10.00"), appKey()))
	refund := func(no, amount string) reply {
		return f.post(f.params(methodRefund, map[string]string{"out_trade_no": "A1", "refund_amount": amount, "out_request_no": no}, appKey()))
	}
	refund("R0", "1.00").is(t, "alipay_trade_refund_response", "40004", "ACQ.TRADE_NOT_EXIST") // not scanned yet
	if err := f.sim.Pay("A1"); err != nil {
		t.Fatal(err)
	}
	f.next()

	a := refund("R1", "3.00")
	a.is(t, "alipay_trade_refund_response", "10000", "")
	if a.fields["fund_change"] != "Y" || a.fields["refund_fee"] != "3.00" {
		t.Fatalf("refund = %v", a.fields)
	}
	n := f.next()
	verifyNotification(t, n.params)
	if n.params.Get("out_biz_no") != "R1" || n.params.Get("refund_fee") != "3.00" || n.params.Get("gmt_refund") == "" ||
		n.params.Get("trade_status") != "TRADE_SUCCESS" {
		t.Fatalf("refund notification = %v", n.params)
	}

	again := refund("R1", "3.00")
	if again.fields["fund_change"] != "N" || again.fields["refund_fee"] != "3.00" {
		t.Fatalf("repeated refund = %v", again.fields)
	}
	refund("R1", "4.00").is(t, "alipay_trade_refund_response", "40004", "ACQ.DISCORDANT_REPEAT_REQUEST")
	refund("R2", "7.01").is(t, "alipay_trade_refund_response", "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
	refund("R2", "0.00").is(t, "alipay_trade_refund_response", "40004", "ACQ.REASON_TRADE_REFUND_FEE_ERR")
	refund("R2", "x").is(t, "alipay_trade_refund_response", "40004", "ACQ.INVALID_PARAMETER")
	f.none(30 * time.Millisecond)

	a = refund("R2", "7.00")
	if a.fields["fund_change"] != "Y" || a.fields["refund_fee"] != "10.00" {
		t.Fatalf("second refund = %v", a.fields)
	}
	n = f.next()
	if n.params.Get("refund_fee") != "10.00" || n.params.Get("trade_status") != "TRADE_CLOSED" {
		t.Fatalf("full refund notification = %v", n.params)
	}
	q := f.post(f.params(methodQuery, map[string]string{"out_trade_no": "A1"}, appKey()))
	if q.fields["trade_status"] != "TRADE_CLOSED" || q.fields["send_pay_date"] == "" {
		t.Fatalf("fully refunded query = %v", q.fields)
	}
	refund("R3", "0.01").is(t, "alipay_trade_refund_response", "40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")

	rq := f.post(f.params(methodRefundQuery, map[string]string{"out_trade_no": "A1", "out_request_no": "R2"}, appKey()))
	if rq.fields["refund_status"] != "REFUND_SUCCESS" || rq.fields["refund_amount"] != "7.00" || rq.fields["total_amount"] != "10.00" {
		t.Fatalf("refund query = %v", rq.fields)
	}
	rq = f.post(f.params(methodRefundQuery, map[string]string{"out_trade_no": "A1", "out_request_no": "R9"}, appKey()))
	rq.is(t, "alipay_trade_fastpay_refund_query_response", "10000", "")
	if _, ok := rq.fields["refund_status"]; ok {
		t.Fatalf("unknown refund has a status: %v", rq.fields)
	}
}

func TestCashier(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	biz := map[string]string{"out_trade_no": "P1", "total_amount": "5.00", "subject": "Book", "product_code": "FAST_INSTANT_TRADE_PAY"}
	v := f.params(methodPagePay, biz, appKey())
	open := func(method string, v url.Values) (int, string) {
		var resp *http.Response
		var err error
		if method == http.MethodGet {
			resp, err = http.Get(f.srv.URL + gatewayPath + "?" + v.Encode())
		} else {
			resp, err = http.PostForm(f.srv.URL+gatewayPath, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	tampered := url.Values{}
	for k, x := range v {
		tampered[k] = x
	}
	tampered.Set("biz_content", strings.Replace(v.Get("biz_content"), "5.00", "0.05", 1))
	if code, body := open(http.MethodGet, tampered); code != http.StatusBadRequest || !strings.Contains(body, "isv.invalid-signature") {
		t.Fatalf("tampered: %d %s", code, body)
	}
	if err := f.sim.Pay("P1"); !errors.Is(err, sandbox.ErrNoOrder) {
		t.Fatalf("pay before the cashier was opened: %v", err)
	}

	if code, body := open(http.MethodGet, v); code != http.StatusOK || !strings.Contains(body, "5.00") {
		t.Fatalf("cashier: %d %s", code, body)
	}
	if no := <-f.created; no != "P1" {
		t.Fatalf("OrderCreated(%q)", no)
	}
	// The browser may open it again, or post it as a form.
	if code, _ := open(http.MethodPost, v); code != http.StatusOK {
		t.Fatalf("cashier form post: %d", code)
	}
	select {
	case no := <-f.created:
		t.Fatalf("second OrderCreated(%q)", no)
	default:
	}
	q := f.post(f.params(methodQuery, map[string]string{"out_trade_no": "P1"}, appKey()))
	if q.fields["trade_status"] != "WAIT_BUYER_PAY" {
		t.Fatalf("query after cashier = %v", q.fields)
	}
	// Another product under the same order number.
	f.post(f.params(methodPrecreate, precreateBiz("P1", "5.00"), appKey())).is(t, "alipay_trade_precreate_response", "40004", "ACQ.CONTEXT_INCONSISTENT")

	noProduct := map[string]string{"out_trade_no": "P2", "total_amount": "5.00", "subject": "Book"}
	if code, body := open(http.MethodGet, f.params(methodPagePay, noProduct, appKey())); code != http.StatusBadRequest || !strings.Contains(body, "product_code") {
		t.Fatalf("page pay without product_code: %d %s", code, body)
	}

	// A payer may open the URL long after it was made: time_expire bounds it,
	// not the ±15 min timestamp window of API calls.
	late := map[string]string{"out_trade_no": "P3", "total_amount": "5.00", "subject": "Book", "product_code": "FAST_INSTANT_TRADE_PAY",
		"time_expire": f.clock.Now().Add(time.Hour).In(beijing).Format(timeLayout)}
	lateURL := f.params(methodPagePay, late, appKey())
	expired := map[string]string{"out_trade_no": "P4", "total_amount": "5.00", "subject": "Book", "product_code": "FAST_INSTANT_TRADE_PAY",
		"time_expire": f.clock.Now().Add(20 * time.Minute).In(beijing).Format(timeLayout)}
	expiredURL := f.params(methodPagePay, expired, appKey())
	f.clock.Advance(30 * time.Minute)
	defer f.clock.Advance(-30 * time.Minute)
	if code, body := open(http.MethodGet, lateURL); code != http.StatusOK {
		t.Fatalf("URL opened 30 minutes later: %d %s", code, body)
	}
	if no := <-f.created; no != "P3" {
		t.Fatalf("OrderCreated(%q)", no)
	}
	if code, body := open(http.MethodGet, expiredURL); code != http.StatusBadRequest || !strings.Contains(body, "ACQ.TRADE_HAS_CLOSE") {
		t.Fatalf("URL opened after time_expire: %d %s", code, body)
	}
	future := f.params(methodPagePay, late, appKey())
	future.Set("timestamp", f.clock.Now().Add(20*time.Minute).In(beijing).Format(timeLayout))
	if code, body := open(http.MethodGet, resign(future, appKey())); code != http.StatusBadRequest || !strings.Contains(body, "isv.invalid-timestamp") {
		t.Fatalf("URL from the future: %d %s", code, body)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	rec := httptest.NewRecorder()
	f.sim.Unavailable(rec)
	a := parseAnswer(t, rec.Result())
	a.is(t, "error_response", "20000", "isp.unknow-error")
	if !a.signed {
		t.Fatal("unsigned")
	}
}

func TestNewRequiresKeys(t *testing.T) {
	t.Parallel()
	env := sandbox.Env{}
	ch := config.Channel{ID: "a", BaseURL: "http://127.0.0.1:1", Credentials: config.Credentials{AlipayAppID: appID, PrivateKey: config.Secret(appKeyPEM())}}
	if _, err := New(ch, env, keysDir); err != nil {
		t.Fatal(err)
	}
	noApp := ch
	noApp.Credentials.AlipayAppID = ""
	noKey := ch
	noKey.Credentials.PrivateKey = ""
	for _, c := range []config.Channel{noApp, noKey} {
		if _, err := New(c, env, keysDir); err == nil {
			t.Fatalf("accepted %+v", c.Credentials)
		}
	}
	if _, err := New(ch, env, t.TempDir()); err == nil {
		t.Fatal("accepted a keys dir without alipay-platform.pem")
	}
}

// FuzzGateway: any request to the gateway gets an answer in Alipay's form
// (or the cashier's), never a panic.
func FuzzGateway(f *testing.F) {
	fx := &clock{t: time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)}
	sim, err := newSim(config.Channel{ID: "a", BaseURL: "http://127.0.0.1:1",
		Credentials: config.Credentials{AlipayAppID: appID, PrivateKey: config.Secret(appKeyPEM())}},
		sandbox.Env{Now: fx.Now}, keysDir)
	if err != nil {
		f.Fatal(err)
	}
	fixture := &fixture{clock: fx}
	f.Add([]byte(fixture.params(methodPrecreate, precreateBiz("A1", "1.00"), appKey()).Encode()), "")
	f.Add([]byte(fixture.params(methodQuery, map[string]string{"out_trade_no": "A1"}, appKey()).Encode()), "")
	f.Add([]byte(""), fixture.params(methodPagePay, map[string]string{"out_trade_no": "P1", "total_amount": "1.00", "subject": "x", "product_code": "FAST_INSTANT_TRADE_PAY"}, appKey()).Encode())
	f.Add([]byte("app_id="+appID+"&method=alipay.trade.query&sign=%%"), "a=1&a=2")
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		req := httptest.NewRequest(http.MethodPost, "/gateway.do", strings.NewReader(string(body)))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		switch ct := rec.Header().Get("Content-Type"); {
		case strings.HasPrefix(ct, "application/json"):
			if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("API answer %d %q", rec.Code, rec.Body.Bytes())
			}
		case strings.HasPrefix(ct, "text/html"):
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Fatalf("cashier answer %d", rec.Code)
			}
		default:
			t.Fatalf("reply %d with content type %q", rec.Code, ct)
		}
	})
}
