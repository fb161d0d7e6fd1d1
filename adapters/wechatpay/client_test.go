package wechatpay_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/adapters/wechatpay"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
)

func TestCreateNative(t *testing.T) {
	t.Parallel()
	for _, m := range []payment.Method{payment.MethodQR, payment.MethodWechatNative} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{})
			ctx := context.Background()
			req := h.order(m, 1999)
			res, err := h.client.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Action.Type != "qr_code" || !strings.HasPrefix(res.Action.CodeURL, "weixin://wxpay/bizpayurl?pr=") {
				t.Fatalf("action = %+v", res.Action)
			}
			again, err := h.client.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if again.Action.CodeURL != res.Action.CodeURL {
				t.Errorf("repeated create: code_url %q, want the original %q", again.Action.CodeURL, res.Action.CodeURL)
			}
			st, err := h.client.Query(ctx, &adapters.QueryRequest{OrderNo: req.OrderNo})
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != adapters.OrderPending || st.Amount != 1999 || st.Currency != "CNY" || st.ChannelTradeNo != "" {
				t.Errorf("state = %+v", st)
			}
		})
	}
}

func TestCreateJSAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	req := h.order(payment.MethodWechatJSAPI, 500)
	res, err := h.client.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Action.Params
	if res.Action.Type != "jsapi" || p["appId"] != appID || p["signType"] != "RSA" ||
		!strings.HasPrefix(p["package"], "prepay_id=wx") || len(p["nonceStr"]) != 32 ||
		p["timeStamp"] != strconv.FormatInt(h.cliClock.Now().Unix(), 10) {
		t.Fatalf("action = %+v", res.Action)
	}
	// The payer's WeChat client verifies paySign with the merchant public key.
	msg := p["appId"] + "\n" + p["timeStamp"] + "\n" + p["nonceStr"] + "\n" + p["package"] + "\n"
	sig, err := base64.StdEncoding.DecodeString(p["paySign"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(msg))
	pub := &loadPrivateKey(t, "wechat-merchant.pem").PublicKey
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("paySign does not verify with the merchant public key: %v", err)
	}
	// Same order again: the same prepay_id.
	again, err := h.client.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Action.Params["package"] != p["package"] {
		t.Errorf("repeated create: package %q, want %q", again.Action.Params["package"], p["package"])
	}
}

func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mod      func(h *harness, r *adapters.CreateRequest)
		kind     adapters.Kind
		code     string
		reachSim bool
	}{
		{"jsapi without openid", func(h *harness, r *adapters.CreateRequest) { r.Method = payment.MethodWechatJSAPI; r.PayerOpenID = "" },
			adapters.KindInvalid, "missing_openid", false},
		{"method of another channel", func(h *harness, r *adapters.CreateRequest) { r.Method = payment.MethodAlipayQR },
			adapters.KindUnsupported, "", false},
		{"currency", func(h *harness, r *adapters.CreateRequest) { r.Currency = "USD" },
			adapters.KindInvalid, "invalid_request", false},
		{"order number the channel refuses", func(h *harness, r *adapters.CreateRequest) { r.OrderNo = "a.b" },
			adapters.KindInvalid, "PARAM_ERROR", true},
		{"expiry already passed", func(h *harness, r *adapters.CreateRequest) { r.ExpiresAt = h.cliClock.Now().Add(-time.Hour) },
			adapters.KindInvalid, "PARAM_ERROR", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{})
			req := h.order(payment.MethodQR, 100)
			tt.mod(h, req)
			_, err := h.client.Create(context.Background(), req)
			e := wantKind(t, err, tt.kind, tt.code)
			if tt.kind == adapters.KindUnsupported && !errors.Is(err, adapters.ErrUnsupported) {
				t.Errorf("errors.Is(%v, ErrUnsupported) = false", e)
			}
			if got := len(h.requests) > 0; got != tt.reachSim {
				t.Errorf("request reached the channel: %v, want %v", got, tt.reachSim)
			}
		})
	}
}

func TestCreateConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := context.Background()
	req := h.order(payment.MethodQR, 100)
	if _, err := h.client.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	other := *req
	other.Amount = 101
	_, err := h.client.Create(ctx, &other)
	e := wantKind(t, err, adapters.KindConflict, "OUT_TRADE_NO_USED")
	if e.Status != http.StatusForbidden {
		t.Errorf("status = %d", e.Status)
	}
	jsapi := *req
	jsapi.Method = payment.MethodWechatJSAPI
	_, err = h.client.Create(ctx, &jsapi)
	wantKind(t, err, adapters.KindConflict, "OUT_TRADE_NO_USED")
}

