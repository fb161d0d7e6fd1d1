package bank

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
)

// The ACP 5.1.0 signature vector: sandbox/keys/bank-merchant.pem and a
// fixed consume. The digest and signature were computed once with coreutils
// and OpenSSL, independently of this code:
//
//	printf %s "$S" | sha256sum                                   → digestHex
//	printf %s "$digestHex" | openssl dgst -sha256 -sign KEY | base64 → signature
//
// sandbox/banksim pins the same vector with its own implementation.
var vector = struct {
	fields    map[string]string
	canonical string
	digestHex string
	signature string
}{
	fields: map[string]string{
		"version": "5.1.0", "encoding": "utf-8", "signMethod": "01", "txnType": "01", "txnSubType": "01",
		"bizType": "000201", "channelType": "07", "accessType": "0", "currencyCode": "156",
		"merId": "777290058110048", "orderId": "0123456789ABCDEFGHIJabcd", "txnTime": "20261129150405",
		"txnAmt": "1999", "backUrl": "https://pay.example.com/callbacks/bank-a", "certId": "69026276696",
	},
	canonical: "accessType=0&backUrl=https://pay.example.com/callbacks/bank-a&bizType=000201&certId=69026276696" +
		"&channelType=07&currencyCode=156&encoding=utf-8&merId=777290058110048&orderId=0123456789ABCDEFGHIJabcd" +
		"&signMethod=01&txnAmt=1999&txnSubType=01&txnTime=20261129150405&txnType=01&version=5.1.0",
	digestHex: "8a9e77958ecd0e99c3d9d47f938760e31be4ce3b63b6d8a45fa55c9056d20a69",
	signature: "nhH3T1c3wiEseqk+e6c1Muq9q8JrWv4G/eKjB2aKGIB5pd7645WSQG93jvQ2FuQT6iXeEOdHqLuGueg/LVyRBr0c1cIogcke9qPfeAQUuuIe" +
		"3vpFV+AFM8Jn+H0s7FBPfgoFaeOXOIwe0oU49Wde2miWo5ZiVmXHYNyhwOQ9Puaqi4z2tQxW7Zoj+bRmkusMujAisdyCxOsls25oh4VOR7cUno29f5o4" +
		"WX3SLRFLoKdST7S65eBZyUTUoomZQw8xxrNyOJ4xjmHYXLmo2i4W1ThM4vtePlMTlzsfkqRpx+RNXVd8bQYpJJf1N4abMUm3HU2fp7wxkhZ2VncHo3nvew==",
}

func TestSignatureVector(t *testing.T) {
	key := merchantKey(t)
	fields := map[string]string{"signature": "never part of the signed string"}
	for k, v := range vector.fields {
		fields[k] = v
	}
	if got := signString(fields); got != vector.canonical {
		t.Fatalf("sign string\n got %s\nwant %s", got, vector.canonical)
	}
	if got := digestHex(signString(fields)); got != vector.digestHex {
		t.Fatalf("digest %s, want %s", got, vector.digestHex)
	}
	sig, err := sign(key, fields)
	if err != nil {
		t.Fatal(err)
	}
	if sig != vector.signature {
		t.Fatalf("signature\n got %s\nwant %s", sig, vector.signature)
	}
	fields["signature"] = vector.signature
	if err := verifySignature(&key.PublicKey, fields); err != nil {
		t.Fatalf("pinned signature does not verify: %v", err)
	}
	fields["txnAmt"] = "1998"
	if err := verifySignature(&key.PublicKey, fields); err == nil {
		t.Fatal("signature verifies over a changed txnAmt")
	}
}

