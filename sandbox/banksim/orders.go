package banksim

import (
	"fmt"
	"html/template"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// respCodes the simulator answers (ACP 5.1.0 应答码表).
const (
	codeOK          = "00"
	codeAccepted    = "05" // origRespCode of a consume still awaiting the payer
	codeBusy        = "06" // system busy: the error_rate fault
	codeFormat      = "10" // message format error
	codeSignature   = "11" // signature verification failed (or unknown certId)
	codeDuplicate   = "12" // duplicate transaction: orderId reused with other content
	codeMissing     = "13" // required element missing
	codeMerchant    = "31" // merchant state incorrect (merId is not this bank's merchant)
	codeNoPerm      = "32" // no permission for this transaction type
	codeOverAmount  = "33" // amount over limit: a refund above what remains refundable
	codeNoTxn       = "34" // no such transaction
	codeOrigState   = "35" // original transaction missing or in the wrong state
	codeOutOfWindow = "39" // not within the acceptance time (after payTimeout)
	codePayFailed   = "61" // invalid card number: the payer's failed payment (Fail)
	codeExpired     = "69" // payer input timed out: unpaid at payTimeout
)

var msgs = map[string]string{
	codeOK:          "成功[0000000]",
	codeAccepted:    "交易已受理，请稍后查询交易结果 (accepted, awaiting the payer)",
	codeBusy:        "系统繁忙，请稍后再试 (system busy, retry later)",
	codeFormat:      "报文格式错误 (message format error)",
	codeSignature:   "验证签名失败 (signature verification failed)",
	codeDuplicate:   "重复交易 (duplicate transaction)",
	codeMissing:     "报文交易要素缺失 (required element missing)",
	codeMerchant:    "商户状态不正确 (merchant state incorrect)",
	codeNoPerm:      "无此交易权限 (no permission for this transaction)",
	codeOverAmount:  "交易金额超限 (amount over limit)",
	codeNoTxn:       "查无此交易 (no such transaction)",
	codeOrigState:   "原交易不存在或状态不正确 (original transaction missing or in the wrong state)",
	codeOutOfWindow: "交易不在受理时间范围内 (outside the acceptance time)",
	codePayFailed:   "输入的卡号无效，请确认后输入 (invalid card number)",
	codeExpired:     "您的输入超时，交易失败 (payer input timed out)",
}

// refusal is a respCode answer other than success.
type refusal struct{ code, msg string }

func refuse(code, detail string) *refusal {
	m := msgs[code]
	if detail != "" {
		m += ": " + detail
	}
	return &refusal{code: code, msg: m}
}

type txnKind int

const (
	kindConsume txnKind = iota + 1
	kindRefund
)

type txnStatus int

const (
	statusAwaiting txnStatus = iota + 1 // consume created, not paid
	statusPaid
	statusFailed
	statusExpired
	statusRefunded // a refund transaction, succeeded
)

// defaultPayWindow applies when a consume has no payTimeout.
const defaultPayWindow = 24 * time.Hour

// txn is one transaction (a consume or a refund) at the simulated bank.
type txn struct {
	kind        txnKind
	orderID     string
	txnTime     string
	subType     string
	bizType     string
	amount      int64
	backURL     string
	frontURL    string
	fingerprint string    // the content a repeated orderId must match
	deadline    time.Time // consume: payTimeout (or txnTime + 24 h)

	status     txnStatus
	respCode   string // final respCode (origRespCode) once paid, failed or expired
	queryID    string
	qrCode     string
	traceNo    string
	traceTime  string
	settleDate string

	refunded  int64 // consume: sum of accepted refunds
	origQryID string
}

// lapse fails an unpaid consume once its payTimeout has passed (origRespCode
// 69). The bank sends no notification for it.
func (t *txn) lapse(now time.Time) {
	if t.kind == kindConsume && t.status == statusAwaiting && !now.Before(t.deadline) {
		t.status, t.respCode = statusExpired, codeExpired
	}
}

// origRespCode is what a query reports of the transaction.
func (t *txn) origRespCode() string {
	if t.status == statusAwaiting {
		return codeAccepted
	}
	return t.respCode
}

// ---------------------------------------------------------------------------
// Request checks

// checkCommon parses and authenticates a request: format (10), version,
// encoding and signMethod (10), certId and signature (11), merId (31).
func (s *Sim) checkCommon(body []byte) (map[string]string, *refusal) {
	f, err := formValues(body)
	if err != nil || len(f) == 0 {
		return nil, refuse(codeFormat, "not a form")
	}
	switch {
	case f["version"] != "5.1.0":
		return f, refuse(codeFormat, "version must be 5.1.0")
	case !strings.EqualFold(f["encoding"], "utf-8"):
		return f, refuse(codeFormat, "encoding must be utf-8")
	case f["signMethod"] != "01":
		return f, refuse(codeFormat, "signMethod must be 01")
	case f["certId"] != s.certID:
		return f, refuse(codeSignature, "certId is not registered")
	case !verifyFields(s.merchantPub, f):
		return f, refuse(codeSignature, "")
	case f["merId"] != s.merID:
		return f, refuse(codeMerchant, "merId is not a merchant of this bank")
	case f["accessType"] != "0":
		return f, refuse(codeFormat, "accessType must be 0")
	}
	return f, nil
}

// require checks that every name is present (13) and that each fixed field
// has one of its allowed values (10).
func require(f map[string]string, names []string, fixed map[string][]string) *refusal {
	for _, n := range names {
		if f[n] == "" {
			return refuse(codeMissing, n)
		}
	}
	for n, allowed := range fixed {
		ok := false
		for _, a := range allowed {
			ok = ok || f[n] == a
		}
		if !ok {
			return refuse(codeFormat, fmt.Sprintf("%s must be one of %v", n, allowed))
		}
	}
	return nil
}

func parseTime(s string) (time.Time, bool) {
	if len(s) != len(acpLayout) || !digits(s) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(acpLayout, s, beijing)
	return t, err == nil
}

func parseAmount(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 12 || !digits(s) || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validOrderID(s string) bool {
	if len(s) < 8 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// checkOrder validates the fields every new transaction has: orderId,
// txnTime, txnAmt, backUrl (and frontUrl, payTimeout when present).
func checkOrder(f map[string]string) (amount int64, txnTime time.Time, r *refusal) {
	var ok bool
	switch {
	case !validOrderID(f["orderId"]):
		return 0, time.Time{}, refuse(codeFormat, "orderId must be 8-32 letters or digits")
	case !validHTTPURL(f["backUrl"]):
		return 0, time.Time{}, refuse(codeFormat, "backUrl must be an absolute http(s) URL")
	case f["frontUrl"] != "" && !validHTTPURL(f["frontUrl"]):
		return 0, time.Time{}, refuse(codeFormat, "frontUrl must be an absolute http(s) URL")
	}
	if txnTime, ok = parseTime(f["txnTime"]); !ok {
		return 0, time.Time{}, refuse(codeFormat, "txnTime must be yyyyMMddHHmmss")
	}
	if amount, ok = parseAmount(f["txnAmt"]); !ok {
		return 0, time.Time{}, refuse(codeFormat, "txnAmt must be a positive integer in fen")
	}
	return amount, txnTime, nil
}

// consumeDeadline is the consume's payTimeout, or txnTime + 24 h.
func consumeDeadline(f map[string]string, txnTime time.Time) (time.Time, *refusal) {
	if f["payTimeout"] == "" {
		return txnTime.Add(defaultPayWindow), nil
	}
	d, ok := parseTime(f["payTimeout"])
	if !ok || !d.After(txnTime) {
		return time.Time{}, refuse(codeFormat, "payTimeout must be yyyyMMddHHmmss after txnTime")
	}
	return d, nil
}

func fingerprint(f map[string]string, names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(f[n])
		b.WriteByte(0)
	}
	return b.String()
}

var consumeContent = []string{"txnType", "txnSubType", "bizType", "channelType", "currencyCode",
	"txnTime", "txnAmt", "backUrl", "frontUrl", "payTimeout"}

var refundContent = []string{"txnType", "txnSubType", "bizType", "origQryId", "txnTime", "txnAmt", "backUrl"}

// newConsume validates a consume (front or QR apply) and creates it, or
// finds the identical one already created. created is false for a repeat.
func (s *Sim) newConsume(f map[string]string) (t *txn, created bool, r *refusal) {
	amount, txnTime, r := checkOrder(f)
	if r != nil {
		return nil, false, r
	}
	deadline, r := consumeDeadline(f, txnTime)
	if r != nil {
		return nil, false, r
	}
	now := s.now()
	fp := fingerprint(f, consumeContent...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.txns[f["orderId"]]; ok {
		if old.fingerprint != fp {
			return nil, false, refuse(codeDuplicate, "orderId is already used with other content")
		}
		old.lapse(now)
		return old, false, nil
	}
	if !now.Before(deadline) {
		return nil, false, refuse(codeOutOfWindow, "payTimeout has passed")
	}
	t = &txn{
		kind: kindConsume, orderID: f["orderId"], txnTime: f["txnTime"], subType: f["txnSubType"],
		bizType: f["bizType"], amount: amount, backURL: f["backUrl"], frontURL: f["frontUrl"],
		fingerprint: fp, deadline: deadline, status: statusAwaiting,
	}
	if t.subType == "07" {
		t.qrCode = "https://qr.95516.com/00010000/" + randDigits(20)
	}
	s.txns[t.orderID] = t
	return t, true, nil
}

// assignQueryID gives t its queryId and trace fields. Caller holds s.mu.
func (s *Sim) assignQueryID(t *txn, now time.Time) {
	if t.queryID != "" {
		return
	}
	bj := now.In(beijing)
	for {
		id := bj.Format("060102150405") + randDigits(9) // 21 digits, like ACP
		if _, taken := s.byQueryID[id]; !taken {
			t.queryID = id
			break
		}
	}
	t.traceNo = randDigits(6)
	t.traceTime = bj.Format("0102150405")
	t.settleDate = bj.Format("0102")
	s.byQueryID[t.queryID] = t
}

func randDigits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + rand.IntN(10))
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// Handlers

// serveFront is the payer's browser posting the front consume form.
func (s *Sim) serveFront(w http.ResponseWriter, body []byte) {
	f, r := s.checkCommon(body)
	if r == nil {
		r = require(f, []string{"orderId", "txnTime", "txnAmt", "backUrl", "currencyCode", "channelType"},
			map[string][]string{"txnType": {"01"}, "txnSubType": {"01"}, "bizType": {"000201"},
				"channelType": {"07", "08"}, "currencyCode": {"156"}})
	}
	var t *txn
	created := false
	if r == nil {
		t, created, r = s.newConsume(f)
	}
	if r != nil {
		s.log.Debug("front consume refused", zap.String("respCode", r.code), zap.String("respMsg", r.msg))
		s.page(w, http.StatusBadRequest, pageData{RespCode: r.code, RespMsg: r.msg})
		return
	}
	if created {
		s.env.OrderCreated(t.orderID)
	}
	s.mu.Lock()
	d := pageData{RespCode: codeOK, RespMsg: msgs[codeOK], MerID: s.merID, OrderID: t.orderID,
		Amount: yuan(t.amount), Status: statusText(t.status), FrontURL: t.frontURL}
	s.mu.Unlock()
	s.page(w, http.StatusOK, d)
}

// serveBack dispatches backTransReq.do on txnType/txnSubType.
func (s *Sim) serveBack(w http.ResponseWriter, body []byte) {
	f, r := s.checkCommon(body)
	if r != nil {
		s.answer(w, f, r, nil)
		return
	}
	switch f["txnType"] + "/" + f["txnSubType"] {
	case "01/07":
		s.qrApply(w, f)
	case "04/00":
		s.refund(w, f)
	default:
		s.answer(w, f, refuse(codeNoPerm, "txnType/txnSubType "+f["txnType"]+"/"+f["txnSubType"]), nil)
	}
}

func (s *Sim) qrApply(w http.ResponseWriter, f map[string]string) {
	r := require(f, []string{"orderId", "txnTime", "txnAmt", "backUrl", "currencyCode", "channelType"},
		map[string][]string{"bizType": {"000000"}, "channelType": {"07", "08"}, "currencyCode": {"156"}})
	var t *txn
	created := false
	if r == nil {
		t, created, r = s.newConsume(f)
	}
	if r != nil {
		s.answer(w, f, r, nil)
		return
	}
	if created {
		s.env.OrderCreated(t.orderID)
	}
	s.answer(w, f, nil, map[string]string{"qrCode": t.qrCode})
}

func (s *Sim) refund(w http.ResponseWriter, f map[string]string) {
	r := require(f, []string{"orderId", "origQryId", "txnTime", "txnAmt", "backUrl", "channelType"},
		map[string][]string{"bizType": {"000201", "000000"}, "channelType": {"07", "08"}})
	if r == nil && f["currencyCode"] != "" && f["currencyCode"] != "156" {
		r = refuse(codeFormat, "currencyCode must be 156")
	}
	var amount int64
	if r == nil {
		amount, _, r = checkOrder(f)
	}
	if r != nil {
		s.answer(w, f, r, nil)
		return
	}
	now := s.now()
	fp := fingerprint(f, refundContent...)
	s.mu.Lock()
	if old, ok := s.txns[f["orderId"]]; ok {
		var extra map[string]string
		if old.kind == kindRefund && old.fingerprint == fp {
			// The same refund again: the same acceptance, nothing refunded twice.
			extra = map[string]string{"queryId": old.queryID}
		} else {
			r = refuse(codeDuplicate, "orderId is already used with other content")
		}
		s.mu.Unlock()
		s.answer(w, f, r, extra)
		return
	}
	orig := s.byQueryID[f["origQryId"]]
	switch {
	case orig == nil || orig.kind != kindConsume:
		r = refuse(codeOrigState, "no consume with this origQryId")
	case orig.status != statusPaid:
		r = refuse(codeOrigState, "the consume is not paid")
	case orig.refunded+amount > orig.amount:
		r = refuse(codeOverAmount, fmt.Sprintf("refundable %d fen", orig.amount-orig.refunded))
	}
	if r != nil {
		s.mu.Unlock()
		s.answer(w, f, r, nil)
		return
	}
	// Accepted, and (in this simulator) settled at once: the refund is
	// final, the consume's refundable amount shrinks, and the back
	// notification follows the answer.
	t := &txn{
		kind: kindRefund, orderID: f["orderId"], txnTime: f["txnTime"], subType: f["txnSubType"],
		bizType: f["bizType"], amount: amount, backURL: f["backUrl"], fingerprint: fp,
		status: statusRefunded, respCode: codeOK, origQryID: orig.queryID,
	}
	s.assignQueryID(t, now)
	orig.refunded += amount
	s.txns[t.orderID] = t
	note := s.refundNotification(t)
	s.mu.Unlock()
	s.answer(w, f, nil, map[string]string{"queryId": t.queryID})
	s.notify(t.backURL, note)
}

func (s *Sim) serveQuery(w http.ResponseWriter, body []byte) {
	f, r := s.checkCommon(body)
	if r == nil {
		r = require(f, []string{"orderId", "txnTime"},
			map[string][]string{"txnType": {"00"}, "txnSubType": {"00"}, "bizType": {"000000"}})
	}
	if r == nil {
		if _, ok := parseTime(f["txnTime"]); !ok {
			r = refuse(codeFormat, "txnTime must be yyyyMMddHHmmss")
		}
	}
	if r != nil {
		s.answer(w, f, r, nil)
		return
	}
	now := s.now()
	s.mu.Lock()
	t, ok := s.txns[f["orderId"]]
	if !ok || t.txnTime != f["txnTime"] {
		s.mu.Unlock()
		s.answer(w, f, refuse(codeNoTxn, ""), nil)
		return
	}
	t.lapse(now)
	code := t.origRespCode()
	extra := map[string]string{
		"origRespCode": code,
		"origRespMsg":  msgs[code],
		"txnAmt":       strconv.FormatInt(t.amount, 10),
		"currencyCode": "156",
	}
	if t.queryID != "" {
		extra["queryId"] = t.queryID
		extra["traceNo"] = t.traceNo
		extra["traceTime"] = t.traceTime
		extra["settleDate"] = t.settleDate
	}
	if t.origQryID != "" {
		extra["origQryId"] = t.origQryID
	}
	s.mu.Unlock()
	s.answer(w, f, nil, extra)
}

// echoed are the request fields an answer repeats.
var echoed = []string{"txnType", "txnSubType", "bizType", "accessType", "channelType", "merId",
	"orderId", "txnTime", "txnAmt", "currencyCode", "origQryId", "reqReserved"}

// answer writes a signed form answer with HTTP 200: respCode 00 when r is
// nil, else r's code and message. req may be nil (unparseable request).
func (s *Sim) answer(w http.ResponseWriter, req map[string]string, r *refusal, extra map[string]string) {
	out := map[string]string{"version": "5.1.0", "encoding": "utf-8", "signMethod": "01"}
	for _, k := range echoed {
		if v := req[k]; v != "" {
			out[k] = v
		}
	}
	for k, v := range extra {
		out[k] = v
	}
	if r == nil {
		r = &refusal{code: codeOK, msg: msgs[codeOK]}
	}
	out["respCode"], out["respMsg"] = r.code, r.msg
	out["signPubKeyCert"] = s.certPEM
	if err := signFields(s.key, out); err != nil {
		http.Error(w, "sign answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, encode(out))
}

// consumeNotification is the (unsigned) back notification of a finished
// consume. Caller holds s.mu.
func (s *Sim) consumeNotification(t *txn) map[string]string {
	f := map[string]string{
		"version": "5.1.0", "encoding": "utf-8", "signMethod": "01",
		"txnType": "01", "txnSubType": t.subType, "bizType": t.bizType, "accessType": "0",
		"merId": s.merID, "orderId": t.orderID, "txnTime": t.txnTime,
		"txnAmt": strconv.FormatInt(t.amount, 10), "currencyCode": "156",
		"queryId": t.queryID, "respCode": t.respCode, "respMsg": msgs[t.respCode],
		"traceNo": t.traceNo, "traceTime": t.traceTime,
	}
	if t.status == statusPaid {
		f["settleAmt"] = f["txnAmt"]
		f["settleCurrencyCode"] = "156"
		f["settleDate"] = t.settleDate
	}
	return f
}

// refundNotification is the (unsigned) back notification of a refund.
// Caller holds s.mu.
func (s *Sim) refundNotification(t *txn) map[string]string {
	amt := strconv.FormatInt(t.amount, 10)
	return map[string]string{
		"version": "5.1.0", "encoding": "utf-8", "signMethod": "01",
		"txnType": "04", "txnSubType": "00", "bizType": t.bizType, "accessType": "0",
		"merId": s.merID, "orderId": t.orderID, "txnTime": t.txnTime, "txnAmt": amt,
		"currencyCode": "156", "origQryId": t.origQryID, "queryId": t.queryID,
		"respCode": t.respCode, "respMsg": msgs[t.respCode],
		"traceNo": t.traceNo, "traceTime": t.traceTime,
		"settleAmt": amt, "settleCurrencyCode": "156", "settleDate": t.settleDate,
	}
}

// ---------------------------------------------------------------------------
// The payer's page

type pageData struct {
	RespCode, RespMsg string
	MerID, OrderID    string
	Amount, Status    string
	FrontURL          string
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox bank checkout</title>
<meta name="acp-respCode" content="{{.RespCode}}"></head>
<body><h1>Sandbox bank checkout (TEST ONLY)</h1>
<p>respCode {{.RespCode}}: {{.RespMsg}}</p>
{{if .OrderID}}<p>Merchant {{.MerID}}, order <code>{{.OrderID}}</code>, amount {{.Amount}} CNY: {{.Status}}.</p>{{end}}
{{if .FrontURL}}<p><a href="{{.FrontURL}}">Return to the merchant</a></p>{{end}}
</body></html>
`))

func (s *Sim) page(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, d); err != nil {
		s.log.Debug("write page", zap.Error(err))
	}
}

func yuan(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }

func statusText(st txnStatus) string {
	switch st {
	case statusAwaiting:
		return "awaiting payment"
	case statusPaid:
		return "paid"
	case statusFailed:
		return "payment failed"
	case statusExpired:
		return "expired"
	default:
		return "unknown"
	}
}