func TestQueryPayClose(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := context.Background()

	st, err := h.client.Query(ctx, &adapters.QueryRequest{OrderNo: payment.OrderNo(payment.NewPaymentID())})
	if err != nil || st.Status != adapters.OrderNotFound {
		t.Fatalf("query of an unknown order = %+v, %v; want OrderNotFound", st, err)
	}
	err = h.client.Close(ctx, &adapters.QueryRequest{OrderNo: payment.OrderNo(payment.NewPaymentID())})
	wantKind(t, err, adapters.KindNotFound, "ORDER_NOT_EXIST")

	paid := h.paidOrder(1999)
	st, err = h.client.Query(ctx, &adapters.QueryRequest{OrderNo: paid.OrderNo})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != adapters.OrderPaid || st.Amount != 1999 || st.Currency != "CNY" ||
		!strings.HasPrefix(st.ChannelTradeNo, "42") || !st.PaidAt.Equal(h.simClock.Now()) {
		t.Errorf("paid state = %+v (sim now %v)", st, h.simClock.Now())
	}
	err = h.client.Close(ctx, &adapters.QueryRequest{OrderNo: paid.OrderNo})
	wantKind(t, err, adapters.KindDeclined, "ORDERPAID")

	open := h.order(payment.MethodWechatNative, 10)
	if _, err := h.client.Create(ctx, open); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // closing twice is fine
		if err := h.client.Close(ctx, &adapters.QueryRequest{OrderNo: open.OrderNo}); err != nil {
			t.Fatalf("close #%d: %v", i+1, err)
		}
	}
	st, err = h.client.Query(ctx, &adapters.QueryRequest{OrderNo: open.OrderNo})
	if err != nil || st.Status != adapters.OrderClosed {
		t.Fatalf("closed order = %+v, %v", st, err)
	}
	if err := h.sim.Pay(open.OrderNo); !errors.Is(err, sandbox.ErrOrderState) {
		t.Errorf("paying a closed order: %v, want ErrOrderState", err)
	}
	_, err = h.client.Create(ctx, open)
	wantKind(t, err, adapters.KindDeclined, "ORDER_CLOSED")
}

func TestOrderExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := context.Background()
	req := h.order(payment.MethodQR, 10)
	if _, err := h.client.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	h.simClock.Add(15*time.Minute - time.Second)
	h.cliClock.Add(15*time.Minute - time.Second)
	if st, err := h.client.Query(ctx, &adapters.QueryRequest{OrderNo: req.OrderNo}); err != nil || st.Status != adapters.OrderPending {
		t.Fatalf("a second before expiry: %+v, %v", st, err)
	}
	h.simClock.Add(time.Second)
	h.cliClock.Add(time.Second)
	if st, err := h.client.Query(ctx, &adapters.QueryRequest{OrderNo: req.OrderNo}); err != nil || st.Status != adapters.OrderClosed {
		t.Fatalf("at expiry: %+v, %v", st, err)
	}
	if err := h.sim.Pay(req.OrderNo); !errors.Is(err, sandbox.ErrOrderState) {
		t.Errorf("paying an expired order: %v, want ErrOrderState", err)
	}
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := context.Background()
	paid := h.paidOrder(1000)
	pid := "pay_" + paid.OrderNo
	refund := func(amount int64) *adapters.RefundRequest {
		return &adapters.RefundRequest{OrderNo: paid.OrderNo, RefundNo: payment.RefundOrderNo(payment.NewRefundID(pid)),
			Amount: amount, Total: 1000, Currency: "CNY", Reason: "damaged"}
	}

	first := refund(300)
	st, err := h.client.Refund(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != adapters.RefundPending || st.Amount != 300 || st.ChannelRefundNo == "" {
		t.Fatalf("first refund = %+v, want pending (PROCESSING)", st)
	}
	n := h.nextCallback()
	if n.err != nil || n.n.Kind != adapters.NotifyRefund || n.n.RefundNo != first.RefundNo || n.n.OrderNo != paid.OrderNo ||
		n.n.RefundStatus != adapters.RefundSucceeded || n.n.Amount != 300 || n.n.ChannelRefundNo != st.ChannelRefundNo || n.n.Account != mchID {
		t.Fatalf("refund notification = %+v, %v", n.n, n.err)
	}
	q, err := h.client.QueryRefund(ctx, first)
	if err != nil || q.Status != adapters.RefundSucceeded || q.Amount != 300 || q.ChannelRefundNo != st.ChannelRefundNo {
		t.Fatalf("query refund = %+v, %v", q, err)
	}

	// The same refund number again refunds nothing more.
	again, err := h.client.Refund(ctx, first)
	if err != nil || again.ChannelRefundNo != st.ChannelRefundNo || again.Status != adapters.RefundSucceeded {
		t.Fatalf("repeated refund = %+v, %v", again, err)
	}
	second := refund(700) // 300 + 700 = the whole payment: allowed only if the retry counted once
	if _, err := h.client.Refund(ctx, second); err != nil {
		t.Fatalf("second refund: %v", err)
	}
	h.nextCallback()
	_, err = h.client.Refund(ctx, refund(1))
	wantKind(t, err, adapters.KindDeclined, "NOT_ENOUGH")

	if st, err := h.client.Query(ctx, &adapters.QueryRequest{OrderNo: paid.OrderNo}); err != nil || st.Status != adapters.OrderPaid {
		t.Fatalf("refunded order (trade_state REFUND) = %+v, %v", st, err)
	}
	unknown, err := h.client.QueryRefund(ctx, refund(1))
	if err != nil || unknown.Status != adapters.RefundNotFound {
		t.Fatalf("unknown refund = %+v, %v", unknown, err)
	}
	_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: payment.OrderNo(payment.NewPaymentID()),
		RefundNo: payment.RefundOrderNo(payment.NewRefundID(payment.NewPaymentID())), Amount: 1, Total: 1})
	wantKind(t, err, adapters.KindNotFound, "RESOURCE_NOT_EXISTS")

	unpaid := h.order(payment.MethodQR, 50)
	if _, err := h.client.Create(ctx, unpaid); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: unpaid.OrderNo,
		RefundNo: payment.RefundOrderNo(payment.NewRefundID("pay_" + unpaid.OrderNo)), Amount: 1, Total: 50})
	wantKind(t, err, adapters.KindInvalid, "INVALID_REQUEST")
}

func TestRequestSignatureRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*wechatpay.Config)
	}{
		{"wrong merchant key", func(c *wechatpay.Config) { c.PrivateKey = wrongKey(t) }},
		{"unknown serial_no", func(c *wechatpay.Config) { c.SerialNo = "0000000000000000000000000000000000000000" }},
		{"other mchid", func(c *wechatpay.Config) { c.MchID = "1900000002" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{mutate: tt.mutate})
			_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
			e := wantKind(t, err, adapters.KindUnavailable, "SIGN_ERROR")
			if e.Status != http.StatusUnauthorized || !e.NotCreated() {
				t.Errorf("error = %+v", e)
			}
		})
	}
}

// rewrite wraps the simulator and edits its answers before they leave.
func rewrite(edit func(h http.Header, body []byte) []byte) func(sandbox.Sim) http.Handler {
	return func(sim sandbox.Sim) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, r)
			body := edit(rec.Header(), rec.Body.Bytes())
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

func TestAnswerVerification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  func(t *testing.T) options
	}{
		{"platform key WeChat does not have", func(t *testing.T) options {
			return options{simKeysDir: keysDirWithPlatform(t, wrongKey(t))}
		}},
		{"SIGNTEST probe", func(t *testing.T) options {
			return options{wrap: rewrite(func(h http.Header, b []byte) []byte {
				h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+h.Get("Wechatpay-Signature"))
				return b
			})}
		}},
		{"unknown serial", func(t *testing.T) options {
			return options{wrap: rewrite(func(h http.Header, b []byte) []byte {
				h.Set("Wechatpay-Serial", "PUB_KEY_ID_SOMEONE_ELSE")
				return b
			})}
		}},
		{"tampered body", func(t *testing.T) options {
			return options{wrap: rewrite(func(h http.Header, b []byte) []byte {
				return bytes.Replace(b, []byte("weixin://wxpay/bizpayurl?pr="), []byte("weixin://wxpay/bizpayurl?pr=x"), 1)
			})}
		}},
		{"unsigned", func(t *testing.T) options {
			return options{wrap: rewrite(func(h http.Header, b []byte) []byte {
				h.Del("Wechatpay-Signature")
				return b
			})}
		}},
		{"bad signature type", func(t *testing.T) options {
			return options{wrap: rewrite(func(h http.Header, b []byte) []byte {
				h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3")
				return b
			})}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tt.opt(t))
			_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
			e := wantKind(t, err, adapters.KindAmbiguous, "bad_response_signature")
			if e.Status != http.StatusOK {
				t.Errorf("status = %d", e.Status)
			}
		})
	}
	t.Run("SIGNTEST is refused as a probe", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, options{wrap: rewrite(func(h http.Header, b []byte) []byte {
			h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+h.Get("Wechatpay-Signature"))
			return b
		})})
		_, err := h.client.Query(context.Background(), &adapters.QueryRequest{OrderNo: "nonexistent000000000000x"})
		// 404 answers are not verified (as in the official SDK); a 200 is.
		if err != nil {
			t.Fatalf("404 with a probe signature: %v", err)
		}
		req := h.order(payment.MethodQR, 1)
		_, err = h.client.Create(context.Background(), req)
		if e := wantKind(t, err, adapters.KindAmbiguous, "bad_response_signature"); !strings.Contains(e.Error(), "SIGNTEST") {
			t.Errorf("error %q does not say it was a SIGNTEST probe", e.Error())
		}
	})
}