func TestNew(t *testing.T) {
	key := merchantKey(t)
	roots := testRoots(t)
	valid := func() Config {
		return Config{ID: "bank-a", BaseURL: "https://gateway.test.95516.com", MerID: merA, CertID: certA,
			PrivateKey: key, Roots: roots, NotifyURL: "https://pay.example.com/callbacks/bank-a"}
	}
	small := genKeyBits(t, 1024)
	tests := []struct {
		name   string
		edit   func(*Config)
		errHas string
	}{
		{"valid", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "channel id"},
		{"relative base url", func(c *Config) { c.BaseURL = "gateway.95516.com" }, "base_url"},
		{"base url with query", func(c *Config) { c.BaseURL = "https://gw.example/?a=1" }, "base_url"},
		{"no mer_id", func(c *Config) { c.MerID = "" }, "mer_id"},
		{"mer_id too long", func(c *Config) { c.MerID = "7772900581100481" }, "mer_id"},
		{"cert_id not decimal", func(c *Config) { c.CertID = "0x1F" }, "cert_id"},
		{"no key", func(c *Config) { c.PrivateKey = nil }, "private key"},
		{"1024-bit key", func(c *Config) { c.PrivateKey = small }, "2048"},
		{"no roots", func(c *Config) { c.Roots = nil }, "root"},
		{"notify url ftp", func(c *Config) { c.NotifyURL = "ftp://x/y" }, "notify url"},
		{"front url relative", func(c *Config) { c.FrontURL = "/done" }, "front url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.edit(&cfg)
			_, err := New(cfg)
			if (err == nil) != (tt.errHas == "") || (err != nil && !strings.Contains(err.Error(), tt.errHas)) {
				t.Fatalf("New: %v, want error containing %q", err, tt.errHas)
			}
		})
	}
}

func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	key := merchantKey(t)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	pkcs8 := string(mustRead(t, merchantFile))
	twoCerts := filepath.Join(dir, "roots.pem")
	rogue := rogueCA(t)
	os.WriteFile(twoCerts, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rogue.cert.Raw}), mustRead(t, rootFile)...), 0o600)
	notCert := filepath.Join(dir, "key-not-cert.pem")
	os.WriteFile(notCert, []byte(pkcs8), 0o600)
	t.Setenv("PAYGATE_TEST_BANK_KEY", pkcs1)

	ch := func(edit func(*config.Credentials)) config.Channel {
		cr := config.Credentials{MerID: merA, CertID: certA, PrivateKeyFile: merchantFile, RootCertFile: rootFile}
		edit(&cr)
		return config.Channel{ID: "bank-a", Type: "bank", BaseURL: "https://gw.example/acp", Credentials: cr}
	}
	tests := []struct {
		name   string
		ch     config.Channel
		errHas string
	}{
		{"PKCS#8 file", ch(func(*config.Credentials) {}), ""},
		{"PKCS#1 inline", ch(func(c *config.Credentials) { c.PrivateKeyFile, c.PrivateKey = "", config.Secret(pkcs1) }), ""},
		{"PKCS#1 from env", ch(func(c *config.Credentials) { c.PrivateKeyFile, c.PrivateKeyEnv = "", "PAYGATE_TEST_BANK_KEY" }), ""},
		{"root and another CA", ch(func(c *config.Credentials) { c.RootCertFile = twoCerts }), ""},
		{"two key forms", ch(func(c *config.Credentials) { c.PrivateKey = config.Secret(pkcs1) }), "only one"},
		{"no key", ch(func(c *config.Credentials) { c.PrivateKeyFile = "" }), "private_key: required"},
		{"garbage key", ch(func(c *config.Credentials) { c.PrivateKeyFile, c.PrivateKey = "", "not a key" }), "no PEM"},
		{"certificate as key", ch(func(c *config.Credentials) { c.PrivateKeyFile = rootFile }), `want "PRIVATE KEY"`},
		{"no root file", ch(func(c *config.Credentials) { c.RootCertFile = "" }), "root_cert_file: required"},
		{"missing root file", ch(func(c *config.Credentials) { c.RootCertFile = dir + "/nope.pem" }), "root_cert_file"},
		{"root file without certificate", ch(func(c *config.Credentials) { c.RootCertFile = notCert }), "no certificate"},
		{"no mer_id", ch(func(c *config.Credentials) { c.MerID = "" }), "mer_id"},
		{"middle and identity", ch(func(c *config.Credentials) { c.MiddleCertFile, c.CertIdentity = middleFile, "00040000:SIGN" }), ""},
		{"missing middle file", ch(func(c *config.Credentials) { c.MiddleCertFile = dir + "/nope.pem" }), "middle_cert_file"},
		{"middle file without certificate", ch(func(c *config.Credentials) { c.MiddleCertFile = notCert }), "middle_cert_file: no certificate"},
		{"identity with @", ch(func(c *config.Credentials) { c.CertIdentity = "a@b" }), "cert_identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromConfig(tt.ch, "https://pay.example.com/callbacks/bank-a", nil)
			if (err == nil) != (tt.errHas == "") || (err != nil && !strings.Contains(err.Error(), tt.errHas)) {
				t.Fatalf("FromConfig: %v, want error containing %q", err, tt.errHas)
			}
			if err == nil && (c.ID() != "bank-a" || c.base != "https://gw.example/acp") {
				t.Fatalf("client %s at %s", c.ID(), c.base)
			}
			if err == nil {
				wantID := tt.ch.Credentials.CertIdentity
				if wantID == "" {
					wantID = DefaultIdentity
				}
				if c.cfg.Identity != wantID || (c.cfg.Middles != nil) != (tt.ch.Credentials.MiddleCertFile != "") {
					t.Fatalf("identity %q, middles %v", c.cfg.Identity, c.cfg.Middles != nil)
				}
			}
			if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Fatal("error message contains key material")
			}
		})
	}
}

