package bank

import (
	"github.com/paygate/paygate/adapters"
)

// ACP respCode / origRespCode values (ACP 5.1.0 应答码表). Codes not listed
// here are unknown: they change no order state and, as the answer to a
// request, leave its outcome ambiguous.
//
//	00, A6   success (A6: "有缺陷的成功", success with a defect)
//	01       transaction failed
//	02       system not open or temporarily closed
//	03 04 05 timed out / state unknown / accepted: query later
//	06       system busy, retry later
//	10 13 14 message format error / required element missing / batch file format
//	11       signature verification failed (our signature or certId)
//	12       duplicate transaction (the orderId is taken)
//	30–33 35 36 38–45  refusals (merchant state, permission, amount limit,
//	         original transaction missing or in the wrong state, …)
//	34       no such transaction
//	37       query limit exceeded / too frequent
//	6x 7x    refusals by the card issuer (invalid card, balance, …)
//	9x       ISO 8583-style system errors some acquirers use (94 = duplicate)

// outcome classifies a respCode.
type outcome int

const (
	outcomeUnknown    outcome = iota
	outcomeOK                 // 00, A6
	outcomeInProgress         // 03, 04, 05
	outcomeNotFound           // 34
	outcomeSignature          // 11
	outcomeSystem             // 02, 06, 37, 9x except 94
	outcomeInvalid            // 10, 13, 14
	outcomeDuplicate          // 12, 94
	outcomeRefused            // 01, 30–45 except 34/37, 6x, 7x
)

func classify(code string) outcome {
	switch code {
	case "00", "A6":
		return outcomeOK
	case "03", "04", "05":
		return outcomeInProgress
	case "34":
		return outcomeNotFound
	case "11":
		return outcomeSignature
	case "02", "06", "37":
		return outcomeSystem
	case "10", "13", "14":
		return outcomeInvalid
	case "12", "94":
		return outcomeDuplicate
	case "01":
		return outcomeRefused
	}
	if len(code) != 2 || !isDigits(code) {
		return outcomeUnknown
	}
	switch code[0] {
	case '3', '4', '6', '7':
		return outcomeRefused
	case '9':
		return outcomeSystem
	}
	return outcomeUnknown
}

// errorKind is the error Kind of a non-success answer to op. Success
// (outcomeOK), and the outcomes each operation handles itself (in progress
// for query and refund, not found for query), never reach here.
func errorKind(o outcome) adapters.Kind {
	switch o {
	case outcomeSignature, outcomeSystem:
		// The bank refused before processing: our signature (11), a closed
		// or busy system (02, 06, 9x), rate limiting (37). Failover is safe.
		return adapters.KindUnavailable
	case outcomeInvalid:
		return adapters.KindInvalid
	case outcomeDuplicate:
		return adapters.KindConflict
	case outcomeRefused:
		return adapters.KindDeclined
	case outcomeNotFound:
		return adapters.KindNotFound
	default:
		// 03/04/05 for a create, an unknown code, or a success code where
		// none was expected: the request may have been processed.
		return adapters.KindAmbiguous
	}
}

// orderStatus maps the origRespCode of a consume query.
func orderStatus(origRespCode string) adapters.OrderStatus {
	switch classify(origRespCode) {
	case outcomeOK:
		return adapters.OrderPaid
	case outcomeInProgress:
		return adapters.OrderPending
	case outcomeUnknown:
		return adapters.OrderUnknown
	}
	if origRespCode == codePayTimeout {
		// The order lapsed at payTimeout without payment: nobody failed to
		// pay, the order expired, which paygate reports as closed (the
		// reconciler closes expired payments of the other channels too).
		return adapters.OrderClosed
	}
	// Every other known code is a final failure of the consume.
	return adapters.OrderFailed
}

// codePayTimeout is ACP's "payer input timed out": an order unpaid at payTimeout.
const codePayTimeout = "69"

// notifyOrderStatus maps the respCode of a consume back notification.
func notifyOrderStatus(respCode string) adapters.OrderStatus { return orderStatus(respCode) }

// refundStatus maps the origRespCode of a refund query or the respCode of a
// refund back notification.
func refundStatus(code string) adapters.RefundStatus {
	switch classify(code) {
	case outcomeOK:
		return adapters.RefundSucceeded
	case outcomeInProgress:
		return adapters.RefundPending
	case outcomeUnknown:
		return adapters.RefundUnknown
	default:
		return adapters.RefundFailed
	}
}
