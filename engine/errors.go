package engine

import "fmt"

// Code is a public error code (the "code" of the API's error body).
type Code string

// The codes the engine answers with. The edge maps each to its HTTP status
// in one place (gateway/errors.go).
const (
	CodeNotFound            Code = "not_found"
	CodeOutTradeNoConflict  Code = "out_trade_no_conflict"
	CodeOutRefundNoConflict Code = "out_refund_no_conflict"
	CodeInProgress          Code = "request_in_progress"
	CodeInvalidState        Code = "invalid_state"
	CodeRefundExceeds       Code = "refund_exceeds_payment"
	CodeChannelError        Code = "channel_error"
	CodeNoChannel           Code = "no_channel_available"
)

// Error is a refusal the merchant is shown: a public code and a message
// that may quote the merchant's own input and ids, never internal details.
// Other errors the engine returns (the store's, the channels') are mapped
// by the edge too.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func refuse(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
