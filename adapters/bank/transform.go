package bank

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// Pure transformations between paygate's requests and ACP 5.1.0 messages. No
// I/O here: client.go signs and sends, notify.go verifies first.
//
// Field names and values follow the UnionPay ACP 5.1.0 online gateway
// ("全渠道", https://open.unionpay.com/tjweb/api/list); PROTOCOLS.md §C.

// Fixed field values of ACP 5.1.0.
const (
	acpVersion     = "5.1.0"
	acpEncoding    = "utf-8"
	signMethodRSA  = "01" // RSA with a certificate; SHA-256 in 5.1.0
	accessDirect   = "0"  // direct merchant
	currencyCNY    = "156"
	txnTypeQuery   = "00"
	txnTypeConsume = "01"
	txnTypeRefund  = "04"
	subTypeNone    = "00"
	subTypeConsume = "01" // self-service consume
	subTypeQRApply = "07" // apply for a QR code (merchant-presented)
	bizTypeGateway = "000201"
	bizTypeGeneric = "000000"
	channelPC      = "07"
	channelMobile  = "08"
)

// Endpoint paths, appended to the configured base URL.
const (
	pathFront = "/gateway/api/frontTransReq.do"
	pathBack  = "/gateway/api/backTransReq.do"
	pathQuery = "/gateway/api/queryTrans.do"
)

// beijing is UTC+8 without DST: ACP times (txnTime, payTimeout, traceTime)
// are Beijing local time. A fixed zone needs no tzdata on the host.
var beijing = time.FixedZone("CST", 8*60*60)

const acpTimeLayout = "20060102150405"

// acpTime formats t as ACP yyyyMMddHHmmss in Beijing time.
func acpTime(t time.Time) string { return t.In(beijing).Format(acpTimeLayout) }

// parseACPTime parses yyyyMMddHHmmss in Beijing time.
func parseACPTime(s string) (time.Time, error) {
	if len(s) != len(acpTimeLayout) || !isDigits(s) {
		return time.Time{}, fmt.Errorf("time %q is not yyyyMMddHHmmss", s)
	}
	return time.ParseInLocation(acpTimeLayout, s, beijing)
}

// paidAtFrom derives the payment time from the notification's or query's
// traceTime (MMddHHmmss, Beijing, no year), taking the year from the order's
// txnTime: a traceTime earlier in the year than txnTime belongs to the next
// year. The result is in UTC. ok is false when either is missing or
// malformed.
func paidAtFrom(txnTime, traceTime string) (t time.Time, ok bool) {
	order, err := parseACPTime(txnTime)
	if err != nil || len(traceTime) != 10 || !isDigits(traceTime) {
		return time.Time{}, false
	}
	year := order.Year()
	t, err = time.ParseInLocation(acpTimeLayout, strconv.Itoa(year)+traceTime, beijing)
	if err != nil {
		return time.Time{}, false
	}
	if t.Before(order.Add(-24 * time.Hour)) {
		t, err = time.ParseInLocation(acpTimeLayout, strconv.Itoa(year+1)+traceTime, beijing)
		if err != nil {
			return time.Time{}, false
		}
	}
	return t.UTC(), true
}

// fen renders an amount for txnAmt: integer fen, no sign, no leading zeros.
func fen(amount int64) string { return strconv.FormatInt(amount, 10) }

