package alipay

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// This file is the only place where yuan exist: Alipay writes money as a
// decimal string in yuan with two decimals ("88.88"); everywhere else paygate
// uses int64 fen. The conversion is exact integer arithmetic, never float.
// Everything here is pure: wire structs in, domain types out, no I/O.

const (
	currencyCNY = "CNY"
	// maxAmount is Alipay's upper bound for total_amount, 100000000.00 yuan.
	maxAmount int64 = 100_000_000_00
	// maxYuanDigits bounds the integer part parseYuan accepts, far below
	// int64 overflow (10^15 yuan = 10^17 fen < 9.2×10^18).
	maxYuanDigits = 15
	// timeLayout is Alipay's time format, always Beijing time.
	timeLayout = "2006-01-02 15:04:05"
	// maxSubjectRunes is Alipay's subject limit.
	maxSubjectRunes = 256
	// productPagePay is the product code of alipay.trade.page.pay.
	productPagePay = "FAST_INSTANT_TRADE_PAY"
)

// beijing is UTC+8 as a fixed zone: China has no daylight saving time, and a
// fixed zone does not depend on the host's tz database.
var beijing = time.FixedZone("CST", 8*60*60)

// formatYuan writes fen as a yuan decimal string with exactly two decimals:
// 1 → "0.01", 100 → "1.00", 123456 → "1234.56".
func formatYuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign, u = "-", uint64(-(fen+1))+1 // no overflow for MinInt64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// parseYuan reads an Alipay amount into fen. It accepts exactly
// `0|[1-9][0-9]*` (at most 15 digits), optionally followed by "." and one or
// two digits: "0.01", "88.8", "100" and "100.00" are fine; "1.234", "-1",
// "+1", "01.00", "1.", ".5", "1e2", " 1" and "" are not.
func parseYuan(s string) (int64, error) {
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if frac == "" {
				return 0, fmt.Errorf("amount %q: no digits after the point", s)
			}
			break
		}
	}
	if intPart == "" || len(intPart) > maxYuanDigits || (len(intPart) > 1 && intPart[0] == '0') {
		return 0, fmt.Errorf("amount %q is not a yuan amount", s)
	}
	if len(frac) > 2 {
		return 0, fmt.Errorf("amount %q has more than two decimals", s)
	}
	var yuan, cents int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("amount %q is not a yuan amount", s)
		}
		yuan = yuan*10 + int64(c-'0')
	}
	for i := 0; i < 2; i++ {
		cents *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("amount %q is not a yuan amount", s)
			}
			cents += int64(c - '0')
		}
	}
	return yuan*100 + cents, nil
}

// formatTime writes t as Alipay time (Beijing).
func formatTime(t time.Time) string { return t.In(beijing).Format(timeLayout) }

// parseTime reads an Alipay time; "" or a malformed value is the zero time
// (times are informative here, amounts and states are what is checked).
func parseTime(s string) time.Time {
	t, err := time.ParseInLocation(timeLayout, s, beijing)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Request biz_content bodies (PROTOCOLS §B.6).

type precreateBiz struct {
	OutTradeNo  string `json:"out_trade_no"`
	TotalAmount string `json:"total_amount"`
	Subject     string `json:"subject"`
	TimeExpire  string `json:"time_expire,omitempty"`
}

type pagePayBiz struct {
	OutTradeNo  string `json:"out_trade_no"`
	ProductCode string `json:"product_code"`
	TotalAmount string `json:"total_amount"`
	Subject     string `json:"subject"`
	TimeExpire  string `json:"time_expire,omitempty"`
}

type tradeBiz struct {
	OutTradeNo string `json:"out_trade_no"`
}

type refundBiz struct {
	OutTradeNo   string `json:"out_trade_no"`
	RefundAmount string `json:"refund_amount"`
	OutRequestNo string `json:"out_request_no"`
	RefundReason string `json:"refund_reason,omitempty"`
}

type refundQueryBiz struct {
	OutTradeNo   string `json:"out_trade_no"`
	OutRequestNo string `json:"out_request_no"`
}

// Answers: the value of "<method>_response" (PROTOCOLS §B.4–B.6). Every
// field Alipay sends is a JSON string.

type commonResp struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
}

type precreateResp struct {
	commonResp
	OutTradeNo string `json:"out_trade_no"`
	QRCode     string `json:"qr_code"`
}

type queryResp struct {
	commonResp
	TradeNo        string `json:"trade_no"`
	OutTradeNo     string `json:"out_trade_no"`
	TradeStatus    string `json:"trade_status"`
	TotalAmount    string `json:"total_amount"`
	ReceiptAmount  string `json:"receipt_amount"`
	BuyerPayAmount string `json:"buyer_pay_amount"`
	SendPayDate    string `json:"send_pay_date"`
}

