package adapters

import (
	"errors"
	"fmt"
)

// Kind classifies a channel error by what it means for the money and for the
// channel's health. Every channel maps its own codes onto these.
type Kind int

// Error kinds.
const (
	// KindUnavailable: the request was provably not processed (connection
	// refused, dial timeout, the channel rejected our signature, a 5xx the
	// channel documents as "retry with the same parameters"). Failing over to
	// another channel cannot create a second live order. Counts against health.
	KindUnavailable Kind = iota + 1
	// KindAmbiguous: the request was sent and no trustworthy answer came back
	// (timeout after sending, connection reset, an answer whose signature does
	// not verify). The order may exist: resolve by querying, never by guessing.
	// Counts against health.
	KindAmbiguous
	// KindDeclined: a business refusal (insufficient balance, risk, order
	// already paid or closed). Not the channel's fault; health is unaffected.
	KindDeclined
	// KindInvalid: the channel refused the request's content (PARAM_ERROR).
	// Our fault, not the channel's; health is unaffected.
	KindInvalid
	// KindNotFound: the channel has no such order or refund.
	KindNotFound
	// KindConflict: the order number is already used with other content.
	KindConflict
	// KindBadSignature: an inbound notification failed verification.
	KindBadSignature
	// KindUnsupported: the channel does not offer this operation or method.
	KindUnsupported
)

func (k Kind) String() string {
	switch k {
	case KindUnavailable:
		return "unavailable"
	case KindAmbiguous:
		return "ambiguous"
	case KindDeclined:
		return "declined"
	case KindInvalid:
		return "invalid"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindBadSignature:
		return "bad_signature"
	case KindUnsupported:
		return "unsupported"
	default:
		return "unknown"
	}
}

// ErrUnsupported is matched by errors.Is for every KindUnsupported *Error.
var ErrUnsupported = errors.New("operation not supported by channel")

// Error is the one error type channel adapters return.
type Error struct {
	Channel string // channel id
	Op      string // create, query, close, refund, query_refund, notify
	Kind    Kind
	Code    string // the channel's own code (SIGN_ERROR, ACQ.TRADE_NOT_EXIST, respCode 12), or a transport code
	Message string
	Status  int   // HTTP status of the channel's answer, 0 if none
	Err     error // underlying cause, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Channel, e.Op, e.Kind)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnsupported) true for KindUnsupported.
func (e *Error) Is(target error) bool { return target == ErrUnsupported && e.Kind == KindUnsupported }

// Ambiguous reports whether the outcome is unknown: sent, no usable answer.
func (e *Error) Ambiguous() bool { return e.Kind == KindAmbiguous }

// NotCreated reports whether the request provably did nothing at the channel,
// so another channel may be tried without risking two live orders.
func (e *Error) NotCreated() bool { return e.Kind == KindUnavailable }

// Retryable reports whether the same request may be sent again later.
func (e *Error) Retryable() bool { return e.Kind == KindUnavailable || e.Kind == KindAmbiguous }

// Technical reports whether the error is the channel's fault and should lower
// its health score and count for its circuit breaker.
func (e *Error) Technical() bool { return e.Kind == KindUnavailable || e.Kind == KindAmbiguous }

// AsError returns err as an *Error, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Unsupported returns the KindUnsupported error for an operation.
func Unsupported(channel, op string) error {
	return &Error{Channel: channel, Op: op, Kind: KindUnsupported, Message: "not supported by this channel"}
}
