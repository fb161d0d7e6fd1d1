package wechatsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"
)

// tradeType is the order API an order was created with.
type tradeType string

const (
	tradeNative tradeType = "NATIVE"
	tradeJSAPI  tradeType = "JSAPI"
)

// tradeState is an order's trade_state (PROTOCOLS §A.5). Native/JSAPI orders
// move NOTPAY → SUCCESS (pay) | CLOSED (close, time_expire); SUCCESS → REFUND.
type tradeState string

const (
	stateNotPay  tradeState = "NOTPAY"
	stateSuccess tradeState = "SUCCESS"
	stateClosed  tradeState = "CLOSED"
	stateRefund  tradeState = "REFUND"
)

var stateDesc = map[tradeState]string{
	stateNotPay:  "订单未支付",
	stateSuccess: "支付成功",
	stateClosed:  "订单已关闭",
	stateRefund:  "订单发生过退款",
}

// content is what decides whether a repeated out_trade_no is "the same
// order": every field the merchant sent that shapes the order. Comparable.
type content struct {
	tradeType   tradeType
	appID       string
	mchID       string
	description string
	notifyURL   string
	total       int64
	currency    string
	timeExpire  int64 // unix seconds; 0 if none
	attach      string
	openID      string
}

// order is one order's state. Guarded by Sim.mu.
type order struct {
	content
	outTradeNo    string
	codeURL       string // NATIVE
	prepayID      string // JSAPI
	timeExpire    time.Time
	state         tradeState
	transactionID string
	successTime   time.Time
	payerOpenID   string
	refunded      int64 // cumulative, fen
}

// orderRequest is the body of the Native and JSAPI order APIs; pointers
// tell "missing" from "zero".
type orderRequest struct {
	AppID       *string `json:"appid"`
	MchID       *string `json:"mchid"`
	Description *string `json:"description"`
	OutTradeNo  *string `json:"out_trade_no"`
	TimeExpire  *string `json:"time_expire"`
	Attach      *string `json:"attach"`
	NotifyURL   *string `json:"notify_url"`
	GoodsTag    *string `json:"goods_tag"`
	Amount      *struct {
		Total    *int64  `json:"total"`
		Currency *string `json:"currency"`
	} `json:"amount"`
	Payer *struct {
		OpenID *string `json:"openid"`
	} `json:"payer"`
}

// createOrder serves POST /v3/pay/transactions/{native,jsapi}.
func (s *Sim) createOrder(w http.ResponseWriter, tt tradeType, body []byte) {
	var req orderRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.paramError(w, paramDetail{Field: "body", Issue: "请求体不是合法的JSON: " + err.Error(), Location: "body"})
		return
	}
	now := s.now()
	c, expire, perr := validateOrder(tt, &req, now)
	if perr != nil {
		s.paramError(w, *perr)
		return
	}
	if c.appID != s.appID || c.mchID != s.mchID {
		s.writeError(w, http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mchid不匹配", nil)
		return
	}
	no := *req.OutTradeNo

	s.mu.Lock()
	o, exists := s.orders[no]
	if exists {
		s.expireLocked(o)
		var status int
		var code, msg string
		switch {
		case o.content != c:
			status, code, msg = http.StatusForbidden, "OUT_TRADE_NO_USED", "商户订单号重复"
		case o.state == stateClosed:
			status, code, msg = http.StatusBadRequest, "ORDER_CLOSED", "订单已关闭"
		case o.state == stateSuccess || o.state == stateRefund:
			status, code, msg = http.StatusBadRequest, "ORDERPAID", "订单已支付"
		}
		answer := o.createAnswer()
		s.mu.Unlock()
		if code != "" {
			s.writeError(w, status, code, msg, nil)
			return
		}
		s.writeJSON(w, http.StatusOK, answer) // identical content: the original answer
		return
	}
	o = &order{content: c, outTradeNo: no, timeExpire: expire, state: stateNotPay, payerOpenID: c.openID}
	if tt == tradeNative {
		o.codeURL = "weixin://wxpay/bizpayurl?pr=" + randomString(10, alnum)
	} else {
		o.prepayID = "wx" + now.In(beijing).Format("0215040500") + randomString(24, hexLow)
	}
	s.orders[no] = o
	answer := o.createAnswer()
	s.mu.Unlock()

	s.orderCreated(no)
	s.writeJSON(w, http.StatusOK, answer)
}

func (o *order) createAnswer() any {
	if o.tradeType == tradeNative {
		return map[string]string{"code_url": o.codeURL}
	}
	return map[string]string{"prepay_id": o.prepayID}
}

