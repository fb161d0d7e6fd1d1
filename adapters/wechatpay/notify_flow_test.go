package wechatpay_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/adapters/wechatpay"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

func TestNotifyPayment(t *testing.T) {
	t.Parallel()
	for _, m := range []payment.Method{payment.MethodQR, payment.MethodWechatJSAPI} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{})
			req := h.order(m, 2500)
			if _, err := h.client.Create(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if err := h.sim.Pay(req.OrderNo); err != nil {
				t.Fatal(err)
			}
			r := h.nextCallback()
			if r.err != nil {
				t.Fatal(r.err)
			}
			n := r.n
			if n.Kind != adapters.NotifyPayment || n.OrderNo != req.OrderNo || n.Status != adapters.OrderPaid ||
				n.Amount != 2500 || n.Currency != "CNY" || n.Account != mchID || n.ChannelTradeNo == "" ||
				!n.PaidAt.Equal(h.simClock.Now()) {
				t.Fatalf("notification = %+v", n)
			}
			st, err := h.client.Query(context.Background(), &adapters.QueryRequest{OrderNo: req.OrderNo})
			if err != nil || st.ChannelTradeNo != n.ChannelTradeNo {
				t.Fatalf("query = %+v, %v; want transaction_id %q", st, err, n.ChannelTradeNo)
			}
			if got := r.cb.Header.Get("Wechatpay-Signature-Type"); got != "WECHATPAY2-SHA256-RSA2048" {
				t.Errorf("Wechatpay-Signature-Type = %q", got)
			}
			// The envelope is WeChat's, with an encrypted resource.
			var env struct {
				EventType    string `json:"event_type"`
				ResourceType string `json:"resource_type"`
				Resource     struct {
					Algorithm string `json:"algorithm"`
					Nonce     string `json:"nonce"`
				} `json:"resource"`
			}
			if err := json.Unmarshal(r.cb.Body, &env); err != nil || env.EventType != "TRANSACTION.SUCCESS" ||
				env.ResourceType != "encrypt-resource" || env.Resource.Algorithm != "AEAD_AES_256_GCM" ||
				len(env.Resource.Nonce) != 12 || bytes.Contains(r.cb.Body, []byte(req.OrderNo)) {
				t.Fatalf("envelope %s: %v", r.cb.Body, err)
			}
		})
	}
}

