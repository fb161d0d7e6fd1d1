package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
)

// The merchant API's OpenAPI document (docs/openapi.yaml) against the real
// gateway: every response a merchant can get here, successes and each error
// class, is validated against the document's closed schemas, so a field
// added, dropped or retyped on either side fails this test.

type apiSpec struct {
	v        validator.Validator
	errorSch *base.Schema // the 405 body, for requests no operation describes
}

func loadAPISpec(t *testing.T) apiSpec {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("docs/openapi.yaml: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("docs/openapi.yaml is not valid OpenAPI 3.1: %s: %s", e.Message, e.Reason)
		}
		t.FailNow()
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	r := model.Model.Components.Responses.GetOrZero("MethodNotAllowed")
	if r == nil {
		t.Fatal("docs/openapi.yaml: no MethodNotAllowed response")
	}
	return apiSpec{v: v, errorSch: r.Content.GetOrZero("application/json").Schema.Schema()}
}

// exchange is one request sent to the gateway and its answer.
type exchange struct {
	req  *http.Request
	body []byte // the request's
	resp resp
}

func (x exchange) httpResponse() *http.Response {
	return &http.Response{StatusCode: x.resp.Status, Header: x.resp.Header, Body: io.NopCloser(bytes.NewReader(x.resp.Body)), Request: x.req}
}

