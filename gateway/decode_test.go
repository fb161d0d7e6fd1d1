package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

const decodeValid = `"out_trade_no":"v-1","amount":100,"currency":"CNY","method":"qr","subject":"S","notify_url":"https://m.example/n"`

func TestDecodeStrictErrors(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	tests := []struct {
		name string
		body string
		want string // the whole message
	}{
		{"empty", " \n", "body: a JSON object is required"},
		{"array", `[]`, "body: must be an object"},
		{"null", `null`, "body: must be an object"},
		{"string", `"x"`, "body: must be an object"},
		{"truncated", `{"amount":`, "body: malformed JSON: unexpected end"},
		{"bad literal", `{"amount":x}`, "body: malformed JSON at byte 11"},
		{"trailing comma", `{"amount":1,}`, "body: malformed JSON at byte 13"},
		{"leading comma", `{,"amount":1}`, "body: malformed JSON at byte 2"},
		{"missing colon", `{"amount" 1}`, "body: malformed JSON at byte 11"},
		{"bad number", `{"amount":01}`, "body: malformed JSON at byte 12"},
		{"bad exponent", `{"amount":1e}`, "body: malformed JSON at byte 13"},
		{"bad escape", `{"subject":"\x"}`, "body: malformed JSON at byte 14"},
		{"short unicode escape", `{"subject":"\u12"}`, "body: malformed JSON at byte 17"},
		{"control character", "{\"subject\":\"a\nb\"}", "body: malformed JSON at byte 14"},
		{"nullx", `{"payer":nullx}`, "body: malformed JSON at byte 14"},
		{"trailing data", `{` + decodeValid + `} {}`, "body: unexpected data after the JSON object"},
		{"trailing bracket", `{` + decodeValid + `}]`, "body: unexpected data after the JSON object"},
		// A syntax error is reported whatever the main pass met first.
		{"unknown then truncated", `{"colour":1,"amount":`, "body: malformed JSON: unexpected end"},
		{"duplicate then malformed", `{"amount":1,"amount":2,}`, "body: malformed JSON at byte 24"},
		{"unknown with deep value", `{"colour":` + deep + `}`, "body: malformed JSON: nested more than 10000 levels"},
		{"unknown with nested value", `{"colour":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "colour: unknown field"},

		{"duplicate top-level", `{"amount":100,"amount":200}`, "amount: duplicate field"},
		{"duplicate escaped", `{"amount":100,"am\u006fu\u006et":200}`, "amount: duplicate field"},
		{"duplicate payer", `{"payer":null,"payer":{}}`, "payer: duplicate field"},
		{"duplicate payer member", `{"payer":{"client_ip":"203.0.113.7","client_ip":"10.0.0.1"}}`, "payer.client_ip: duplicate field"},
		{"duplicate metadata key", `{"metadata":{"k":"1","k":"1"}}`, "metadata.k: duplicate field"},
		{"duplicate metadata key escaped", `{"metadata":{"k":"1","\u006b":"2"}}`, "metadata.k: duplicate field"},
		{"case variant", `{"AMOUNT":100}`, "AMOUNT: unknown field"},
		{"unknown", `{"colour":"red"}`, "colour: unknown field"},
		{"unknown payer member", `{"payer":{"colour":"red"}}`, "payer.colour: unknown field"},
		{"unknown long key", `{"` + strings.Repeat("é", 40) + `":1}`, strings.Repeat("é", 32) + "...: unknown field"},
		{"amount string", `{"amount":"100"}`, "amount: must be a number"},
		{"amount null", `{"amount":null}`, "amount: must be a number"},
		{"amount object", `{"amount":{}}`, "amount: must be a number"},
		{"expire_in bool", `{"expire_in":true}`, "expire_in: must be a number"},
		{"subject number", `{"subject":1}`, "subject: must be a string"},
		{"payer array", `{"payer":[]}`, "payer: must be an object"},
		{"payer.openid number", `{"payer":{"openid":1}}`, "payer.openid: must be a string"},
		{"payer.client_ip object", `{"payer":{"client_ip":{}}}`, "payer.client_ip: must be a string"},
		{"metadata string", `{"metadata":"a"}`, "metadata: must be an object"},
		{"metadata number value", `{"metadata":{"a":1}}`, "metadata.a: must be a string"},
		{"metadata null value", `{"metadata":{"a":null}}`, "metadata.a: must be a string"},
		{"metadata too many keys", `{"metadata":{` + metadataKeys(21) + `}}`, "metadata: at most 20 keys"},
		{"invalid UTF-8", "{\"subject\":\"\xff\"}", "subject: must be valid UTF-8"},
		{"invalid UTF-8 around escape", "{\"subject\":\"\xc3\\u00a4\"}", "subject: must be valid UTF-8"},
		{"unpaired high surrogate", `{"subject":"\ud83d"}`, "subject: must be valid UTF-8"},
		{"unpaired low surrogate", `{"subject":"\ude00"}`, "subject: must be valid UTF-8"},
		{"high surrogate then escape", `{"subject":"\ud83d\n"}`, "subject: must be valid UTF-8"},
		{"invalid UTF-8 key", "{\"a\xff\":1}", "body: field names must be valid UTF-8"},
		{"invalid UTF-8 payer key", "{\"payer\":{\"\xff\":1}}", "payer: field names must be valid UTF-8"},
		{"invalid UTF-8 metadata key", "{\"metadata\":{\"\xff\":\"1\"}}", "metadata: field names must be valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var req createPaymentRequest
			err := decodeStrict([]byte(tt.body), &req)
			e, ok := err.(*Error)
			if !ok || e.Code != codeInvalidRequest || e.Status != 400 || e.Message != tt.want {
				t.Fatalf("decodeStrict(%.80q) = %v, want %q", tt.body, err, tt.want)
			}
		})
	}
}

func metadataKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + string(rune('a'+i)) + `":"v"`)
	}
	return b.String()
}

func TestDecodeStrictValues(t *testing.T) {
	t.Parallel()
	body := []byte(" {\"out_trade_no\":\"o-1\",\"amount\":1999,\"currency\":\"CNY\",\"method\":\"qr\"," +
		`"subject":"\u5496\u5561 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t é",` +
		`"notify_url":"https://m.example/n","expire_in":null,"payer":{"openid":null,"client_ip":"::1"},` +
		`"metadata":{"K":"1","k":"2","":"3","a.b":"4"}} ` + "\n")
	var got createPaymentRequest
	if err := decodeStrict(body, &got); err != nil {
		t.Fatal(err)
	}
	want := createPaymentRequest{
		OutTradeNo: "o-1", Amount: "1999", Currency: "CNY", Method: "qr",
		Subject:   "咖啡 😀 \"q\" \\ / \b\f\n\r\t é",
		NotifyURL: "https://m.example/n",
		Payer:     &payerInfo{ClientIP: "::1"},
		Metadata:  map[string]string{"K": "1", "k": "2", "": "3", "a.b": "4"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	var empty createPaymentRequest
	if err := decodeStrict([]byte(`{"expire_in":-1.5e+3,"payer":{},"metadata":{}}`), &empty); err != nil {
		t.Fatal(err)
	}
	if empty.ExpireIn == nil || *empty.ExpireIn != "-1.5e+3" || empty.Payer == nil || *empty.Payer != (payerInfo{}) || empty.Metadata == nil || len(empty.Metadata) != 0 {
		t.Fatalf("got %+v", empty)
	}
}

func TestDecodeStrictRefund(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string // "" for success
	}{
		{"valid", `{"out_refund_no":"rf-1","amount":500,"reason":"damaged"}`, ""},
		{"duplicate amount", `{"out_refund_no":"rf-1","amount":500,"amount":5}`, "amount: duplicate field"},
		{"duplicate out_refund_no", `{"out_refund_no":"rf-1","out_refund_no":"rf-2","amount":5}`, "out_refund_no: duplicate field"},
		{"case variant", `{"out_refund_no":"rf-1","amount":500,"Amount":5}`, "Amount: unknown field"},
		{"unknown", `{"out_refund_no":"rf-1","amount":500,"payer":{}}`, "payer: unknown field"},
		{"amount string", `{"out_refund_no":"rf-1","amount":"500"}`, "amount: must be a number"},
		{"reason invalid UTF-8", "{\"reason\":\"\xe4\xb8\"}", "reason: must be valid UTF-8"},
		{"truncated", `{"out_refund_no":"rf-1","amount":500,"amount"`, "body: malformed JSON: unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var req createRefundRequest
			err := decodeStrict([]byte(tt.body), &req)
			if tt.want == "" {
				if err != nil || req != (createRefundRequest{OutRefundNo: "rf-1", Amount: "500", Reason: "damaged"}) {
					t.Fatalf("got %+v, %v", req, err)
				}
				return
			}
			if e, ok := err.(*Error); !ok || e.Code != codeInvalidRequest || e.Message != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValidateNotifyURLMessages(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "ftp://m.example/", "/n", "http://2130706433/", "http://0x7f000001/", "http://127.1/", "https://m.example/" + strings.Repeat("a", 250)} {
		r := createPaymentRequest{OutTradeNo: "o", Amount: "1", Currency: "CNY", Method: "qr", Subject: "s", NotifyURL: u}
		err := r.validate(nil)
		e, ok := err.(*Error)
		if !ok || e.Code != codeInvalidRequest || !strings.HasPrefix(e.Message, "notify_url: ") || strings.Contains(e.Message, "notify:") {
			t.Errorf("notify_url %q: %v", u, err)
		}
	}
	r := createPaymentRequest{OutTradeNo: "o", Amount: "1", Currency: "CNY", Method: "qr", Subject: "s", NotifyURL: "http://127.0.0.1:8080/n"}
	if err := r.validate(nil); err != nil {
		t.Fatalf("a canonical IP literal is decided at dial time, not here: %v", err)
	}
}

// TestStrictOptionsAlone records why decodeStrict is more than
// json.Unmarshal with strictJSON into plain Go types: the library's options
// let these bodies through, and decodeStrict must not.
func TestStrictOptionsAlone(t *testing.T) {
	t.Parallel()
	type plain struct {
		Amount   string            `json:"amount"`
		Metadata map[string]string `json:"metadata"`
	}
	for _, tc := range []struct{ body, want string }{
		{`{"metadata":{"a":null}}`, "metadata.a: must be a string"}, // becomes "a":""
		{`null`, "body: must be an object"},                         // becomes {}
		{`{"amount":"100"}`, "amount: must be a number"},            // a string field takes it
	} {
		var p plain
		if err := jsonv2.Unmarshal([]byte(tc.body), &p, strictJSON); err != nil {
			t.Errorf("strict options alone refuse %s (%v): the methods may no longer be needed", tc.body, err)
		}
		var req createPaymentRequest
		if err := decodeStrict([]byte(tc.body), &req); err == nil || err.(*Error).Message != tc.want {
			t.Errorf("decodeStrict(%s) = %v, want %q", tc.body, err, tc.want)
		}
	}
}

// FuzzDecodeDifferential: whatever decodeStrict accepts, encoding/json reads
// the same way (no parser differential can change what is charged), and
// decodeStrict calls a body malformed exactly when encoding/json does.
func FuzzDecodeDifferential(f *testing.F) {
	f.Add([]byte(`{` + decodeValid + `,"expire_in":900,"payer":{"openid":"o-abc","client_ip":"203.0.113.7"},"metadata":{"cart":"42"}}`))
	f.Add([]byte(`{"amount":100,"amount":200}`))
	f.Add([]byte(`{"amount":100,"Amount":200}`))
	f.Add([]byte(`{"subject":"\ud83d\ude00\u00e9\n","payer":{},"metadata":{}}`))
	f.Add([]byte(`{"subject":"\ud83d"}`))
	f.Add([]byte("{\"subject\":\"\xff\"}"))
	f.Add([]byte(`{"out_refund_no":"rf-1","amount":500,"reason":"r"}`))
	f.Add([]byte(`{"colour":[{"a":1,"a":2}],"amount":`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var pay createPaymentRequest
		perr := decodeStrict(body, &pay)
		var rf createRefundRequest
		rerr := decodeStrict(body, &rf)
		for _, err := range []error{perr, rerr} {
			if err == nil {
				continue
			}
			if e, ok := err.(*Error); !ok || e.Code != codeInvalidRequest || !strings.Contains(e.Message, ": ") {
				t.Fatalf("unexpected error %v", err)
			}
		}

		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if len(trimmed) > 0 && trimmed[0] == '{' && bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) < maxDepth/2 {
			var raw json.RawMessage
			stdMalformed := json.NewDecoder(bytes.NewReader(body)).Decode(&raw) != nil
			for _, err := range []error{perr, rerr} {
				malformed := err != nil && strings.HasPrefix(err.(*Error).Message, "body: malformed JSON")
				if malformed != stdMalformed {
					t.Fatalf("malformed: decodeStrict %v, encoding/json %v", err, stdMalformed)
				}
			}
		}

		if perr == nil {
			var std struct {
				OutTradeNo string            `json:"out_trade_no"`
				Amount     json.Number       `json:"amount"`
				Currency   string            `json:"currency"`
				Method     string            `json:"method"`
				Subject    string            `json:"subject"`
				NotifyURL  string            `json:"notify_url"`
				ExpireIn   *json.Number      `json:"expire_in"`
				Payer      *payerInfo        `json:"payer"`
				Metadata   map[string]string `json:"metadata"`
			}
			stdDecode(t, body, &std)
			if pay.OutTradeNo != std.OutTradeNo || string(pay.Amount) != string(std.Amount) || pay.Currency != std.Currency ||
				pay.Method != std.Method || pay.Subject != std.Subject || pay.NotifyURL != std.NotifyURL ||
				(pay.ExpireIn == nil) != (std.ExpireIn == nil) || pay.ExpireIn != nil && string(*pay.ExpireIn) != string(*std.ExpireIn) ||
				!reflect.DeepEqual(pay.Payer, std.Payer) || !reflect.DeepEqual(map[string]string(pay.Metadata), std.Metadata) {
				t.Fatalf("parser differential:\n ours %+v\n std  %+v", pay, std)
			}
		}
		if rerr == nil {
			var std struct {
				OutRefundNo string      `json:"out_refund_no"`
				Amount      json.Number `json:"amount"`
				Reason      string      `json:"reason"`
			}
			stdDecode(t, body, &std)
			if rf.OutRefundNo != std.OutRefundNo || string(rf.Amount) != string(std.Amount) || rf.Reason != std.Reason {
				t.Fatalf("parser differential:\n ours %+v\n std  %+v", rf, std)
			}
		}
	})
}

func stdDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decodeStrict accepted what encoding/json refuses: %v", err)
	}
	if _, err := dec.Token(); err == nil {
		t.Fatal("decodeStrict accepted trailing data")
	}
}

// TestErrorParam: every field-level 400 names its field in param, by the
// path its message starts with; a problem with the body as a whole names none.
func TestErrorParam(t *testing.T) {
	t.Parallel()
	valid := func(extra string) string { return `{` + decodeValid + extra + `}` }
	for _, tc := range []struct{ body, param string }{
		{`{"amount":"1"}`, "amount"},
		{`{"payer":{"openid":1}}`, "payer.openid"},
		{`{"payer":{"colour":1}}`, "payer.colour"},
		{`{"metadata":{"cart":1}}`, "metadata.cart"},
		{`{"metadata":{"k":"1","k":"2"}}`, "metadata.k"},
		{`{"metadata":[]}`, "metadata"},
		{"{\"subject\":\"\xff\"}", "subject"},
		{`{"AMOUNT":1}`, "AMOUNT"},
		{valid(`,"amount":1`), "amount"},
		{`{"out_trade_no":"a b","amount":1}`, "out_trade_no"},
		{`{"out_trade_no":"a","amount":1.5}`, "amount"},
		{`{"out_trade_no":"a","amount":1,"currency":"CNY","method":"wechat_jsapi","subject":"s","notify_url":"http://x/"}`, "payer.openid"},
		{valid(`,"metadata":{"` + strings.Repeat("k", 65) + `":"v"}`), "metadata." + strings.Repeat("k", 64) + "..."},
		{valid(`,"expire_in":59`), "expire_in"},
		{`{"amount":`, ""},
		{`[]`, ""},
		{`{"amount":1} x`, ""},
	} {
		var req createPaymentRequest
		err := decodeStrict([]byte(tc.body), &req)
		if err == nil {
			err = req.validate(nil)
		}
		e, ok := err.(*Error)
		if !ok || e.Status != 400 || e.Param != tc.param {
			t.Errorf("%.60q: got %#v, want param %q", tc.body, err, tc.param)
			continue
		}
		if tc.param != "" && !strings.HasPrefix(e.Message, tc.param+": ") {
			t.Errorf("%.60q: message %q does not start with its param %q", tc.body, e.Message, tc.param)
		}
	}
}
