package alipay

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/sandbox"
	"github.com/paygate/paygate/sandbox/alipaysim"
)

func TestQRLifecycle(t *testing.T) {
	t.Parallel()
	for _, method := range []payment.Method{payment.MethodQR, payment.MethodAlipayQR} {
		t.Run(string(method), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			req := h.order(method, 1999, "Coffee")
			res, err := h.client.Create(h.ctx(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Action.Type != "qr_code" || !strings.HasPrefix(res.Action.CodeURL, "https://qr.alipay.com/") {
				t.Fatalf("action = %+v", res.Action)
			}
			if got := <-h.created; got != req.OrderNo {
				t.Fatalf("OrderCreated(%q), want %q", got, req.OrderNo)
			}
			// The trade does not exist at Alipay before the code is scanned.
			if st := h.query(req); st.Status != adapters.OrderNotFound {
				t.Fatalf("before scan: %s", st.Status)
			}

			h.clock.Advance(time.Minute)
			if err := h.sim.Pay(req.OrderNo); err != nil {
				t.Fatal(err)
			}
			d := h.nextDelivery()
			if d.err != nil {
				t.Fatalf("notification: %v", d.err)
			}
			n := d.n
			if n.Kind != adapters.NotifyPayment || n.OrderNo != req.OrderNo || n.Status != adapters.OrderPaid ||
				n.Amount != 1999 || n.Currency != "CNY" || n.Account != testAppID || n.ChannelTradeNo == "" ||
				!n.PaidAt.Equal(h.clock.Now()) {
				t.Fatalf("notification = %+v", n)
			}

			st := h.query(req)
			if st.Status != adapters.OrderPaid || st.Amount != 1999 || st.ChannelTradeNo != n.ChannelTradeNo ||
				!st.PaidAt.Equal(h.clock.Now()) || st.RefundedAmount != 0 {
				t.Fatalf("query = %+v", st)
			}
			if err := h.sim.Pay(req.OrderNo); !errors.Is(err, sandbox.ErrOrderState) {
				t.Fatalf("second pay: %v", err)
			}
		})
	}
}

func TestCreateRepeatAndConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	req := h.order(payment.MethodQR, 500, "Tea")
	first, err := h.client.Create(h.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.client.Create(h.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Action.CodeURL != first.Action.CodeURL {
		t.Fatalf("repeated precreate gave another code: %q vs %q", again.Action.CodeURL, first.Action.CodeURL)
	}

	other := *req
	other.Amount = 501
	_, err = h.client.Create(h.ctx(), &other)
	wantErr(t, err, adapters.KindConflict, "ACQ.CONTEXT_INCONSISTENT")

	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.Create(h.ctx(), req)
	wantErr(t, err, adapters.KindDeclined, "ACQ.TRADE_HAS_SUCCESS")
}

func TestCreateRefusedLocally(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tests := []struct {
		name   string
		modify func(*adapters.CreateRequest)
		kind   adapters.Kind
	}{
		{name: "currency", modify: func(r *adapters.CreateRequest) { r.Currency = "USD" }, kind: adapters.KindInvalid},
		{name: "zero amount", modify: func(r *adapters.CreateRequest) { r.Amount = 0 }, kind: adapters.KindInvalid},
		{name: "jsapi method", modify: func(r *adapters.CreateRequest) { r.Method = payment.MethodWechatJSAPI }, kind: adapters.KindUnsupported},
		{name: "bank method", modify: func(r *adapters.CreateRequest) { r.Method = payment.MethodBankRedirect }, kind: adapters.KindUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := h.order(payment.MethodQR, 100, "x")
			tt.modify(req)
			_, err := h.client.Create(h.ctx(), req)
			wantErr(t, err, tt.kind, "")
		})
	}
	_, err := h.client.Create(h.ctx(), &adapters.CreateRequest{OrderNo: "x", Method: payment.MethodWechatNative, Amount: 1, Currency: "CNY", Subject: "x"})
	if !errors.Is(err, adapters.ErrUnsupported) {
		t.Fatalf("unsupported method: %v is not ErrUnsupported", err)
	}
	if n := h.calls.count(); n != 0 {
		t.Fatalf("%d calls reached Alipay", n)
	}
}

func TestPagePay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{basePath: "/openapi"})
	req := h.order(payment.MethodAlipayPage, 8888, "Laptop stand")
	res, err := h.client.Create(h.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	if h.calls.count() != 0 {
		t.Fatal("page pay must not call Alipay")
	}
	if res.Action.Type != "redirect" || !strings.HasPrefix(res.Action.URL, h.simSrv.URL+"/openapi/gateway.do?") {
		t.Fatalf("action = %+v", res.Action)
	}
	u, _ := url.Parse(res.Action.URL)
	q := u.Query()
	var biz map[string]string
	if err := json.Unmarshal([]byte(q.Get("biz_content")), &biz); err != nil {
		t.Fatal(err)
	}
	if q.Get("method") != "alipay.trade.page.pay" || q.Get("notify_url") == "" || q.Get("sign") == "" ||
		biz["product_code"] != "FAST_INSTANT_TRADE_PAY" || biz["total_amount"] != "88.88" || biz["out_trade_no"] != req.OrderNo {
		t.Fatalf("URL parameters = %v", q)
	}
	if st := h.query(req); st.Status != adapters.OrderNotFound {
		t.Fatalf("before the browser opened the URL: %s", st.Status)
	}

	// A tampered URL (amount lowered) is refused by the cashier and creates nothing.
	tampered := url.Values{}
	for k, v := range q {
		tampered[k] = v
	}
	tampered.Set("biz_content", strings.Replace(q.Get("biz_content"), `"88.88"`, `"0.01"`, 1))
	resp := get(t, u.Scheme+"://"+u.Host+u.Path+"?"+tampered.Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.body, "isv.invalid-signature") {
		t.Fatalf("tampered URL: %d %s", resp.StatusCode, resp.body)
	}
	if st := h.query(req); st.Status != adapters.OrderNotFound {
		t.Fatalf("after the tampered URL: %s", st.Status)
	}

	// The payer's browser opens the URL: the trade now exists.
	resp = get(t, res.Action.URL)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.body, "88.88") {
		t.Fatalf("cashier: %d %s", resp.StatusCode, resp.body)
	}
	if got := <-h.created; got != req.OrderNo {
		t.Fatalf("OrderCreated(%q)", got)
	}
	if st := h.query(req); st.Status != adapters.OrderPending || st.Amount != 8888 {
		t.Fatalf("after the cashier: %+v", st)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	if d := h.nextDelivery(); d.err != nil || d.n.Status != adapters.OrderPaid || d.n.Amount != 8888 {
		t.Fatalf("notification: %+v %v", d.n, d.err)
	}
	if st := h.query(req); st.Status != adapters.OrderPaid {
		t.Fatalf("after paying: %s", st.Status)
	}
}

