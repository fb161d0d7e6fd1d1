package bank

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// Genuine notifications come from the simulator over HTTP (harness); the
// hostile ones are built from them.
func TestParseNotify(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	pay, qid, genuine := h.paidWith(t, 1999)
	refundReq := &adapters.RefundRequest{OrderNo: pay.OrderNo, ChannelTradeNo: qid, RefundNo: pay.OrderNo + "R00001",
		Amount: 500, Total: 1999, Currency: "CNY", CreatedAt: start.Add(time.Minute)}
	if _, err := h.client.Refund(ctx, refundReq); err != nil {
		t.Fatal(err)
	}
	refundNote := h.next(t)
	if refundNote.err != nil {
		t.Fatal(refundNote.err)
	}

	ca := testCA(t)
	legit := ca.issue(t, start.Add(-time.Hour), start.Add(24*time.Hour))
	expired := ca.issue(t, start.Add(-48*time.Hour), start.Add(-time.Hour))
	rogue := rogueCA(t).issue(t, start.Add(-time.Hour), start.Add(24*time.Hour))

	edit := func(body []byte, f func(map[string]string) map[string]string) []byte {
		m, err := parseForm(body)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(encodeForm(f(m)))
	}
	set := func(k, v string) func(map[string]string) map[string]string {
		return func(m map[string]string) map[string]string { m[k] = v; return m }
	}
	tests := []struct {
		name string
		body []byte
		kind adapters.Kind // 0: accepted
		code string
		want adapters.Notification
	}{
		{name: "genuine payment", body: genuine.body, want: adapters.Notification{
			Kind: adapters.NotifyPayment, OrderNo: pay.OrderNo, Status: adapters.OrderPaid, ChannelTradeNo: qid,
			Amount: 1999, Currency: "CNY", Account: merA}},
		{name: "genuine refund", body: refundNote.body, want: adapters.Notification{
			Kind: adapters.NotifyRefund, OrderNo: pay.OrderNo, RefundNo: refundReq.RefundNo,
			RefundStatus: adapters.RefundSucceeded, ChannelRefundNo: refundNote.n.ChannelRefundNo,
			Amount: 500, Currency: "CNY", Account: merA}},
		{name: "txnAmt changed", body: edit(genuine.body, set("txnAmt", "1")), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "respCode changed", body: edit(refundNote.body, set("respCode", "01")), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "field added", body: edit(genuine.body, set("reqReserved", "x")), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "certificate swapped for another genuine one", body: edit(genuine.body, set("signPubKeyCert", legit.certPEM)),
			kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "signed under a CA we do not pin", body: edit(genuine.body, rogueSign(t, rogue)), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "signed under an expired certificate", body: edit(genuine.body, rogueSign(t, expired)), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "another merId, genuinely signed", body: edit(genuine.body, func(m map[string]string) map[string]string {
			m["merId"] = merB
			return legit.resign(t, m)
		}), kind: adapters.KindBadSignature, code: "account_mismatch"},
		{name: "undo (txnType 31), genuinely signed", body: edit(genuine.body, func(m map[string]string) map[string]string {
			m["txnType"] = "31"
			return legit.resign(t, m)
		}), kind: adapters.KindInvalid, code: "bad_notification"},
		{name: "no signature", body: edit(genuine.body, func(m map[string]string) map[string]string {
			delete(m, "signature")
			return m
		}), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "no certificate", body: edit(genuine.body, func(m map[string]string) map[string]string {
			delete(m, "signPubKeyCert")
			return m
		}), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "JSON", body: []byte(`{"orderId":"x"}`), kind: adapters.KindBadSignature, code: "bad_signature"},
		{name: "bad escape", body: []byte("orderId=%zz"), kind: adapters.KindBadSignature, code: "malformed"},
		{name: "repeated key", body: append(append([]byte{}, genuine.body...), "&txnAmt=1"...), kind: adapters.KindBadSignature, code: "malformed"},
		{name: "empty", body: nil, kind: adapters.KindBadSignature, code: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := h.client.ParseNotify(ctx, &adapters.Callback{
				Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: tt.body,
				ContentType: "application/x-www-form-urlencoded",
			})
			if tt.kind != 0 {
				wantErr(t, err, tt.kind, tt.code)
				if ack := h.client.Ack(err); ack.Status != http.StatusBadRequest || string(ack.Body) != "fail" {
					t.Fatalf("ack %+v", ack)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := *n
			got.PaidAt = time.Time{}
			if got != tt.want {
				t.Fatalf("notification\n got %+v\nwant %+v", got, tt.want)
			}
			if tt.want.Kind == adapters.NotifyPayment && n.PaidAt.IsZero() {
				t.Fatal("paid notification without PaidAt")
			}
		})
	}
}

// rogueSign re-signs a message under s (whatever CA issued it).
func rogueSign(t *testing.T, s signer) func(map[string]string) map[string]string {
	return func(m map[string]string) map[string]string { return s.resign(t, m) }
}

func TestAck(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tests := []struct {
		name   string
		err    error
		status int
		body   string
	}{
		{"acknowledged", nil, http.StatusOK, "ok"},
		{"refused", &adapters.Error{Kind: adapters.KindBadSignature}, http.StatusBadRequest, "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := h.client.Ack(tt.err)
			if a.Status != tt.status || string(a.Body) != tt.body || !strings.HasPrefix(a.ContentType, "text/plain") {
				t.Fatalf("ack %+v", a)
			}
		})
	}
}

