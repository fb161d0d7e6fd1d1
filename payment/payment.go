// Package payment holds paygate's domain model: payments, refunds, the events
// merchants are notified of, and the identifiers that tie them to channel orders.
//
// Money is always an int64 amount in minor units (fen) plus an ISO 4217
// currency code; conversion to a channel's own unit happens only inside that
// channel's adapter.
package payment

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"
)

// Status is a payment's lifecycle state: pending → succeeded | failed | closed.
type Status string

// Payment statuses (CONTRACT §4).
const (
	StatusPending   Status = "pending"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusClosed    Status = "closed"
)

// Final reports whether s is a final status.
func (s Status) Final() bool { return s != StatusPending }

// RefundStatus is a refund's lifecycle state: pending → succeeded | failed.
type RefundStatus string

// Refund statuses (CONTRACT §4).
const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

// Final reports whether s is a final status.
func (s RefundStatus) Final() bool { return s != RefundPending }

// Method is a payment method a merchant asks for (CONTRACT §4).
type Method string

// Payment methods.
const (
	MethodQR           Method = "qr"
	MethodWechatNative Method = "wechat_native"
	MethodWechatJSAPI  Method = "wechat_jsapi"
	MethodAlipayQR     Method = "alipay_qr"
	MethodAlipayPage   Method = "alipay_page"
	MethodBankRedirect Method = "bank_redirect"
)

// Methods lists every method, in the contract's order.
var Methods = []Method{MethodQR, MethodWechatNative, MethodWechatJSAPI, MethodAlipayQR, MethodAlipayPage, MethodBankRedirect}

// Valid reports whether m is a known method.
func (m Method) Valid() bool {
	for _, k := range Methods {
		if m == k {
			return true
		}
	}
	return false
}

// Action tells the merchant what to show the payer (CONTRACT §4).
type Action struct {
	Type    string            `json:"type"` // qr_code | jsapi | redirect | form
	CodeURL string            `json:"code_url,omitempty"`
	URL     string            `json:"url,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Failure explains why a payment failed or was not created.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Payment is the public payment object of CONTRACT §4, exactly as merchants see it.
type Payment struct {
	PaymentID      string            `json:"payment_id"`
	MerchantID     string            `json:"merchant_id"`
	OutTradeNo     string            `json:"out_trade_no"`
	Status         Status            `json:"status"`
	Amount         int64             `json:"amount"`
	Currency       string            `json:"currency"`
	Method         Method            `json:"method"`
	Channel        string            `json:"channel"`
	ChannelTradeNo string            `json:"channel_trade_no"`
	Subject        string            `json:"subject"`
	RefundedAmount int64             `json:"refunded_amount"`
	Action         *Action           `json:"action"`
	Metadata       map[string]string `json:"metadata"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	PaidAt         *time.Time        `json:"paid_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
	Failure        *Failure          `json:"failure"`
}

// Attempt records one try at creating the payment on a channel.
type Attempt struct {
	Channel   string    `json:"channel"`
	Outcome   string    `json:"outcome"` // created | not_created | ambiguous | declined | abandoned
	LatencyMS int64     `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	Code      string    `json:"code,omitempty"` // the channel's or the transport's error code
	At        time.Time `json:"at"`
	// Checked: a not_created attempt that the channel answered (rather
	// than a refused connection) has been confirmed absent, or closed, at
	// its channel by a later query.
	Checked bool `json:"checked,omitempty"`
}

// NeedsCheck reports whether an attempt paygate moved away from must still
// be confirmed absent at its channel: the channel answered with a "retry,
// nothing done" error, which is documented but not proof. A refused
// connection or an open breaker never reached the channel and is proof.
func (a *Attempt) NeedsCheck() bool {
	if a.Outcome != OutcomeNotCreated || a.Checked {
		return false
	}
	switch a.Code {
	case "connect_failed", "breaker_open", "not_configured":
		return false
	}
	return true
}

// Attempt outcomes.
const (
	OutcomeCreated    = "created"
	OutcomeNotCreated = "not_created"
	OutcomeAmbiguous  = "ambiguous"
	OutcomeDeclined   = "declined"
	OutcomeAbandoned  = "abandoned"  // found created at its channel after paygate moved on, and closed there
	OutcomeUnverified = "unverified" // its channel could not be asked for a long time: a person must check
)

