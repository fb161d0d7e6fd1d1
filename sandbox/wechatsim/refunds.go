package wechatsim

import (
	"encoding/json"
	"net/http"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// refund is one refund's state. Guarded by Sim.mu.
type refund struct {
	refundID    string
	outRefundNo string
	outTradeNo  string
	reason      string
	notifyURL   string
	amount      int64
	total       int64
	status      string // PROCESSING | SUCCESS
	createTime  time.Time
	successTime time.Time
}

// refundRequest is the body of POST /v3/refund/domestic/refunds.
type refundRequest struct {
	TransactionID *string `json:"transaction_id"`
	OutTradeNo    *string `json:"out_trade_no"`
	OutRefundNo   *string `json:"out_refund_no"`
	Reason        *string `json:"reason"`
	NotifyURL     *string `json:"notify_url"`
	FundsAccount  *string `json:"funds_account"`
	Amount        *struct {
		Refund   *int64  `json:"refund"`
		Total    *int64  `json:"total"`
		Currency *string `json:"currency"`
	} `json:"amount"`
}

// createRefund serves POST /v3/refund/domestic/refunds. Refunds are partial
// and cumulative, never above the paid amount (403 NOT_ENOUGH, our choice of
// code for "refundable amount exceeded"), and idempotent on out_refund_no.
// The synchronous answer says PROCESSING; the refund then succeeds at once
// and a REFUND.SUCCESS notification goes to its notify_url.
func (s *Sim) createRefund(w http.ResponseWriter, body []byte) {
	var req refundRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.paramError(w, paramDetail{Field: "body", Issue: "请求体不是合法的JSON: " + err.Error(), Location: "body"})
		return
	}
	if d := validateRefund(&req); d != nil {
		s.paramError(w, *d)
		return
	}
	amount, total := *req.Amount.Refund, *req.Amount.Total
	var reason, notifyURL string
	if req.Reason != nil {
		reason = *req.Reason
	}
	if req.NotifyURL != nil {
		notifyURL = *req.NotifyURL
	}

	s.mu.Lock()
	o := s.findOrderLocked(req.TransactionID, req.OutTradeNo)
	if o == nil {
		s.mu.Unlock()
		s.writeError(w, http.StatusNotFound, "RESOURCE_NOT_EXISTS", "订单不存在", nil)
		return
	}
	if r, ok := s.refunds[*req.OutRefundNo]; ok {
		same := r.outTradeNo == o.outTradeNo && r.amount == amount && r.total == total
		answer := s.refundAnswerLocked(r)
		s.mu.Unlock()
		if !same {
			s.writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "商户退款单号已存在，请求参数与原退款不一致", nil)
			return
		}
		s.writeJSON(w, http.StatusOK, answer) // a retry: the refund as it is now
		return
	}
	s.expireLocked(o)
	var status int
	var code, msg string
	switch {
	case o.state != stateSuccess && o.state != stateRefund:
		status, code, msg = http.StatusBadRequest, "INVALID_REQUEST", "订单未支付，不能退款"
	case total != o.total:
		status, code, msg = http.StatusBadRequest, "INVALID_REQUEST", "订单金额与原订单金额不一致"
	case o.refunded+amount > o.total:
		status, code, msg = http.StatusForbidden, "NOT_ENOUGH", "可退金额不足，申请退款金额超过订单可退金额"
	}
	if code != "" {
		s.mu.Unlock()
		s.writeError(w, status, code, msg, nil)
		return
	}
	now := s.now()
	r := &refund{
		refundID: "50" + randomString(30, digits), outRefundNo: *req.OutRefundNo, outTradeNo: o.outTradeNo,
		reason: reason, notifyURL: notifyURL, amount: amount, total: total, status: "PROCESSING", createTime: now,
	}
	s.refunds[r.outRefundNo] = r
	o.refunded += amount
	o.state = stateRefund
	answer := s.refundAnswerLocked(r) // PROCESSING
	r.status, r.successTime = "SUCCESS", now
	plain, err := json.Marshal(s.refundNoticeLocked(r, o))
	s.mu.Unlock()

	s.writeJSON(w, http.StatusOK, answer)
	if err == nil {
		err = s.notify(notifyURL, "REFUND.SUCCESS", "退款成功", "refund", plain)
	}
	if err != nil {
		s.logger.Error("wechatsim: refund notification not sent", zap.Error(err))
	}
}

