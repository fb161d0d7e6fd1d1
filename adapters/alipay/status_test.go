package alipay

import (
	"testing"

	"github.com/paygate/paygate/adapters"
)

func TestOrderStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status string
		paid   bool
		want   adapters.OrderStatus
	}{
		{name: "waiting", status: "WAIT_BUYER_PAY", want: adapters.OrderPending},
		{name: "success", status: "TRADE_SUCCESS", want: adapters.OrderPaid},
		{name: "finished", status: "TRADE_FINISHED", want: adapters.OrderPaid},
		{name: "closed unpaid", status: "TRADE_CLOSED", want: adapters.OrderClosed},
		{name: "closed by full refund", status: "TRADE_CLOSED", paid: true, want: adapters.OrderPaid},
		{name: "empty", status: "", want: adapters.OrderUnknown},
		{name: "lower case", status: "trade_success", want: adapters.OrderUnknown},
		{name: "new state", status: "TRADE_PENDING", want: adapters.OrderUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := orderStatus(tt.status, tt.paid); got != tt.want {
				t.Fatalf("orderStatus(%q, %v) = %s, want %s", tt.status, tt.paid, got, tt.want)
			}
		})
	}
}

func TestErrorKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		code    string
		subCode string
		want    adapters.Kind
	}{
		{name: "service unavailable", code: "20000", subCode: "isp.unknow-error", want: adapters.KindUnavailable},
		{name: "our signature rejected", code: "40002", subCode: "isv.invalid-signature", want: adapters.KindUnavailable},
		{name: "invalid app id", code: "40002", subCode: "isv.invalid-app-id", want: adapters.KindInvalid},
		{name: "invalid timestamp", code: "40002", subCode: "isv.invalid-timestamp", want: adapters.KindInvalid},
		{name: "missing parameter", code: "40001", subCode: "isv.missing-signature", want: adapters.KindInvalid},
		{name: "insufficient token permissions", code: "20001", want: adapters.KindInvalid},
		{name: "condition error", code: "40003", want: adapters.KindInvalid},
		{name: "permission denied", code: "40006", want: adapters.KindInvalid},
		{name: "call limited", code: "40005", want: adapters.KindUnavailable},
		{name: "trade not exist", code: "40004", subCode: "ACQ.TRADE_NOT_EXIST", want: adapters.KindNotFound},
		{name: "system error", code: "40004", subCode: "ACQ.SYSTEM_ERROR", want: adapters.KindUnavailable},
		{name: "already paid", code: "40004", subCode: "ACQ.TRADE_HAS_SUCCESS", want: adapters.KindDeclined},
		{name: "closed", code: "40004", subCode: "ACQ.TRADE_HAS_CLOSE", want: adapters.KindDeclined},
		{name: "status error", code: "40004", subCode: "ACQ.TRADE_STATUS_ERROR", want: adapters.KindDeclined},
		{name: "over refund", code: "40004", subCode: "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", want: adapters.KindDeclined},
		{name: "balance", code: "40004", subCode: "ACQ.SELLER_BALANCE_NOT_ENOUGH", want: adapters.KindDeclined},
		{name: "order reused", code: "40004", subCode: "ACQ.CONTEXT_INCONSISTENT", want: adapters.KindConflict},
		{name: "refund number reused", code: "40004", subCode: "ACQ.DISCORDANT_REPEAT_REQUEST", want: adapters.KindConflict},
		{name: "invalid parameter", code: "40004", subCode: "ACQ.INVALID_PARAMETER", want: adapters.KindInvalid},
		{name: "unknown business code", code: "40004", subCode: "ACQ.SOMETHING_NEW", want: adapters.KindDeclined},
		{name: "unknown code", code: "50000", want: adapters.KindDeclined},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errorKind(tt.code, tt.subCode); got != tt.want {
				t.Fatalf("errorKind(%s, %s) = %s, want %s", tt.code, tt.subCode, got, tt.want)
			}
		})
	}
}

func TestRefundStatusMaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  adapters.RefundStatus
		want adapters.RefundStatus
	}{
		{name: "fund_change Y", got: refundStatus("Y"), want: adapters.RefundSucceeded},
		{name: "fund_change N", got: refundStatus("N"), want: adapters.RefundPending},
		{name: "fund_change missing", got: refundStatus(""), want: adapters.RefundPending},
		{name: "REFUND_SUCCESS", got: refundQueryStatus("REFUND_SUCCESS"), want: adapters.RefundSucceeded},
		{name: "no refund_status", got: refundQueryStatus(""), want: adapters.RefundNotFound},
		{name: "unknown refund_status", got: refundQueryStatus("REFUND_PROCESSING"), want: adapters.RefundUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Fatalf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
}