func TestFrontConsume(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	req := h.order(payment.MethodBankRedirect, 1999)
	res, err := h.client.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	a := res.Action
	if a.Type != "form" || !strings.HasSuffix(a.URL, "/gateway/api/frontTransReq.do") || res.ChannelTradeNo != "" {
		t.Fatalf("action %+v", a)
	}
	want := map[string]string{
		"version": "5.1.0", "encoding": "utf-8", "signMethod": "01", "txnType": "01", "txnSubType": "01",
		"bizType": "000201", "channelType": "07", "accessType": "0", "currencyCode": "156", "merId": merA,
		"certId": certA, "orderId": req.OrderNo, "txnTime": "20261129150405", "txnAmt": "1999",
		"payTimeout": "20261129151905", "backUrl": h.client.cfg.NotifyURL,
		"frontUrl": h.client.cfg.NotifyURL[:strings.Index(h.client.cfg.NotifyURL, "/callbacks")] + "/",
	}
	for k, v := range want {
		if a.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, a.Fields[k], v)
		}
	}
	for k, v := range a.Fields {
		if v == "" {
			t.Errorf("empty field %s", k)
		}
	}
	if len(a.Fields) != len(want)+1 || a.Fields["signature"] == "" {
		t.Errorf("fields %v: want exactly the consume fields plus signature", a.Fields)
	}
	if err := verifySignature(&merchantKey(t).PublicKey, a.Fields); err != nil {
		t.Fatalf("form signature: %v", err)
	}

	// Nothing exists at the bank until the payer's browser posts the form.
	st, err := h.client.Query(ctx, queryOf(req))
	if err != nil || st.Status != adapters.OrderNotFound {
		t.Fatalf("before the form: %+v %v", st, err)
	}
	if status, page := h.postForm(t, &a); status != http.StatusOK || !strings.Contains(page, req.OrderNo) {
		t.Fatalf("posting the form: HTTP %d\n%s", status, page)
	}
	st, err = h.client.Query(ctx, queryOf(req))
	if err != nil || st.Status != adapters.OrderPending {
		t.Fatalf("after the form: %+v %v", st, err)
	}
	// ACP cannot cancel it: still payable until payTimeout, so not a close.
	if err := h.client.Close(ctx, queryOf(req)); !isKindCode(err, adapters.KindDeclined, "not_closable") {
		t.Fatalf("close of an unpaid order: %v, want declined not_closable", err)
	}

	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	r := h.next(t)
	if r.err != nil {
		t.Fatal(r.err)
	}
	n := r.n
	if n.Kind != adapters.NotifyPayment || n.OrderNo != req.OrderNo || n.Status != adapters.OrderPaid ||
		n.Amount != 1999 || n.Currency != "CNY" || n.Account != merA || len(n.ChannelTradeNo) != 21 ||
		n.PaidAt.IsZero() || n.PaidAt.Sub(h.clock.Now()).Abs() > time.Second {
		t.Fatalf("notification %+v", n)
	}
	st, err = h.client.Query(ctx, queryOf(req))
	if err != nil || st.Status != adapters.OrderPaid || st.ChannelTradeNo != n.ChannelTradeNo ||
		st.Amount != 1999 || st.Currency != "CNY" || !st.PaidAt.Equal(n.PaidAt) {
		t.Fatalf("paid: %+v %v", st, err)
	}
	wantErr(t, h.client.Close(ctx, queryOf(req)), adapters.KindDeclined, "already_paid")
	h.none(t)
}

