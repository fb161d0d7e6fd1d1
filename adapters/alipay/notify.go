package alipay

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// Notification handling (PROTOCOLS §B.8). Alipay POSTs a form
// (trade_status_sync) to the notify_url of the trade, signed with the "V1"
// rule: all parameters except sign and sign_type, empty values skipped,
// sorted, URL-decoded values. It resends (4m, 10m, 10m, 1h, 2h, 6h, 15h)
// until the answer body is exactly "success".

// Notification error codes.
const (
	codeBadNotify         = "bad_notify"
	codeNotifySignature   = "bad_signature"
	codeAccountMismatch   = "account_mismatch"
	codeRefundUnconfirmed = "refund_unconfirmed"
)

const notifyTradeStatusSync = "trade_status_sync"

// ParseNotify verifies a notification and decodes it.
//
// A payment notification (trade_status) maps to NotifyPayment with the
// trade's total as Amount. A refund notification (out_biz_no with
// refund_fee or gmt_refund) maps to NotifyRefund with RefundNo = out_biz_no.
// Alipay's refund_fee is the trade's cumulative refunded amount, not this
// refund's, so ParseNotify asks Alipay (alipay.trade.fastpay.refund.query for
// out_biz_no, a verified call) for this refund's amount and status: the
// Notification then carries exactly what the refund query says. If that
// call fails, ParseNotify returns its error; answering Ack(err) makes Alipay
// send the notification again later.
func (c *Client) ParseNotify(ctx context.Context, cb *adapters.Callback) (*adapters.Notification, error) {
	params, err := verifyNotification(cb.Body, c.cfg.AlipayPublicKey)
	if err != nil {
		return nil, c.notifyErr(adapters.KindBadSignature, codeNotifySignature, err)
	}
	if params["app_id"] != c.cfg.AppID {
		return nil, c.notifyErr(adapters.KindBadSignature, codeAccountMismatch,
			fmt.Errorf("notification is for app_id %q", params["app_id"]))
	}
	n, err := decodeNotification(params)
	if err != nil {
		return nil, c.notifyErr(adapters.KindInvalid, codeBadNotify, err)
	}
	if n.Kind != adapters.NotifyRefund {
		return n, nil
	}
	total, _ := parseYuan(params["total_amount"]) // 0 (unchecked) if absent
	st, err := c.QueryRefund(ctx, &adapters.RefundRequest{
		OrderNo: n.OrderNo, RefundNo: n.RefundNo, Total: total, Currency: currencyCNY,
	})
	if err != nil {
		e := &adapters.Error{Channel: c.cfg.ID, Op: opNotify, Kind: adapters.KindAmbiguous, Code: codeRefundUnconfirmed,
			Message: "refund query for the notified refund failed", Err: err}
		if qe, ok := adapters.AsError(err); ok {
			e.Kind = qe.Kind
		}
		return nil, e
	}
	if st.Status != adapters.RefundSucceeded {
		return nil, c.notifyErr(adapters.KindAmbiguous, codeRefundUnconfirmed,
			fmt.Errorf("refund query says %s for a refund Alipay notified", st.Status))
	}
	n.RefundStatus = st.Status
	n.Amount = st.Amount
	return n, nil
}

// NotifyHint names the order an unverified notification claims to be about
// (out_trade_no, for payment and refund notifications alike). The edge uses
// it only to query Alipay sooner; it trusts nothing in it.
func (c *Client) NotifyHint(cb *adapters.Callback) string {
	values, err := url.ParseQuery(string(cb.Body))
	if err != nil {
		return ""
	}
	return values.Get("out_trade_no")
}

// Ack is Alipay's answer: 200 with the body "success" to stop the resends,
// "fail" (anything else would do) to have the notification sent again.
func (c *Client) Ack(err error) adapters.Ack {
	body := "success"
	if err != nil {
		body = "fail"
	}
	return adapters.Ack{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte(body)}
}

func (c *Client) notifyErr(kind adapters.Kind, code string, err error) error {
	return &adapters.Error{Channel: c.cfg.ID, Op: opNotify, Kind: kind, Code: code, Message: err.Error()}
}

// verifyNotification parses a form body and verifies its V1 signature with
// the Alipay public key. It returns the parameters only if they verify.
func verifyNotification(body []byte, pub *rsa.PublicKey) (map[string]string, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("body is not a form")
	}
	params := make(map[string]string, len(values))
	for k, v := range values {
		if len(v) != 1 {
			// One value was signed and another would be read.
			return nil, fmt.Errorf("parameter %q is repeated", k)
		}
		params[k] = v[0]
	}
	sign := params["sign"]
	if sign == "" {
		return nil, errors.New("notification has no sign")
	}
	if st := params["sign_type"]; st != "" && st != "RSA2" {
		return nil, fmt.Errorf("sign_type %q is not RSA2", st)
	}
	// A sender that forgot to encode "+" in the signature turns it into a
	// space; base64 has no spaces, so this repair cannot change a valid one.
	sign = strings.ReplaceAll(sign, " ", "+")
	if err := verify(pub, []byte(signContent(values, "sign", "sign_type")), sign); err != nil {
		return nil, err
	}
	return params, nil
}

// decodeNotification maps verified notification parameters.
func decodeNotification(p map[string]string) (*adapters.Notification, error) {
	n := &adapters.Notification{
		Kind:           adapters.NotifyPayment,
		OrderNo:        p["out_trade_no"],
		ChannelTradeNo: p["trade_no"],
		Currency:       currencyCNY,
		Account:        p["app_id"],
	}
	if p["notify_type"] != notifyTradeStatusSync {
		// Not a trade notification: nothing to change.
		n.Status = adapters.OrderUnknown
		return n, nil
	}
	refundNo := p["out_biz_no"]
	if refundNo != "" && (p["refund_fee"] != "" || p["gmt_refund"] != "") {
		n.Kind = adapters.NotifyRefund
		n.RefundNo = refundNo
		n.RefundStatus = adapters.RefundSucceeded // Alipay notifies refunds once done
		if n.OrderNo == "" {
			// paygate's refund numbers start with their payment's order number.
			pid := payment.PaymentIDFromOrderNo(refundNo)
			if pid == "" || len(refundNo) == len(payment.OrderNo(pid)) {
				return nil, errors.New("refund notification has no out_trade_no")
			}
			n.OrderNo = payment.OrderNo(pid)
		}
		if fee := p["refund_fee"]; fee != "" {
			if _, err := parseYuan(fee); err != nil {
				return nil, fmt.Errorf("refund_fee: %w", err)
			}
		}
		return n, nil
	}
	if n.OrderNo == "" {
		return nil, errors.New("notification has no out_trade_no")
	}
	total, err := parseYuan(p["total_amount"])
	if err != nil {
		return nil, fmt.Errorf("total_amount: %w", err)
	}
	n.Amount = total
	paid := p["gmt_payment"] != ""
	if fee := p["refund_fee"]; fee != "" {
		f, err := parseYuan(fee)
		if err != nil {
			return nil, fmt.Errorf("refund_fee: %w", err)
		}
		paid = paid || f > 0
	}
	n.Status = orderStatus(p["trade_status"], paid)
	if n.Status == adapters.OrderPaid {
		n.PaidAt = parseTime(p["gmt_payment"])
	}
	return n, nil
}