// validateOrder checks the order fields as WeChat documents them.
func validateOrder(tt tradeType, r *orderRequest, now time.Time) (content, time.Time, *paramDetail) {
	var c content
	var expire time.Time
	req := func(field string, p *string, lo, hi int) (string, *paramDetail) {
		if p == nil || *p == "" {
			return "", &paramDetail{Field: field, Issue: "必填字段缺失", Location: "body"}
		}
		if n := utf8.RuneCountInString(*p); n < lo || n > hi {
			return "", &paramDetail{Field: field, Value: *p, Issue: fmt.Sprintf("长度应在%d到%d之间", lo, hi), Location: "body"}
		}
		return *p, nil
	}
	var d *paramDetail
	c.tradeType = tt
	if c.appID, d = req("appid", r.AppID, 1, 32); d != nil {
		return c, expire, d
	}
	if c.mchID, d = req("mchid", r.MchID, 1, 32); d != nil {
		return c, expire, d
	}
	if c.description, d = req("description", r.Description, 1, 127); d != nil {
		return c, expire, d
	}
	var no string
	if no, d = req("out_trade_no", r.OutTradeNo, 6, 32); d != nil {
		return c, expire, d
	}
	if !validOutTradeNo(no) {
		return c, expire, &paramDetail{Field: "out_trade_no", Value: no, Issue: "只能是数字、大小写字母_-*", Location: "body"}
	}
	if c.notifyURL, d = req("notify_url", r.NotifyURL, 1, 255); d != nil {
		return c, expire, d
	}
	if issue := checkNotifyURL(c.notifyURL); issue != "" {
		return c, expire, &paramDetail{Field: "notify_url", Value: c.notifyURL, Issue: issue, Location: "body"}
	}
	if r.Amount == nil || r.Amount.Total == nil {
		return c, expire, &paramDetail{Field: "amount.total", Issue: "必填字段缺失", Location: "body"}
	}
	if c.total = *r.Amount.Total; c.total < 1 {
		return c, expire, &paramDetail{Field: "amount.total", Value: c.total, Issue: "订单金额必须大于0", Location: "body"}
	}
	c.currency = "CNY"
	if r.Amount.Currency != nil && *r.Amount.Currency != "CNY" {
		return c, expire, &paramDetail{Field: "amount.currency", Value: *r.Amount.Currency, Issue: "境内商户号仅支持人民币CNY", Location: "body"}
	}
	if r.TimeExpire != nil {
		t, err := time.Parse(time.RFC3339, *r.TimeExpire)
		if err != nil {
			return c, expire, &paramDetail{Field: "time_expire", Value: *r.TimeExpire, Issue: "时间格式应为RFC3339", Location: "body"}
		}
		if !t.After(now) {
			return c, expire, &paramDetail{Field: "time_expire", Value: *r.TimeExpire, Issue: "订单失效时间应晚于当前时间", Location: "body"}
		}
		expire, c.timeExpire = t, t.Unix()
	}
	if r.Attach != nil {
		if utf8.RuneCountInString(*r.Attach) > 128 {
			return c, expire, &paramDetail{Field: "attach", Issue: "长度不能超过128", Location: "body"}
		}
		c.attach = *r.Attach
	}
	if tt == tradeJSAPI {
		var p *string
		if r.Payer != nil {
			p = r.Payer.OpenID
		}
		if c.openID, d = req("payer.openid", p, 1, 128); d != nil {
			return c, expire, d
		}
	}
	return c, expire, nil
}

// validOutTradeNo: digits, letters, '_', '-', '*' (PROTOCOLS §A.4).
func validOutTradeNo(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('0' <= ch && ch <= '9' || 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || ch == '_' || ch == '-' || ch == '*') {
			return false
		}
	}
	return true
}

// checkNotifyURL: absolute http(s) URL without a query string. WeChat
// demands https; the sandbox also accepts http (loopback gateways).
func checkNotifyURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return "必须是http(s)开头的绝对地址"
	case u.RawQuery != "" || u.ForceQuery:
		return "不能携带参数"
	}
	return ""
}

// expireLocked closes an unpaid order whose time_expire has passed.
func (s *Sim) expireLocked(o *order) {
	if o.state == stateNotPay && !o.timeExpire.IsZero() && !s.now().Before(o.timeExpire) {
		o.state = stateClosed
	}
}

