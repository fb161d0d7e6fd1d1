package alipaysim

import (
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"
)

// The server-to-server methods. Each handler runs with s.mu held and returns
// the answer value (written under "<method>_response") plus the follow-ups
// to run once the lock is released (notifications, OrderCreated).

type answer struct {
	body    any
	created string        // env.OrderCreated(created) after the answer
	notify  *notification // sent after the answer
}

type handler func(s *Sim, p, biz map[string]string, now time.Time) answer

var handlers = map[string]handler{
	methodPrecreate:   (*Sim).precreate,
	methodQuery:       (*Sim).query,
	methodClose:       (*Sim).close,
	methodRefund:      (*Sim).refund,
	methodRefundQuery: (*Sim).refundQuery,
}

func knownAPI(m string) bool { _, ok := handlers[m]; return ok }

func (s *Sim) api(w http.ResponseWriter, p map[string]string) {
	if r := s.authenticate(p, knownAPI, false); r != nil {
		s.refuse(w, r)
		return
	}
	method := p["method"]
	biz, err := bizFields(p["biz_content"])
	if err != nil {
		writeAnswer(w, responseKey(method), invalidArg("isv.invalid-parameter", err.Error()), s.alipayKey)
		return
	}
	s.mu.Lock()
	a := handlers[method](s, p, biz, s.now())
	s.mu.Unlock()
	writeAnswer(w, responseKey(method), a.body, s.alipayKey)
	if a.created != "" {
		s.env.OrderCreated(a.created)
	}
	s.send(a.notify)
}

// Answers. Field order is the order they are written in.

type precreateAnswer struct {
	result
	OutTradeNo string `json:"out_trade_no,omitempty"`
	QRCode     string `json:"qr_code,omitempty"`
}

type queryAnswer struct {
	result
	TradeNo        string `json:"trade_no,omitempty"`
	OutTradeNo     string `json:"out_trade_no,omitempty"`
	BuyerLogonID   string `json:"buyer_logon_id,omitempty"`
	TradeStatus    string `json:"trade_status,omitempty"`
	TotalAmount    string `json:"total_amount,omitempty"`
	BuyerPayAmount string `json:"buyer_pay_amount,omitempty"`
	PointAmount    string `json:"point_amount,omitempty"`
	InvoiceAmount  string `json:"invoice_amount,omitempty"`
	SendPayDate    string `json:"send_pay_date,omitempty"`
	ReceiptAmount  string `json:"receipt_amount,omitempty"`
	Subject        string `json:"subject,omitempty"`
	BuyerUserID    string `json:"buyer_user_id,omitempty"`
}

type closeAnswer struct {
	result
	TradeNo    string `json:"trade_no,omitempty"`
	OutTradeNo string `json:"out_trade_no,omitempty"`
}

type refundAnswer struct {
	result
	TradeNo      string `json:"trade_no,omitempty"`
	OutTradeNo   string `json:"out_trade_no,omitempty"`
	BuyerLogonID string `json:"buyer_logon_id,omitempty"`
	FundChange   string `json:"fund_change,omitempty"`
	RefundFee    string `json:"refund_fee,omitempty"`
	GmtRefundPay string `json:"gmt_refund_pay,omitempty"`
	BuyerUserID  string `json:"buyer_user_id,omitempty"`
	SendBackFee  string `json:"send_back_fee,omitempty"`
}

type refundQueryAnswer struct {
	result
	TradeNo      string `json:"trade_no,omitempty"`
	OutTradeNo   string `json:"out_trade_no,omitempty"`
	OutRequestNo string `json:"out_request_no,omitempty"`
	RefundReason string `json:"refund_reason,omitempty"`
	TotalAmount  string `json:"total_amount,omitempty"`
	RefundAmount string `json:"refund_amount,omitempty"`
	RefundStatus string `json:"refund_status,omitempty"`
	GmtRefundPay string `json:"gmt_refund_pay,omitempty"`
}

var outTradeNoRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func invalidParameter(field string) result {
	return businessFailed("ACQ.INVALID_PARAMETER", "参数无效: "+field)
}

