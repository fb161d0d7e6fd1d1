package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/paygate/paygate/store/storetest"
)

type env struct {
	sim *sim
	in  *instance
	sg  signer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	return &env{sim: s, in: startInstance(t, cfg, rs.Addr()), sg: hmacSigner("m-hmac", hmacSecret)}
}

func TestCreatePaymentNativeAndIdempotency(t *testing.T) {
	e := newEnv(t)
	body := paymentBody("order-1001", 1999, "qr")
	r := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", body, reqOpts{})
	// Metadata keys are counted in characters, not bytes: 30 Chinese
	// characters (90 bytes) are a valid key.
	if m := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", []byte(`{"out_trade_no":"meta-cn","amount":1,"currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n","metadata":{"`+strings.Repeat("键", 30)+`":"x"}}`), reqOpts{}); m.status != 201 {
		t.Fatalf("a 30-character Chinese metadata key: %d %s", m.status, m.body)
	}
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	p := r.json(t)
	action := p["action"].(map[string]any)
	if p["status"] != "pending" || p["channel"] != "wechat-main" || action["type"] != "qr_code" || !strings.HasPrefix(action["code_url"].(string), "weixin://wxpay/bizpayurl") {
		t.Fatalf("unexpected payment: %s", r.body)
	}
	if p["amount"] != float64(1999) || p["out_trade_no"] != "order-1001" || p["merchant_id"] != "m-hmac" || p["refunded_amount"] != float64(0) {
		t.Fatalf("unexpected fields: %s", r.body)
	}
	id := p["payment_id"].(string)

	// The same request again: 200, same payment, nothing new at the channel.
	r2 := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", body, reqOpts{})
	if r2.status != 200 || r2.header.Get("Idempotent-Replayed") != "true" || r2.json(t)["payment_id"] != id {
		t.Fatalf("replay: %d %v %s", r2.status, r2.header, r2.body)
	}
	// Fields that are not compared may differ (subject).
	r3 := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", []byte(strings.Replace(string(body), "Coffee", "Tea", 1)), reqOpts{})
	if r3.status != 200 || r3.json(t)["payment_id"] != id {
		t.Fatalf("replay with another subject: %d %s", r3.status, r3.body)
	}
	// Another amount: conflict.
	r4 := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", paymentBody("order-1001", 2000, "qr"), reqOpts{})
	if r4.status != 409 || r4.errCode(t) != "out_trade_no_conflict" {
		t.Fatalf("conflict: %d %s", r4.status, r4.body)
	}
	if got := e.sim.creates.Load(); got != 2 {
		t.Fatalf("channel orders: %d, want 2 (order-1001 and meta-cn)", got)
	}
	// Read it back by id and by out_trade_no.
	g := e.sg.do(t, e.in.url, http.MethodGet, "/v1/payments/"+id, nil, reqOpts{})
	if g.status != 200 || g.json(t)["payment_id"] != id || g.json(t)["status"] != "pending" {
		t.Fatalf("get: %d %s", g.status, g.body)
	}
	g2 := e.sg.do(t, e.in.url, http.MethodGet, "/v1/payments?out_trade_no=order-1001", nil, reqOpts{})
	if g2.status != 200 || g2.json(t)["payment_id"] != id {
		t.Fatalf("get by out_trade_no: %d %s", g2.status, g2.body)
	}
	// Another merchant cannot see it.
	g3 := edSigner("m-ed", testKeys(t).edPriv).do(t, e.in.url, http.MethodGet, "/v1/payments/"+id, nil, reqOpts{})
	if g3.status != 404 {
		t.Fatalf("other merchant: %d %s", g3.status, g3.body)
	}
}

// 50 concurrent identical creates: one channel order; every caller gets the
// same payment or 409 request_in_progress.
func TestConcurrentIdenticalCreates(t *testing.T) {
	e := newEnv(t)
	body := paymentBody("order-race", 500, "wechat_native")
	const n = 50
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", body, reqOpts{})
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	created := 0
	for _, r := range results {
		switch r.status {
		case 201:
			created++
			ids[r.json(t)["payment_id"].(string)] = true
		case 200:
			ids[r.json(t)["payment_id"].(string)] = true
		case 409:
			if r.errCode(t) != "request_in_progress" {
				t.Fatalf("409 with %s", r.body)
			}
		default:
			t.Fatalf("unexpected %d %s", r.status, r.body)
		}
	}
	if created != 1 || len(ids) != 1 {
		t.Fatalf("created %d, distinct payments %d", created, len(ids))
	}
	if got := e.sim.creates.Load(); got != 1 {
		t.Fatalf("channel orders: %d, want 1", got)
	}
}