func TestClockSkew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		offset time.Duration // simulator clock minus adapter clock
		kind   adapters.Kind // 0: success
		code   string
	}{
		{"in sync", 0, 0, ""},
		{"299s ahead", 299 * time.Second, 0, ""},
		{"299s behind", -299 * time.Second, 0, ""},
		// The simulator accepts |skew| = 300 s; the adapter refuses an answer at 300 s (SDK: ≥ 5 min).
		{"300s ahead: answer too far off", 300 * time.Second, adapters.KindAmbiguous, "bad_response_signature"},
		{"300s behind: answer too far off", -300 * time.Second, adapters.KindAmbiguous, "bad_response_signature"},
		{"301s ahead: request refused", 301 * time.Second, adapters.KindUnavailable, "SIGN_ERROR"},
		{"301s behind: request refused", -301 * time.Second, adapters.KindUnavailable, "SIGN_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{simOffset: tt.offset})
			req := h.order(payment.MethodQR, 100)
			req.ExpiresAt = h.cliClock.Now().Add(time.Hour)
			_, err := h.client.Create(context.Background(), req)
			if tt.kind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantKind(t, err, tt.kind, tt.code)
		})
	}
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	platformKey := loadPrivateKey(t, "wechat-platform.pem")
	tests := []struct {
		name    string
		handler func(sim sandbox.Sim) http.Handler
		kind    adapters.Kind
		code    string
	}{
		{"SYSTEM_ERROR", func(sim sandbox.Sim) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.Unavailable(w) })
		}, adapters.KindUnavailable, "SYSTEM_ERROR"},
		{"FREQUENCY_LIMITED", func(sandbox.Sim) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusTooManyRequests)
				w.Write([]byte(`{"code":"FREQUENCY_LIMITED","message":"频率超限"}`))
			})
		}, adapters.KindUnavailable, "FREQUENCY_LIMITED"},
		{"bare 502 from a proxy", func(sandbox.Sim) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
		}, adapters.KindAmbiguous, "http_502"},
		{"signed 200 that is not JSON", func(sandbox.Sim) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body := []byte("<html>hello</html>")
				signAsPlatform(platformKey, w.Header(), body)
				w.Write(body)
			})
		}, adapters.KindAmbiguous, "bad_response"},
		{"signed 200 without code_url", func(sandbox.Sim) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body := []byte(`{"prepay_id":"wx1"}`)
				signAsPlatform(platformKey, w.Header(), body)
				w.Write(body)
			})
		}, adapters.KindAmbiguous, "bad_response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{wrap: tt.handler})
			_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
			wantKind(t, err, tt.kind, tt.code)
		})
	}
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()
	t.Run("timeout after sending", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		h := newHarness(t, options{wrap: func(sim sandbox.Sim) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					sim.ServeHTTP(w, r)
					return
				}
				sim.ServeHTTP(httptest.NewRecorder(), r) // the order is created...
				select {                                 // ...and the answer never comes in time
				case <-r.Context().Done():
				case <-release:
				}
			})
		}})
		t.Cleanup(func() { close(release) })
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req := h.order(payment.MethodQR, 100)
		_, err := h.client.Create(ctx, req)
		e := wantKind(t, err, adapters.KindAmbiguous, "timeout")
		if !e.Ambiguous() {
			t.Error("not ambiguous")
		}
		// The order exists: resolving by query finds it.
		st, err := h.client.Query(context.Background(), &adapters.QueryRequest{OrderNo: req.OrderNo})
		if err != nil || st.Status != adapters.OrderPending {
			t.Fatalf("query after the timeout = %+v, %v; want the order pending", st, err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, options{})
		h.srv.Close()
		_, err := h.client.Create(context.Background(), h.order(payment.MethodQR, 100))
		wantKind(t, err, adapters.KindUnavailable, "connect_failed")
	})
}

