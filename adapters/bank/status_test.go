package bank

import (
	"testing"

	"github.com/paygate/paygate/adapters"
)

func TestStatusMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code   string
		kind   adapters.Kind // as the answer to a request
		order  adapters.OrderStatus
		refund adapters.RefundStatus
	}{
		{"00", adapters.KindAmbiguous, adapters.OrderPaid, adapters.RefundSucceeded},
		{"A6", adapters.KindAmbiguous, adapters.OrderPaid, adapters.RefundSucceeded},
		{"01", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"02", adapters.KindUnavailable, adapters.OrderFailed, adapters.RefundFailed},
		{"03", adapters.KindAmbiguous, adapters.OrderPending, adapters.RefundPending},
		{"04", adapters.KindAmbiguous, adapters.OrderPending, adapters.RefundPending},
		{"05", adapters.KindAmbiguous, adapters.OrderPending, adapters.RefundPending},
		{"06", adapters.KindUnavailable, adapters.OrderFailed, adapters.RefundFailed},
		{"10", adapters.KindInvalid, adapters.OrderFailed, adapters.RefundFailed},
		{"11", adapters.KindUnavailable, adapters.OrderFailed, adapters.RefundFailed},
		{"12", adapters.KindConflict, adapters.OrderFailed, adapters.RefundFailed},
		{"13", adapters.KindInvalid, adapters.OrderFailed, adapters.RefundFailed},
		{"14", adapters.KindInvalid, adapters.OrderFailed, adapters.RefundFailed},
		{"30", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"33", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"34", adapters.KindNotFound, adapters.OrderFailed, adapters.RefundFailed},
		{"35", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"37", adapters.KindUnavailable, adapters.OrderFailed, adapters.RefundFailed},
		{"39", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"45", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"61", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"64", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"69", adapters.KindDeclined, adapters.OrderClosed, adapters.RefundFailed},
		{"77", adapters.KindDeclined, adapters.OrderFailed, adapters.RefundFailed},
		{"94", adapters.KindConflict, adapters.OrderFailed, adapters.RefundFailed},
		{"96", adapters.KindUnavailable, adapters.OrderFailed, adapters.RefundFailed},
		{"99", adapters.KindUnavailable, adapters.OrderFailed, adapters.RefundFailed},
		{"20", adapters.KindAmbiguous, adapters.OrderUnknown, adapters.RefundUnknown},
		{"ZZ", adapters.KindAmbiguous, adapters.OrderUnknown, adapters.RefundUnknown},
		{"", adapters.KindAmbiguous, adapters.OrderUnknown, adapters.RefundUnknown},
		{"000", adapters.KindAmbiguous, adapters.OrderUnknown, adapters.RefundUnknown},
	}
	for _, tt := range tests {
		t.Run("code "+tt.code, func(t *testing.T) {
			t.Parallel()
			if got := errorKind(classify(tt.code)); got != tt.kind {
				t.Errorf("errorKind(%q) = %s, want %s", tt.code, got, tt.kind)
			}
			if got := orderStatus(tt.code); got != tt.order {
				t.Errorf("orderStatus(%q) = %s, want %s", tt.code, got, tt.order)
			}
			if got := refundStatus(tt.code); got != tt.refund {
				t.Errorf("refundStatus(%q) = %s, want %s", tt.code, got, tt.refund)
			}
		})
	}
}
