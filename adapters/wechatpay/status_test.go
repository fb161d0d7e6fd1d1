package wechatpay

import (
	"testing"

	"github.com/paygate/paygate/adapters"
)

func TestOrderStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state string
		want  adapters.OrderStatus
	}{
		{"SUCCESS", adapters.OrderPaid},
		{"REFUND", adapters.OrderPaid},
		{"NOTPAY", adapters.OrderPending},
		{"USERPAYING", adapters.OrderPending},
		{"CLOSED", adapters.OrderClosed},
		{"REVOKED", adapters.OrderClosed},
		{"PAYERROR", adapters.OrderFailed},
		{"", adapters.OrderUnknown},
		{"success", adapters.OrderUnknown},
		{"ACCEPT", adapters.OrderUnknown},
	}
	for _, tt := range tests {
		t.Run("state="+tt.state, func(t *testing.T) {
			t.Parallel()
			if got := orderStatus(tt.state); got != tt.want {
				t.Errorf("orderStatus(%q) = %v, want %v", tt.state, got, tt.want)
			}
		})
	}
}

func TestRefundStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status string
		want   adapters.RefundStatus
	}{
		{"SUCCESS", adapters.RefundSucceeded},
		{"PROCESSING", adapters.RefundPending},
		{"CLOSED", adapters.RefundFailed},
		{"ABNORMAL", adapters.RefundFailed},
		{"", adapters.RefundUnknown},
		{"REFUNDING", adapters.RefundUnknown},
	}
	for _, tt := range tests {
		t.Run("status="+tt.status, func(t *testing.T) {
			t.Parallel()
			if got := refundStatus(tt.status); got != tt.want {
				t.Errorf("refundStatus(%q) = %v, want %v", tt.status, got, tt.want)
			}
		})
	}
}

func TestErrorKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		code   string
		want   adapters.Kind
	}{
		{"sign error", 401, "SIGN_ERROR", adapters.KindUnavailable},
		{"system error", 500, "SYSTEM_ERROR", adapters.KindUnavailable},
		{"bank error", 500, "BANK_ERROR", adapters.KindUnavailable},
		{"rate limited", 429, "FREQUENCY_LIMITED", adapters.KindUnavailable},
		{"bare 502 may have been processed", 502, "", adapters.KindAmbiguous},
		{"openid mismatch", 500, "OPENID_MISMATCH", adapters.KindInvalid},
		{"param error", 400, "PARAM_ERROR", adapters.KindInvalid},
		{"invalid request", 400, "INVALID_REQUEST", adapters.KindInvalid},
		{"appid mchid", 400, "APPID_MCHID_NOT_MATCH", adapters.KindInvalid},
		{"order closed", 400, "ORDER_CLOSED", adapters.KindDeclined},
		{"order paid", 400, "ORDERPAID", adapters.KindDeclined},
		{"out_trade_no used", 403, "OUT_TRADE_NO_USED", adapters.KindConflict},
		{"not enough", 403, "NOT_ENOUGH", adapters.KindDeclined},
		{"rule limit", 403, "RULE_LIMIT", adapters.KindDeclined},
		{"trade error", 403, "TRADE_ERROR", adapters.KindDeclined},
		{"account error", 403, "ACCOUNT_ERROR", adapters.KindDeclined},
		{"no auth", 403, "NO_AUTH", adapters.KindDeclined},
		{"order not exist", 404, "ORDER_NOT_EXIST", adapters.KindNotFound},
		{"resource not exists", 404, "RESOURCE_NOT_EXISTS", adapters.KindNotFound},
		{"unknown path", 404, "NOT_FOUND", adapters.KindInvalid},
		{"redirect", 302, "", adapters.KindAmbiguous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errorKind(tt.status, tt.code); got != tt.want {
				t.Errorf("errorKind(%d, %q) = %v, want %v", tt.status, tt.code, got, tt.want)
			}
		})
	}
}