func validateRefund(r *refundRequest) *paramDetail {
	if (r.TransactionID == nil || *r.TransactionID == "") && (r.OutTradeNo == nil || *r.OutTradeNo == "") {
		return &paramDetail{Field: "out_trade_no", Issue: "transaction_id和out_trade_no必须二选一", Location: "body"}
	}
	if r.OutRefundNo == nil || *r.OutRefundNo == "" || len(*r.OutRefundNo) > 64 || !validRefundNo(*r.OutRefundNo) {
		return &paramDetail{Field: "out_refund_no", Issue: "必填，1到64位数字、大小写字母_-|*@", Location: "body"}
	}
	if r.Reason != nil && utf8.RuneCountInString(*r.Reason) > 80 {
		return &paramDetail{Field: "reason", Issue: "长度不能超过80", Location: "body"}
	}
	if r.NotifyURL != nil && *r.NotifyURL != "" {
		if len(*r.NotifyURL) > 256 {
			return &paramDetail{Field: "notify_url", Issue: "长度不能超过256", Location: "body"}
		}
		if issue := checkNotifyURL(*r.NotifyURL); issue != "" {
			return &paramDetail{Field: "notify_url", Value: *r.NotifyURL, Issue: issue, Location: "body"}
		}
	}
	if r.FundsAccount != nil && *r.FundsAccount != "AVAILABLE" && *r.FundsAccount != "UNSETTLED" {
		return &paramDetail{Field: "funds_account", Value: *r.FundsAccount, Issue: "取值应为AVAILABLE或UNSETTLED", Location: "body"}
	}
	switch {
	case r.Amount == nil || r.Amount.Refund == nil:
		return &paramDetail{Field: "amount.refund", Issue: "必填字段缺失", Location: "body"}
	case *r.Amount.Refund < 1:
		return &paramDetail{Field: "amount.refund", Value: *r.Amount.Refund, Issue: "退款金额必须大于0", Location: "body"}
	case r.Amount.Total == nil || *r.Amount.Total < 1:
		return &paramDetail{Field: "amount.total", Issue: "必填，原订单金额必须大于0", Location: "body"}
	case *r.Amount.Refund > *r.Amount.Total:
		return &paramDetail{Field: "amount.refund", Value: *r.Amount.Refund, Issue: "退款金额不能大于原订单金额", Location: "body"}
	case r.Amount.Currency == nil || *r.Amount.Currency != "CNY":
		return &paramDetail{Field: "amount.currency", Issue: "必填，境内商户号仅支持人民币CNY", Location: "body"}
	}
	return nil
}

func validRefundNo(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('0' <= ch && ch <= '9' || 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' ||
			ch == '_' || ch == '-' || ch == '|' || ch == '*' || ch == '@') {
			return false
		}
	}
	return true
}

func (s *Sim) findOrderLocked(transactionID, outTradeNo *string) *order {
	if outTradeNo != nil && *outTradeNo != "" {
		return s.orders[*outTradeNo]
	}
	for _, o := range s.orders {
		if o.transactionID != "" && o.transactionID == *transactionID {
			return o
		}
	}
	return nil
}

// queryRefund serves GET /v3/refund/domestic/refunds/{out_refund_no}.
func (s *Sim) queryRefund(w http.ResponseWriter, no string) {
	s.mu.Lock()
	r, ok := s.refunds[no]
	var answer any
	if ok {
		answer = s.refundAnswerLocked(r)
	}
	s.mu.Unlock()
	if !ok {
		s.writeError(w, http.StatusNotFound, "RESOURCE_NOT_EXISTS", "退款单不存在", nil)
		return
	}
	s.writeJSON(w, http.StatusOK, answer)
}

