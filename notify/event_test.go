package notify

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
)

func TestNewEventExactBody(t *testing.T) {
	t.Parallel()
	cst := time.FixedZone("CST", 8*3600)
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, cst)
	ev, err := NewEvent(payment.EventPaymentSucceeded, "pay_1", "m1", "https://merchant.example/hook", json.RawMessage(`{"a": 1}`), now)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"evt_pay_1_payment_succeeded","type":"payment.succeeded","created_at":"2024-01-01T19:04:05Z","data":{"a":1}}`
	if string(ev.Body) != want {
		t.Fatalf("body\n got %s\nwant %s", ev.Body, want)
	}
	if ev.ID != payment.EventID("pay_1", payment.EventPaymentSucceeded) || ev.Merchant != "m1" || ev.NotifyURL != "https://merchant.example/hook" {
		t.Fatalf("event = %+v", ev)
	}
}

func TestNewEventPaymentObject(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	p := payment.Payment{PaymentID: "pay_X", MerchantID: "m1", Status: payment.StatusSucceeded, Amount: 1999, Currency: "CNY",
		Metadata: map[string]string{"k": "<v&>"}, CreatedAt: now, UpdatedAt: now}
	ev, err := NewEvent(payment.EventRefundFailed, "rfd_Y", "m1", "http://merchant.example/", p, now)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt string          `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(ev.Body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "evt_rfd_Y_refund_failed" || got.Type != "refund.failed" || got.CreatedAt != "2024-05-06T07:08:09.123456789Z" {
		t.Fatalf("envelope = %+v", got)
	}
	var back payment.Payment
	if err := json.Unmarshal(got.Data, &back); err != nil {
		t.Fatal(err)
	}
	if back.PaymentID != "pay_X" || back.Amount != 1999 || back.Metadata["k"] != "<v&>" || !back.CreatedAt.Equal(now) {
		t.Fatalf("data = %+v", back)
	}
}

func TestNewEventErrors(t *testing.T) {
	t.Parallel()
	now := time.Unix(vecT, 0)
	tests := []struct {
		name                        string
		typ, object, merchant, hook string
		data                        any
	}{
		{name: "unknown type", typ: "payment.created", data: map[string]int{}},
		{name: "no object id", typ: payment.EventPaymentFailed, object: "-", data: map[string]int{}},
		{name: "no merchant", typ: payment.EventPaymentFailed, merchant: "-", data: map[string]int{}},
		{name: "no notify url", typ: payment.EventPaymentFailed, hook: "-", data: map[string]int{}},
		{name: "data is an array", typ: payment.EventPaymentClosed, data: []int{1}},
		{name: "data is a string", typ: payment.EventPaymentClosed, data: "x"},
		{name: "data is null", typ: payment.EventPaymentClosed, data: nil},
		{name: "data cannot be marshalled", typ: payment.EventPaymentClosed, data: func() {}},
		{name: "raw data is not JSON", typ: payment.EventPaymentClosed, data: json.RawMessage(`{"a":`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			object, merchant, hook := or(tt.object, "pay_1"), or(tt.merchant, "m1"), or(tt.hook, "https://m.example/")
			ev, err := NewEvent(tt.typ, object, merchant, hook, tt.data, now)
			if !errors.Is(err, ErrInvalidEvent) || ev != nil {
				t.Fatalf("NewEvent = %v, %v; want ErrInvalidEvent", ev, err)
			}
		})
	}
}

// or returns def for "", "" for "-", else s.
func or(s, def string) string {
	switch s {
	case "":
		return def
	case "-":
		return ""
	}
	return s
}

func TestValidateNotifyURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{name: "https", url: "https://merchant.example/paygate/notify?x=1", ok: true},
		{name: "http with port", url: "http://merchant.example:8080/n", ok: true},
		{name: "ip literal (policy decided at dial time)", url: "http://127.0.0.1:9/", ok: true},
		{name: "ipv6 literal", url: "http://[2001:db8::1]/", ok: true},
		{name: "numeric-looking label not last", url: "https://1.example/", ok: true},
		{name: "hex-looking name", url: "https://cafe.example/", ok: true},
		{name: "ftp", url: "ftp://merchant.example/"},
		{name: "relative", url: "/notify"},
		{name: "no host", url: "http:///notify"},
		{name: "opaque", url: "http:merchant.example"},
		{name: "decimal ip", url: "http://2130706433/"},
		{name: "hex ip", url: "http://0x7f000001/"},
		{name: "octal ip", url: "http://017700000001/"},
		{name: "short ip", url: "http://127.1/"},
		{name: "trailing dot ip", url: "http://127.0.0.1./"},
		{name: "too long", url: "https://merchant.example/" + strings.Repeat("a", 250)},
		{name: "not a url", url: "http://[::1/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := ValidateNotifyURL(tt.url); (err == nil) != tt.ok {
				t.Fatalf("ValidateNotifyURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
			}
		})
	}
}