type closeResp struct {
	commonResp
	TradeNo    string `json:"trade_no"`
	OutTradeNo string `json:"out_trade_no"`
}

type refundResp struct {
	commonResp
	TradeNo      string `json:"trade_no"`
	OutTradeNo   string `json:"out_trade_no"`
	FundChange   string `json:"fund_change"`
	RefundFee    string `json:"refund_fee"` // cumulative refunded amount of the trade
	GmtRefundPay string `json:"gmt_refund_pay"`
}

type refundQueryResp struct {
	commonResp
	TradeNo      string `json:"trade_no"`
	OutTradeNo   string `json:"out_trade_no"`
	OutRequestNo string `json:"out_request_no"`
	RefundAmount string `json:"refund_amount"`
	TotalAmount  string `json:"total_amount"`
	RefundStatus string `json:"refund_status"`
	GmtRefundPay string `json:"gmt_refund_pay"`
}

// Request building.

func checkOrder(orderNo string, amount int64, currency string) error {
	if orderNo == "" || len(orderNo) > 64 {
		return errors.New("order number must have 1 to 64 characters")
	}
	if currency != currencyCNY {
		return fmt.Errorf("currency %q: Alipay accepts CNY only", currency)
	}
	if amount < 1 || amount > maxAmount {
		return fmt.Errorf("amount %d fen is outside Alipay's 0.01 to 100000000.00 yuan", amount)
	}
	return nil
}

func checkSubject(s string) error {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxSubjectRunes {
		return fmt.Errorf("subject must be 1 to %d characters of UTF-8", maxSubjectRunes)
	}
	return nil
}

func expireString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

func newPrecreateBiz(req *adapters.CreateRequest) (precreateBiz, error) {
	if err := checkOrder(req.OrderNo, req.Amount, req.Currency); err != nil {
		return precreateBiz{}, err
	}
	if err := checkSubject(req.Subject); err != nil {
		return precreateBiz{}, err
	}
	return precreateBiz{
		OutTradeNo:  req.OrderNo,
		TotalAmount: formatYuan(req.Amount),
		Subject:     req.Subject,
		TimeExpire:  expireString(req.ExpiresAt),
	}, nil
}

func newPagePayBiz(req *adapters.CreateRequest) (pagePayBiz, error) {
	if err := checkOrder(req.OrderNo, req.Amount, req.Currency); err != nil {
		return pagePayBiz{}, err
	}
	if err := checkSubject(req.Subject); err != nil {
		return pagePayBiz{}, err
	}
	return pagePayBiz{
		OutTradeNo:  req.OrderNo,
		ProductCode: productPagePay,
		TotalAmount: formatYuan(req.Amount),
		Subject:     req.Subject,
		TimeExpire:  expireString(req.ExpiresAt),
	}, nil
}

func newRefundBiz(req *adapters.RefundRequest) (refundBiz, error) {
	if err := checkRefund(req); err != nil {
		return refundBiz{}, err
	}
	if req.Amount < 1 || req.Amount > maxAmount || (req.Total > 0 && req.Amount > req.Total) {
		return refundBiz{}, fmt.Errorf("refund amount %d fen is not between 0.01 yuan and the payment's amount", req.Amount)
	}
	return refundBiz{
		OutTradeNo:   req.OrderNo,
		RefundAmount: formatYuan(req.Amount),
		OutRequestNo: req.RefundNo,
		RefundReason: truncateRunes(req.Reason, 256),
	}, nil
}