// send sends a request, signed unless sign is false (the headers are then
// whatever edit leaves).
func (g *running) send(method, uri string, body []byte, sign bool, edit func(*http.Request)) exchange {
	g.t.Helper()
	req, err := http.NewRequest(method, g.base+uri, bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if sign {
		if err := g.signer.SetHeaders(req, body); err != nil {
			g.t.Fatal(err)
		}
	}
	if edit != nil {
		edit(req)
	}
	r := do(g.t, req)
	req.Body = io.NopCloser(bytes.NewReader(body))
	return exchange{req: req, body: body, resp: r}
}

// check validates x's response against the document, and its request too
// when the request is one the document allows.
func (s apiSpec) check(t *testing.T, what string, x exchange, wantStatus int, validRequest bool) map[string]any {
	t.Helper()
	if x.resp.Status != wantStatus {
		t.Fatalf("%s: status %d, want %d: %s", what, x.resp.Status, wantStatus, x.resp.Body)
	}
	if validRequest {
		x.req.Body = io.NopCloser(bytes.NewReader(x.body))
		if ok, errs := s.v.ValidateHttpRequest(x.req); !ok {
			for _, e := range errs {
				t.Errorf("%s: request does not match docs/openapi.yaml: %s: %s", what, e.Message, e.Reason)
			}
		}
	}
	if ok, errs := s.v.ValidateHttpResponse(x.req, x.httpResponse()); !ok {
		for _, e := range errs {
			t.Errorf("%s: response does not match docs/openapi.yaml: %s: %s %v\n%s", what, e.Message, e.Reason, e.SchemaValidationErrors, x.resp.Body)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(x.resp.Body, &m); err != nil {
		t.Fatalf("%s: not JSON: %s", what, x.resp.Body)
	}
	if e, ok := m["error"].(map[string]any); ok && e["request_id"] != x.resp.Header.Get("X-Request-Id") {
		t.Errorf("%s: request_id %v is not X-Request-Id %q", what, e["request_id"], x.resp.Header.Get("X-Request-Id"))
	}
	return m
}

func errorOf(m map[string]any) map[string]any { e, _ := m["error"].(map[string]any); return e }

func TestOpenAPIMatchesResponses(t *testing.T) {
	spec := loadAPISpec(t)
	g := startE2E(t, e2eOpts{})
	site := newMerchantSite(t)
	create := func(otn string, amount int64, method string) []byte {
		b, _ := json.Marshal(map[string]any{"out_trade_no": otn, "amount": amount, "currency": "CNY", "method": method,
			"subject": "Coffee", "notify_url": site.url(), "expire_in": 900, "payer": map[string]string{"openid": "o-test", "client_ip": "203.0.113.7"},
			"metadata": map[string]string{"cart": "42"}})
		return b
	}

	// Creates: 201, then the replay 200 with Idempotent-Replayed.
	body := create("oa-1", 1999, "wechat_native")
	p := spec.check(t, "create", g.send("POST", "/v1/payments", body, true, nil), 201, true)
	id := p["payment_id"].(string)
	x := g.send("POST", "/v1/payments", body, true, nil)
	spec.check(t, "create replay", x, 200, true)
	if x.resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay without Idempotent-Replayed: %v", x.resp.Header)
	}
	for _, m := range []string{"alipay_page", "bank_redirect", "wechat_jsapi"} { // each kind of action
		spec.check(t, "create "+m, g.send("POST", "/v1/payments", create("oa-"+m, 100, m), true, nil), 201, true)
	}

	// Reads.
	spec.check(t, "get", g.send("GET", "/v1/payments/"+id, nil, true, nil), 200, true)
	spec.check(t, "get by out_trade_no", g.send("GET", "/v1/payments?out_trade_no=oa-1", nil, true, nil), 200, true)

	// Close, then close again: 409 invalid_state.
	c := spec.check(t, "close", g.send("POST", "/v1/payments/"+id+"/close", nil, true, nil), 200, true)
	if c["status"] != "closed" {
		t.Errorf("close answered %v", c["status"])
	}
	e := errorOf(spec.check(t, "close again", g.send("POST", "/v1/payments/"+id+"/close", nil, true, nil), 409, true))
	if e["code"] != "invalid_state" {
		t.Errorf("close again: %v", e)
	}

	// Refunds of a paid payment: 201, replay 200, conflict 409, too much 422.
	paid := spec.check(t, "create to pay", g.send("POST", "/v1/payments", create("oa-paid", 1000, "wechat_native"), true, nil), 201, true)
	paidID := paid["payment_id"].(string)
	g.pay(paidID)
	g.waitFor("/v1/payments/"+paidID, "succeeded", statusIs("succeeded"))
	spec.check(t, "get succeeded", g.send("GET", "/v1/payments/"+paidID, nil, true, nil), 200, true)
	rb := []byte(`{"out_refund_no":"oa-rf-1","amount":400,"reason":"damaged"}`)
	rf := spec.check(t, "refund", g.send("POST", "/v1/payments/"+paidID+"/refunds", rb, true, nil), 201, true)
	spec.check(t, "refund replay", g.send("POST", "/v1/payments/"+paidID+"/refunds", rb, true, nil), 200, true)
	spec.check(t, "get refund", g.send("GET", "/v1/refunds/"+rf["refund_id"].(string), nil, true, nil), 200, true)
	spec.check(t, "get refund by out_refund_no", g.send("GET", "/v1/refunds?out_refund_no=oa-rf-1", nil, true, nil), 200, true)
	spec.check(t, "list refunds", g.send("GET", "/v1/payments/"+paidID+"/refunds", nil, true, nil), 200, true)
	list := spec.check(t, "list payments", g.send("GET", "/v1/payments?limit=2", nil, true, nil), 200, true)
	if data, _ := list["data"].([]any); len(data) != 2 || list["has_more"] != true {
		t.Errorf("list payments: want 2 and has_more, got %v", list)
	}
	spec.check(t, "list payments filtered", g.send("GET", "/v1/payments?status=succeeded&created_gte=2000-01-01T00:00:00Z", nil, true, nil), 200, true)
	e = errorOf(spec.check(t, "400 list limit", g.send("GET", "/v1/payments?limit=101", nil, true, nil), 400, false))
	if e["code"] != "invalid_request" || e["param"] != "limit" {
		t.Errorf("400 list limit: %v", e)
	}
	e = errorOf(spec.check(t, "refund conflict", g.send("POST", "/v1/payments/"+paidID+"/refunds", []byte(`{"out_refund_no":"oa-rf-1","amount":300}`), true, nil), 409, true))
	if e["code"] != "out_refund_no_conflict" {
		t.Errorf("refund conflict: %v", e)
	}
	e = errorOf(spec.check(t, "refund too much", g.send("POST", "/v1/payments/"+paidID+"/refunds", []byte(`{"out_refund_no":"oa-rf-2","amount":601}`), true, nil), 422, true))
	if e["code"] != "refund_exceeds_payment" {
		t.Errorf("refund too much: %v", e)
	}

	// 400 naming the field in param; a malformed body names none.
	for _, tc := range []struct{ body, param string }{
		{`{"out_trade_no":"oa-x","amount":"1999","currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n"}`, "amount"},
		{`{"out_trade_no":"oa-x","amount":1,"currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n","payer":{"openid":7}}`, "payer.openid"},
		{`{"out_trade_no":"oa-x","amount":1,"currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n","metadata":{"cart":1}}`, "metadata.cart"},
		{`{"out_trade_no":"oa-x","amount":1,"currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n","metadata":[]}`, "metadata"},
		{`{"out_trade_no":"oa-x","amount":1,`, ""},
	} {
		e := errorOf(spec.check(t, "400 "+tc.param, g.send("POST", "/v1/payments", []byte(tc.body), true, nil), 400, false))
		if p, _ := e["param"].(string); e["code"] != "invalid_request" || p != tc.param {
			t.Errorf("400 for %s: %v, want param %q", tc.body, e, tc.param)
		}
	}
	e = errorOf(spec.check(t, "400 query", g.send("GET", "/v1/payments?out_trade_no=a%20b", nil, true, nil), 400, false))
	if e["param"] != "out_trade_no" {
		t.Errorf("400 for a bad query parameter: %v", e)
	}

	e = errorOf(spec.check(t, "400 header twice", g.send("GET", "/v1/payments/"+id, nil, true, func(r *http.Request) {
		r.Header.Add("X-Paygate-Nonce", "another-nonce-0123456789")
	}), 400, false))
	if p, _ := e["param"].(string); !strings.EqualFold(p, "X-Paygate-Nonce") {
		t.Errorf("400 for a header sent twice: %v", e)
	}

	// 401, 403, 404, 405, 409, 413.
	e = errorOf(spec.check(t, "401 missing", g.send("GET", "/v1/payments/"+id, nil, false, nil), 401, false))
	if e["code"] != "missing_auth" {
		t.Errorf("401: %v", e)
	}
	e = errorOf(spec.check(t, "401 signature", g.send("GET", "/v1/payments/"+id, nil, true, func(r *http.Request) {
		r.Header.Set("X-Paygate-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	}), 401, false))
	if e["code"] != "bad_signature" {
		t.Errorf("401: %v", e)
	}
	e = errorOf(spec.check(t, "403", g.send("POST", "/v1/payments", create("oa-big", 5000001, "qr"), true, nil), 403, true))
	if e["code"] != "amount_over_limit" {
		t.Errorf("403: %v", e)
	}
	spec.check(t, "404", g.send("GET", "/v1/payments/pay_000000000000000000000000", nil, true, nil), 404, true)
	e = errorOf(spec.check(t, "409 out_trade_no", g.send("POST", "/v1/payments", create("oa-1", 2000, "wechat_native"), true, nil), 409, true))
	if e["code"] != "out_trade_no_conflict" {
		t.Errorf("409: %v", e)
	}
	big := []byte(`{"subject":"` + strings.Repeat("a", 70000) + `"}`)
	spec.check(t, "413", g.send("POST", "/v1/payments", big, true, nil), 413, false)

	// 405: no operation describes DELETE, so its body is checked against the
	// document's MethodNotAllowed response.
	x = g.send("DELETE", "/v1/payments/"+id, nil, true, nil)
	if x.resp.Status != 405 || x.resp.Header.Get("Allow") == "" || x.resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("405: %d %v %s", x.resp.Status, x.resp.Header, x.resp.Body)
	}
	if ok, errs := schema_validation.NewSchemaValidator().ValidateSchemaBytes(spec.errorSch, x.resp.Body); !ok {
		t.Errorf("405 body does not match docs/openapi.yaml: %v: %s", errs, x.resp.Body)
	}

	// The validation is not vacuous: a real response with a field dropped,
	// one added or one retyped is refused.
	real := g.send("GET", "/v1/payments/"+paidID, nil, true, nil)
	for name, edit := range map[string]func(map[string]any){
		"dropped status": func(m map[string]any) { delete(m, "status") },
		"added field":    func(m map[string]any) { m["amount_fen"] = 1 },
		"amount string":  func(m map[string]any) { m["amount"] = "1000" },
		"unknown status": func(m map[string]any) { m["status"] = "paid" },
	} {
		var m map[string]any
		json.Unmarshal(real.resp.Body, &m)
		edit(m)
		drifted := real
		drifted.resp.Body, _ = json.Marshal(m)
		real.req.Body = io.NopCloser(bytes.NewReader(nil))
		if ok, _ := spec.v.ValidateHttpResponse(real.req, drifted.httpResponse()); ok {
			t.Errorf("a response with %s passes docs/openapi.yaml", name)
		}
	}
}
