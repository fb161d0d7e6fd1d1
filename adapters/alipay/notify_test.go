package alipay

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// notifyParams is a trade_status_sync payment notification as Alipay sends it.
func notifyParams() map[string]string {
	return map[string]string{
		"notify_time": "2025-03-01 10:01:00", "notify_type": "trade_status_sync", "notify_id": "ac05099524730693a8b330c5ecf72da9786",
		"app_id": testAppID, "auth_app_id": testAppID, "charset": "utf-8", "version": "1.0",
		"trade_no": "2025030122001400000000000001", "out_trade_no": "A0000000000000000000000B",
		"buyer_id": "2088102122524333", "buyer_logon_id": "159****5620", "seller_id": "2088101106499364",
		"trade_status": "TRADE_SUCCESS", "total_amount": "88.88", "receipt_amount": "88.88", "invoice_amount": "88.88",
		"buyer_pay_amount": "88.88", "point_amount": "0.00", "subject": "a&b=c {\"x\"}", "gmt_create": "2025-03-01 10:00:00",
		"gmt_payment": "2025-03-01 10:00:30", "fund_bill_list": `[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]`,
	}
}

// signNotify signs p with the V1 rule (without sign and sign_type) and
// encodes it as a form; signType "" leaves sign_type out of the body.
func signNotify(t testing.TB, key *rsa.PrivateKey, p map[string]string, signType string) []byte {
	t.Helper()
	v := url.Values{}
	for k, x := range p {
		v.Set(k, x)
	}
	sum := sha256.Sum256([]byte(signContent(v, "sign", "sign_type")))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	v.Set("sign", base64.StdEncoding.EncodeToString(sig))
	if signType != "" {
		v.Set("sign_type", signType)
	}
	return []byte(v.Encode())
}