// order reads and checks the order fields of precreate and page pay.
func order(biz map[string]string, productCode string, now time.Time) (*trade, result, bool) {
	t := &trade{outTradeNo: biz["out_trade_no"], subject: biz["subject"], productCode: productCode}
	if !outTradeNoRE.MatchString(t.outTradeNo) {
		return nil, invalidParameter("out_trade_no"), false
	}
	amount, ok := fenOf(biz["total_amount"])
	if !ok || amount < 1 || amount > 100_000_000_00 {
		return nil, invalidParameter("total_amount"), false
	}
	t.amount = amount
	if t.subject == "" || !utf8.ValidString(t.subject) || utf8.RuneCountInString(t.subject) > 256 {
		return nil, invalidParameter("subject"), false
	}
	if pc := biz["product_code"]; pc != "" && pc != productCode {
		return nil, invalidParameter("product_code"), false
	}
	if te := biz["time_expire"]; te != "" {
		at, err := time.ParseInLocation(timeLayout, te, beijing)
		if err != nil {
			return nil, invalidParameter("time_expire"), false
		}
		t.expireAt = at
	} else if tx := biz["timeout_express"]; tx != "" {
		d, ok := timeoutExpress(tx)
		if !ok {
			return nil, invalidParameter("timeout_express"), false
		}
		t.expireAt = now.Add(d)
	}
	return t, success, true
}

// timeoutExpress reads "90m", "2h", "1d" (Alipay's 1m–15d).
func timeoutExpress(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	n, ok := fenOf(s[:len(s)-1])
	if unit == 0 || !ok || n%100 != 0 || n == 0 {
		return 0, false
	}
	d := time.Duration(n/100) * unit
	return d, d <= 15*24*time.Hour
}

// reuse decides what a second request for an existing out_trade_no gets.
func reuse(old, nw *trade) (result, bool) {
	switch {
	case old.status == tradeSuccess || (old.status == tradeClosed && !old.paidAt.IsZero()):
		return businessFailed("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"), false
	case old.status == tradeClosed || old.dead:
		return businessFailed("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"), false
	case old.amount != nw.amount || old.subject != nw.subject || old.productCode != nw.productCode:
		return businessFailed("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"), false
	}
	return success, true
}

func (s *Sim) precreate(p, biz map[string]string, now time.Time) answer {
	t, res, ok := order(biz, "FACE_TO_FACE_PAYMENT", now)
	if !ok {
		return answer{body: precreateAnswer{result: res}}
	}
	if old, exists := s.trades[t.outTradeNo]; exists {
		s.expire(old, now)
		if res, ok := reuse(old, t); !ok {
			return answer{body: precreateAnswer{result: res, OutTradeNo: old.outTradeNo}}
		}
		return answer{body: precreateAnswer{result: success, OutTradeNo: old.outTradeNo, QRCode: old.qrCode}}
	}
	t.notifyURL = p["notify_url"]
	t.qrCode = "https://qr.alipay.com/bax0" + randomHex(10)
	s.trades[t.outTradeNo] = t
	// The trade does not exist at Alipay until scanned, but auto-pay must
	// learn of the code now to scan and pay it.
	return answer{body: precreateAnswer{result: success, OutTradeNo: t.outTradeNo, QRCode: t.qrCode}, created: t.outTradeNo}
}

// find looks a trade up by out_trade_no or trade_no; only trades that
// exist at Alipay (scanned) are found.
func (s *Sim) find(biz map[string]string, now time.Time) (*trade, error) {
	var t *trade
	if no := biz["out_trade_no"]; no != "" {
		t = s.trades[no]
	} else if tn := biz["trade_no"]; tn != "" {
		for _, c := range s.trades {
			if c.tradeNo == tn {
				t = c
				break
			}
		}
	}
	if t == nil || !t.scanned {
		return nil, errNoTrade
	}
	s.expire(t, now)
	return t, nil
}

var tradeNotExist = businessFailed("ACQ.TRADE_NOT_EXIST", "交易不存在")

func (s *Sim) query(p, biz map[string]string, now time.Time) answer {
	t, err := s.find(biz, now)
	if err != nil {
		return answer{body: queryAnswer{result: tradeNotExist, OutTradeNo: biz["out_trade_no"],
			BuyerPayAmount: "0.00", PointAmount: "0.00", InvoiceAmount: "0.00", ReceiptAmount: "0.00"}}
	}
	a := queryAnswer{
		result: success, TradeNo: t.tradeNo, OutTradeNo: t.outTradeNo, BuyerLogonID: t.buyerLogonID,
		TradeStatus: t.status, TotalAmount: yuan(t.amount), BuyerPayAmount: "0.00", PointAmount: "0.00",
		InvoiceAmount: "0.00", ReceiptAmount: "0.00", Subject: t.subject, BuyerUserID: t.buyerID,
	}
	if !t.paidAt.IsZero() {
		a.BuyerPayAmount, a.InvoiceAmount, a.ReceiptAmount = yuan(t.amount), yuan(t.amount), yuan(t.amount)
		a.SendPayDate = t.paidAt.In(beijing).Format(timeLayout)
	}
	return answer{body: a}
}

