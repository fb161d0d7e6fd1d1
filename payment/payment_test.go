package payment

import (
	"strings"
	"testing"
)

func TestIdentifiersMapBack(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		pid := NewPaymentID()
		if seen[pid] {
			t.Fatalf("duplicate payment id %s", pid)
		}
		seen[pid] = true
		no := OrderNo(pid)
		if len(no) != 24 || PaymentIDFromOrderNo(no) != pid {
			t.Fatalf("order number %q of %s does not map back", no, pid)
		}
		rid := NewRefundID(pid)
		rno := RefundOrderNo(rid)
		if len(rno) != 30 || !strings.HasPrefix(rno, no) {
			t.Fatalf("refund number %q of %s", rno, rid)
		}
		if PaymentIDFromOrderNo(rno) != pid || RefundIDFromRefundNo(rno) != rid || PaymentIDOfRefund(rid) != pid {
			t.Fatalf("refund %s does not map back to %s", rid, pid)
		}
	}
}

func TestIdentifiersRefuseOthers(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in string }{
		{"empty", ""},
		{"no prefix", "AbCdEfGhIjKlMnOpQrStUvWx"},
		{"short", "pay_AbCd"},
		{"not base62", "pay_AbCdEfGhIjKlMnOpQrStUv-x"},
		{"refund prefix", "rfd_AbCdEfGhIjKlMnOpQrStUvWx"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if OrderNo(tc.in) != "" || PaymentIDOfRefund(tc.in) != "" {
				t.Fatalf("%q accepted", tc.in)
			}
		})
	}
	for _, no := range []string{"", "abc", "AbCdEfGhIjKlMnOpQrStUvW_", strings.Repeat("a", 25), strings.Repeat("a", 31)} {
		if PaymentIDFromOrderNo(no) != "" || RefundIDFromRefundNo(no) != "" {
			t.Fatalf("channel number %q accepted", no)
		}
	}
}

func TestEventIDStablePerObjectAndType(t *testing.T) {
	t.Parallel()
	a, b := EventID("pay_X", EventPaymentSucceeded), EventID("pay_X", EventPaymentSucceeded)
	if a != b || a != "evt_pay_X_payment_succeeded" || a == EventID("pay_X", EventPaymentClosed) || a == EventID("pay_Y", EventPaymentSucceeded) {
		t.Fatalf("event ids: %s %s", a, b)
	}
}

func TestStatusesAndMethods(t *testing.T) {
	t.Parallel()
	if StatusPending.Final() || !StatusSucceeded.Final() || !StatusClosed.Final() || !StatusFailed.Final() {
		t.Fatal("payment Final")
	}
	if RefundPending.Final() || !RefundSucceeded.Final() || !RefundFailed.Final() {
		t.Fatal("refund Final")
	}
	for _, m := range Methods {
		if !m.Valid() {
			t.Fatalf("%s invalid", m)
		}
	}
	if Method("cash").Valid() || Method("").Valid() {
		t.Fatal("unknown method valid")
	}
}