func TestQR(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	req := h.order(payment.MethodQR, 500)
	res, err := h.client.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action.Type != "qr_code" || !strings.HasPrefix(res.Action.CodeURL, "https://qr.95516.com/") {
		t.Fatalf("action %+v", res.Action)
	}
	again, err := h.client.Create(ctx, req)
	if err != nil || again.Action.CodeURL != res.Action.CodeURL {
		t.Fatalf("repeated create: %+v %v, want the same code", again, err)
	}
	other := *req
	other.Amount = 501
	_, err = h.client.Create(ctx, &other)
	wantErr(t, err, adapters.KindConflict, "12")

	st, err := h.client.Query(ctx, queryOf(req))
	if err != nil || st.Status != adapters.OrderPending || st.Amount != 500 {
		t.Fatalf("unpaid: %+v %v", st, err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	if r := h.next(t); r.err != nil || r.n.Status != adapters.OrderPaid || r.n.OrderNo != req.OrderNo {
		t.Fatalf("notification %+v", r)
	}
	st, err = h.client.Query(ctx, queryOf(req))
	if err != nil || st.Status != adapters.OrderPaid {
		t.Fatalf("paid: %+v %v", st, err)
	}
}

func TestCreateRefusedLocally(t *testing.T) {
	h := newHarness(t, harnessOptions{wrap: fixed(http.StatusTeapot, "must not be called")})
	ctx := context.Background()
	tests := []struct {
		name string
		edit func(*adapters.CreateRequest)
		kind adapters.Kind
		code string
	}{
		{"wechat_jsapi", func(r *adapters.CreateRequest) { r.Method = payment.MethodWechatJSAPI }, adapters.KindUnsupported, ""},
		{"alipay_page", func(r *adapters.CreateRequest) { r.Method = payment.MethodAlipayPage }, adapters.KindUnsupported, ""},
		{"USD", func(r *adapters.CreateRequest) { r.Currency = "USD" }, adapters.KindUnsupported, "currency"},
		{"order number with dash", func(r *adapters.CreateRequest) { r.OrderNo = "order-1001" }, adapters.KindInvalid, "order_no"},
		{"zero amount", func(r *adapters.CreateRequest) { r.Amount = 0 }, adapters.KindInvalid, "amount"},
		{"no creation time", func(r *adapters.CreateRequest) { r.CreatedAt = time.Time{} }, adapters.KindInvalid, "created_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := h.order(payment.MethodQR, 100)
			tt.edit(req)
			_, err := h.client.Create(ctx, req)
			wantErr(t, err, tt.kind, tt.code)
		})
	}
	_, err := h.client.Create(ctx, &adapters.CreateRequest{Method: payment.MethodWechatNative})
	if !errors.Is(err, adapters.ErrUnsupported) {
		t.Fatalf("wechat_native: %v, want ErrUnsupported", err)
	}
}

// The bank refuses a request our side signed wrongly: 11, KindUnavailable
// (nothing was processed; failover is safe).
func TestBankRefusesOurSignature(t *testing.T) {
	tests := []struct {
		name string
		o    harnessOptions
	}{
		{"another private key", harnessOptions{key: genKeyBits(t, 2048)}},
		{"unregistered certId", harnessOptions{certID: "1234567890"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.o)
			ctx := context.Background()
			req := h.order(payment.MethodQR, 100)
			_, err := h.client.Create(ctx, req)
			e := wantErr(t, err, adapters.KindUnavailable, "11")
			if !e.NotCreated() || !strings.Contains(e.Message, "验证签名失败") {
				t.Fatalf("error %v", e)
			}
			_, err = h.client.Query(ctx, queryOf(req))
			wantErr(t, err, adapters.KindUnavailable, "11")
			_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: req.OrderNo, ChannelTradeNo: "123456789012345678901",
				RefundNo: req.OrderNo + "R00001", Amount: 1, Currency: "CNY", CreatedAt: start})
			wantErr(t, err, adapters.KindUnavailable, "11")
		})
	}
}