func with(p map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range p {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestParseNotify(t *testing.T) {
	t.Parallel()
	c := clientFor(t, "http://127.0.0.1:1") // payment notifications need no call
	genuine := signNotify(t, platformKey(), notifyParams(), "RSA2")
	paidAt := time.Date(2025, 3, 1, 2, 0, 30, 0, time.UTC)

	tests := []struct {
		name   string
		body   []byte
		kind   adapters.Kind // 0: accepted
		code   string
		status adapters.OrderStatus
	}{
		{name: "genuine", body: genuine, status: adapters.OrderPaid},
		{name: "sign_type omitted", body: signNotify(t, platformKey(), notifyParams(), ""), status: adapters.OrderPaid},
		{name: "plus in the signature not encoded", body: []byte(strings.ReplaceAll(string(genuine), "%2B", "+")), status: adapters.OrderPaid},
		{name: "amount tampered", body: []byte(strings.Replace(string(genuine), "total_amount=88.88", "total_amount=0.01", 1)),
			kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "status tampered", body: []byte(strings.Replace(string(genuine), "TRADE_SUCCESS", "TRADE_FINISHED", 1)),
			kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "parameter added", body: append(append([]byte{}, genuine...), "&refund_fee=1.00"...),
			kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "signed with another key", body: signNotify(t, otherKey(), notifyParams(), "RSA2"),
			kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "other app_id, genuinely signed", body: signNotify(t, platformKey(), with(notifyParams(), "app_id", "2021000000000999"), "RSA2"),
			kind: adapters.KindBadSignature, code: codeAccountMismatch},
		{name: "legacy RSA sign_type", body: signNotify(t, platformKey(), notifyParams(), "RSA"),
			kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "no sign", body: []byte(strings.Split(string(genuine), "&sign=")[0]),
			kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "repeated parameter", body: append(append([]byte{}, genuine...), "&total_amount=88.88"...),
			kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "not a form", body: []byte("%zz"), kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "JSON body", body: []byte(`{"trade_status":"TRADE_SUCCESS"}`), kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "empty", body: nil, kind: adapters.KindBadSignature, code: codeNotifySignature},
		{name: "signed, malformed amount", body: signNotify(t, platformKey(), with(notifyParams(), "total_amount", "88.888"), "RSA2"),
			kind: adapters.KindInvalid, code: codeBadNotify},
		{name: "signed, no order number", body: signNotify(t, platformKey(), with(notifyParams(), "out_trade_no", ""), "RSA2"),
			kind: adapters.KindInvalid, code: codeBadNotify},
		{name: "closed unpaid", body: signNotify(t, platformKey(), with(notifyParams(), "trade_status", "TRADE_CLOSED", "gmt_payment", ""), "RSA2"),
			status: adapters.OrderClosed},
		{name: "waiting", body: signNotify(t, platformKey(), with(notifyParams(), "trade_status", "WAIT_BUYER_PAY", "gmt_payment", ""), "RSA2"),
			status: adapters.OrderPending},
		{name: "unknown trade status", body: signNotify(t, platformKey(), with(notifyParams(), "trade_status", "TRADE_NEW"), "RSA2"),
			status: adapters.OrderUnknown},
		{name: "other notify type", body: signNotify(t, platformKey(), with(notifyParams(), "notify_type", "fund_auth_sync"), "RSA2"),
			status: adapters.OrderUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := c.ParseNotify(context.Background(), &adapters.Callback{Body: tt.body, ContentType: "application/x-www-form-urlencoded"})
			if tt.kind != 0 {
				e := wantErr(t, err, tt.kind, tt.code)
				if e.Op != opNotify {
					t.Fatalf("op = %q", e.Op)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind != adapters.NotifyPayment || n.Status != tt.status || n.OrderNo != "A0000000000000000000000B" ||
				n.Currency != "CNY" || n.Account != testAppID {
				t.Fatalf("notification = %+v", n)
			}
			if tt.status != adapters.OrderUnknown && n.Amount != 8888 {
				t.Fatalf("notification = %+v", n)
			}
			if tt.status == adapters.OrderPaid && (!n.PaidAt.Equal(paidAt) || n.ChannelTradeNo != "2025030122001400000000000001") {
				t.Fatalf("paid notification = %+v", n)
			}
		})
	}
}

func TestDecodeRefundNotification(t *testing.T) {
	t.Parallel()
	refundNo := payment.RefundOrderNo(payment.NewRefundID("pay_A0000000000000000000000B"))
	p := with(notifyParams(), "out_biz_no", refundNo, "refund_fee", "10.00", "gmt_refund", "2025-03-01 11:00:00.000")
	n, err := decodeNotification(p)
	if err != nil || n.Kind != adapters.NotifyRefund || n.RefundNo != refundNo || n.OrderNo != "A0000000000000000000000B" {
		t.Fatalf("refund notification = %+v %v", n, err)
	}
	// Without out_trade_no the order number is the refund number's prefix.
	n, err = decodeNotification(with(p, "out_trade_no", ""))
	if err != nil || n.OrderNo != "A0000000000000000000000B" {
		t.Fatalf("derived order = %+v %v", n, err)
	}
	if _, err := decodeNotification(with(p, "out_trade_no", "", "out_biz_no", "merchant-portal-1")); err == nil {
		t.Fatal("refund without any order number accepted")
	}
	if _, err := decodeNotification(with(p, "refund_fee", "1.001")); err == nil {
		t.Fatal("malformed refund_fee accepted")
	}
	// A fully refunded trade notifies TRADE_CLOSED with the refund fields: a refund, not a close.
	n, err = decodeNotification(with(p, "trade_status", "TRADE_CLOSED"))
	if err != nil || n.Kind != adapters.NotifyRefund {
		t.Fatalf("full refund notification = %+v %v", n, err)
	}
}

// TestRefundNotificationUnconfirmed: a genuine-looking refund notification
// for a refund Alipay's refund query does not know is not acknowledged.
func TestRefundNotificationUnconfirmed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	req := h.paid(500)
	refundNo := payment.RefundOrderNo(payment.NewRefundID("pay_" + req.OrderNo))
	body := signNotify(t, platformKey(), with(notifyParams(), "out_trade_no", req.OrderNo, "total_amount", "5.00",
		"out_biz_no", refundNo, "refund_fee", "1.00", "gmt_refund", "2025-03-01 11:00:00.000"), "RSA2")
	_, err := h.client.ParseNotify(h.ctx(), &adapters.Callback{Body: body})
	wantErr(t, err, adapters.KindAmbiguous, codeRefundUnconfirmed)
	if a := h.client.Ack(err); string(a.Body) != "fail" {
		t.Fatalf("ack = %q", a.Body)
	}
}

func TestGenuineNotificationTampered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	req := h.order(payment.MethodQR, 1234, "x")
	if _, err := h.client.Create(h.ctx(), req); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	d := h.nextDelivery()
	if d.err != nil {
		t.Fatal(d.err)
	}
	v, err := url.ParseQuery(string(d.body))
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("sign_type") != "RSA2" || v.Get("notify_id") == "" {
		t.Fatalf("simulator notification: %v", v)
	}
	v.Set("total_amount", "0.01")
	_, err = h.client.ParseNotify(h.ctx(), &adapters.Callback{Body: []byte(v.Encode())})
	wantErr(t, err, adapters.KindBadSignature, codeNotifySignature)
}

// TestNotificationResent: an answer other than "success" makes Alipay send
// the very same notification (same notify_id) again; "success" stops it.
func TestNotificationResent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.ack = func(n int, err error) error {
		if n == 1 {
			return errTestFail
		}
		return err
	}
	req := h.order(payment.MethodQR, 100, "x")
	if _, err := h.client.Create(h.ctx(), req); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	first, second := h.nextDelivery(), h.nextDelivery()
	if string(first.body) != string(second.body) || first.err != nil || second.err != nil {
		t.Fatalf("resend differs or fails:\n%s\n%s", first.body, second.body)
	}
	h.noDelivery(100 * time.Millisecond)
}