// Refusing a notification makes the bank resend it: the simulator retries
// until the callback endpoint answers 200.
func TestRefusedNotificationIsResent(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	req := h.order(payment.MethodQR, 100)
	if _, err := h.client.Create(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// With the gateway's clock before the signing certificate's validity,
	// the first delivery fails verification and is refused with 400; the
	// clock is put right before that answer goes out, so the resend (20 ms
	// later on the harness schedule) is accepted.
	h.clock.Add(-2 * time.Hour)
	h.setAfterParse(func() { h.clock.Add(2 * time.Hour) })
	if err := h.sim.Pay(req.OrderNo); err != nil {
		t.Fatal(err)
	}
	first := h.next(t)
	wantErr(t, first.err, adapters.KindBadSignature, "bad_signature")
	h.setAfterParse(nil)
	second := h.next(t)
	if second.err != nil || second.n.OrderNo != req.OrderNo || string(second.body) != string(first.body) {
		t.Fatalf("resend: %+v", second)
	}
}

// fuzzClient is a client whose clock accepts the certificate in the
// committed seeds (issued by the sandbox test CA, valid 2026-2036).
func fuzzClient(f *testing.F) *Client {
	c, err := New(Config{
		ID: "bank-a", BaseURL: "http://127.0.0.1:1", MerID: merA, CertID: certA, PrivateKey: merchantKey(f),
		Roots: testRoots(f), NotifyURL: "http://127.0.0.1:1/callbacks/bank-a",
		Now: func() time.Time { return start },
	})
	if err != nil {
		f.Fatal(err)
	}
	return c
}

// FuzzParseNotify feeds arbitrary bodies to ParseNotify: it must never
// panic, and whatever it accepts must be a well-formed notification for our
// merId. Seeds: testdata/fuzz/FuzzParseNotify (genuine payment and refund
// notifications signed under the sandbox CA, and broken variants).
func FuzzParseNotify(f *testing.F) {
	c := fuzzClient(f)
	f.Add([]byte("txnType=01&orderId=0123456789ABCDEFGHIJabcd"))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := c.ParseNotify(context.Background(), &adapters.Callback{Body: body})
		if err != nil {
			if _, ok := adapters.AsError(err); !ok {
				t.Fatalf("error %v is not an *adapters.Error", err)
			}
			return
		}
		if n.Account != merA || !validOrderID(n.OrderNo) || n.Amount < 0 || n.Currency == "" {
			t.Fatalf("accepted %+v", n)
		}
		if n.Kind == adapters.NotifyRefund && (payment.PaymentIDFromOrderNo(n.RefundNo) != "pay_"+n.OrderNo) {
			t.Fatalf("refund %s does not lead to order %s", n.RefundNo, n.OrderNo)
		}
	})
}

// FuzzParseForm: parseForm never panics, and what it accepts survives
// encodeForm unchanged.
func FuzzParseForm(f *testing.F) {
	f.Add([]byte("a=1&b=%E4%B8%AD&c=x+y"))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseForm(body)
		if err != nil {
			return
		}
		again, err := parseForm([]byte(encodeForm(m)))
		if err != nil {
			t.Fatalf("re-encoded form refused: %v", err)
		}
		if len(again) != len(m) {
			t.Fatalf("round trip changed the form: %v → %v", m, again)
		}
		for k, v := range m {
			if again[k] != v {
				t.Fatalf("round trip changed %q: %q → %q", k, v, again[k])
			}
		}
	})
}

// TestFuzzSeedsAccepted keeps the committed genuine seeds meaningful: they
// must verify, so that the fuzzer starts from messages that pass the
// signature check.
func TestFuzzSeedsAccepted(t *testing.T) {
	c, err := New(Config{
		ID: "bank-a", BaseURL: "http://127.0.0.1:1", MerID: merA, CertID: certA, PrivateKey: merchantKey(t),
		Roots: testRoots(t), NotifyURL: "http://127.0.0.1:1/callbacks/bank-a", Now: func() time.Time { return start },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"genuine-payment", "genuine-refund"} {
		t.Run(name, func(t *testing.T) {
			body := seedBody(t, filepath.Join("testdata", "fuzz", "FuzzParseNotify", name))
			if _, err := c.ParseNotify(context.Background(), &adapters.Callback{Body: body}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// seedBody reads a Go fuzz corpus file holding one []byte value.
func seedBody(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 2)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s is not a fuzz corpus file", path)
	}
	v := strings.TrimSpace(lines[1])
	v, ok := strings.CutPrefix(v, "[]byte(")
	if !ok || !strings.HasSuffix(v, ")") {
		t.Fatalf("%s does not hold a []byte", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

func TestNotifyHint(t *testing.T) {
	c := &Client{}
	cases := []struct {
		name, body, want string
	}{
		{"payment order", "orderId=AbCdEfGhIjKlMnOpQrStUvWx&txnType=01", "AbCdEfGhIjKlMnOpQrStUvWx"},
		{"refund order", "orderId=AbCdEfGhIjKlMnOpQrStUvWxR12345&txnType=04", "AbCdEfGhIjKlMnOpQrStUvWx"},
		{"not ours", "orderId=abc&txnType=01", ""},
		{"not a form", "%%%", ""},
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
