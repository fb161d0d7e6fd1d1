package bank

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

var testMerchant = merchant{merID: merA, certID: certA, backURL: "https://pay.example.com/callbacks/bank-a",
	frontURL: "https://pay.example.com/"}

func TestRequestFields(t *testing.T) {
	t.Parallel()
	// 23:30 UTC is 07:30 the next day in Beijing.
	created := time.Date(2026, 11, 28, 23, 30, 0, 0, time.UTC)
	create := &adapters.CreateRequest{OrderNo: "0123456789ABCDEFGHIJabcd", Method: payment.MethodQR, Amount: 1999,
		Currency: "CNY", CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute)}
	noExpiry := *create
	noExpiry.ExpiresAt = time.Time{}
	noFront := testMerchant
	noFront.frontURL = ""
	common := map[string]string{"version": "5.1.0", "encoding": "utf-8", "signMethod": "01", "accessType": "0",
		"merId": merA, "certId": certA}
	with := func(extra map[string]string) map[string]string {
		m := maps.Clone(common)
		maps.Copy(m, extra)
		return m
	}
	tests := []struct {
		name string
		got  map[string]string
		want map[string]string
	}{
		{"front consume", consumeFields(testMerchant, create), with(map[string]string{
			"txnType": "01", "txnSubType": "01", "bizType": "000201", "channelType": "07", "currencyCode": "156",
			"orderId": "0123456789ABCDEFGHIJabcd", "txnTime": "20261129073000", "txnAmt": "1999",
			"payTimeout": "20261129074500", "backUrl": "https://pay.example.com/callbacks/bank-a",
			"frontUrl": "https://pay.example.com/"})},
		{"front consume without expiry or frontUrl", consumeFields(noFront, &noExpiry), with(map[string]string{
			"txnType": "01", "txnSubType": "01", "bizType": "000201", "channelType": "07", "currencyCode": "156",
			"orderId": "0123456789ABCDEFGHIJabcd", "txnTime": "20261129073000", "txnAmt": "1999",
			"backUrl": "https://pay.example.com/callbacks/bank-a"})},
		{"QR apply", qrApplyFields(testMerchant, create), with(map[string]string{
			"txnType": "01", "txnSubType": "07", "bizType": "000000", "channelType": "08", "currencyCode": "156",
			"orderId": "0123456789ABCDEFGHIJabcd", "txnTime": "20261129073000", "txnAmt": "1999",
			"payTimeout": "20261129074500", "backUrl": "https://pay.example.com/callbacks/bank-a"})},
		{"query", queryFields(testMerchant, "0123456789ABCDEFGHIJabcd", created), with(map[string]string{
			"txnType": "00", "txnSubType": "00", "bizType": "000000",
			"orderId": "0123456789ABCDEFGHIJabcd", "txnTime": "20261129073000"})},
		{"refund", refundFields(testMerchant, &adapters.RefundRequest{OrderNo: "0123456789ABCDEFGHIJabcd",
			ChannelTradeNo: "261129073100123456789", RefundNo: "0123456789ABCDEFGHIJabcdR00001", Amount: 500,
			Total: 1999, CreatedAt: created.Add(time.Hour)}), with(map[string]string{
			"txnType": "04", "txnSubType": "00", "bizType": "000201", "channelType": "07", "currencyCode": "156",
			"orderId": "0123456789ABCDEFGHIJabcdR00001", "origQryId": "261129073100123456789",
			"txnTime": "20261129083000", "txnAmt": "500", "backUrl": "https://pay.example.com/callbacks/bank-a"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !maps.Equal(tt.got, tt.want) {
				t.Fatalf("fields\n got %v\nwant %v", tt.got, tt.want)
			}
		})
	}
}

func TestACPTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want time.Time
		ok   bool
	}{
		{"beijing midnight", "20261129000000", time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC), true},
		{"leap day", "20280229120000", time.Date(2028, 2, 29, 4, 0, 0, 0, time.UTC), true},
		{"no leap day", "20270229120000", time.Time{}, false},
		{"short", "2026112900000", time.Time{}, false},
		{"with zone", "2026-11-29T00:00", time.Time{}, false},
		{"signed", "+2026112900000", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseACPTime(tt.in)
			if (err == nil) != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("parseACPTime(%q) = %v, %v", tt.in, got, err)
			}
			if tt.ok && acpTime(got) != tt.in {
				t.Fatalf("acpTime round trip: %s", acpTime(got))
			}
		})
	}
}

func TestPaidAtFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		txnTime   string
		traceTime string
		want      time.Time
		ok        bool
	}{
		{"same day", "20261129150405", "1129150600", time.Date(2026, 11, 29, 7, 6, 0, 0, time.UTC), true},
		{"over new year", "20261231235000", "0101000500", time.Date(2026, 12, 31, 16, 5, 0, 0, time.UTC), true},
		{"slightly before txnTime (clock skew)", "20261129150405", "1129150000", time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC), true},
		{"no traceTime", "20261129150405", "", time.Time{}, false},
		{"bad traceTime", "20261129150405", "1329150600", time.Time{}, false},
		{"bad txnTime", "2026", "1129150600", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := paidAtFrom(tt.txnTime, tt.traceTime)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("paidAtFrom = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseFen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true}, {"1999", 1999, true}, {"999999999999", 999999999999, true}, {"0", 0, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"19.99", 0, false}, {"1e3", 0, false},
		{"1000000000000", 0, false}, {" 1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseFen(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseFen(%q) = %d, %v", tt.in, got, err)
			}
		})
	}
}

func TestParseForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		want   map[string]string
		errHas string
	}{
		{"plain", "a=1&b=2", map[string]string{"a": "1", "b": "2"}, ""},
		{"escapes and plus", "msg=%E6%88%90%E5%8A%9F&s=a+b%2B", map[string]string{"msg": "成功", "s": "a b+"}, ""},
		{"empty value", "a=&b=2", map[string]string{"a": "", "b": "2"}, ""},
		{"repeated key", "a=1&a=2", nil, "repeats"},
		{"empty key", "=1", nil, "empty key"},
		{"bad escape", "a=%zz", nil, "not a form"},
		{"semicolon", "a=1;b=2", nil, "not a form"},
		{"empty", "", nil, "empty form"},
		{"too large", "a=" + strings.Repeat("x", maxFormBytes), nil, "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseForm([]byte(tt.in))
			if (err == nil) != (tt.errHas == "") || (err != nil && !strings.Contains(err.Error(), tt.errHas)) {
				t.Fatalf("parseForm: %v, want error containing %q", err, tt.errHas)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("parseForm = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckEcho(t *testing.T) {
	t.Parallel()
	want := map[string]string{"merId": merA, "orderId": "ORDER001", "txnAmt": "100"}
	tests := []struct {
		name string
		ans  map[string]string
		ok   bool
	}{
		{"all echoed", map[string]string{"merId": merA, "orderId": "ORDER001", "txnAmt": "100"}, true},
		{"optional txnAmt absent", map[string]string{"merId": merA, "orderId": "ORDER001"}, true},
		{"required orderId absent", map[string]string{"merId": merA}, false},
		{"other merId", map[string]string{"merId": merB, "orderId": "ORDER001"}, false},
		{"other amount", map[string]string{"merId": merA, "orderId": "ORDER001", "txnAmt": "101"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := checkEcho(tt.ans, want, "merId", "orderId"); (err == nil) != tt.ok {
				t.Fatalf("checkEcho: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDecodeNotification(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{"merId": merA, "orderId": "0123456789ABCDEFGHIJabcd", "txnTime": "20261129150405",
			"txnAmt": "1999", "currencyCode": "156", "txnType": "01", "respCode": "00", "queryId": "Q1",
			"traceTime": "1129150600"}
		maps.Copy(m, extra)
		return m
	}
	paid := time.Date(2026, 11, 29, 7, 6, 0, 0, time.UTC)
	tests := []struct {
		name   string
		in     map[string]string
		want   adapters.Notification
		errHas string
	}{
		{"paid", base(nil), adapters.Notification{Kind: adapters.NotifyPayment, OrderNo: "0123456789ABCDEFGHIJabcd",
			Status: adapters.OrderPaid, ChannelTradeNo: "Q1", PaidAt: paid, Amount: 1999, Currency: "CNY", Account: merA}, ""},
		{"A6 is paid", base(map[string]string{"respCode": "A6"}), adapters.Notification{Kind: adapters.NotifyPayment,
			OrderNo: "0123456789ABCDEFGHIJabcd", Status: adapters.OrderPaid, ChannelTradeNo: "Q1", PaidAt: paid,
			Amount: 1999, Currency: "CNY", Account: merA}, ""},
		{"paid without traceTime", base(map[string]string{"traceTime": ""}), adapters.Notification{Kind: adapters.NotifyPayment,
			OrderNo: "0123456789ABCDEFGHIJabcd", Status: adapters.OrderPaid, ChannelTradeNo: "Q1", PaidAt: now,
			Amount: 1999, Currency: "CNY", Account: merA}, ""},
		{"failed (61)", base(map[string]string{"respCode": "61"}), adapters.Notification{Kind: adapters.NotifyPayment,
			OrderNo: "0123456789ABCDEFGHIJabcd", Status: adapters.OrderFailed, ChannelTradeNo: "Q1",
			Amount: 1999, Currency: "CNY", Account: merA}, ""},
		{"unknown respCode", base(map[string]string{"respCode": "ZZ"}), adapters.Notification{Kind: adapters.NotifyPayment,
			OrderNo: "0123456789ABCDEFGHIJabcd", Status: adapters.OrderUnknown, ChannelTradeNo: "Q1",
			Amount: 1999, Currency: "CNY", Account: merA}, ""},
		{"USD", base(map[string]string{"currencyCode": "840"}), adapters.Notification{Kind: adapters.NotifyPayment,
			OrderNo: "0123456789ABCDEFGHIJabcd", Status: adapters.OrderPaid, ChannelTradeNo: "Q1", PaidAt: paid,
			Amount: 1999, Currency: "840", Account: merA}, ""},
		{"refund", base(map[string]string{"txnType": "04", "orderId": "0123456789ABCDEFGHIJabcdR00001", "txnAmt": "500"}),
			adapters.Notification{Kind: adapters.NotifyRefund, OrderNo: "0123456789ABCDEFGHIJabcd",
				RefundNo: "0123456789ABCDEFGHIJabcdR00001", RefundStatus: adapters.RefundSucceeded, ChannelRefundNo: "Q1",
				Amount: 500, Currency: "CNY", Account: merA}, ""},
		{"refund number not paygate's", base(map[string]string{"txnType": "04", "orderId": "REFUND0001"}),
			adapters.Notification{}, "refund number"},
		{"undo", base(map[string]string{"txnType": "31"}), adapters.Notification{}, "txnType"},
		{"no respCode", base(map[string]string{"respCode": ""}), adapters.Notification{}, "respCode"},
		{"amount in yuan", base(map[string]string{"txnAmt": "19.99"}), adapters.Notification{}, "txnAmt"},
		{"orderId with dash", base(map[string]string{"orderId": "order-0001"}), adapters.Notification{}, "orderId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := maps.Clone(tt.in)
			maps.DeleteFunc(in, func(_, v string) bool { return v == "" })
			n, err := decodeNotification(in, now)
			if (err == nil) != (tt.errHas == "") || (err != nil && !strings.Contains(err.Error(), tt.errHas)) {
				t.Fatalf("decode: %v, want error containing %q", err, tt.errHas)
			}
			if err == nil && *n != tt.want {
				t.Fatalf("decode\n got %+v\nwant %+v", *n, tt.want)
			}
		})
	}
}