type refundAnswer struct {
	RefundID            string `json:"refund_id"`
	OutRefundNo         string `json:"out_refund_no"`
	TransactionID       string `json:"transaction_id"`
	OutTradeNo          string `json:"out_trade_no"`
	Channel             string `json:"channel"`
	UserReceivedAccount string `json:"user_received_account"`
	SuccessTime         string `json:"success_time,omitempty"`
	CreateTime          string `json:"create_time"`
	Status              string `json:"status"`
	FundsAccount        string `json:"funds_account"`
	Amount              struct {
		Total            int64  `json:"total"`
		Refund           int64  `json:"refund"`
		PayerTotal       int64  `json:"payer_total"`
		PayerRefund      int64  `json:"payer_refund"`
		SettlementRefund int64  `json:"settlement_refund"`
		SettlementTotal  int64  `json:"settlement_total"`
		DiscountRefund   int64  `json:"discount_refund"`
		Currency         string `json:"currency"`
		From             []any  `json:"from"`
	} `json:"amount"`
	PromotionDetail []any `json:"promotion_detail"`
}

func (s *Sim) refundAnswerLocked(r *refund) *refundAnswer {
	a := &refundAnswer{
		RefundID: r.refundID, OutRefundNo: r.outRefundNo, OutTradeNo: r.outTradeNo,
		Channel: "ORIGINAL", UserReceivedAccount: "支付用户零钱",
		CreateTime: r.createTime.In(beijing).Format(time.RFC3339), Status: r.status, FundsAccount: "AVAILABLE",
		PromotionDetail: []any{},
	}
	if o := s.orders[r.outTradeNo]; o != nil {
		a.TransactionID = o.transactionID
	}
	if r.status == "SUCCESS" {
		a.SuccessTime = r.successTime.In(beijing).Format(time.RFC3339)
	}
	a.Amount.Total, a.Amount.Refund = r.total, r.amount
	a.Amount.PayerTotal, a.Amount.PayerRefund = r.total, r.amount
	a.Amount.SettlementTotal, a.Amount.SettlementRefund = r.total, r.amount
	a.Amount.Currency, a.Amount.From = "CNY", []any{}
	return a
}

// refundNotice is the REFUND.* plaintext (PROTOCOLS §A.6).
type refundNotice struct {
	MchID               string `json:"mchid"`
	TransactionID       string `json:"transaction_id"`
	OutTradeNo          string `json:"out_trade_no"`
	RefundID            string `json:"refund_id"`
	OutRefundNo         string `json:"out_refund_no"`
	RefundStatus        string `json:"refund_status"`
	SuccessTime         string `json:"success_time,omitempty"`
	UserReceivedAccount string `json:"user_received_account"`
	Amount              struct {
		Total       int64 `json:"total"`
		Refund      int64 `json:"refund"`
		PayerTotal  int64 `json:"payer_total"`
		PayerRefund int64 `json:"payer_refund"`
	} `json:"amount"`
}

func (s *Sim) refundNoticeLocked(r *refund, o *order) *refundNotice {
	n := &refundNotice{
		MchID: s.mchID, TransactionID: o.transactionID, OutTradeNo: o.outTradeNo, RefundID: r.refundID,
		OutRefundNo: r.outRefundNo, RefundStatus: r.status, UserReceivedAccount: "支付用户零钱",
	}
	if r.status == "SUCCESS" {
		n.SuccessTime = r.successTime.In(beijing).Format(time.RFC3339)
	}
	n.Amount.Total, n.Amount.Refund, n.Amount.PayerTotal, n.Amount.PayerRefund = r.total, r.amount, r.total, r.amount
	return n
}
