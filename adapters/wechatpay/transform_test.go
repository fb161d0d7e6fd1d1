package wechatpay

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

func TestBuildOrder(t *testing.T) {
	t.Parallel()
	exp := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	req := &adapters.CreateRequest{
		OrderNo: "AbCdEfGhIjKlMnOpQrStUvWx", Method: payment.MethodWechatJSAPI, Amount: 1999, Currency: "CNY",
		Subject: strings.Repeat("咖", 130), ExpiresAt: exp, PayerOpenID: "o-abc", ClientIP: "203.0.113.7",
	}
	o, err := buildOrder("wxapp", "1900000001", "https://gw.example/callbacks/wechat-main", tradeJSAPI, req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(o)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["time_expire"] != "2025-01-02T11:04:05+08:00" {
		t.Errorf("time_expire = %v, want Beijing RFC 3339", got["time_expire"])
	}
	if n := len([]rune(got["description"].(string))); n != 127 {
		t.Errorf("description has %d characters, want 127", n)
	}
	if got["payer"].(map[string]any)["openid"] != "o-abc" {
		t.Errorf("payer = %v", got["payer"])
	}
	amt := got["amount"].(map[string]any)
	if amt["total"] != float64(1999) || amt["currency"] != "CNY" {
		t.Errorf("amount = %v", amt)
	}
	if got["out_trade_no"] != req.OrderNo || got["appid"] != "wxapp" || got["mchid"] != "1900000001" {
		t.Errorf("ids = %v", got)
	}
	if got["scene_info"].(map[string]any)["payer_client_ip"] != "203.0.113.7" {
		t.Errorf("scene_info = %v", got["scene_info"])
	}
}

func TestBuildOrderRefusals(t *testing.T) {
	t.Parallel()
	base := adapters.CreateRequest{OrderNo: "AbCdEfGhIjKlMnOpQrStUvWx", Amount: 1, Currency: "CNY", Subject: "x"}
	tests := []struct {
		name string
		kind tradeKind
		mod  func(*adapters.CreateRequest)
	}{
		{"jsapi without openid", tradeJSAPI, func(r *adapters.CreateRequest) {}},
		{"zero amount", tradeNative, func(r *adapters.CreateRequest) { r.Amount = 0 }},
		{"foreign currency", tradeNative, func(r *adapters.CreateRequest) { r.Currency = "USD" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := base
			tt.mod(&r)
			if _, err := buildOrder("a", "m", "https://n", tt.kind, &r); err == nil {
				t.Fatal("buildOrder accepted it")
			}
		})
	}
}

func TestBuildRefund(t *testing.T) {
	t.Parallel()
	r, err := buildRefund("https://gw/cb", &adapters.RefundRequest{
		OrderNo: "o", RefundNo: "r", Amount: 5, Total: 10, Reason: strings.Repeat("a", 100),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Amount.Currency != "CNY" || r.Amount.Refund != 5 || r.Amount.Total != 10 || len(r.Reason) != 80 || r.NotifyURL != "https://gw/cb" {
		t.Errorf("refund = %+v", r)
	}
	for _, bad := range []adapters.RefundRequest{{Amount: 11, Total: 10}, {Amount: 0, Total: 10}, {Amount: 1, Total: 10, Currency: "USD"}} {
		if _, err := buildRefund("", &bad); err == nil {
			t.Errorf("buildRefund(%+v) accepted it", bad)
		}
	}
}

func TestJSAPIMessage(t *testing.T) {
	t.Parallel()
	p := jsapiParams("wx8888888888888888", "wx201410272009395522657a690389285100", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", time.Unix(1414561699, 0))
	want := "wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n"
	if got := jsapiMessage(p["appId"], p["timeStamp"], p["nonceStr"], p["package"]); got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if p["signType"] != "RSA" {
		t.Errorf("signType = %q", p["signType"])
	}
}

func TestRefundNotificationDerivesOrderNo(t *testing.T) {
	t.Parallel()
	pid := payment.NewPaymentID()
	rno := payment.RefundOrderNo(payment.NewRefundID(pid))
	n := refundNotification(&refundNotice{MchID: "m", OutRefundNo: rno, RefundStatus: "SUCCESS"})
	if n.OrderNo != payment.OrderNo(pid) || n.Kind != adapters.NotifyRefund || n.RefundStatus != adapters.RefundSucceeded || n.Currency != "CNY" {
		t.Errorf("notification = %+v", n)
	}
}

func TestOrderStateConversion(t *testing.T) {
	t.Parallel()
	var tx transaction
	raw := `{"mchid":"m","out_trade_no":"o","transaction_id":"4200","trade_state":"SUCCESS","success_time":"2018-06-08T10:34:56+08:00","amount":{"total":100,"currency":"CNY"}}`
	if err := json.Unmarshal([]byte(raw), &tx); err != nil {
		t.Fatal(err)
	}
	st := orderState(&tx)
	want := time.Date(2018, 6, 8, 2, 34, 56, 0, time.UTC)
	if st.Status != adapters.OrderPaid || st.ChannelTradeNo != "4200" || st.Amount != 100 || st.Currency != "CNY" || !st.PaidAt.Equal(want) {
		t.Errorf("state = %+v", st)
	}
}
