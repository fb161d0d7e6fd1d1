package client

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestMessageIsTheContractsCanonicalForm(t *testing.T) {
	got := string(Message("POST", "/v1/payments?x=1", 1700000000, "nonce-0123456789ab", []byte(`{"a":1}`)))
	want := "POST\n/v1/payments?x=1\n1700000000\nnonce-0123456789ab\n{\"a\":1}\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := string(Message("GET", "/v1/refunds/r", 1, "n", nil)); got != "GET\n/v1/refunds/r\n1\nn\n\n" {
		t.Fatalf("empty body: %q", got)
	}
}

// The HMAC signature of a fixed message, computed independently with
// `printf 'GET\n/v1/payments/pay_x\n1700000000\nabcdefghijklmnop\n\n' |
//
//	openssl dgst -sha256 -hmac sandbox-demo-secret-0123456789abcdef -binary | base64`.
func TestHMACVector(t *testing.T) {
	sig, err := HMAC("demo", []byte("sandbox-demo-secret-0123456789abcdef")).Sign("GET", "/v1/payments/pay_x", 1700000000, "abcdefghijklmnop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sig != hmacVector {
		t.Fatalf("got %s, want %s", sig, hmacVector)
	}
}

func TestSetHeadersVerifyForEveryKeyType(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	epub, epriv, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		s      *Signer
		verify func(msg, sig []byte) bool
	}{
		{"rsa", RSA("m", rk), func(msg, sig []byte) bool {
			d := sha256.Sum256(msg)
			return rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, d[:], sig) == nil
		}},
		{"ed25519", Ed25519("m", epriv), func(msg, sig []byte) bool { return ed25519.Verify(epub, msg, sig) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(`{"amount":1}`)
			req, _ := http.NewRequest(http.MethodPost, "http://gw/v1/payments?q=a%20b", strings.NewReader(string(body)))
			if err := tc.s.SetHeaders(req, body); err != nil {
				t.Fatal(err)
			}
			ts, _ := strconv.ParseInt(req.Header.Get("X-Paygate-Timestamp"), 10, 64)
			nonce := req.Header.Get("X-Paygate-Nonce")
			sig, err := base64.StdEncoding.DecodeString(req.Header.Get("X-Paygate-Signature"))
			if err != nil || req.Header.Get("X-Paygate-Merchant") != "m" || len(nonce) < 16 {
				t.Fatalf("headers: %v %v", req.Header, err)
			}
			if !tc.verify(Message("POST", "/v1/payments?q=a%20b", ts, nonce, body), sig) {
				t.Fatal("signature does not verify over the canonical message")
			}
		})
	}
}

const hmacVector = "aurBIBuJRU13bNmQ1kUAOxMvvaBjFOsdkV7tUKPum9w="

// The append forms give the same signature as Sign and, for hmac-sha256,
// allocate nothing once the buffers have room (the load generator's path).
func TestAppendSignatureMatchesAndDoesNotAllocate(t *testing.T) {
	s := HMAC("demo", []byte("sandbox-demo-secret-0123456789abcdef"))
	msg := make([]byte, 0, 256)
	sig := make([]byte, 0, 64)
	var err error
	build := func() {
		msg = AppendMessage(msg[:0], []byte("GET"), []byte("/v1/payments/pay_x"), 1700000000, []byte("abcdefghijklmnop"), nil)
		sig, err = s.AppendSignature(sig[:0], msg)
	}
	build()
	if err != nil || string(sig) != hmacVector {
		t.Fatalf("got %s (%v), want %s", sig, err, hmacVector)
	}
	if n := testing.AllocsPerRun(200, build); n != 0 && !raceEnabled {
		t.Fatalf("%.1f allocations per signature", n)
	}
}
