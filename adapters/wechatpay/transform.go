package wechatpay

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// Wire structs of WeChat Pay API v3 (direct merchant, "普通商户").
// https://pay.weixin.qq.com/doc/v3/merchant/4012791877 (Native 下单) and the
// pages linked from there; PROTOCOLS §A.4–§A.8.

// orderRequest is the body of POST /v3/pay/transactions/{native,jsapi}.
type orderRequest struct {
	AppID       string     `json:"appid"`
	MchID       string     `json:"mchid"`
	Description string     `json:"description"`
	OutTradeNo  string     `json:"out_trade_no"`
	TimeExpire  string     `json:"time_expire,omitempty"`
	NotifyURL   string     `json:"notify_url"`
	Amount      wireAmount `json:"amount"`
	Payer       *wirePayer `json:"payer,omitempty"`
	SceneInfo   *sceneInfo `json:"scene_info,omitempty"`
}

type wireAmount struct {
	Total    int64  `json:"total"`
	Currency string `json:"currency,omitempty"`
}

type wirePayer struct {
	OpenID string `json:"openid"`
}

type sceneInfo struct {
	PayerClientIP string `json:"payer_client_ip"`
}

// nativeResponse / jsapiResponse are the 200 answers of the two order APIs.
type nativeResponse struct {
	CodeURL string `json:"code_url"`
}

type jsapiResponse struct {
	PrepayID string `json:"prepay_id"`
}

// closeRequest is the body of POST …/out-trade-no/{no}/close.
type closeRequest struct {
	MchID string `json:"mchid"`
}

// transaction is the query answer and the plaintext of a TRANSACTION.*
// notification.
type transaction struct {
	AppID          string `json:"appid"`
	MchID          string `json:"mchid"`
	OutTradeNo     string `json:"out_trade_no"`
	TransactionID  string `json:"transaction_id"`
	TradeType      string `json:"trade_type"`
	TradeState     string `json:"trade_state"`
	TradeStateDesc string `json:"trade_state_desc"`
	SuccessTime    string `json:"success_time"`
	Amount         struct {
		Total         int64  `json:"total"`
		PayerTotal    int64  `json:"payer_total"`
		Currency      string `json:"currency"`
		PayerCurrency string `json:"payer_currency"`
	} `json:"amount"`
}

// refundRequest is the body of POST /v3/refund/domestic/refunds.
type refundRequest struct {
	OutTradeNo  string           `json:"out_trade_no"`
	OutRefundNo string           `json:"out_refund_no"`
	Reason      string           `json:"reason,omitempty"`
	NotifyURL   string           `json:"notify_url,omitempty"`
	Amount      refundAmountWire `json:"amount"`
}

type refundAmountWire struct {
	Refund   int64  `json:"refund"`
	Total    int64  `json:"total"`
	Currency string `json:"currency"`
}

// refund is the answer of the refund create and query APIs.
type refund struct {
	RefundID      string `json:"refund_id"`
	OutRefundNo   string `json:"out_refund_no"`
	TransactionID string `json:"transaction_id"`
	OutTradeNo    string `json:"out_trade_no"`
	Status        string `json:"status"`
	SuccessTime   string `json:"success_time"`
	Amount        struct {
		Total    int64  `json:"total"`
		Refund   int64  `json:"refund"`
		Currency string `json:"currency"`
	} `json:"amount"`
}

// refundNotice is the plaintext of a REFUND.* notification (it says
// refund_status, not status, and carries mchid).
type refundNotice struct {
	MchID         string `json:"mchid"`
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id"`
	RefundID      string `json:"refund_id"`
	OutRefundNo   string `json:"out_refund_no"`
	RefundStatus  string `json:"refund_status"`
	SuccessTime   string `json:"success_time"`
	Amount        struct {
		Total       int64 `json:"total"`
		Refund      int64 `json:"refund"`
		PayerTotal  int64 `json:"payer_total"`
		PayerRefund int64 `json:"payer_refund"`
	} `json:"amount"`
}

// apiError is the body of every non-2xx answer (PROTOCOLS §A.7).
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Limits of the v3 API (PROTOCOLS §A.4, §A.6).
const (
	maxDescription = 127 // characters
	maxReason      = 80  // characters
	currencyCNY    = "CNY"
)

// beijing is UTC+8 without a tzdata dependency; WeChat writes times in it.
var beijing = time.FixedZone("CST", 8*3600)

// tradeKind is which order API a method uses.
type tradeKind int

const (
	tradeNative tradeKind = iota + 1
	tradeJSAPI
)

// tradeKindOf maps a paygate method to the order API, or 0 if unsupported.
func tradeKindOf(m payment.Method) tradeKind {
	switch m {
	case payment.MethodQR, payment.MethodWechatNative:
		return tradeNative
	case payment.MethodWechatJSAPI:
		return tradeJSAPI
	default:
		return 0
	}
}

// errMissingOpenID: JSAPI needs the payer's openid.
var errMissingOpenID = errors.New("wechat_jsapi needs payer.openid")