// Answers the adapter must not trust: KindAmbiguous.
func TestAnswerVerification(t *testing.T) {
	rogue := rogueCA(t)
	ca := testCA(t)
	rogueSigner := rogue.issue(t, start.Add(-time.Hour), start.Add(24*time.Hour))
	expired := ca.issue(t, start.Add(-48*time.Hour), start.Add(-time.Hour))
	notYet := ca.issue(t, start.Add(time.Hour), start.Add(48*time.Hour))
	legit := ca.issue(t, start.Add(-time.Hour), start.Add(24*time.Hour))

	tests := []struct {
		name string
		edit func(map[string]string) map[string]string
		code string
	}{
		{"field changed after signing", func(m map[string]string) map[string]string {
			m["respMsg"] = "changed"
			return m
		}, "bad_response_signature"},
		{"signature of another message", func(m map[string]string) map[string]string {
			m["signature"] = vector.signature
			return m
		}, "bad_response_signature"},
		{"no signature", func(m map[string]string) map[string]string {
			delete(m, "signature")
			return m
		}, "bad_response_signature"},
		{"no signPubKeyCert", func(m map[string]string) map[string]string {
			delete(m, "signPubKeyCert")
			return m
		}, "bad_response_signature"},
		{"signPubKeyCert not PEM", func(m map[string]string) map[string]string {
			m["signPubKeyCert"] = "MIIB"
			return m
		}, "bad_response_signature"},
		{"certificate from a CA we do not pin", func(m map[string]string) map[string]string {
			return rogueSigner.resign(t, m)
		}, "bad_response_signature"},
		{"expired certificate from the pinned CA", func(m map[string]string) map[string]string {
			return expired.resign(t, m)
		}, "bad_response_signature"},
		{"certificate not yet valid", func(m map[string]string) map[string]string {
			return notYet.resign(t, m)
		}, "bad_response_signature"},
		{"genuine signature, another merId echoed", func(m map[string]string) map[string]string {
			m["merId"] = merB
			return legit.resign(t, m)
		}, "bad_response"},
		{"genuine signature, another orderId echoed", func(m map[string]string) map[string]string {
			m["orderId"] = "ANOTHERORDER0000000000000"
			return legit.resign(t, m)
		}, "bad_response"},
		{"genuine signature, another amount echoed", func(m map[string]string) map[string]string {
			m["txnAmt"] = "1"
			return legit.resign(t, m)
		}, "bad_response"},
		{"genuine signature, no qrCode", func(m map[string]string) map[string]string {
			delete(m, "qrCode")
			return legit.resign(t, m)
		}, "bad_response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{wrap: rewrite(t, tt.edit)})
			_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
			e := wantErr(t, err, adapters.KindAmbiguous, tt.code)
			if e.NotCreated() || !e.Retryable() {
				t.Fatalf("error %v must be ambiguous", e)
			}
		})
	}

	t.Run("simulator certificate expired by the clock", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		h.clock.Add(366 * 24 * time.Hour)
		_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
		wantErr(t, err, adapters.KindAmbiguous, "bad_response_signature")
	})
	t.Run("answer that is not a form", func(t *testing.T) {
		h := newHarness(t, harnessOptions{wrap: fixed(http.StatusOK, "<html>%zz</html>")})
		_, err := h.client.Query(context.Background(), queryOf(h.order(payment.MethodQR, 100)))
		wantErr(t, err, adapters.KindAmbiguous, "bad_response")
	})
}

