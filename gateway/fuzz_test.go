package gateway

import (
	"bytes"
	"testing"
)

// FuzzParseAuth: the auth header parser never panics, and whatever it
// accepts is well-formed per CONTRACT §2.
func FuzzParseAuth(f *testing.F) {
	f.Add("demo", "1700000000", "abcdefghijklmnop", "c2lnbmF0dXJl")
	f.Add("", "", "", "")
	f.Add("demo", "-1", "abcdefghijklmnop", "c2lnbmF0dXJl")
	f.Add("demo", "1700000000", "short", "====")
	f.Add("de mo", "99999999999999", "abcdefghijklmnop\n", "c2ln\nbmF0dXJl")
	f.Fuzz(func(t *testing.T, merchant, ts, nonce, sig string) {
		h := map[string][]byte{hdrMerchant: []byte(merchant), hdrTimestamp: []byte(ts), hdrNonce: []byte(nonce), hdrSignature: []byte(sig)}
		a, err := parseAuth(func(name string) []byte { return h[name] })
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != codeMissingAuth || e.Status != 401 {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !isToken([]byte(a.merchant)) || len(a.nonce) < 16 || len(a.nonce) > 64 || !isToken([]byte(a.nonce)) || len(a.signature) == 0 || a.timestamp < 0 {
			t.Fatalf("accepted malformed headers: %+v", a)
		}
	})
}

// FuzzDecodeCreatePayment: decoding and validating any body never panics;
// a body it accepts satisfies every field rule.
func FuzzDecodeCreatePayment(f *testing.F) {
	f.Add([]byte(`{"out_trade_no":"order-1001","amount":1999,"currency":"CNY","method":"qr","subject":"Coffee","notify_url":"https://merchant.example/paygate/notify","expire_in":900,"payer":{"openid":"o-abc","client_ip":"203.0.113.7"},"metadata":{"cart":"42"}}`))
	f.Add([]byte(`{"amount":1e3}`))
	f.Add([]byte(`{"amount":"100"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"out_trade_no":"a","amount":1,"currency":"CNY","method":"wechat_jsapi","subject":"s","notify_url":"http://x/"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createPaymentRequest
		if err := decodeStrict(body, &req); err != nil {
			if e, ok := err.(*Error); !ok || e.Code != codeInvalidRequest {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		if err := req.validate(map[string]bool{"CNY": true}); err != nil {
			if e, ok := err.(*Error); !ok || e.Code != codeInvalidRequest || !bytes.Contains([]byte(e.Message), []byte(":")) {
				t.Fatalf("validation error without a field: %v", err)
			}
			return
		}
		if req.amount < 1 || req.expireIn < 60 || req.expireIn > 86400 || !isRefToken(req.OutTradeNo, 32) || req.Currency != "CNY" {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
	})
}