func checkRefund(req *adapters.RefundRequest) error {
	if req.OrderNo == "" || len(req.OrderNo) > 64 {
		return errors.New("order number must have 1 to 64 characters")
	}
	if req.RefundNo == "" || len(req.RefundNo) > 64 {
		return errors.New("refund number must have 1 to 64 characters")
	}
	if req.Currency != "" && req.Currency != currencyCNY {
		return fmt.Errorf("currency %q: Alipay accepts CNY only", req.Currency)
	}
	return nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

// Answer mapping. A mismatch between what we asked about and what the
// answer says makes the answer untrustworthy: the caller reports it as
// KindAmbiguous, never as a state.

type mismatchError struct{ msg string }

func (e *mismatchError) Error() string { return e.msg }

func mismatch(format string, args ...any) error {
	return &mismatchError{msg: fmt.Sprintf(format, args...)}
}

func echoed(field, got, want string) error {
	if got != want {
		return mismatch("%s %q in the answer is not %q", field, got, want)
	}
	return nil
}

func qrResult(r *precreateResp, orderNo string) (*adapters.CreateResult, error) {
	if err := echoed("out_trade_no", r.OutTradeNo, orderNo); err != nil {
		return nil, err
	}
	if r.QRCode == "" {
		return nil, mismatch("answer has no qr_code")
	}
	return &adapters.CreateResult{Action: payment.Action{Type: "qr_code", CodeURL: r.QRCode}}, nil
}

// orderState maps a query answer. Amounts are checked against the order.
func orderState(r *queryResp, req *adapters.QueryRequest) (*adapters.OrderState, error) {
	if err := echoed("out_trade_no", r.OutTradeNo, req.OrderNo); err != nil {
		return nil, err
	}
	total, err := parseYuan(r.TotalAmount)
	if err != nil {
		return nil, mismatch("total_amount: %v", err)
	}
	if req.Amount > 0 && total != req.Amount {
		return nil, mismatch("total_amount %s is not the order's %s", r.TotalAmount, formatYuan(req.Amount))
	}
	if req.Currency != "" && req.Currency != currencyCNY {
		return nil, mismatch("order currency %q is not CNY", req.Currency)
	}
	paid, err := paidEvidence(r)
	if err != nil {
		return nil, err
	}
	st := &adapters.OrderState{
		Status:         orderStatus(r.TradeStatus, paid),
		ChannelTradeNo: r.TradeNo,
		Amount:         total,
		Currency:       currencyCNY,
	}
	if st.Status == adapters.OrderPaid {
		st.PaidAt = parseTime(r.SendPayDate)
	}
	if r.TradeStatus == "TRADE_CLOSED" && st.Status == adapters.OrderPaid {
		// A paid trade is only closed by refunding all of it.
		st.RefundedAmount = total
	}
	return st, nil
}

// paidEvidence reports whether a query answer shows that money was taken:
// a pay date or a non-zero received amount. It tells a fully refunded trade
// (TRADE_CLOSED after payment) from one closed unpaid.
func paidEvidence(r *queryResp) (bool, error) {
	if r.SendPayDate != "" {
		return true, nil
	}
	for _, f := range []struct{ name, v string }{{"receipt_amount", r.ReceiptAmount}, {"buyer_pay_amount", r.BuyerPayAmount}} {
		if f.v == "" {
			continue
		}
		n, err := parseYuan(f.v)
		if err != nil {
			return false, mismatch("%s: %v", f.name, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, nil
}

// refundState maps the synchronous refund answer. refund_fee is the trade's
// cumulative refunded amount, so it must be at least this refund and at most
// the payment.
func refundState(r *refundResp, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	if err := echoed("out_trade_no", r.OutTradeNo, req.OrderNo); err != nil {
		return nil, err
	}
	fee, err := parseYuan(r.RefundFee)
	if err != nil {
		return nil, mismatch("refund_fee: %v", err)
	}
	if fee < req.Amount || (req.Total > 0 && fee > req.Total) {
		return nil, mismatch("refund_fee %s (cumulative) cannot include a refund of %s of a %s payment",
			r.RefundFee, formatYuan(req.Amount), formatYuan(req.Total))
	}
	return &adapters.RefundState{Status: refundStatus(r.FundChange), Amount: req.Amount}, nil
}

// refundQueryState maps a fastpay refund query answer.
func refundQueryState(r *refundQueryResp, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	if r.OutTradeNo != "" {
		if err := echoed("out_trade_no", r.OutTradeNo, req.OrderNo); err != nil {
			return nil, err
		}
	}
	if r.OutRequestNo != "" {
		if err := echoed("out_request_no", r.OutRequestNo, req.RefundNo); err != nil {
			return nil, err
		}
	}
	st := refundQueryStatus(r.RefundStatus)
	if st != adapters.RefundSucceeded {
		return &adapters.RefundState{Status: st}, nil
	}
	amount, err := parseYuan(r.RefundAmount)
	if err != nil {
		return nil, mismatch("refund_amount: %v", err)
	}
	if req.Amount > 0 && amount != req.Amount {
		return nil, mismatch("refund_amount %s is not the refund's %s", r.RefundAmount, formatYuan(req.Amount))
	}
	if r.TotalAmount != "" && req.Total > 0 {
		total, err := parseYuan(r.TotalAmount)
		if err != nil {
			return nil, mismatch("total_amount: %v", err)
		}
		if total != req.Total {
			return nil, mismatch("total_amount %s is not the payment's %s", r.TotalAmount, formatYuan(req.Total))
		}
	}
	return &adapters.RefundState{Status: st, Amount: amount}, nil
}