func TestHTTPAndTransportFailures(t *testing.T) {
	tests := []struct {
		name string
		wrap func(sandbox.Sim) http.Handler
		kind adapters.Kind
		code string
	}{
		{"system busy (06)", busy, adapters.KindUnavailable, "06"},
		{"HTTP 500", fixed(http.StatusInternalServerError, ""), adapters.KindUnavailable, "http_500"},
		{"HTTP 502", fixed(http.StatusBadGateway, ""), adapters.KindUnavailable, "http_502"},
		{"HTTP 503", fixed(http.StatusServiceUnavailable, ""), adapters.KindUnavailable, "http_503"},
		{"HTTP 504 from a proxy", fixed(http.StatusGatewayTimeout, ""), adapters.KindAmbiguous, "http_504"},
		{"HTTP 404", fixed(http.StatusNotFound, ""), adapters.KindUnavailable, "http_404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{wrap: tt.wrap})
			ctx := context.Background()
			req := h.order(payment.MethodQR, 100)
			_, err := h.client.Create(ctx, req)
			wantErr(t, err, tt.kind, tt.code)
			_, err = h.client.Query(ctx, queryOf(req))
			wantErr(t, err, tt.kind, tt.code)
			_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: req.OrderNo, ChannelTradeNo: "123456789012345678901",
				RefundNo: req.OrderNo + "R00001", Amount: 1, CreatedAt: start})
			wantErr(t, err, tt.kind, tt.code)
			_, err = h.client.QueryRefund(ctx, &adapters.RefundRequest{RefundNo: req.OrderNo + "R00001", CreatedAt: start})
			wantErr(t, err, tt.kind, tt.code)
			wantErr(t, h.client.Close(ctx, queryOf(req)), tt.kind, tt.code)
		})
	}

	t.Run("timeout after sending", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		h := newHarness(t, harnessOptions{wrap: hang(arrived)})
		ctx := newExpiring()
		go func() {
			<-arrived
			ctx.expire()
		}()
		_, err := h.client.Create(ctx, h.order(payment.MethodQR, 100))
		wantErr(t, err, adapters.KindAmbiguous, "timeout")
	})
	t.Run("connection refused", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		h.client.base = srv.URL
		_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
		wantErr(t, err, adapters.KindUnavailable, "connect_failed")
	})
}