func TestCreatePaymentValidation(t *testing.T) {
	e := newEnv(t)
	valid := `"out_trade_no":"v-1","amount":100,"currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n"`
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"malformed json", `{"out_trade_no":`, 400, "invalid_request", "body"},
		{"empty body", ``, 400, "invalid_request", "body"},
		{"unknown field", `{` + valid + `,"colour":"red"}`, 400, "invalid_request", "colour"},
		{"missing out_trade_no", `{"amount":100,"currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n"}`, 400, "invalid_request", "out_trade_no"},
		{"bad out_trade_no", strings.Replace(`{`+valid+`}`, `"v-1"`, `"v 1"`, 1), 400, "invalid_request", "out_trade_no"},
		{"long out_trade_no", strings.Replace(`{`+valid+`}`, `"v-1"`, `"`+strings.Repeat("a", 33)+`"`, 1), 400, "invalid_request", "out_trade_no"},
		{"fractional amount", strings.Replace(`{`+valid+`}`, `100`, `19.99`, 1), 400, "invalid_request", "amount"},
		{"zero amount", strings.Replace(`{`+valid+`}`, `100`, `0`, 1), 400, "invalid_request", "amount"},
		{"string amount", strings.Replace(`{`+valid+`}`, `100`, `"100"`, 1), 400, "invalid_request", "amount"},
		{"currency", strings.Replace(`{`+valid+`}`, `"CNY"`, `"XXX"`, 1), 400, "invalid_request", "currency"},
		{"unknown method", strings.Replace(`{`+valid+`}`, `"qr"`, `"cash"`, 1), 400, "invalid_request", "method"},
		{"empty subject", strings.Replace(`{`+valid+`}`, `"S"`, `""`, 1), 400, "invalid_request", "subject"},
		{"long subject", strings.Replace(`{`+valid+`}`, `"S"`, `"`+strings.Repeat("咖", 128)+`"`, 1), 400, "invalid_request", "subject"},
		{"notify_url scheme", strings.Replace(`{`+valid+`}`, `https://m.example/n`, `ftp://m.example/n`, 1), 400, "invalid_request", "notify_url"},
		{"notify_url relative", strings.Replace(`{`+valid+`}`, `https://m.example/n`, `/n`, 1), 400, "invalid_request", "notify_url"},
		{"expire_in low", `{` + valid + `,"expire_in":59}`, 400, "invalid_request", "expire_in"},
		{"expire_in high", `{` + valid + `,"expire_in":86401}`, 400, "invalid_request", "expire_in"},
		{"jsapi without openid", strings.Replace(`{`+valid+`}`, `"qr"`, `"wechat_jsapi"`, 1), 400, "invalid_request", "payer.openid"},
		{"client_ip", `{` + valid + `,"payer":{"client_ip":"not-an-ip"}}`, 400, "invalid_request", "payer.client_ip"},
		{"client_ip zone", `{` + valid + `,"payer":{"client_ip":"fe80::1%eth0"}}`, 400, "invalid_request", "payer.client_ip"},
		{"metadata value type", `{` + valid + `,"metadata":{"a":1}}`, 400, "invalid_request", "metadata.a: must be a string"},
		{"metadata too long", `{` + valid + `,"metadata":{"a":"` + strings.Repeat("x", 257) + `"}}`, 400, "invalid_request", "metadata.a"},
		{"metadata key too long", `{` + valid + `,"metadata":{"` + strings.Repeat("k", 65) + `":"x"}}`, 400, "invalid_request", "metadata." + strings.Repeat("k", 64) + "..."},
		{"trailing data", `{` + valid + `} {}`, 400, "invalid_request", "body"},
		{"method not enabled", strings.Replace(`{`+valid+`}`, `"qr"`, `"bank_redirect"`, 1), 403, "payment_method_not_allowed", ""},
		{"over limit", strings.Replace(`{`+valid+`}`, `100`, `5000001`, 1), 403, "amount_over_limit", ""},
		// A body our parser could read differently from the merchant's JSON
		// library is refused, whatever the values.
		{"duplicate amount", `{` + valid + `,"amount":200}`, 400, "invalid_request", "amount: duplicate field"},
		{"duplicate amount, same value", `{` + valid + `,"amount":100}`, 400, "invalid_request", "amount: duplicate field"},
		{"duplicate amount, escaped key", `{` + valid + `,"\u0061mount":200}`, 400, "invalid_request", "amount: duplicate field"},
		{"duplicate amount, null", `{` + valid + `,"amount":null}`, 400, "invalid_request", "amount: duplicate field"},
		{"key differing in case", `{` + valid + `,"Amount":200}`, 400, "invalid_request", "Amount: unknown field"},
		{"duplicate payer", `{` + valid + `,"payer":{},"payer":{}}`, 400, "invalid_request", "payer: duplicate field"},
		{"duplicate payer.openid", `{` + valid + `,"payer":{"openid":"o-1","openid":"o-2"}}`, 400, "invalid_request", "payer.openid: duplicate field"},
		{"duplicate metadata key", `{` + valid + `,"metadata":{"a":"1","b":"2","a":"3"}}`, 400, "invalid_request", "metadata.a: duplicate field"},
		{"duplicate then truncated", `{` + valid + `,"amount":200`, 400, "invalid_request", "body: malformed JSON"},
		{"unknown payer field", `{` + valid + `,"payer":{"colour":"red"}}`, 400, "invalid_request", "payer.colour: unknown field"},
		{"payer.openid type", `{` + valid + `,"payer":{"openid":1}}`, 400, "invalid_request", "payer.openid: must be a string"},
		{"payer type", `{` + valid + `,"payer":"o-1"}`, 400, "invalid_request", "payer: must be an object"},
		{"metadata type", `{` + valid + `,"metadata":["a"]}`, 400, "invalid_request", "metadata: must be an object"},
		{"metadata null value", `{` + valid + `,"metadata":{"a":null}}`, 400, "invalid_request", "metadata.a: must be a string"},
		{"subject invalid UTF-8", strings.Replace(`{`+valid+`}`, `"S"`, "\"S\xff\"", 1), 400, "invalid_request", "subject: must be valid UTF-8"},
		{"metadata unpaired surrogate", `{` + valid + `,"metadata":{"a":"\ud800"}}`, 400, "invalid_request", "metadata.a: must be valid UTF-8"},
		{"notify_url decimal host", strings.Replace(`{`+valid+`}`, `https://m.example/n`, `http://2130706433/n`, 1), 400, "invalid_request", "notify_url"},
		{"notify_url hex host", strings.Replace(`{`+valid+`}`, `https://m.example/n`, `http://0x7f000001/n`, 1), 400, "invalid_request", "notify_url"},
		{"notify_url missing", strings.Replace(`{`+valid+`}`, `https://m.example/n`, ``, 1), 400, "invalid_request", "notify_url: is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", []byte(tc.body), reqOpts{})
			if r.status != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			// field is the field the message names, or the whole start
			// of the message ("amount: duplicate field").
			msg := r.json(t)["error"].(map[string]any)["message"].(string)
			want := tc.field
			if !strings.Contains(want, ":") {
				want += ":"
			}
			if tc.field != "" && !strings.HasPrefix(msg, want) {
				t.Fatalf("message %q does not start with %q", msg, want)
			}
		})
	}
	// The refund body gets the same treatment; it is checked before the
	// payment is looked up.
	for _, tc := range []struct{ name, body, want string }{
		{"refund duplicate amount", `{"out_refund_no":"r-1","amount":1,"amount":100}`, "amount: duplicate field"},
		{"refund key differing in case", `{"out_refund_no":"r-1","amount":1,"AMOUNT":100}`, "AMOUNT: unknown field"},
		{"refund reason type", `{"out_refund_no":"r-1","amount":1,"reason":{}}`, "reason: must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments/pay_0123456789abcdefghijklmn/refunds", []byte(tc.body), reqOpts{})
			if r.status != 400 || r.errCode(t) != "invalid_request" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.HasPrefix(msg, tc.want) {
				t.Fatalf("message %q does not start with %q", msg, tc.want)
			}
		})
	}
	if got := e.sim.creates.Load(); got != 0 {
		t.Fatalf("bad input reached the channel: %d orders", got)
	}
	// A rejected body still claims its nonce (the nonce check comes first).
	nonce := newNonce()
	e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", []byte(`{}`), reqOpts{nonce: nonce})
	r := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", paymentBody("v-2", 100, "qr"), reqOpts{nonce: nonce})
	if r.errCode(t) != "nonce_replayed" {
		t.Fatalf("nonce of a 400 request reused: %d %s", r.status, r.body)
	}
}

