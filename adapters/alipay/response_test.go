package alipay

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestExtractResponse(t *testing.T) {
	t.Parallel()
	const m = "alipay.trade.query"
	tests := []struct {
		name      string
		body      string
		wantKey   string
		wantValue string
		wantSign  string
		wantErr   bool
	}{
		{
			name:      "plain",
			body:      `{"alipay_trade_query_response":{"code":"10000","msg":"Success"},"sign":"c2ln"}`,
			wantKey:   "alipay_trade_query_response",
			wantValue: `{"code":"10000","msg":"Success"}`,
			wantSign:  "c2ln",
		},
		{
			name:      "braces and escaped quotes inside strings",
			body:      `{"alipay_trade_query_response":{"code":"10000","subject":"a}\"{b\\\"}}","x":["}",{"y":"{"}]},"sign":"c2ln"}`,
			wantKey:   "alipay_trade_query_response",
			wantValue: `{"code":"10000","subject":"a}\"{b\\\"}}","x":["}",{"y":"{"}]}`,
			wantSign:  "c2ln",
		},
		{
			name:      "sign first, whitespace kept inside the value",
			body:      " {\n \"sign\" : \"c2ln\" ,\n \"alipay_trade_query_response\" : { \"code\" : \"10000\" }\n}\n",
			wantKey:   "alipay_trade_query_response",
			wantValue: `{ "code" : "10000" }`,
			wantSign:  "c2ln",
		},
		{
			name:      "escaped member name",
			body:      `{"alipay_trade_query\u005fresponse":{"code":"10000"},"sign":"c2ln"}`,
			wantKey:   "alipay_trade_query_response",
			wantValue: `{"code":"10000"}`,
			wantSign:  "c2ln",
		},
		{
			name:      "cert mode member ignored",
			body:      `{"alipay_trade_query_response":{"code":"10000"},"alipay_cert_sn":"abc","sign":"c2ln"}`,
			wantKey:   "alipay_trade_query_response",
			wantValue: `{"code":"10000"}`,
			wantSign:  "c2ln",
		},
		{
			name:      "error_response without sign",
			body:      `{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}}`,
			wantKey:   "error_response",
			wantValue: `{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}`,
		},
		{
			name:      "method answer preferred over error_response",
			body:      `{"error_response":{"code":"1"},"alipay_trade_query_response":{"code":"10000"}}`,
			wantKey:   "alipay_trade_query_response",
			wantValue: `{"code":"10000"}`,
		},
		{name: "another method's answer", body: `{"alipay_trade_close_response":{"code":"10000"},"sign":"c2ln"}`, wantErr: true},
		{name: "duplicate answer member", body: `{"alipay_trade_query_response":{"code":"40004"},"alipay_trade_query_response":{"code":"10000"},"sign":"c2ln"}`, wantErr: true},
		{name: "duplicate sign", body: `{"alipay_trade_query_response":{"code":"10000"},"sign":"a","sign":"b"}`, wantErr: true},
		{name: "answer not an object", body: `{"alipay_trade_query_response":"{}","sign":"c2ln"}`, wantErr: true},
		{name: "sign not a string", body: `{"alipay_trade_query_response":{},"sign":1}`, wantErr: true},
		{name: "not JSON", body: `<html>busy</html>`, wantErr: true},
		{name: "truncated", body: `{"alipay_trade_query_response":{"code":"10000"`, wantErr: true},
		{name: "array", body: `[{"alipay_trade_query_response":{}}]`, wantErr: true},
		{name: "trailing garbage", body: `{"alipay_trade_query_response":{}} x`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := extractResponse([]byte(tt.body), m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r.Key != tt.wantKey || string(r.Value) != tt.wantValue || r.Sign != tt.wantSign {
				t.Fatalf("got key %q value %q sign %q", r.Key, r.Value, r.Sign)
			}
		})
	}
}

// FuzzExtractResponse checks the scanner against encoding/json: for any
// input it accepts, every member value it returns is the exact raw bytes
// encoding/json finds for that member, and a sub-slice of the input.
func FuzzExtractResponse(f *testing.F) {
	for _, s := range []string{
		`{"alipay_trade_query_response":{"code":"10000","msg":"Success"},"sign":"c2ln"}`,
		`{"alipay_trade_query_response":{"code":"10000","subject":"a}\"{b\\\"}}"},"sign":"c2ln"}`,
		`{"sign":"x","alipay_trade_query_response":{"a":[1,2,{"b":null}],"c":true}}`,
		`{"error_response":{"code":"40002"}}`,
		`{"alipay_trade_query_response":{"k":"\u007d\u0022"}, "sign" : "s"}`,
		`{}`, `[]`, `"x"`, `{"a":1,"a":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := topLevelMembers(body)
		if err != nil {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("scanner accepted what encoding/json refuses: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("scanner found %d members, encoding/json %d", len(got), len(want))
		}
		for k, v := range got {
			if !bytes.Equal(v, want[k]) {
				t.Fatalf("member %q: scanner %q, encoding/json %q", k, v, want[k])
			}
			if !bytes.Contains(body, v) {
				t.Fatalf("member %q value is not a sub-slice of the input", k)
			}
		}
		if r, err := extractResponse(body, "alipay.trade.query"); err == nil && !json.Valid(r.Value) {
			t.Fatalf("extracted value %q is not valid JSON", r.Value)
		}
	})
}