func TestBusinessErrors(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()

	unknown := h.order(payment.MethodQR, 100)
	st, err := h.client.Query(ctx, queryOf(unknown))
	if err != nil || st.Status != adapters.OrderNotFound {
		t.Fatalf("query of an unknown order: %+v %v", st, err)
	}
	rs, err := h.client.QueryRefund(ctx, &adapters.RefundRequest{RefundNo: unknown.OrderNo + "R00001", CreatedAt: start})
	if err != nil || rs.Status != adapters.RefundNotFound {
		t.Fatalf("query of an unknown refund: %+v %v", rs, err)
	}
	if err := h.client.Close(ctx, queryOf(unknown)); !isKindCode(err, adapters.KindDeclined, "not_closable") {
		t.Fatalf("close of an order the bank never saw: %v, want declined not_closable (the form may still be posted)", err)
	}

	unpaid := h.order(payment.MethodQR, 100)
	if _, err := h.client.Create(ctx, unpaid); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: unpaid.OrderNo, ChannelTradeNo: "123456789012345678901",
		RefundNo: unpaid.OrderNo + "R00001", Amount: 1, Total: 100, CreatedAt: start})
	wantErr(t, err, adapters.KindDeclined, "35")

	// A QR apply after payTimeout is outside the acceptance time (39).
	late := h.order(payment.MethodQR, 100)
	late.ExpiresAt = start.Add(-time.Minute)
	late.CreatedAt = start.Add(-16 * time.Minute)
	_, err = h.client.Create(ctx, late)
	wantErr(t, err, adapters.KindDeclined, "39")

	_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: unpaid.OrderNo, RefundNo: unpaid.OrderNo + "R00002", Amount: 1, CreatedAt: start})
	wantErr(t, err, adapters.KindInvalid, "orig_qry_id")
}

func TestRefunds(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	pay, qid := h.paid(t, 1000)
	refund := func(suffix string, amount int64, at time.Time) *adapters.RefundRequest {
		return &adapters.RefundRequest{OrderNo: pay.OrderNo, ChannelTradeNo: qid, RefundNo: pay.OrderNo + suffix,
			Amount: amount, Total: 1000, Currency: "CNY", PaymentCreated: pay.CreatedAt, CreatedAt: at}
	}
	first := refund("R00001", 300, start.Add(time.Minute))
	second := refund("R00002", 600, start.Add(2*time.Minute))

	steps := []struct {
		name     string
		req      *adapters.RefundRequest
		kind     adapters.Kind // 0: accepted
		code     string
		notified bool
	}{
		{"partial 300", first, 0, "", true},
		{"cumulative 600", second, 0, "", true},
		{"600 again with the same refund number", second, 0, "", false},
		{"101 above the remaining 100", refund("R00003", 101, start.Add(3*time.Minute)), adapters.KindDeclined, "33", false},
		{"same refund number, other amount", refund("R00002", 50, start.Add(2*time.Minute)), adapters.KindConflict, "12", false},
		{"the remaining 100", refund("R00004", 100, start.Add(4*time.Minute)), 0, "", true},
		{"nothing left", refund("R00005", 1, start.Add(5*time.Minute)), adapters.KindDeclined, "33", false},
	}
	channelNos := map[string]string{}
	for _, s := range steps {
		rs, err := h.client.Refund(ctx, s.req)
		if s.kind != 0 {
			wantErr(t, err, s.kind, s.code)
			continue
		}
		if err != nil || rs.Status != adapters.RefundPending || rs.Amount != s.req.Amount || rs.ChannelRefundNo == "" {
			t.Fatalf("%s: %+v %v", s.name, rs, err)
		}
		if prev, ok := channelNos[s.req.RefundNo]; ok && prev != rs.ChannelRefundNo {
			t.Fatalf("%s: a second refund %s (first %s)", s.name, rs.ChannelRefundNo, prev)
		}
		channelNos[s.req.RefundNo] = rs.ChannelRefundNo
		if !s.notified {
			continue
		}
		r := h.next(t)
		if r.err != nil {
			t.Fatalf("%s: %v", s.name, r.err)
		}
		n := r.n
		if n.Kind != adapters.NotifyRefund || n.RefundNo != s.req.RefundNo || n.OrderNo != pay.OrderNo ||
			n.RefundStatus != adapters.RefundSucceeded || n.Amount != s.req.Amount || n.Currency != "CNY" ||
			n.ChannelRefundNo != rs.ChannelRefundNo || n.Account != merA {
			t.Fatalf("%s: refund notification %+v", s.name, n)
		}
		q, err := h.client.QueryRefund(ctx, s.req)
		if err != nil || q.Status != adapters.RefundSucceeded || q.Amount != s.req.Amount || q.ChannelRefundNo != rs.ChannelRefundNo {
			t.Fatalf("%s: query refund %+v %v", s.name, q, err)
		}
	}
	h.none(t)
	// The payment stays paid after refunds (ACP keeps the consume's 00).
	st, err := h.client.Query(ctx, queryOf(pay))
	if err != nil || st.Status != adapters.OrderPaid {
		t.Fatalf("payment after refunds: %+v %v", st, err)
	}
	// A refund queried with another txnTime is another transaction.
	other := *first
	other.CreatedAt = first.CreatedAt.Add(time.Second)
	q, err := h.client.QueryRefund(ctx, &other)
	if err != nil || q.Status != adapters.RefundNotFound {
		t.Fatalf("query with another txnTime: %+v %v", q, err)
	}
}