// queryOrder serves GET /v3/pay/transactions/out-trade-no/{no}?mchid=.
func (s *Sim) queryOrder(w http.ResponseWriter, no string, q url.Values) {
	switch m := q.Get("mchid"); {
	case m == "":
		s.paramError(w, paramDetail{Field: "mchid", Issue: "必填字段缺失", Location: "query"})
		return
	case m != s.mchID:
		s.writeError(w, http.StatusBadRequest, "PARAM_ERROR", "mchid与请求的商户号不一致", nil)
		return
	}
	s.mu.Lock()
	o, ok := s.orders[no]
	var t any
	if ok {
		s.expireLocked(o)
		t = s.transactionLocked(o)
	}
	s.mu.Unlock()
	if !ok {
		s.writeError(w, http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在", nil)
		return
	}
	s.writeJSON(w, http.StatusOK, t)
}

// closeOrder serves POST /v3/pay/transactions/out-trade-no/{no}/close: 204
// for an unpaid or already closed order; a paid one is refused with 400
// ORDERPAID (our choice: the v3 pages do not list the code for this case).
func (s *Sim) closeOrder(w http.ResponseWriter, no string, body []byte) {
	var req struct {
		MchID *string `json:"mchid"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.paramError(w, paramDetail{Field: "body", Issue: "请求体不是合法的JSON", Location: "body"})
		return
	}
	if req.MchID == nil || *req.MchID == "" {
		s.paramError(w, paramDetail{Field: "mchid", Issue: "必填字段缺失", Location: "body"})
		return
	}
	if *req.MchID != s.mchID {
		s.writeError(w, http.StatusBadRequest, "PARAM_ERROR", "mchid与请求的商户号不一致", nil)
		return
	}
	s.mu.Lock()
	o, ok := s.orders[no]
	var state tradeState
	if ok {
		s.expireLocked(o)
		if o.state == stateNotPay {
			o.state = stateClosed
		}
		state = o.state
	}
	s.mu.Unlock()
	switch {
	case !ok:
		s.writeError(w, http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在", nil)
	case state == stateSuccess || state == stateRefund:
		s.writeError(w, http.StatusBadRequest, "ORDERPAID", "订单已支付，不能关闭", nil)
	default:
		s.writeSigned(w, http.StatusNoContent, nil)
	}
}

// transaction is the query answer and the TRANSACTION.* plaintext.
type transaction struct {
	AppID          string `json:"appid"`
	MchID          string `json:"mchid"`
	OutTradeNo     string `json:"out_trade_no"`
	TransactionID  string `json:"transaction_id,omitempty"`
	TradeType      string `json:"trade_type,omitempty"`
	TradeState     string `json:"trade_state"`
	TradeStateDesc string `json:"trade_state_desc"`
	BankType       string `json:"bank_type,omitempty"`
	Attach         string `json:"attach"`
	SuccessTime    string `json:"success_time,omitempty"`
	Payer          *struct {
		OpenID string `json:"openid"`
	} `json:"payer,omitempty"`
	Amount struct {
		Total         int64  `json:"total"`
		PayerTotal    *int64 `json:"payer_total,omitempty"`
		Currency      string `json:"currency"`
		PayerCurrency string `json:"payer_currency"`
	} `json:"amount"`
}

// transactionLocked renders an order; transaction_id, success_time, payer
// and payer_total appear only once paid, as at WeChat.
func (s *Sim) transactionLocked(o *order) *transaction {
	t := &transaction{
		AppID: o.appID, MchID: o.mchID, OutTradeNo: o.outTradeNo,
		TradeState: string(o.state), TradeStateDesc: stateDesc[o.state], Attach: o.attach,
	}
	t.Amount.Total, t.Amount.Currency, t.Amount.PayerCurrency = o.total, o.currency, o.currency
	if o.state == stateSuccess || o.state == stateRefund {
		t.TransactionID = o.transactionID
		t.TradeType = string(o.tradeType)
		t.BankType = "OTHERS"
		t.SuccessTime = o.successTime.In(beijing).Format(time.RFC3339)
		t.Payer = &struct {
			OpenID string `json:"openid"`
		}{o.payerOpenID}
		total := o.total
		t.Amount.PayerTotal = &total
	}
	return t
}

func (s *Sim) paramError(w http.ResponseWriter, d paramDetail) {
	s.writeError(w, http.StatusBadRequest, "PARAM_ERROR", "参数错误: "+d.Field+" "+d.Issue, d)
}

// beijing is UTC+8; WeChat writes times in it.
var beijing = time.FixedZone("CST", 8*3600)