// buildOrder turns a CreateRequest into the order body. It is pure.
func buildOrder(appID, mchID, notifyURL string, kind tradeKind, req *adapters.CreateRequest) (*orderRequest, error) {
	if req.Amount < 1 {
		return nil, fmt.Errorf("amount must be at least 1 fen")
	}
	if req.Currency != currencyCNY {
		return nil, fmt.Errorf("currency %q: WeChat Pay domestic orders are CNY only", req.Currency)
	}
	o := &orderRequest{
		AppID:       appID,
		MchID:       mchID,
		Description: truncateRunes(req.Subject, maxDescription),
		OutTradeNo:  req.OrderNo,
		NotifyURL:   notifyURL,
		Amount:      wireAmount{Total: req.Amount, Currency: currencyCNY},
	}
	if !req.ExpiresAt.IsZero() {
		o.TimeExpire = formatTime(req.ExpiresAt)
	}
	if req.ClientIP != "" {
		o.SceneInfo = &sceneInfo{PayerClientIP: req.ClientIP}
	}
	if kind == tradeJSAPI {
		if req.PayerOpenID == "" {
			return nil, errMissingOpenID
		}
		o.Payer = &wirePayer{OpenID: req.PayerOpenID}
	}
	return o, nil
}

// buildRefund turns a RefundRequest into the refund body. It is pure.
func buildRefund(notifyURL string, req *adapters.RefundRequest) (*refundRequest, error) {
	if req.Amount < 1 || req.Total < 1 || req.Amount > req.Total {
		return nil, fmt.Errorf("refund amount %d of total %d is out of range", req.Amount, req.Total)
	}
	cur := req.Currency
	if cur == "" {
		cur = currencyCNY
	}
	if cur != currencyCNY {
		return nil, fmt.Errorf("currency %q: WeChat Pay domestic refunds are CNY only", cur)
	}
	return &refundRequest{
		OutTradeNo:  req.OrderNo,
		OutRefundNo: req.RefundNo,
		Reason:      truncateRunes(req.Reason, maxReason),
		NotifyURL:   notifyURL,
		Amount:      refundAmountWire{Refund: req.Amount, Total: req.Total, Currency: cur},
	}, nil
}

// orderState converts a query answer. It is pure.
func orderState(t *transaction) *adapters.OrderState {
	st := &adapters.OrderState{
		Status:         orderStatus(t.TradeState),
		ChannelTradeNo: t.TransactionID,
		Amount:         t.Amount.Total,
		Currency:       t.Amount.Currency,
	}
	if st.Currency == "" && st.Amount > 0 {
		st.Currency = currencyCNY // the API's default currency
	}
	if st.Status == adapters.OrderPaid {
		st.PaidAt = parseTime(t.SuccessTime)
	}
	return st
}

// refundState converts a refund answer. It is pure.
func refundState(r *refund) *adapters.RefundState {
	return &adapters.RefundState{
		Status:          refundStatus(r.Status),
		ChannelRefundNo: r.RefundID,
		Amount:          r.Amount.Refund,
	}
}

// paymentNotification converts the plaintext of a TRANSACTION.* notification.
func paymentNotification(t *transaction) *adapters.Notification {
	n := &adapters.Notification{
		Kind:           adapters.NotifyPayment,
		OrderNo:        t.OutTradeNo,
		Status:         orderStatus(t.TradeState),
		ChannelTradeNo: t.TransactionID,
		Amount:         t.Amount.Total,
		Currency:       t.Amount.Currency,
		Account:        t.MchID,
	}
	if n.Currency == "" {
		n.Currency = currencyCNY
	}
	if n.Status == adapters.OrderPaid {
		n.PaidAt = parseTime(t.SuccessTime)
	}
	return n
}

// refundNotification converts the plaintext of a REFUND.* notification. The
// refund plaintext has no currency: domestic refunds are CNY.
func refundNotification(r *refundNotice) *adapters.Notification {
	orderNo := r.OutTradeNo
	if orderNo == "" {
		// Our refund numbers start with the payment's order number.
		orderNo = payment.OrderNo(payment.PaymentIDFromOrderNo(r.OutRefundNo))
	}
	return &adapters.Notification{
		Kind:            adapters.NotifyRefund,
		OrderNo:         orderNo,
		ChannelTradeNo:  r.TransactionID,
		RefundNo:        r.OutRefundNo,
		RefundStatus:    refundStatus(r.RefundStatus),
		ChannelRefundNo: r.RefundID,
		Amount:          r.Amount.Refund,
		Currency:        currencyCNY,
		Account:         r.MchID,
	}
}

// jsapiMessage is what paySign covers: appId, timeStamp, nonceStr and
// package, each followed by "\n" (PROTOCOLS §A.4).
func jsapiMessage(appID, timeStamp, nonceStr, pkg string) string {
	return appID + "\n" + timeStamp + "\n" + nonceStr + "\n" + pkg + "\n"
}

// jsapiParams builds the JSAPI invoke parameters except paySign.
func jsapiParams(appID, prepayID, nonce string, now time.Time) map[string]string {
	return map[string]string{
		"appId":     appID,
		"timeStamp": strconv.FormatInt(now.Unix(), 10),
		"nonceStr":  nonce,
		"package":   "prepay_id=" + prepayID,
		"signType":  "RSA",
	}
}

// formatTime writes t as WeChat does: RFC 3339 in Beijing time.
func formatTime(t time.Time) string { return t.In(beijing).Format(time.RFC3339) }

// parseTime reads an RFC 3339 time; unparseable is zero.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

// payAction is the action the merchant shows the payer.
func payAction(typ, codeURL string, params map[string]string) payment.Action {
	return payment.Action{Type: typ, CodeURL: codeURL, Params: params}
}