func TestJSAPIAndClose(t *testing.T) {
	e := newEnv(t)
	r := e.sg.do(t, e.in.url, http.MethodPost, "/v1/payments", paymentBody("js-1", 300, "wechat_jsapi"), reqOpts{})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	p := r.json(t)
	act := p["action"].(map[string]any)
	params, _ := act["params"].(map[string]any)
	for _, k := range []string{"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"} {
		if params[k] == nil || params[k] == "" {
			t.Fatalf("jsapi params lack %s: %s", k, r.body)
		}
	}
	if act["type"] != "jsapi" || !strings.HasPrefix(params["package"].(string), "prepay_id=") || params["signType"] != "RSA" {
		t.Fatalf("jsapi action: %s", r.body)
	}
	id := p["payment_id"].(string)
	c := e.sg.do(t, e.in.url, http.MethodPost, fmt.Sprintf("/v1/payments/%s/close", id), nil, reqOpts{})
	if c.status != 200 || c.json(t)["status"] != "closed" {
		t.Fatalf("close: %d %s", c.status, c.body)
	}
	c2 := e.sg.do(t, e.in.url, http.MethodPost, fmt.Sprintf("/v1/payments/%s/close", id), nil, reqOpts{})
	if c2.status != 409 || c2.errCode(t) != "invalid_state" {
		t.Fatalf("close again: %d %s", c2.status, c2.body)
	}
	// The channel agrees: a pay attempt on the closed order is refused.
	orderNo := strings.TrimPrefix(id, "pay_")
	if err := e.sim.sim.Pay(orderNo); err == nil {
		t.Fatal("the simulator let the payer pay a closed order")
	}
}