// observer records the calls the adapter reports.
type observer struct {
	mu    sync.Mutex
	calls []string
}

func (o *observer) ObserveCall(channel, op string, status int, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, channel+" "+op+" "+strconv.Itoa(status))
}

func TestPathPrefixAndHeaders(t *testing.T) {
	t.Parallel()
	obs := &observer{}
	h := newHarness(t, options{prefix: "/proxy/wxpay", mutate: func(c *wechatpay.Config) { c.Observer = obs }})
	ctx := context.Background()
	req := h.order(payment.MethodQR, 100)
	if _, err := h.client.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Query(ctx, &adapters.QueryRequest{OrderNo: req.OrderNo}); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Close(ctx, &adapters.QueryRequest{OrderNo: req.OrderNo}); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	if got, want := strings.Join(obs.calls, ","), "wechat-test create 200,wechat-test query 200,wechat-test close 204"; got != want {
		t.Errorf("observed calls %q, want %q", got, want)
	}
	obs.mu.Unlock()
	wantURIs := []string{
		"/proxy/wxpay/v3/pay/transactions/native",
		"/proxy/wxpay/v3/pay/transactions/out-trade-no/" + req.OrderNo + "?mchid=" + mchID,
		"/proxy/wxpay/v3/pay/transactions/out-trade-no/" + req.OrderNo + "/close",
	}
	for i, want := range wantURIs {
		r := <-h.requests
		if r.RequestURI != want {
			t.Errorf("request %d: URI %q, want %q", i, r.RequestURI, want)
		}
		for hdr, want := range map[string]string{
			"Accept": "application/json", "Content-Type": "application/json", "Wechatpay-Serial": platformSerial,
		} {
			if got := r.Header.Get(hdr); got != want {
				t.Errorf("request %d: %s = %q, want %q", i, hdr, got, want)
			}
		}
		if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "paygate-wechatpay/") {
			t.Errorf("User-Agent = %q", ua)
		}
		auth := r.Header.Get("Authorization")
		for _, part := range []string{`WECHATPAY2-SHA256-RSA2048 mchid="` + mchID + `"`, `serial_no="` + merchantSerial + `"`,
			`timestamp="` + strconv.FormatInt(h.cliClock.Now().Unix(), 10) + `"`, `nonce_str="`, `signature="`} {
			if !strings.Contains(auth, part) {
				t.Errorf("request %d: Authorization %q lacks %q", i, auth, part)
			}
		}
	}
}

func TestFromConfig(t *testing.T) {
	t.Setenv("WECHAT_TEST_APIV3", apiv3Key)
	ch := simChannel("https://api.mch.weixin.qq.com")
	ch.Credentials.APIv3Key, ch.Credentials.APIv3KeyEnv = "", "WECHAT_TEST_APIV3"
	c, err := wechatpay.FromConfig(ch, "https://gw.example/callbacks/wechat-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != "wechat-test" {
		t.Errorf("ID = %q", c.ID())
	}
	tests := []struct {
		name string
		mod  func(*config.Credentials)
	}{
		{"short apiv3 key", func(c *config.Credentials) { c.APIv3KeyEnv = ""; c.APIv3Key = "short" }},
		{"two forms of a secret", func(c *config.Credentials) { c.APIv3Key = apiv3Key }},
		{"no private key", func(c *config.Credentials) { c.PrivateKeyFile = "" }},
		{"private key is not PEM", func(c *config.Credentials) { c.PrivateKeyFile = ""; c.PrivateKey = "nope" }},
		{"no platform key", func(c *config.Credentials) { c.PlatformPublicKeyFile = "" }},
		{"platform key file is a private key", func(c *config.Credentials) { c.PlatformPublicKeyFile = keysDir + "/wechat-platform.pem" }},
		{"no platform serial", func(c *config.Credentials) { c.PlatformSerial = "" }},
		{"no mchid", func(c *config.Credentials) { c.MchID = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := ch
			tt.mod(&bad.Credentials)
			if _, err := wechatpay.FromConfig(bad, "https://gw.example/cb", nil); err == nil {
				t.Fatal("FromConfig accepted it")
			} else if strings.Contains(err.Error(), apiv3Key) {
				t.Fatalf("error leaks the APIv3 key: %v", err)
			}
		})
	}
}