// genuine returns a real payment notification from the simulator, as received.
func genuine(t *testing.T, h *harness) *adapters.Callback {
	t.Helper()
	req := h.order(payment.MethodQR, 100)
	if _, err := h.client.Create(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	r := h.nextCallback()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.cb
}

func resign(t *testing.T, key *rsa.PrivateKey, h http.Header, body []byte) {
	t.Helper()
	signAsPlatform(key, h, body)
}

func TestNotifyRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	cb := genuine(t, h)
	platformKey := loadPrivateKey(t, "wechat-platform.pem")

	tests := []struct {
		name   string
		edit   func(t *testing.T, cb *adapters.Callback)
		client func() *wechatpay.Client // nil: h.client
		code   string
	}{
		{"tampered body", func(t *testing.T, cb *adapters.Callback) {
			cb.Body = bytes.Replace(cb.Body, []byte("支付成功"), []byte("支付失败"), 1)
		}, nil, "bad_signature"},
		{"signed with another key", func(t *testing.T, cb *adapters.Callback) {
			resign(t, wrongKey(t), cb.Header, cb.Body)
		}, nil, "bad_signature"},
		{"SIGNTEST probe", func(t *testing.T, cb *adapters.Callback) {
			cb.Header.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+cb.Header.Get("Wechatpay-Signature"))
		}, nil, "bad_signature"},
		{"unknown serial", func(t *testing.T, cb *adapters.Callback) {
			cb.Header.Set("Wechatpay-Serial", "PUB_KEY_ID_OTHER")
		}, nil, "bad_signature"},
		{"no signature", func(t *testing.T, cb *adapters.Callback) {
			cb.Header.Del("Wechatpay-Signature")
		}, nil, "bad_signature"},
		{"stale: gateway clock 5 minutes ahead", nil, func() *wechatpay.Client {
			return h.other(func(c *wechatpay.Config) {
				c.Now = func() time.Time { return h.simClock.Now().Add(5 * time.Minute) }
			})
		}, "bad_signature"},
		{"another mchid", nil, func() *wechatpay.Client {
			return h.other(func(c *wechatpay.Config) { c.MchID = "1900000002" })
		}, "account_mismatch"},
		{"another APIv3 key", nil, func() *wechatpay.Client {
			return h.other(func(c *wechatpay.Config) { c.APIv3Key = []byte("ffffffffffffffffffffffffffffffff") })
		}, "decrypt_failed"},
		{"resource swapped for garbage, correctly signed", func(t *testing.T, cb *adapters.Callback) {
			var env map[string]any
			json.Unmarshal(cb.Body, &env)
			env["resource"].(map[string]any)["ciphertext"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 40))
			cb.Body, _ = json.Marshal(env)
			resign(t, platformKey, cb.Header, cb.Body)
		}, nil, "decrypt_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &adapters.Callback{Header: cb.Header.Clone(), Body: bytes.Clone(cb.Body), ContentType: cb.ContentType}
			if tt.edit != nil {
				tt.edit(t, c)
			}
			client := h.client
			if tt.client != nil {
				client = tt.client()
			}
			n, err := client.ParseNotify(context.Background(), c)
			if n != nil {
				t.Fatalf("notification accepted: %+v", n)
			}
			e := wantKind(t, err, adapters.KindBadSignature, tt.code)
			if ack := client.Ack(e); ack.Status != http.StatusBadRequest || !bytes.Contains(ack.Body, []byte(`"FAIL"`)) {
				t.Errorf("ack = %d %s", ack.Status, ack.Body)
			}
		})
	}
	// The untouched original still parses: the table's failures are the edits'.
	if _, err := h.client.ParseNotify(context.Background(), cb); err != nil {
		t.Fatalf("genuine notification: %v", err)
	}
}

// notificationFor builds a signed notification around plaintext, as WeChat
// would, with the sandbox platform key and the harness APIv3 key.
func notificationFor(key *rsa.PrivateKey, eventType string, plaintext []byte, now time.Time) *adapters.Callback {
	block, _ := aes.NewCipher([]byte(apiv3Key))
	gcm, _ := cipher.NewGCM(block)
	nonce := "fuzznonce123"
	ct := gcm.Seal(nil, []byte(nonce), plaintext, []byte("transaction"))
	body, _ := json.Marshal(map[string]any{
		"id": "EV-fuzz", "create_time": "2015-05-20T13:29:35+08:00", "resource_type": "encrypt-resource",
		"event_type": eventType, "summary": "fuzz",
		"resource": map[string]string{"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
			"ciphertext": base64.StdEncoding.EncodeToString(ct), "associated_data": "transaction", "nonce": nonce},
	})
	return signedCallback(key, body, now)
}

func signedCallback(key *rsa.PrivateKey, body []byte, now time.Time) *adapters.Callback {
	ts := strconv.FormatInt(now.Unix(), 10)
	sum := sha256.Sum256([]byte(ts + "\nfuzz\n" + string(body) + "\n"))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	h := http.Header{}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", "fuzz")
	h.Set("Wechatpay-Signature", base64.StdEncoding.EncodeToString(sig))
	h.Set("Wechatpay-Serial", platformSerial)
	return &adapters.Callback{Header: h, Body: body, ContentType: "application/json"}
}