type response struct {
	StatusCode int
	body       string
}

func get(t *testing.T, u string) response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{StatusCode: resp.StatusCode, body: string(b)}
}

func TestClose(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := h.ctx()
	closeReq := func(r *adapters.CreateRequest) *adapters.QueryRequest {
		return &adapters.QueryRequest{OrderNo: r.OrderNo, Amount: r.Amount, Currency: "CNY"}
	}

	t.Run("unknown to Alipay (not scanned)", func(t *testing.T) {
		req := h.order(payment.MethodQR, 100, "x")
		if _, err := h.client.Create(ctx, req); err != nil {
			t.Fatal(err)
		}
		// Nothing to close, but the code stays payable: not a close.
		err := h.client.Close(ctx, closeReq(req))
		if e, ok := adapters.AsError(err); !ok || e.Kind != adapters.KindNotFound || e.Code != "ACQ.TRADE_NOT_EXIST" {
			t.Fatalf("close before the scan: %v, want not_found ACQ.TRADE_NOT_EXIST", err)
		}
	})
	t.Run("waiting trade", func(t *testing.T) {
		req := h.order(payment.MethodAlipayPage, 100, "x")
		res, err := h.client.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if r := get(t, res.Action.URL); r.StatusCode != http.StatusOK {
			t.Fatalf("cashier: %d", r.StatusCode)
		}
		if err := h.client.Close(ctx, closeReq(req)); err != nil {
			t.Fatalf("close: %v", err)
		}
		if st := h.query(req); st.Status != adapters.OrderClosed {
			t.Fatalf("after close: %s", st.Status)
		}
		if err := h.sim.Pay(req.OrderNo); !errors.Is(err, sandbox.ErrOrderState) {
			t.Fatalf("pay after close: %v", err)
		}
		// Closing again: Alipay refuses (not WAIT_BUYER_PAY), the query says closed.
		if err := h.client.Close(ctx, closeReq(req)); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
	t.Run("expired trade", func(t *testing.T) {
		req := h.order(payment.MethodAlipayPage, 100, "x")
		res, err := h.client.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		get(t, res.Action.URL)
		h.clock.Advance(16 * time.Minute)
		defer h.clock.Advance(-16 * time.Minute)
		if st := h.query(req); st.Status != adapters.OrderClosed {
			t.Fatalf("after time_expire: %s", st.Status)
		}
		if err := h.client.Close(ctx, closeReq(req)); err != nil {
			t.Fatalf("close of expired: %v", err)
		}
	})
	t.Run("paid trade", func(t *testing.T) {
		req := h.paid(100)
		err := h.client.Close(ctx, closeReq(req))
		wantErr(t, err, adapters.KindDeclined, "ACQ.TRADE_STATUS_ERROR")
	})
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := h.ctx()
	req := h.paid(1000)
	pid := "pay_" + req.OrderNo
	refundNo := func() string { return payment.RefundOrderNo(payment.NewRefundID(pid)) }
	rr := func(no string, amount int64) *adapters.RefundRequest {
		return &adapters.RefundRequest{OrderNo: req.OrderNo, RefundNo: no, Amount: amount, Total: 1000, Currency: "CNY", Reason: "damaged"}
	}
	expectRefundNotification := func(no string, amount int64) {
		t.Helper()
		d := h.nextDelivery()
		if d.err != nil {
			t.Fatalf("refund notification: %v", d.err)
		}
		n := d.n
		if n.Kind != adapters.NotifyRefund || n.RefundNo != no || n.OrderNo != req.OrderNo ||
			n.RefundStatus != adapters.RefundSucceeded || n.Amount != amount || n.Account != testAppID {
			t.Fatalf("refund notification = %+v", n)
		}
	}

	r1 := refundNo()
	st, err := h.client.Refund(ctx, rr(r1, 300))
	if err != nil || st.Status != adapters.RefundSucceeded || st.Amount != 300 {
		t.Fatalf("partial refund: %+v %v", st, err)
	}
	expectRefundNotification(r1, 300)

	// The same refund number again moves no money (fund_change N): pending
	// until the refund query confirms it.
	st, err = h.client.Refund(ctx, rr(r1, 300))
	if err != nil || st.Status != adapters.RefundPending {
		t.Fatalf("repeated refund: %+v %v", st, err)
	}
	st, err = h.client.QueryRefund(ctx, rr(r1, 300))
	if err != nil || st.Status != adapters.RefundSucceeded || st.Amount != 300 {
		t.Fatalf("refund query: %+v %v", st, err)
	}
	h.noDelivery(50 * time.Millisecond)

	// The same number with another amount.
	_, err = h.client.Refund(ctx, rr(r1, 400))
	wantErr(t, err, adapters.KindConflict, "ACQ.DISCORDANT_REPEAT_REQUEST")

	// Cumulative: 300 + 800 > 1000.
	_, err = h.client.Refund(ctx, rr(refundNo(), 800))
	wantErr(t, err, adapters.KindDeclined, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")

	r2 := refundNo()
	st, err = h.client.Refund(ctx, rr(r2, 700))
	if err != nil || st.Status != adapters.RefundSucceeded || st.Amount != 700 {
		t.Fatalf("second partial refund: %+v %v", st, err)
	}
	expectRefundNotification(r2, 700)

	// Fully refunded: Alipay says TRADE_CLOSED, which is still a paid trade.
	if st := h.query(req); st.Status != adapters.OrderPaid || st.RefundedAmount != 1000 {
		t.Fatalf("fully refunded trade: %+v", st)
	}
	_, err = h.client.Refund(ctx, rr(refundNo(), 1))
	wantErr(t, err, adapters.KindDeclined, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")

	st, err = h.client.QueryRefund(ctx, rr(refundNo(), 0))
	if err != nil || st.Status != adapters.RefundNotFound {
		t.Fatalf("query of a refund never made: %+v %v", st, err)
	}
	st, err = h.client.QueryRefund(ctx, &adapters.RefundRequest{OrderNo: "NoSuchOrder0000000000000", RefundNo: "NoSuchOrder0000000000000abcdef"})
	if err != nil || st.Status != adapters.RefundNotFound {
		t.Fatalf("refund query of an unknown trade: %+v %v", st, err)
	}
}

func TestRefundRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ctx := h.ctx()

	unknown := &adapters.RefundRequest{OrderNo: "NoSuchOrder0000000000000", RefundNo: "NoSuchOrder0000000000000abcdef", Amount: 1, Total: 1}
	_, err := h.client.Refund(ctx, unknown)
	wantErr(t, err, adapters.KindNotFound, "ACQ.TRADE_NOT_EXIST")

	req := h.order(payment.MethodAlipayPage, 100, "x")
	res, _ := h.client.Create(ctx, req)
	get(t, res.Action.URL)
	_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: req.OrderNo, RefundNo: req.OrderNo + "abcdef", Amount: 100, Total: 100})
	wantErr(t, err, adapters.KindDeclined, "ACQ.TRADE_STATUS_ERROR")

	_, err = h.client.Refund(ctx, &adapters.RefundRequest{OrderNo: req.OrderNo, RefundNo: req.OrderNo + "abcdef", Amount: 101, Total: 100})
	wantErr(t, err, adapters.KindInvalid, codeInvalidRequest)
}

func TestOurSignatureRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{cfg: func(c *Config) { c.PrivateKey = otherKey() }})
	req := h.order(payment.MethodQR, 100, "x")
	_, err := h.client.Create(h.ctx(), req)
	e := wantErr(t, err, adapters.KindUnavailable, "isv.invalid-signature")
	if !e.NotCreated() || e.Status != http.StatusOK {
		t.Fatalf("error = %+v", e)
	}
	select {
	case no := <-h.created:
		t.Fatalf("order %s created despite the bad signature", no)
	default:
	}
}

func TestAnswerSignedWithWrongKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{simKeysDir: writeKeysDir(t, otherKey())})
	req := h.order(payment.MethodQR, 100, "x")
	_, err := h.client.Create(h.ctx(), req)
	wantErr(t, err, adapters.KindAmbiguous, codeBadResponseSignature)
	_, err = h.client.Query(h.ctx(), &adapters.QueryRequest{OrderNo: req.OrderNo})
	wantErr(t, err, adapters.KindAmbiguous, codeBadResponseSignature)
}

func TestWrongAppID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{cfg: func(c *Config) { c.AppID = "2021000000000999" }})
	_, err := h.client.Create(h.ctx(), h.order(payment.MethodQR, 100, "x"))
	// Alipay cannot sign for an app it does not know: the unsigned error is
	// believed as an error (never as a success).
	wantErr(t, err, adapters.KindInvalid, "isv.invalid-app-id")
}

func TestTimestampSkew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		shift time.Duration
		ok    bool
	}{
		{name: "14 minutes late", shift: -14 * time.Minute, ok: true},
		{name: "14 minutes early", shift: 14 * time.Minute, ok: true},
		{name: "16 minutes late", shift: -16 * time.Minute},
		{name: "16 minutes early", shift: 16 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h *harness
			h = newHarness(t, harnessOptions{cfg: func(c *Config) {
				c.Now = func() time.Time { return h.clock.Now().Add(tt.shift) }
			}})
			_, err := h.client.Query(h.ctx(), &adapters.QueryRequest{OrderNo: "A0000000000000000000000B"})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, adapters.KindInvalid, "isv.invalid-timestamp")
		})
	}
}

