package wechatpay

import (
	"net/http"

	"github.com/paygate/paygate/adapters"
)

// orderStatus maps a WeChat Pay trade_state (PROTOCOLS §A.5) to paygate's
// closed set. REFUND means "paid, and a refund was initiated": the money was
// taken, so the payment is paid. Anything unrecognised is OrderUnknown, which
// changes nothing.
func orderStatus(tradeState string) adapters.OrderStatus {
	switch tradeState {
	case "SUCCESS", "REFUND":
		return adapters.OrderPaid
	case "NOTPAY", "USERPAYING":
		return adapters.OrderPending
	case "CLOSED", "REVOKED":
		return adapters.OrderClosed
	case "PAYERROR":
		return adapters.OrderFailed
	default:
		return adapters.OrderUnknown
	}
}

// refundStatus maps a refund status (PROTOCOLS §A.6; refund notifications
// call it refund_status) to paygate's closed set.
func refundStatus(s string) adapters.RefundStatus {
	switch s {
	case "SUCCESS":
		return adapters.RefundSucceeded
	case "PROCESSING":
		return adapters.RefundPending
	case "CLOSED", "ABNORMAL":
		return adapters.RefundFailed
	default:
		return adapters.RefundUnknown
	}
}

// Codes meaning "no such order / refund" (PROTOCOLS §A.7: pages spell it
// ORDER_NOT_EXIST or ORDERNOTEXIST; other APIs say RESOURCE_NOT_EXISTS).
func notFoundCode(code string) bool {
	switch code {
	case "ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS":
		return true
	}
	return false
}

// errorKind classifies a non-2xx answer by HTTP status and WeChat code
// (PROTOCOLS §A.7).
//
// A 5xx with a code WeChat documents as "system busy, retry with the same
// parameters" (SYSTEM_ERROR, BANK_ERROR) proves the order was not created,
// so it is KindUnavailable. A 5xx without such a code (an intermediary's 502
// or 504, an unparseable body) may come after WeChat processed the request,
// so it is KindAmbiguous: the router resolves it by querying, never by
// failing over blindly.
func errorKind(status int, code string) adapters.Kind {
	switch {
	case status == http.StatusUnauthorized:
		// SIGN_ERROR: WeChat refused our signature before doing anything.
		return adapters.KindUnavailable
	case status == http.StatusTooManyRequests:
		return adapters.KindUnavailable // FREQUENCY_LIMITED
	case status >= 500:
		switch code {
		case "SYSTEM_ERROR", "BANK_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED":
			return adapters.KindUnavailable
		case "OPENID_MISMATCH", "INVALID_TRANSACTIONID":
			return adapters.KindInvalid
		default:
			return adapters.KindAmbiguous
		}
	case status == http.StatusNotFound && notFoundCode(code):
		return adapters.KindNotFound
	case status == http.StatusForbidden:
		if code == "OUT_TRADE_NO_USED" {
			return adapters.KindConflict
		}
		// NOT_ENOUGH, RULE_LIMIT, TRADE_ERROR, ACCOUNT_ERROR, NO_AUTH/NOAUTH
		// and any other 403: a business refusal.
		return adapters.KindDeclined
	case status == http.StatusBadRequest:
		switch code {
		case "ORDER_CLOSED", "ORDERPAID", "ORDER_PAID", "USERPAYING":
			return adapters.KindDeclined
		}
		// PARAM_ERROR, INVALID_REQUEST, APPID_MCHID_NOT_MATCH, MCH_NOT_EXISTS.
		return adapters.KindInvalid
	case status >= 400:
		return adapters.KindInvalid
	default:
		// 1xx/3xx: not an answer the v3 API gives.
		return adapters.KindAmbiguous
	}
}