func TestAck(t *testing.T) {
	t.Parallel()
	c := clientFor(t, "http://127.0.0.1:1")
	if a := c.Ack(nil); a.Status != http.StatusOK || string(a.Body) != "success" || !strings.HasPrefix(a.ContentType, "text/plain") {
		t.Fatalf("Ack(nil) = %+v", a)
	}
	if a := c.Ack(errTestFail); a.Status != http.StatusOK || string(a.Body) != "fail" {
		t.Fatalf("Ack(err) = %+v", a)
	}
}

// FuzzParseNotify: the verifier and decoder never panic, and nothing is
// accepted unless it verifies with the Alipay key and names an order.
func FuzzParseNotify(f *testing.F) {
	genuine := signNotify(f, platformKey(), notifyParams(), "RSA2")
	f.Add(genuine)
	f.Add(signNotify(f, platformKey(), notifyParams(), ""))
	f.Add([]byte(strings.Replace(string(genuine), "88.88", "0.01", 1)))
	f.Add([]byte("a=1&a=2&sign=%zz"))
	f.Add([]byte(""))
	pub := platformPub()
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := verifyNotification(body, pub)
		if err != nil {
			return
		}
		if p["sign"] == "" {
			t.Fatal("accepted without sign")
		}
		n, err := decodeNotification(p)
		if err != nil {
			return
		}
		if n.Status != adapters.OrderUnknown && n.OrderNo == "" {
			t.Fatalf("decoded without an order number: %+v", n)
		}
		if n.Amount < 0 {
			t.Fatalf("negative amount: %+v", n)
		}
	})
}

func TestNotifyHint(t *testing.T) {
	c := &Client{}
	cases := []struct{ name, body, want string }{
		{"payment", "out_trade_no=AbCdEfGhIjKlMnOpQrStUvWx&trade_status=TRADE_SUCCESS&sign=forged", "AbCdEfGhIjKlMnOpQrStUvWx"},
		{"no order", "trade_status=TRADE_SUCCESS", ""},
		{"not a form", "%zz", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := c.NotifyHint(&adapters.Callback{Body: []byte(tc.body)}); got != tc.want {
				t.Fatalf("NotifyHint = %q, want %q", got, tc.want)
			}
		})
	}
}