// TestAnswerWithBracesInStrings: the simulator echoes the subject in the
// query answer; braces and quotes in it must not confuse the extraction of
// the signed bytes.
func TestAnswerWithBracesInStrings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	subject := `He said "hi" {"a":"}"} \ }}{{ <tag> & more`
	req := h.order(payment.MethodQR, 321, subject)
	if _, err := h.client.Create(h.ctx(), req); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	if d := h.nextDelivery(); d.err != nil {
		t.Fatalf("notification with that subject: %v", d.err)
	}
	if st := h.query(req); st.Status != adapters.OrderPaid {
		t.Fatalf("query: %s", st.Status)
	}
}

// fakeAlipay answers every call with a hand-made body signed by key over
// the value of member (the exact bytes given).
func fakeAlipay(t *testing.T, key *rsa.PrivateKey, member, value string, signFirst bool) *httptest.Server {
	t.Helper()
	sum := sha256.Sum256([]byte(value))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	s := base64.StdEncoding.EncodeToString(sig)
	body := `{"` + member + `":` + value + `,"sign":"` + s + `"}`
	if signFirst {
		body = "{\n  \"sign\": \"" + s + "\",\n  \"" + member + "\": " + value + "\n}"
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func clientFor(t *testing.T, baseURL string) *Client {
	t.Helper()
	c, err := New(Config{ID: testChan, BaseURL: baseURL, AppID: testAppID, PrivateKey: appKey(), AlipayPublicKey: platformPub()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandMadeAnswers(t *testing.T) {
	t.Parallel()
	const no = "A0000000000000000000000B"
	query := `{"code":"10000","msg":"Success","trade_no":"2025","out_trade_no":"` + no + `","trade_status":"TRADE_SUCCESS",` +
		`"total_amount":"1.00","send_pay_date":"2025-03-01 10:00:00","subject":"}{\"\\\"}","ext":{"a":["}"]}}`
	tests := []struct {
		name      string
		key       *rsa.PrivateKey
		member    string
		value     string
		signFirst bool
		kind      adapters.Kind // 0: success
		code      string
	}{
		{name: "braces and escapes, sign last", key: platformKey(), member: "alipay_trade_query_response", value: query},
		{name: "braces and escapes, sign first, pretty", key: platformKey(), member: "alipay_trade_query_response", value: query, signFirst: true},
		{name: "signed by another key", key: otherKey(), member: "alipay_trade_query_response", value: query, kind: adapters.KindAmbiguous, code: codeBadResponseSignature},
		{name: "signed answer for another order", key: platformKey(), member: "alipay_trade_query_response",
			value: strings.Replace(query, no, "B0000000000000000000000A", 1), kind: adapters.KindAmbiguous, code: codeBadResponse},
		{name: "signed answer with another amount", key: platformKey(), member: "alipay_trade_query_response",
			value: strings.Replace(query, `"1.00"`, `"1.01"`, 1), kind: adapters.KindAmbiguous, code: codeBadResponse},
		{name: "answer to another method", key: platformKey(), member: "alipay_trade_close_response", value: query, kind: adapters.KindAmbiguous, code: codeBadResponse},
		{name: "success in error_response", key: platformKey(), member: "error_response", value: query, kind: adapters.KindAmbiguous, code: codeBadResponse},
		{name: "signed system error", key: platformKey(), member: "alipay_trade_query_response",
			value: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}`, kind: adapters.KindUnavailable, code: "ACQ.SYSTEM_ERROR"},
		{name: "number where a string belongs", key: platformKey(), member: "alipay_trade_query_response",
			value: `{"code":10000}`, kind: adapters.KindAmbiguous, code: codeBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := fakeAlipay(t, tt.key, tt.member, tt.value, tt.signFirst)
			st, err := clientFor(t, srv.URL).Query(context.Background(), &adapters.QueryRequest{OrderNo: no, Amount: 100, Currency: "CNY"})
			if tt.kind == 0 {
				if err != nil || st.Status != adapters.OrderPaid || st.Amount != 100 {
					t.Fatalf("query: %+v %v", st, err)
				}
				return
			}
			wantErr(t, err, tt.kind, tt.code)
		})
	}
}

func TestTransportAndGatewayFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    adapters.Kind
		code    string
	}{
		{name: "signed 20000", handler: func(w http.ResponseWriter, r *http.Request) { h.sim.Unavailable(w) },
			kind: adapters.KindUnavailable, code: "isp.unknow-error"},
		{name: "502 from a proxy", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) },
			kind: adapters.KindUnavailable, code: "http_502"},
		{name: "503", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) },
			kind: adapters.KindUnavailable, code: "http_503"},
		{name: "500", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) },
			kind: adapters.KindUnavailable, code: "http_500"},
		{name: "504: the proxy gave up waiting", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "timeout", http.StatusGatewayTimeout) },
			kind: adapters.KindAmbiguous, code: "http_504"},
		{name: "HTML with 200", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>maintenance</html>") },
			kind: adapters.KindAmbiguous, code: codeBadResponse},
		{name: "unsigned success", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"alipay_trade_precreate_response":{"code":"10000","msg":"Success","out_trade_no":"x","qr_code":"https://qr.alipay.com/x"}}`)
		}, kind: adapters.KindAmbiguous, code: codeBadResponseSignature},
		{name: "unsigned business failure", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"alipay_trade_precreate_response":{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS"}}`)
		}, kind: adapters.KindAmbiguous, code: codeBadResponseSignature},
		{name: "unsigned busy", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"error_response":{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}}`)
		}, kind: adapters.KindUnavailable, code: "isp.unknow-error"},
		{name: "timeout after sending", handler: func(w http.ResponseWriter, r *http.Request) {
			// Read the request (so the server notices the client leaving), then never answer.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		},
			kind: adapters.KindAmbiguous, code: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := clientFor(t, srv.URL).Create(ctx, h.order(payment.MethodQR, 100, "x"))
			wantErr(t, err, tt.kind, tt.code)
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		_, err := clientFor(t, u).Create(context.Background(), h.order(payment.MethodQR, 100, "x"))
		wantErr(t, err, adapters.KindUnavailable, "connect_failed")
	})
}

func TestObserverSeesCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	req := h.order(payment.MethodQR, 100, "x")
	if _, err := h.client.Create(h.ctx(), req); err != nil {
		t.Fatal(err)
	}
	h.query(req)
	h.calls.mu.Lock()
	defer h.calls.mu.Unlock()
	if strings.Join(h.calls.ops, ",") != "create,query" {
		t.Fatalf("observed ops %v", h.calls.ops)
	}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Alipay's console shows the public key as bare base64: it must be put
	// in a PEM block first.
	pubPEM, _ := os.ReadFile(filepath.Join(keysDir, "alipay-platform.pub.pem"))
	var bare []string
	for _, l := range strings.Split(strings.TrimSpace(string(pubPEM)), "\n") {
		if !strings.HasPrefix(l, "-----") {
			bare = append(bare, l)
		}
	}
	bareFile := filepath.Join(dir, "alipay-public.txt")
	os.WriteFile(bareFile, []byte(strings.Join(bare, "")), 0o600)
	base := config.Channel{ID: testChan, Type: "alipay", BaseURL: "https://openapi.alipay.com", Credentials: config.Credentials{
		AlipayAppID: testAppID, PrivateKeyFile: filepath.Join(keysDir, "alipay-app.pem"),
		AlipayPublicKeyFile: filepath.Join(keysDir, "alipay-platform.pub.pem"),
	}}
	tests := []struct {
		name    string
		modify  func(*config.Channel)
		wantErr bool
	}{
		{name: "PEM files", modify: func(*config.Channel) {}},
		{name: "inline PKCS#1 private key", modify: func(c *config.Channel) {
			b, _ := os.ReadFile(filepath.Join(keysDir, "alipay-platform.pem")) // any PKCS#1 RSA key
			c.Credentials.PrivateKeyFile, c.Credentials.PrivateKey = "", config.Secret(b)
		}},
		{name: "bare base64 public key", modify: func(c *config.Channel) { c.Credentials.AlipayPublicKeyFile = bareFile }, wantErr: true},
		{name: "no private key", modify: func(c *config.Channel) { c.Credentials.PrivateKeyFile = "" }, wantErr: true},
		{name: "two private key forms", modify: func(c *config.Channel) { c.Credentials.PrivateKey = "x" }, wantErr: true},
		{name: "no public key", modify: func(c *config.Channel) { c.Credentials.AlipayPublicKeyFile = "" }, wantErr: true},
		{name: "missing public key file", modify: func(c *config.Channel) { c.Credentials.AlipayPublicKeyFile = filepath.Join(dir, "nope") }, wantErr: true},
		{name: "public key file holds a private key", modify: func(c *config.Channel) {
			c.Credentials.AlipayPublicKeyFile = filepath.Join(keysDir, "alipay-app.pem")
		}, wantErr: true},
		{name: "no app id", modify: func(c *config.Channel) { c.Credentials.AlipayAppID = "" }, wantErr: true},
		{name: "bad base url", modify: func(c *config.Channel) { c.BaseURL = "openapi.alipay.com" }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch := base
			tt.modify(&ch)
			c, err := FromConfig(ch, "https://gw.example/callbacks/"+testChan, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (c.ID() != testChan || c.cfg.NotifyURL != "https://gw.example/callbacks/"+testChan) {
				t.Fatalf("client = %+v", c.cfg)
			}
		})
	}
}

// TestSignContent pins §B.3: sign_type included, sign and empty values
// left out, sorted by key bytes, values raw.
func TestSignContent(t *testing.T) {
	t.Parallel()
	p := url.Values{
		"sign": {"x"}, "sign_type": {"RSA2"}, "app_id": {"1"}, "biz_content": {`{"a":"b&c=d"}`},
		"notify_url": {""}, "Zeta": {"z"}, "method": {"m"},
	}
	want := `Zeta=z&app_id=1&biz_content={"a":"b&c=d"}&method=m&sign_type=RSA2`
	if got := signContent(p, "sign"); got != want {
		t.Fatalf("signContent = %q, want %q", got, want)
	}
}

// TestSandboxServer runs the simulator the way paygate's sandbox does (its
// own listener, faults, auto-pay) and drives it with the adapter.
func TestSandboxServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	delivered := make(chan *adapters.Notification, 8)
	var client *Client
	callbacks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := client.ParseNotify(r.Context(), &adapters.Callback{Body: body})
		a := client.Ack(err)
		w.WriteHeader(a.Status)
		w.Write(a.Body)
		if err == nil {
			delivered <- n
		}
	}))
	t.Cleanup(callbacks.Close)

	ch := config.Channel{ID: testChan, Type: "alipay", BaseURL: "http://" + addr, Credentials: config.Credentials{
		AlipayAppID: testAppID, PrivateKeyFile: filepath.Join(keysDir, "alipay-app.pem"),
		AlipayPublicKeyFile: filepath.Join(keysDir, "alipay-platform.pub.pem"),
	}}
	cfg := &config.Config{
		Sandbox:  config.Sandbox{Enabled: true, KeysDir: keysDir, AutoPay: config.AutoPay{After: config.Duration(10 * time.Millisecond), Ratio: 1}, TimeScale: 1},
		Channels: []config.Channel{ch},
	}
	srv, err := sandbox.New(cfg, zap.NewNop(), map[string]sandbox.Factory{"alipay": alipaysim.New}, sandbox.WithSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })

	client, err = FromConfig(ch, callbacks.URL+"/callbacks/"+testChan, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	no := payment.OrderNo(payment.NewPaymentID())
	if _, err := client.Create(ctx, &adapters.CreateRequest{OrderNo: no, Method: payment.MethodQR, Amount: 4200, Currency: "CNY",
		Subject: "auto", ExpiresAt: time.Now().Add(15 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-delivered:
		if n.OrderNo != no || n.Status != adapters.OrderPaid || n.Amount != 4200 {
			t.Fatalf("auto-pay notification = %+v", n)
		}
	case <-ctx.Done():
		t.Fatal("auto-pay did not pay the precreated order")
	}

	if err := srv.SetFaults(sandbox.Faults{Channel: testChan, ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Query(ctx, &adapters.QueryRequest{OrderNo: no})
	wantErr(t, err, adapters.KindUnavailable, "isp.unknow-error")

	if err := srv.SetFaults(sandbox.Faults{Channel: testChan, Down: true}); err != nil {
		t.Fatal(err)
	}
	// The first call may still go out on a kept-alive connection that the
	// listener's shutdown closes under it (sent, no answer: ambiguous); a
	// new connection is refused.
	_, err = client.Query(ctx, &adapters.QueryRequest{OrderNo: no})
	if e, ok := adapters.AsError(err); !ok || (e.Kind != adapters.KindUnavailable && e.Code != "transport_error") {
		t.Fatalf("first call after down: %v", err)
	}
	_, err = client.Query(ctx, &adapters.QueryRequest{OrderNo: no})
	wantErr(t, err, adapters.KindUnavailable, "connect_failed")
}
