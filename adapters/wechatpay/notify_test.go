package wechatpay

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
)

// The AES-GCM vectors of PROTOCOLS §A.8.
const (
	vec16Key   = "testAPIv3Key0000"
	vec16Nonce = "wCq51qZv4Yfg"
	vec16AAD   = "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8"
	vec16CT    = "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC"
	vec16Plain = "Hello World"

	vec32Key   = "0123456789abcdef0123456789abcdef"
	vec32Nonce = "abcdefghijkl"
	vec32AAD   = "transaction"
	vec32CT    = "Eu6myr+6GaECeJdOZPZ6BX5lij2Vohspf9pbw6Eor54J6prefQGx4A8pw4JzQ/lkgFh/UIp8nXF6h6aOBw=="
	vec32Plain = `{"out_trade_no":"T1","trade_state":"SUCCESS"}`
)

func TestDecryptAEADVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, nonce, aad, ct, want string
	}{
		{"wechatpay-go 16-byte key", vec16Key, vec16Nonce, vec16AAD, vec16CT, vec16Plain},
		{"32-byte APIv3 key", vec32Key, vec32Nonce, vec32AAD, vec32CT, vec32Plain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decryptAEAD([]byte(tt.key), tt.nonce, tt.aad, tt.ct)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("plaintext = %q, want %q", got, tt.want)
			}
			if _, err := decryptAEAD([]byte(tt.key), tt.nonce, tt.aad+"x", tt.ct); err == nil {
				t.Error("decrypt with other associated data succeeded")
			}
		})
	}
}

// testClient is a Client with a fresh platform key pair; the test plays WeChat.
func testClient(t *testing.T, v3Key string) (*Client, *rsa.PrivateKey) {
	t.Helper()
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	platform, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{
		ID: "wechat-test", BaseURL: "http://127.0.0.1:1", MchID: "1900000001", AppID: "wxapp", SerialNo: "AB12",
		PrivateKey: merchant, APIv3Key: []byte(v3Key), PlatformSerial: "PUB_KEY_ID_TEST", PlatformKey: &platform.PublicKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, platform
}

func signAsWeChat(t *testing.T, key *rsa.PrivateKey, ts int64, nonce string, body []byte) http.Header {
	t.Helper()
	msg := strconv.FormatInt(ts, 10) + "\n" + nonce + "\n" + string(body) + "\n"
	sum := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Wechatpay-Timestamp", strconv.FormatInt(ts, 10))
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Signature", base64.StdEncoding.EncodeToString(sig))
	h.Set("Wechatpay-Serial", "PUB_KEY_ID_TEST")
	h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
	return h
}

// TestNotifyRealPathDecryptsVector runs the 32-byte vector through the real
// notification path: the resource decrypts with the configured APIv3 key and
// decodes as a transaction; the vector's plaintext has no mchid, so the
// parser gets as far as the account check and refuses it there.
func TestNotifyRealPathDecryptsVector(t *testing.T) {
	t.Parallel()
	c, platform := testClient(t, vec32Key)
	got, err := c.openResource(&notifyResource{Algorithm: "AEAD_AES_256_GCM", Nonce: vec32Nonce, AssociatedData: vec32AAD, Ciphertext: vec32CT})
	if err != nil || string(got) != vec32Plain {
		t.Fatalf("openResource = %q, %v", got, err)
	}
	body := []byte(`{"id":"EV-1","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource",` +
		`"event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":"transaction",` +
		`"algorithm":"AEAD_AES_256_GCM","ciphertext":"` + vec32CT + `","associated_data":"` + vec32AAD + `","nonce":"` + vec32Nonce + `"}}`)
	h := signAsWeChat(t, platform, time.Now().Unix(), "n0nce", body)
	_, err = c.ParseNotify(context.Background(), &adapters.Callback{Header: h, Body: body})
	e, ok := adapters.AsError(err)
	if !ok || e.Kind != adapters.KindBadSignature || e.Code != "account_mismatch" {
		t.Fatalf("ParseNotify error = %v, want account_mismatch after decrypting", err)
	}
	// The same envelope with another APIv3 key does not decrypt.
	other, _ := testClient(t, "ffffffffffffffffffffffffffffffff")
	other.cfg.PlatformKey = &platform.PublicKey
	_, err = other.ParseNotify(context.Background(), &adapters.Callback{Header: h, Body: body})
	if e, ok := adapters.AsError(err); !ok || e.Code != "decrypt_failed" {
		t.Fatalf("ParseNotify with another APIv3 key = %v, want decrypt_failed", err)
	}
}

func TestAck(t *testing.T) {
	t.Parallel()
	c, _ := testClient(t, vec32Key)
	tests := []struct {
		name     string
		err      error
		status   int
		wantBody string
	}{
		{"success", nil, http.StatusNoContent, ""},
		{"bad signature", &adapters.Error{Kind: adapters.KindBadSignature}, http.StatusBadRequest, `{"code":"FAIL","message":"失败"}`},
		{"store down", &adapters.Error{Kind: adapters.KindUnavailable}, http.StatusInternalServerError, `{"code":"FAIL","message":"失败"}`},
		{"plain error", context.DeadlineExceeded, http.StatusInternalServerError, `{"code":"FAIL","message":"失败"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := c.Ack(tt.err)
			if a.Status != tt.status || string(a.Body) != tt.wantBody {
				t.Errorf("Ack = %d %q, want %d %q", a.Status, a.Body, tt.status, tt.wantBody)
			}
		})
	}
}