func fuzzClient(f *testing.F) (*wechatpay.Client, *rsa.PrivateKey, time.Time) {
	now := time.Unix(1700000000, 0)
	pk, err := config.ParseRSAPrivateKey(mustRead(f, keysDir+"/wechat-merchant.pem"))
	if err != nil {
		f.Fatal(err)
	}
	platform, err := config.ParseRSAPrivateKey(mustRead(f, keysDir+"/wechat-platform.pem"))
	if err != nil {
		f.Fatal(err)
	}
	c, err := wechatpay.New(wechatpay.Config{
		ID: "wechat-test", BaseURL: "http://127.0.0.1:1", MchID: mchID, AppID: appID, SerialNo: merchantSerial,
		PrivateKey: pk, APIv3Key: []byte(apiv3Key), PlatformSerial: platformSerial, PlatformKey: &platform.PublicKey,
		Now: func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	return c, platform, now
}

// checkNotifyResult holds for every input: either a typed error and no
// notification, or a notification for our account with a known kind.
func checkNotifyResult(t *testing.T, c *wechatpay.Client, n *adapters.Notification, err error) {
	if err != nil {
		if n != nil {
			t.Fatalf("both a notification and an error: %+v, %v", n, err)
		}
		if _, ok := adapters.AsError(err); !ok {
			t.Fatalf("untyped error %v", err)
		}
		if a := c.Ack(err); a.Status < 400 {
			t.Fatalf("failure acked with %d", a.Status)
		}
		return
	}
	if n.Account != mchID || (n.Kind != adapters.NotifyPayment && n.Kind != adapters.NotifyRefund) || n.OrderNo == "" {
		t.Fatalf("accepted notification %+v", n)
	}
}

// FuzzParseNotify feeds arbitrary bodies, correctly signed, to the parser:
// envelope decoding, algorithm and decryption must refuse without panicking.
func FuzzParseNotify(f *testing.F) {
	c, platform, now := fuzzClient(f)
	f.Add([]byte(`{"id":"EV-1","event_type":"TRANSACTION.SUCCESS","resource":{"algorithm":"AEAD_AES_256_GCM","ciphertext":"AAAA","nonce":"abcdefghijkl","associated_data":"transaction"}}`))
	f.Add([]byte(`{"resource":{"algorithm":"AEAD_AES_256_GCM","ciphertext":"","nonce":""}}`))
	f.Add([]byte(`{"resource":{"algorithm":"AEAD_AES_128_GCM"}}`))
	f.Add([]byte(`[]`))
	f.Add(notificationFor(platform, "TRANSACTION.SUCCESS", []byte(`{"mchid":"`+mchID+`","out_trade_no":"T1","trade_state":"SUCCESS","amount":{"total":1}}`), now).Body)
	f.Fuzz(func(t *testing.T, body []byte) {
		cb := signedCallback(platform, body, now)
		n, err := c.ParseNotify(context.Background(), cb)
		checkNotifyResult(t, c, n, err)
		// Any change to a signed body is refused.
		if len(body) > 0 {
			cb.Body = append(bytes.Clone(body), ' ')
			if n, err := c.ParseNotify(context.Background(), cb); err == nil {
				t.Fatalf("modified body accepted: %+v", n)
			}
		}
	})
}

// FuzzNotifyPlaintext feeds arbitrary decrypted resources through a
// genuinely signed and encrypted notification: the transaction and refund
// decoders must refuse or decode without panicking.
func FuzzNotifyPlaintext(f *testing.F) {
	c, platform, now := fuzzClient(f)
	f.Add("TRANSACTION.SUCCESS", []byte(`{"mchid":"`+mchID+`","out_trade_no":"T1","transaction_id":"4200","trade_state":"SUCCESS","success_time":"2018-06-08T10:34:56+08:00","amount":{"total":100,"currency":"CNY"}}`))
	f.Add("REFUND.SUCCESS", []byte(`{"mchid":"`+mchID+`","out_trade_no":"AbCdEfGhIjKlMnOpQrStUvWx","out_refund_no":"AbCdEfGhIjKlMnOpQrStUvWx123456","refund_status":"SUCCESS","amount":{"refund":1}}`))
	f.Add("REFUND.ABNORMAL", []byte(`{"mchid":"`+mchID+`","out_refund_no":"AbCdEfGhIjKlMnOpQrStUvWx123456","refund_status":"ABNORMAL"}`))
	f.Add("TRANSACTION.SUCCESS", []byte(`{"mchid":"other","out_trade_no":"T1"}`))
	f.Add("WHATEVER", []byte(`{}`))
	f.Add("TRANSACTION.SUCCESS", []byte(`{"amount":{"total":"1"}}`))
	f.Fuzz(func(t *testing.T, eventType string, plaintext []byte) {
		cb := notificationFor(platform, eventType, plaintext, now)
		n, err := c.ParseNotify(context.Background(), cb)
		checkNotifyResult(t, c, n, err)
	})
}

func mustRead(f *testing.F, path string) []byte {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
