// Package adapters declares what paygate needs from a payment channel and the
// types shared by the channel protocol packages (wechatpay, alipay, bank).
//
// The core interface, Channel, is small: create, query and close an order.
// Refunds and asynchronous notifications are optional capabilities, found with
// a type assertion (Refunder, NotifyParser). A channel that lacks one returns
// an *Error of KindUnsupported, never nil and never a panic.
//
// Amounts are int64 minor units (fen) with an ISO 4217 currency everywhere in
// this package; a channel's own unit (Alipay's yuan strings) exists only inside
// its adapter package.
package adapters

import (
	"context"
	"net/http"
	"time"

	"github.com/paygate/paygate/payment"
)

// Channel is one configured channel instance (one merchant account at one
// payment provider). Implementations are safe for concurrent use.
type Channel interface {
	// ID is the configured channel id, e.g. "wechat-main".
	ID() string
	// Create places an order. It must be idempotent for a repeated
	// req.OrderNo with identical content where the channel allows it.
	Create(ctx context.Context, req *CreateRequest) (*CreateResult, error)
	// Query asks the channel for the order's current state.
	Query(ctx context.Context, req *QueryRequest) (*OrderState, error)
	// Close closes an unpaid order so that it can no longer be paid.
	Close(ctx context.Context, req *QueryRequest) error
}

// Refunder is a Channel that can refund.
type Refunder interface {
	Refund(ctx context.Context, req *RefundRequest) (*RefundState, error)
	QueryRefund(ctx context.Context, req *RefundRequest) (*RefundState, error)
}

// NotifyParser is a Channel that receives asynchronous notifications at
// POST /callbacks/{channel_id}.
type NotifyParser interface {
	// ParseNotify verifies (and where the protocol says so, decrypts) the raw
	// callback before decoding it. It returns an *Error of KindBadSignature when
	// verification fails; the body must not be trusted then.
	ParseNotify(ctx context.Context, cb *Callback) (*Notification, error)
	// Ack is the answer the channel expects: success when err is nil.
	Ack(err error) Ack
}

// NotifyHinter is a NotifyParser that can name the order an unverified
// notification claims to be about. The edge never trusts the hint: it only
// makes the reconciler ask the channel about that order now, instead of
// waiting for its next scheduled query.
type NotifyHinter interface {
	NotifyHint(cb *Callback) (orderNo string)
}

// CreateRequest is what a channel needs to place an order.
type CreateRequest struct {
	// OrderNo is paygate's order number for this payment at the channel
	// (payment.OrderNo of the payment id); never the merchant's out_trade_no.
	OrderNo  string
	Method   payment.Method // as the merchant asked: qr, wechat_native, ...
	Amount   int64          // minor units
	Currency string
	Subject  string
	// CreatedAt is the payment's creation time; protocols that key orders on
	// a transaction time (UnionPay's txnTime) derive it from this.
	CreatedAt time.Time
	ExpiresAt time.Time
	// PayerOpenID is required for wechat_jsapi. It identifies a person:
	// never log it unmasked.
	PayerOpenID string
	ClientIP    string
}

// CreateResult is the channel's answer to a successful Create.
type CreateResult struct {
	Action         payment.Action
	ChannelTradeNo string // the channel's own id, where it assigns one at creation
}

// QueryRequest identifies an order at its channel.
type QueryRequest struct {
	OrderNo   string
	CreatedAt time.Time // see CreateRequest.CreatedAt
	Amount    int64     // the order amount, for protocols that need it
	Currency  string
}

// OrderStatus is the closed set of order states paygate understands.
type OrderStatus int

// Order states. Map every channel state exhaustively; anything unrecognised is
// OrderUnknown, which changes nothing.
const (
	OrderUnknown  OrderStatus = iota
	OrderPending              // created, not paid (WeChat NOTPAY/USERPAYING, Alipay WAIT_BUYER_PAY, ACP 03/04/05)
	OrderPaid                 // money taken (WeChat SUCCESS/REFUND, Alipay TRADE_SUCCESS/TRADE_FINISHED, ACP 00/A6)
	OrderClosed               // closed unpaid
	OrderFailed               // payment failed
	OrderNotFound             // the channel has no such order (Alipay precreate before the scan)
)

func (s OrderStatus) String() string {
	switch s {
	case OrderPending:
		return "pending"
	case OrderPaid:
		return "paid"
	case OrderClosed:
		return "closed"
	case OrderFailed:
		return "failed"
	case OrderNotFound:
		return "not_found"
	default:
		return "unknown"
	}
}

// OrderState is what the channel says of an order.
type OrderState struct {
	Status         OrderStatus
	ChannelTradeNo string
	Amount         int64 // as the channel reports it; 0 if it did not
	Currency       string
	PaidAt         time.Time // zero unless paid
	RefundedAmount int64     // cumulative, where the channel reports it
}

// RefundRequest asks a channel to refund (part of) a paid order, or identifies
// a refund for QueryRefund.
type RefundRequest struct {
	OrderNo        string // the payment's channel order number
	ChannelTradeNo string // the channel's id of the payment (ACP origQryId)
	RefundNo       string // paygate's refund number at the channel (payment.RefundOrderNo)
	Amount         int64  // this refund
	Total          int64  // the payment's amount
	Currency       string
	Reason         string
	PaymentCreated time.Time // the payment's creation time
	CreatedAt      time.Time // the refund's creation time (ACP txnTime of the refund)
}

// RefundStatus is the closed set of refund states.
type RefundStatus int

// Refund states.
const (
	RefundUnknown RefundStatus = iota
	RefundPending
	RefundSucceeded
	RefundFailed
	RefundNotFound
)

func (s RefundStatus) String() string {
	switch s {
	case RefundPending:
		return "pending"
	case RefundSucceeded:
		return "succeeded"
	case RefundFailed:
		return "failed"
	case RefundNotFound:
		return "not_found"
	default:
		return "unknown"
	}
}

// RefundState is what the channel says of a refund.
type RefundState struct {
	Status          RefundStatus
	ChannelRefundNo string
	Amount          int64
}

// Callback is a raw channel notification as received by the edge. The edge
// copies everything out of its request before calling the adapter.
type Callback struct {
	Header http.Header // canonical keys
	Body   []byte      // exact raw bytes
	// ContentType is the request's Content-Type header.
	ContentType string
}

// NotificationKind says whether a notification is about a payment or a refund.
type NotificationKind int

// Notification kinds.
const (
	NotifyPayment NotificationKind = iota + 1
	NotifyRefund
)

// Notification is a verified channel notification, decoded.
type Notification struct {
	Kind    NotificationKind
	OrderNo string // the payment's channel order number (both kinds)
	// Payment notifications.
	Status         OrderStatus
	ChannelTradeNo string
	PaidAt         time.Time
	// Refund notifications.
	RefundNo        string
	RefundStatus    RefundStatus
	ChannelRefundNo string
	// Amount and Currency as the channel states them (the order total for
	// payments, the refund amount for refunds). The engine compares them with
	// the stored object and refuses a mismatch.
	Amount   int64
	Currency string
	// Account is the channel merchant account the notification is for
	// (WeChat mchid, Alipay app_id, ACP merId); the adapter refuses a
	// notification for another account before returning.
	Account string
}

// Ack is the HTTP answer a channel expects to a notification.
type Ack struct {
	Status      int
	ContentType string
	Body        []byte
}