// Record is a payment as stored: the public object plus what only paygate needs.
// Marshalling a Record flattens the embedded Payment; marshal rec.Payment for the API.
type Record struct {
	Payment
	NotifyURL string    `json:"notify_url"`
	Attempts  []Attempt `json:"attempts,omitempty"`
	// Payer is what the merchant sent of the payer, kept so that a create
	// can be sent again identically. It identifies a person: never log it.
	Payer *Payer `json:"payer,omitempty"`
	// CloseRequested: the merchant asked to close the payment while its
	// channel could not close the order yet. paygate then never sends its
	// create again, and closes it once it has expired.
	CloseRequested bool `json:"close_requested,omitempty"`
	// ChannelOrderNo is the order number paygate sent the channel (see OrderNo).
	ChannelOrderNo string `json:"channel_order_no"`
	// Version increases by one on every stored change (compare-and-set guard).
	Version int64 `json:"version"`
}

// Payer identifies the payer to the channel (WeChat JSAPI needs the openid).
type Payer struct {
	OpenID   string `json:"openid,omitempty"`
	ClientIP string `json:"client_ip,omitempty"`
}

// Refund is the public refund object of CONTRACT §4.
type Refund struct {
	RefundID        string       `json:"refund_id"`
	PaymentID       string       `json:"payment_id"`
	OutRefundNo     string       `json:"out_refund_no"`
	Amount          int64        `json:"amount"`
	Status          RefundStatus `json:"status"`
	ChannelRefundNo string       `json:"channel_refund_no"`
	Reason          string       `json:"reason"`
	CreatedAt       time.Time    `json:"created_at"`
	UpdatedAt       time.Time    `json:"updated_at"`
}

// RefundRecord is a refund as stored.
type RefundRecord struct {
	Refund
	MerchantID string `json:"merchant_id"`
	Channel    string `json:"channel"`
	NotifyURL  string `json:"notify_url"` // the payment's, where refund events go
	// ChannelOrderNo of the payment and the refund number sent to the channel.
	ChannelOrderNo string   `json:"channel_order_no"`
	RefundOrderNo  string   `json:"refund_order_no"`
	Failure        *Failure `json:"failure,omitempty"`
	Version        int64    `json:"version"`
}

// Event types (CONTRACT §5).
const (
	EventPaymentSucceeded = "payment.succeeded"
	EventPaymentFailed    = "payment.failed"
	EventPaymentClosed    = "payment.closed"
	EventRefundSucceeded  = "refund.succeeded"
	EventRefundFailed     = "refund.failed"
)

// Event is a merchant notification (CONTRACT §5). Its ID is stable per
// (object, type), so a repeated state change cannot create a second event.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// EventID is the stable event id for an object id and an event type.
func EventID(objectID, eventType string) string {
	return "evt_" + objectID + "_" + strings.ReplaceAll(eventType, ".", "_")
}

// Identifiers. A payment id is "pay_" + 24 base62 characters; the same 24
// characters are the order number sent to the channel (every channel accepts
// 24 alphanumerics: WeChat ≤32, Alipay ≤64, UnionPay 8–32 without '-' or '_').
// A refund id is "rfd_" + the payment's 24 characters + 6 more, and those 30
// characters are the refund number sent to the channel, so any channel order or
// refund number leads back to its payment without an index.
const (
	idLen        = 24
	refundSuffix = 6
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomBase62(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("payment: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)] // bias of 256%62 is irrelevant for uniqueness
	}
	return string(b)
}

// NewPaymentID returns a fresh random payment id.
func NewPaymentID() string { return "pay_" + randomBase62(idLen) }

// NewRefundID returns a fresh refund id belonging to paymentID.
func NewRefundID(paymentID string) string {
	return "rfd_" + OrderNo(paymentID) + randomBase62(refundSuffix)
}

// OrderNo is the channel order number of a payment id ("" if it is not one).
func OrderNo(paymentID string) string {
	s, ok := strings.CutPrefix(paymentID, "pay_")
	if !ok || len(s) != idLen || !isBase62(s) {
		return ""
	}
	return s
}

// RefundOrderNo is the channel refund number of a refund id ("" if it is not one).
func RefundOrderNo(refundID string) string {
	s, ok := strings.CutPrefix(refundID, "rfd_")
	if !ok || len(s) != idLen+refundSuffix || !isBase62(s) {
		return ""
	}
	return s
}

// PaymentIDFromOrderNo maps a channel order number or refund number back to
// its payment id ("" if it is neither).
func PaymentIDFromOrderNo(no string) string {
	if (len(no) != idLen && len(no) != idLen+refundSuffix) || !isBase62(no) {
		return ""
	}
	return "pay_" + no[:idLen]
}

// RefundIDFromRefundNo maps a channel refund number back to its refund id.
func RefundIDFromRefundNo(no string) string {
	if len(no) != idLen+refundSuffix || !isBase62(no) {
		return ""
	}
	return "rfd_" + no
}

// PaymentIDOfRefund is the payment id a refund id belongs to.
func PaymentIDOfRefund(refundID string) string {
	no := RefundOrderNo(refundID)
	if no == "" {
		return ""
	}
	return "pay_" + no[:idLen]
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}