func TestFailedAndExpiredPayments(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	failed := h.order(payment.MethodQR, 100)
	expiring := h.order(payment.MethodQR, 200)
	for _, r := range []*adapters.CreateRequest{failed, expiring} {
		if _, err := h.client.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.sim.Fail(failed.OrderNo); err != nil {
		t.Fatal(err)
	}
	r := h.next(t)
	if r.err != nil || r.n.Status != adapters.OrderFailed || r.n.OrderNo != failed.OrderNo || !r.n.PaidAt.IsZero() {
		t.Fatalf("failure notification %+v", r)
	}
	st, err := h.client.Query(ctx, queryOf(failed))
	if err != nil || st.Status != adapters.OrderFailed {
		t.Fatalf("failed: %+v %v", st, err)
	}
	if err := h.client.Close(ctx, queryOf(failed)); err != nil {
		t.Fatalf("close of a failed order: %v", err)
	}

	h.clock.Add(15 * time.Minute) // the payment's expiry = payTimeout
	st, err = h.client.Query(ctx, queryOf(expiring))
	if err != nil || st.Status != adapters.OrderClosed {
		t.Fatalf("after payTimeout: %+v %v", st, err)
	}
	if err := h.client.Close(ctx, queryOf(expiring)); err != nil {
		t.Fatalf("close after payTimeout: %v", err)
	}
	h.none(t)
}

// Two bank instances (bank-a, bank-b) with different merIds, issued by the
// same CA: each refuses the other's notifications.
func TestTwoInstances(t *testing.T) {
	a := newHarness(t, harnessOptions{id: "bank-a", merID: merA})
	b := newHarness(t, harnessOptions{id: "bank-b", merID: merB})
	ctx := context.Background()
	_, _, fromA := a.paidWith(t, 100)
	_, _, fromB := b.paidWith(t, 200)
	tests := []struct {
		name   string
		client *Client
		body   []byte
		ok     bool
	}{
		{"bank-a's notification at bank-a", a.client, fromA.body, true},
		{"bank-b's notification at bank-b", b.client, fromB.body, true},
		{"bank-a's notification at bank-b", b.client, fromA.body, false},
		{"bank-b's notification at bank-a", a.client, fromB.body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.client.ParseNotify(ctx, &adapters.Callback{Body: tt.body})
			if tt.ok {
				if err != nil || n.Account != tt.client.m.merID {
					t.Fatalf("%+v %v", n, err)
				}
				return
			}
			wantErr(t, err, adapters.KindBadSignature, "account_mismatch")
		})
	}
}

func genKeyBits(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func isKindCode(err error, kind adapters.Kind, code string) bool {
	e, ok := adapters.AsError(err)
	return ok && e.Kind == kind && e.Code == code
}
