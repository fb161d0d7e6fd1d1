package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/risk"
	"github.com/paygate/paygate/store"
)

// Public error codes (CONTRACT §3).
const (
	codeInvalidRequest   = "invalid_request"
	codeMissingAuth      = "missing_auth"
	codeUnknownMerchant  = "unknown_merchant"
	codeTimestampWindow  = "timestamp_out_of_window"
	codeBadSignature     = "bad_signature"
	codeNonceReplayed    = "nonce_replayed"
	codeMethodNotAllowed = "payment_method_not_allowed"
	codeAmountOverLimit  = "amount_over_limit"
	codeRiskRejected     = "risk_rejected"
	codeNotFound         = string(engine.CodeNotFound)
	codeHTTPMethod       = "http_method_not_allowed"
	codeInvalidState     = string(engine.CodeInvalidState)
	codeBodyTooLarge     = "body_too_large"
	codeRefundExceeds    = string(engine.CodeRefundExceeds)
	codeRateLimited      = "rate_limited"
	codeChannelError     = string(engine.CodeChannelError)
	codeNoChannel        = string(engine.CodeNoChannel)
	codeStoreUnavailable = "store_unavailable"
	codeInternal         = "internal_error"
)

// Error is an error of the edge itself (authentication, decoding, limits,
// routes) with its public code and HTTP status. The engine's refusals are
// *engine.Error, whose codes engineStatus maps.
type Error struct {
	Status     int
	Code       string
	Message    string
	Param      string // the offending field of a 400, by its full path ("payer.openid"); "" for none
	RetryAfter int    // seconds, for 429
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func apiErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalid is a 400 invalid_request about field, which the message starts
// with and param names; "body" (the request as a whole: malformed JSON, not
// an object) names no field.
func invalid(field, format string, args ...any) *Error {
	e := &Error{Status: http.StatusBadRequest, Code: codeInvalidRequest, Message: field + ": " + fmt.Sprintf(format, args...)}
	if field != "body" {
		e.Param = field
	}
	return e
}

// engineStatus is the HTTP status of each code the engine refuses with.
var engineStatus = map[engine.Code]int{
	engine.CodeNotFound:            http.StatusNotFound,
	engine.CodeOutTradeNoConflict:  http.StatusConflict,
	engine.CodeOutRefundNoConflict: http.StatusConflict,
	engine.CodeInProgress:          http.StatusConflict,
	engine.CodeInvalidState:        http.StatusConflict,
	engine.CodeRefundExceeds:       http.StatusUnprocessableEntity,
	engine.CodeChannelError:        http.StatusBadGateway,
	engine.CodeNoChannel:           http.StatusServiceUnavailable,
}

// statusOf is the one place that maps an error to its HTTP status, public
// code and message. Internal details (store addresses, channel bodies) never
// reach the merchant; they are logged with the request.
func statusOf(err error) (int, string, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, e.Code, e.Message
	}
	var re *risk.RejectedError
	if errors.As(err, &re) { // the rule is logged, never named to the merchant
		return http.StatusForbidden, codeRiskRejected, "the payment was refused by risk controls"
	}
	var ee *engine.Error
	if errors.As(err, &ee) {
		if status, ok := engineStatus[ee.Code]; ok {
			return status, string(ee.Code), ee.Message
		}
		return http.StatusInternalServerError, codeInternal, "internal error"
	}
	switch {
	case errors.Is(err, store.ErrOutcomeUnknown):
		// Sent but unanswered: it may have been done. Never "nothing was done".
		return http.StatusServiceUnavailable, codeStoreUnavailable,
			"the store did not confirm the write, so its outcome is unknown; retrying with the same out_trade_no (or out_refund_no) is safe"
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, codeStoreUnavailable, "the store cannot be reached; nothing was done"
	case errors.Is(err, store.ErrNonceReplayed):
		return http.StatusUnauthorized, codeNonceReplayed, "nonce already used"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, codeNotFound, "no such object"
	case errors.Is(err, store.ErrExceedsPayment):
		return http.StatusUnprocessableEntity, codeRefundExceeds, "the refunds would exceed the payment amount"
	case errors.Is(err, store.ErrInvalidState):
		return http.StatusConflict, codeInvalidState, "the payment is not in a state that allows this"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusBadGateway, codeChannelError, "the channel did not answer in time"
	}
	if ce, ok := adapters.AsError(err); ok {
		switch ce.Kind {
		case adapters.KindUnavailable:
			return http.StatusServiceUnavailable, codeNoChannel, "no channel could take the request"
		default:
			msg := "the channel refused the request"
			if ce.Code != "" {
				msg += " (" + ce.Code + ")"
			}
			return http.StatusBadGateway, codeChannelError, msg
		}
	}
	return http.StatusInternalServerError, codeInternal, "internal error"
}

// writeError writes the contract's JSON error body.
func writeError(ctx *fasthttp.RequestCtx, reqID string, err error) {
	status, code, msg := statusOf(err)
	var param string
	var e *Error
	if errors.As(err, &e) {
		if e.RetryAfter > 0 {
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(e.RetryAfter))
		}
		param = e.Param
	}
	writeErrorParam(ctx, status, code, msg, param, reqID)
}

func writeErrorBody(ctx *fasthttp.RequestCtx, status int, code, msg, reqID string) {
	writeErrorParam(ctx, status, code, msg, "", reqID)
}

// writeErrorParam writes the error body; param, when set, names the
// offending field.
func writeErrorParam(ctx *fasthttp.RequestCtx, status int, code, msg, param, reqID string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b := make([]byte, 0, 96+len(msg)+len(param))
	b = append(b, `{"error":{"code":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"message":`...)
	m, _ := json.Marshal(msg) // messages may quote merchant input: JSON-escape it
	b = append(b, m...)
	if param != "" {
		b = append(b, `,"param":`...)
		p, _ := json.Marshal(param) // a path may hold a merchant's metadata key
		b = append(b, p...)
	}
	b = append(b, `,"request_id":`...)
	b = strconv.AppendQuote(b, reqID)
	b = append(b, "}}"...)
	ctx.SetBody(b)
}