// parseFen parses txnAmt: 1 to 12 digits.
func parseFen(s string) (int64, error) {
	if len(s) == 0 || len(s) > 12 || !isDigits(s) {
		return 0, fmt.Errorf("txnAmt %q is not an amount in fen", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

// currencyOf maps an ISO 4217 numeric currencyCode to its alpha code. ACP's
// domain is CNY: a missing code means 156. Any other code is returned as is,
// so that it can never equal the stored alpha currency.
func currencyOf(code string) string {
	switch code {
	case currencyCNY, "":
		return "CNY"
	default:
		return code
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// validOrderID reports whether s is an ACP orderId: 8–32 alphanumerics.
func validOrderID(s string) bool { return len(s) >= 8 && len(s) <= 32 && isAlnum(s) }

// merchant holds the fields every request of one channel instance carries.
type merchant struct {
	merID    string
	certID   string
	backURL  string // cfg.NotifyURL
	frontURL string // where the payer's browser returns after a front consume
}

// base returns the fields common to every request. certId is part of the
// signed string, so it is set here, before signing.
func (m merchant) base(txnType, subType, bizType string) map[string]string {
	return map[string]string{
		"version":    acpVersion,
		"encoding":   acpEncoding,
		"signMethod": signMethodRSA,
		"txnType":    txnType,
		"txnSubType": subType,
		"bizType":    bizType,
		"accessType": accessDirect,
		"merId":      m.merID,
		"certId":     m.certID,
	}
}

// setIf adds a field only when it has a value: ACP messages never carry
// empty fields, so the question of how an empty value is signed never arises.
func setIf(f map[string]string, k, v string) {
	if v != "" {
		f[k] = v
	}
}

// consumeFields builds the unsigned front consume (txnType 01/01, bizType
// 000201, channelType 07) that the payer's browser posts to frontTransReq.do.
func consumeFields(m merchant, req *adapters.CreateRequest) map[string]string {
	f := m.base(txnTypeConsume, subTypeConsume, bizTypeGateway)
	f["channelType"] = channelPC
	f["currencyCode"] = currencyCNY
	f["orderId"] = req.OrderNo
	f["txnTime"] = acpTime(req.CreatedAt)
	f["txnAmt"] = fen(req.Amount)
	f["backUrl"] = m.backURL
	setIf(f, "frontUrl", m.frontURL)
	if !req.ExpiresAt.IsZero() {
		f["payTimeout"] = acpTime(req.ExpiresAt)
	}
	return f
}

// qrApplyFields builds the unsigned "apply for a QR code" request (txnType
// 01/07, bizType 000000, channelType 08) sent to backTransReq.do.
func qrApplyFields(m merchant, req *adapters.CreateRequest) map[string]string {
	f := m.base(txnTypeConsume, subTypeQRApply, bizTypeGeneric)
	f["channelType"] = channelMobile
	f["currencyCode"] = currencyCNY
	f["orderId"] = req.OrderNo
	f["txnTime"] = acpTime(req.CreatedAt)
	f["txnAmt"] = fen(req.Amount)
	f["backUrl"] = m.backURL
	if !req.ExpiresAt.IsZero() {
		f["payTimeout"] = acpTime(req.ExpiresAt)
	}
	return f
}

// queryFields builds the unsigned query (txnType 00/00, bizType 000000) of
// the transaction orderID placed at txnTime.
func queryFields(m merchant, orderID string, txnTime time.Time) map[string]string {
	f := m.base(txnTypeQuery, subTypeNone, bizTypeGeneric)
	f["orderId"] = orderID
	f["txnTime"] = acpTime(txnTime)
	return f
}

// refundFields builds the unsigned refund (txnType 04/00, bizType 000201)
// of the consume whose queryId is req.ChannelTradeNo.
func refundFields(m merchant, req *adapters.RefundRequest) map[string]string {
	f := m.base(txnTypeRefund, subTypeNone, bizTypeGateway)
	f["channelType"] = channelPC
	f["currencyCode"] = currencyCNY
	f["orderId"] = req.RefundNo
	f["origQryId"] = req.ChannelTradeNo
	f["txnTime"] = acpTime(req.CreatedAt)
	f["txnAmt"] = fen(req.Amount)
	f["backUrl"] = m.backURL
	return f
}

// maxFormBytes bounds what parseForm accepts (answers and notifications are
// a few kilobytes, most of it the PEM certificate).
const maxFormBytes = 64 << 10

var errFormTooLarge = errors.New("form larger than 64 KiB")

// parseForm decodes an application/x-www-form-urlencoded message (an answer
// or a back notification) into a map. A repeated or empty key makes the
// message ambiguous and is refused, as is anything that is not a valid form.
func parseForm(body []byte) (map[string]string, error) {
	if len(body) > maxFormBytes {
		return nil, errFormTooLarge
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("not a form: %w", err)
	}
	if len(vals) == 0 {
		return nil, errors.New("empty form")
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		if k == "" {
			return nil, errors.New("form has an empty key")
		}
		if len(v) != 1 {
			return nil, fmt.Errorf("form repeats key %q", k)
		}
		out[k] = v[0]
	}
	return out, nil
}

// encodeForm renders fields as a form body (keys sorted, values escaped).
func encodeForm(fields map[string]string) string {
	v := make(url.Values, len(fields))
	for k, s := range fields {
		v.Set(k, s)
	}
	return v.Encode()
}

// checkEcho compares the identifying fields an answer echoes with what was
// sent. A field listed in required must be present; any other listed field
// is compared only when the answer carries it.
func checkEcho(ans map[string]string, want map[string]string, required ...string) error {
	for _, k := range required {
		if _, ok := ans[k]; !ok {
			return fmt.Errorf("answer lacks %s", k)
		}
	}
	for k, v := range want {
		got, ok := ans[k]
		if ok && got != v {
			return fmt.Errorf("answer echoes %s %q, sent %q", k, got, v)
		}
	}
	return nil
}

// decodeNotification turns a verified back notification into a
// Notification. now is used as the payment time when traceTime is missing.
func decodeNotification(f map[string]string, now time.Time) (*adapters.Notification, error) {
	orderID := f["orderId"]
	if !validOrderID(orderID) {
		return nil, fmt.Errorf("orderId %q is not an ACP order id", orderID)
	}
	amount, err := parseFen(f["txnAmt"])
	if err != nil {
		return nil, err
	}
	if f["respCode"] == "" {
		return nil, errors.New("notification lacks respCode")
	}
	n := &adapters.Notification{
		Amount:   amount,
		Currency: currencyOf(f["currencyCode"]),
		Account:  f["merId"],
	}
	switch f["txnType"] {
	case txnTypeConsume:
		n.Kind = adapters.NotifyPayment
		n.OrderNo = orderID
		n.Status = notifyOrderStatus(f["respCode"])
		n.ChannelTradeNo = f["queryId"]
		if n.Status == adapters.OrderPaid {
			n.PaidAt = now
			if t, ok := paidAtFrom(f["txnTime"], f["traceTime"]); ok {
				n.PaidAt = t
			}
		}
	case txnTypeRefund:
		// The refund's orderId is paygate's 30-character refund number; its
		// first 24 characters are the payment's order number.
		pid := payment.PaymentIDFromOrderNo(orderID)
		if pid == "" || payment.RefundIDFromRefundNo(orderID) == "" {
			return nil, fmt.Errorf("refund orderId %q is not a paygate refund number", orderID)
		}
		n.Kind = adapters.NotifyRefund
		n.RefundNo = orderID
		n.OrderNo = payment.OrderNo(pid)
		n.RefundStatus = refundStatus(f["respCode"])
		n.ChannelRefundNo = f["queryId"]
	default:
		return nil, fmt.Errorf("notification of txnType %q is not handled", f["txnType"])
	}
	return n, nil
}
