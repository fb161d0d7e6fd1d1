package alipay

import "github.com/paygate/paygate/adapters"

// Exhaustive mappings of Alipay's states and result codes onto paygate's
// closed sets (PROTOCOLS §B.5–B.7). Anything not listed maps to the unknown
// value (states) or to KindDeclined with the code kept (result codes).

// Result codes (the "code" member of every answer).
const (
	codeSuccess        = "10000"
	codeUnavailable    = "20000" // Service Currently Unavailable (isp.unknow-error)
	codeNoAuth         = "20001" // Insufficient Token Permissions
	codeMissingParam   = "40001" // Missing Required Arguments
	codeInvalidParam   = "40002" // Invalid Arguments
	codeConditionError = "40003" // Insufficient Conditions
	codeBusinessFailed = "40004" // Business Failed: see sub_code
	codeCallLimited    = "40005" // Call Limited
	codeNoPermission   = "40006" // Insufficient Permissions
)

// Sub-codes with a meaning of their own.
const (
	subInvalidSignature   = "isv.invalid-signature"
	subTradeNotExist      = "ACQ.TRADE_NOT_EXIST"
	subTradeHasClose      = "ACQ.TRADE_HAS_CLOSE"
	subTradeStatusError   = "ACQ.TRADE_STATUS_ERROR"
	subStatusInvalid      = "ACQ.REASON_TRADE_STATUS_INVALID"
	subSystemError        = "ACQ.SYSTEM_ERROR"
	subInvalidParameter   = "ACQ.INVALID_PARAMETER"
	subContextInconsist   = "ACQ.CONTEXT_INCONSISTENT"
	subDiscordantRepeat   = "ACQ.DISCORDANT_REPEAT_REQUEST"
	subExistForbiddenWord = "ACQ.EXIST_FORBIDDEN_WORD"
	subAccessForbidden    = "ACQ.ACCESS_FORBIDDEN"
	subPartnerError       = "ACQ.PARTNER_ERROR"
)

// errorKind classifies a non-10000 answer.
func errorKind(code, subCode string) adapters.Kind {
	switch code {
	case codeUnavailable:
		return adapters.KindUnavailable
	case codeInvalidParam:
		if subCode == subInvalidSignature {
			// Our signature was rejected: the request was not processed.
			return adapters.KindUnavailable
		}
		return adapters.KindInvalid
	case codeMissingParam, codeNoAuth, codeConditionError, codeNoPermission:
		return adapters.KindInvalid
	case codeCallLimited:
		return adapters.KindUnavailable // rate limited: refused at the door
	case codeBusinessFailed:
		return businessKind(subCode)
	default:
		return adapters.KindDeclined
	}
}

// businessKind classifies 40004 "Business Failed" by its ACQ.* sub_code.
func businessKind(subCode string) adapters.Kind {
	switch subCode {
	case subSystemError:
		return adapters.KindUnavailable // "retry with the same parameters"
	case subTradeNotExist:
		return adapters.KindNotFound
	case subContextInconsist, subDiscordantRepeat:
		// The order (or refund) number exists with other content.
		return adapters.KindConflict
	case subInvalidParameter, subExistForbiddenWord, subAccessForbidden, subPartnerError:
		return adapters.KindInvalid
	case subTradeHasClose,
		"ACQ.TRADE_HAS_SUCCESS",               // already paid
		"ACQ.TRADE_HAS_FINISHED",              // finished, no more refunds
		subTradeStatusError,                   // e.g. close of a paid trade, refund of an unpaid one
		subStatusInvalid,                      // close of a trade not in WAIT_BUYER_PAY
		"ACQ.TRADE_NOT_ALLOW_REFUND",          // refund not allowed for this trade
		"ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",      // refunds would exceed the paid amount
		"ACQ.REASON_TRADE_REFUND_FEE_ERR",     // refund amount invalid
		"ACQ.SELLER_BALANCE_NOT_ENOUGH",       // merchant balance too low to refund
		"ACQ.REASON_TRADE_BEEN_FREEZEN",       // trade frozen
		"ACQ.TOTAL_FEE_EXCEED",                // amount over the merchant's limit
		"ACQ.BUYER_ENABLE_STATUS_FORBID",      // buyer account restricted
		"ACQ.SELLER_BEEN_BLOCKED",             // merchant account frozen
		"ACQ.TRADE_BUYER_NOT_MATCH",           // another buyer
		"ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT": // buyer not verified
		return adapters.KindDeclined
	default:
		return adapters.KindDeclined
	}
}

// Trade states (trade_status).
const (
	tradeWaitBuyerPay = "WAIT_BUYER_PAY"
	tradeSuccess      = "TRADE_SUCCESS"
	tradeFinished     = "TRADE_FINISHED"
	tradeClosed       = "TRADE_CLOSED"
)

// orderStatus maps trade_status. TRADE_CLOSED means either "closed unpaid"
// or "paid, then refunded in full": paid says which (a pay date or a
// received amount in the same answer), and a refunded trade stays OrderPaid
// (its refunds are tracked as refunds).
func orderStatus(tradeStatus string, paid bool) adapters.OrderStatus {
	switch tradeStatus {
	case tradeWaitBuyerPay:
		return adapters.OrderPending
	case tradeSuccess, tradeFinished:
		return adapters.OrderPaid
	case tradeClosed:
		if paid {
			return adapters.OrderPaid
		}
		return adapters.OrderClosed
	default:
		return adapters.OrderUnknown
	}
}

// refundStatus maps fund_change of the synchronous refund answer: "Y" means
// money moved in this call (refund done). "N" is what Alipay answers to a
// repeated request for a refund already done, and to one not (yet) done: only
// the refund query can tell, so it is pending.
func refundStatus(fundChange string) adapters.RefundStatus {
	switch fundChange {
	case "Y":
		return adapters.RefundSucceeded
	default:
		return adapters.RefundPending
	}
}

// refundQueryStatus maps refund_status of alipay.trade.fastpay.refund.query.
// Alipay: REFUND_SUCCESS means done; no refund_status means "not received or
// failed". A refund is decided synchronously at Alipay, so "not received"
// and "failed" are the same: no money moved under that out_request_no. That
// is RefundNotFound, not RefundFailed: a refund retried with the same
// out_request_no is safe (idempotent), so paygate may send it again, whereas
// RefundFailed would be final.
func refundQueryStatus(refundStatus string) adapters.RefundStatus {
	switch refundStatus {
	case "REFUND_SUCCESS":
		return adapters.RefundSucceeded
	case "":
		return adapters.RefundNotFound
	default:
		return adapters.RefundUnknown
	}
}