func (s *Sim) close(p, biz map[string]string, now time.Time) answer {
	t, err := s.find(biz, now)
	if err != nil {
		return answer{body: closeAnswer{result: tradeNotExist}}
	}
	if t.status != waitBuyerPay {
		return answer{body: closeAnswer{result: businessFailed("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")}}
	}
	t.status = tradeClosed
	return answer{body: closeAnswer{result: success, TradeNo: t.tradeNo, OutTradeNo: t.outTradeNo}}
}

func (s *Sim) refund(p, biz map[string]string, now time.Time) answer {
	amount, ok := fenOf(biz["refund_amount"])
	if !ok {
		return answer{body: refundAnswer{result: invalidParameter("refund_amount")}}
	}
	if amount < 1 {
		return answer{body: refundAnswer{result: businessFailed("ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额无效")}}
	}
	t, err := s.find(biz, now)
	if err != nil {
		return answer{body: refundAnswer{result: tradeNotExist}}
	}
	reqNo := biz["out_request_no"]
	if reqNo == "" {
		reqNo = t.outTradeNo // Alipay's default: one refund per trade
	}
	ok200 := func(fundChange string, rf *refund) refundAnswer {
		return refundAnswer{result: success, TradeNo: t.tradeNo, OutTradeNo: t.outTradeNo,
			BuyerLogonID: t.buyerLogonID, FundChange: fundChange, RefundFee: yuan(t.refunded),
			GmtRefundPay: rf.at.In(beijing).Format(timeLayout), BuyerUserID: t.buyerID, SendBackFee: yuan(rf.amount)}
	}
	if old, exists := t.refunds[reqNo]; exists {
		if old.amount != amount {
			return answer{body: refundAnswer{result: businessFailed("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求")}}
		}
		return answer{body: ok200("N", old)} // idempotent: no money moves again
	}
	switch {
	case t.paidAt.IsZero() && t.status == tradeClosed:
		return answer{body: refundAnswer{result: businessFailed("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")}}
	case t.paidAt.IsZero():
		return answer{body: refundAnswer{result: businessFailed("ACQ.TRADE_STATUS_ERROR", "交易状态非法")}}
	case t.refunded+amount > t.amount:
		return answer{body: refundAnswer{result: businessFailed("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")}}
	}
	rf := &refund{outRequestNo: reqNo, amount: amount, reason: biz["refund_reason"], at: now}
	if t.refunds == nil {
		t.refunds = map[string]*refund{}
	}
	t.refunds[reqNo] = rf
	t.refunded += amount
	if t.refunded == t.amount {
		t.status = tradeClosed // fully refunded
	}
	return answer{body: ok200("Y", rf), notify: s.refundNotification(t, rf, now)}
}

func (s *Sim) refundQuery(p, biz map[string]string, now time.Time) answer {
	t, err := s.find(biz, now)
	if err != nil {
		return answer{body: refundQueryAnswer{result: tradeNotExist}}
	}
	reqNo := biz["out_request_no"]
	if reqNo == "" {
		reqNo = t.outTradeNo
	}
	rf, ok := t.refunds[reqNo]
	if !ok {
		// Alipay answers success without refund_status: "not received or failed".
		return answer{body: refundQueryAnswer{result: success, TradeNo: t.tradeNo, OutTradeNo: t.outTradeNo}}
	}
	return answer{body: refundQueryAnswer{
		result: success, TradeNo: t.tradeNo, OutTradeNo: t.outTradeNo, OutRequestNo: rf.outRequestNo,
		RefundReason: rf.reason, TotalAmount: yuan(t.amount), RefundAmount: yuan(rf.amount),
		RefundStatus: "REFUND_SUCCESS", GmtRefundPay: rf.at.In(beijing).Format(timeLayout),
	}}
}
