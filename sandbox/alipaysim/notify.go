package alipaysim

import (
	"net/http"
	"net/url"
	"time"
)

// notification is one trade_status_sync notification, built (and signed)
// once: every resend carries the same body, so the same notify_id.
type notification struct {
	url  string
	body []byte
}

// paymentNotification is sent when a trade is paid. Callers hold s.mu.
func (s *Sim) paymentNotification(t *trade, now time.Time) *notification {
	return s.notification(t, now, nil)
}

// refundNotification is sent for each refund: Alipay's refund_fee is the
// trade's cumulative refunded amount, out_biz_no the refund's out_request_no.
func (s *Sim) refundNotification(t *trade, rf *refund, now time.Time) *notification {
	return s.notification(t, now, map[string]string{
		"out_biz_no": rf.outRequestNo,
		"refund_fee": yuan(t.refunded),
		"gmt_refund": rf.at.In(beijing).Format(timeLayout + ".000"),
	})
}

func (s *Sim) notification(t *trade, now time.Time, extra map[string]string) *notification {
	if t.notifyURL == "" {
		return nil
	}
	p := map[string]string{
		"notify_time":      now.In(beijing).Format(timeLayout),
		"notify_type":      "trade_status_sync",
		"notify_id":        randomHex(16),
		"app_id":           s.appID,
		"auth_app_id":      s.appID,
		"charset":          "utf-8",
		"version":          "1.0",
		"trade_no":         t.tradeNo,
		"out_trade_no":     t.outTradeNo,
		"buyer_id":         t.buyerID,
		"buyer_logon_id":   t.buyerLogonID,
		"seller_id":        s.sellerID,
		"trade_status":     t.status,
		"total_amount":     yuan(t.amount),
		"receipt_amount":   yuan(t.amount),
		"invoice_amount":   yuan(t.amount),
		"buyer_pay_amount": yuan(t.amount),
		"point_amount":     "0.00",
		"subject":          t.subject,
		"gmt_create":       t.createdAt.In(beijing).Format(timeLayout),
		"gmt_payment":      t.paidAt.In(beijing).Format(timeLayout),
		"fund_bill_list":   `[{"amount":"` + yuan(t.amount) + `","fundChannel":"ALIPAYACCOUNT"}]`,
	}
	for k, v := range extra {
		p[k] = v
	}
	// The "V1" rule: sign and sign_type are both left out of the content.
	sig := rsa2Sign(s.alipayKey, []byte(signContent(p, "sign", "sign_type")))
	form := url.Values{}
	for k, v := range p {
		if v != "" {
			form.Set(k, v)
		}
	}
	form.Set("sign_type", "RSA2")
	form.Set("sign", sig)
	return &notification{url: t.notifyURL, body: []byte(form.Encode())}
}

// send hands a notification to the Notifier, which resends it on Alipay's
// schedule until the answer is exactly "success". Call without s.mu.
func (s *Sim) send(n *notification) {
	if n == nil || s.env.Notifier == nil {
		return
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	s.env.Notifier.Send(n.url, h, n.body, func(status int, body []byte) bool {
		return status == http.StatusOK && string(body) == "success"
	})
}
