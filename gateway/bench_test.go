package gateway

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Benchmarks of the edge's per-request CPU work (no network, no store):
// header parsing, canonical message, signature verification per key type,
// and body decoding + validation. docs/performance.md lists the results.

func benchCtx(b *testing.B, merchant string, sign func([]byte) []byte, body []byte) *fasthttp.RequestCtx {
	b.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/payments")
	ctx.Request.SetBody(body)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := "bench-nonce-0123456789abcdef"
	msg := canonical(nil, []byte("POST"), []byte("/v1/payments"), ts, nonce, body)
	ctx.Request.Header.Set(hdrMerchant, merchant)
	ctx.Request.Header.Set(hdrTimestamp, ts)
	ctx.Request.Header.Set(hdrNonce, nonce)
	ctx.Request.Header.Set(hdrSignature, base64.StdEncoding.EncodeToString(sign(msg)))
	return &ctx
}

var benchBody = []byte(`{"out_trade_no":"order-1001","amount":1999,"currency":"CNY","method":"qr","subject":"Coffee","notify_url":"https://merchant.example/paygate/notify","expire_in":900,"payer":{"openid":"o-abc","client_ip":"203.0.113.7"},"metadata":{"cart":"42"}}`)

func BenchmarkAuthenticate(b *testing.B) {
	secret := []byte("bench-hmac-secret-0123456789abcdef0123")
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name string
		key  keyVerifier
		sign func([]byte) []byte
	}{
		{"hmac-sha256", newHMACKey(secret), func(m []byte) []byte { h := hmac.New(sha256.New, secret); h.Write(m); return h.Sum(nil) }},
		{"rsa-sha256", rsaKey{&rk.PublicKey}, func(m []byte) []byte {
			d := sha256.Sum256(m)
			s, _ := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, d[:])
			return s
		}},
		{"ed25519", ed25519Key{ek.Public().(ed25519.PublicKey)}, func(m []byte) []byte { return ed25519.Sign(ek, m) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			snap := &snapshot{merchants: map[string]*merchant{"m": {id: "m", key: tc.key}}, window: 300 * time.Second}
			s := &Server{}
			ctx := benchCtx(b, "m", tc.sign, benchBody)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.authenticate(ctx, snap, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeCreatePayment(b *testing.B) {
	cur := map[string]bool{"CNY": true}
	b.ReportAllocs()
	for b.Loop() {
		var req createPaymentRequest
		if err := decodeStrict(benchBody, &req); err != nil {
			b.Fatal(err)
		}
		if err := req.validate(cur); err != nil {
			b.Fatal(err)
		}
	}
}
