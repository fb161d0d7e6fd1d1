// Package alipay is the Alipay channel: OpenAPI v2 ("gateway.do") with RSA2
// keys (public key mode, not certificate mode).
//
// Methods: qr and alipay_qr use alipay.trade.precreate (当面付, a QR code),
// alipay_page builds a signed alipay.trade.page.pay URL for the payer's
// browser. Query, close, refund and refund query use alipay.trade.query,
// alipay.trade.close, alipay.trade.refund and alipay.trade.fastpay.refund.query;
// notifications are trade_status_sync.
//
// Protocol reference: https://opendocs.alipay.com/open/ (API version 1.0),
// summarised with sources in PROTOCOLS.md §B. Operator documentation:
// docs/channels/alipay.md.
package alipay

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

// Alipay OpenAPI methods used here.
const (
	methodPrecreate   = "alipay.trade.precreate"
	methodPagePay     = "alipay.trade.page.pay"
	methodQuery       = "alipay.trade.query"
	methodClose       = "alipay.trade.close"
	methodRefund      = "alipay.trade.refund"
	methodRefundQuery = "alipay.trade.fastpay.refund.query"
)

const (
	gatewayPath     = "/gateway.do"
	formContentType = "application/x-www-form-urlencoded;charset=utf-8"
)

// Operations, as named in *adapters.Error.Op.
const (
	opCreate      = "create"
	opQuery       = "query"
	opClose       = "close"
	opRefund      = "refund"
	opQueryRefund = "query_refund"
	opNotify      = "notify"
)

// Error codes of our own (the channel's codes are kept as they are).
const (
	codeBadResponse          = "bad_response"
	codeBadResponseSignature = "bad_response_signature"
	codeInvalidRequest       = "invalid_request"
)

// Config configures a Client. Every field without a default is required.
type Config struct {
	// ID is the channel id (config channels[].id); it names the channel in
	// errors and metrics.
	ID string
	// BaseURL is the gateway's base, without "/gateway.do":
	// https://openapi.alipay.com in production,
	// https://openapi-sandbox.dl.alipaydev.com for Alipay's sandbox, the
	// simulator's URL in paygate's sandbox mode.
	BaseURL string
	// AppID is the Alipay application id (app_id).
	AppID string
	// PrivateKey is the app private key that signs requests (RSA2).
	PrivateKey *rsa.PrivateKey
	// AlipayPublicKey verifies Alipay's answers and notifications.
	AlipayPublicKey *rsa.PublicKey
	// NotifyURL is sent as notify_url with precreate and page pay: where
	// Alipay posts trade_status_sync notifications. "" sends none.
	NotifyURL string
	// ReturnURL is sent as return_url with page pay: where the payer's browser
	// goes after paying. "" sends none (Alipay then shows its own result page).
	ReturnURL string
	// Client sends the HTTP calls; nil uses the adapters default (no
	// redirects, no overall timeout: the caller's context bounds each call).
	Client *http.Client
	// Observer is told of every call (metrics); nil: none.
	Observer adapters.Observer
	// Now is the clock for the timestamp parameter; nil means time.Now.
	Now func() time.Time
}

// Client is one Alipay channel instance (one app_id). It is safe for
// concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	caller   *adapters.Caller
	now      func() time.Time
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.ID == "":
		return nil, errors.New("alipay: ID is required")
	case cfg.AppID == "":
		return nil, fmt.Errorf("alipay %s: AppID is required", cfg.ID)
	case cfg.PrivateKey == nil:
		return nil, fmt.Errorf("alipay %s: PrivateKey is required", cfg.ID)
	case cfg.AlipayPublicKey == nil:
		return nil, fmt.Errorf("alipay %s: AlipayPublicKey is required", cfg.ID)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("alipay %s: BaseURL %q is not an http(s) URL without query", cfg.ID, cfg.BaseURL)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		cfg:      cfg,
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + gatewayPath,
		// Caller measures latency with its own (real) clock: cfg.Now only
		// stamps requests, and tests shift it.
		caller: &adapters.Caller{Channel: cfg.ID, Client: cfg.Client, Observer: cfg.Observer},
		now:    now,
	}, nil
}

// FromConfig parses the channel's credentials and builds the client:
// credentials.app_id, the app private key (private_key, private_key_env or
// private_key_file; PEM PKCS#1 or PKCS#8) and credentials.alipay_public_key_file
// (PEM PKIX or PKCS#1), both RSA of at least 2048 bits (config.ParseRSA*).
// notifyURL is the gateway's callback URL for this channel.
func FromConfig(ch config.Channel, notifyURL string, obs adapters.Observer) (*Client, error) {
	cr := ch.Credentials
	priv, err := cr.RSAPrivateKey()
	if err != nil {
		return nil, fmt.Errorf("alipay %s: %w", ch.ID, err)
	}
	pub, err := config.ReadRSAPublicKey("alipay_public_key_file", cr.AlipayPublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("alipay %s: %w", ch.ID, err)
	}
	return New(Config{
		ID:              ch.ID,
		BaseURL:         ch.BaseURL,
		AppID:           cr.AlipayAppID,
		PrivateKey:      priv,
		AlipayPublicKey: pub,
		NotifyURL:       notifyURL,
		Observer:        obs,
	})
}

// ID is the configured channel id.
func (c *Client) ID() string { return c.cfg.ID }

// Create places an order: a precreate QR code for qr and alipay_qr, a signed
// page pay URL for alipay_page (no call to Alipay: the trade comes into
// existence when the payer's browser opens the URL).
func (c *Client) Create(ctx context.Context, req *adapters.CreateRequest) (*adapters.CreateResult, error) {
	switch req.Method {
	case payment.MethodQR, payment.MethodAlipayQR:
		biz, err := newPrecreateBiz(req)
		if err != nil {
			return nil, c.fail(opCreate, adapters.KindInvalid, codeInvalidRequest, err.Error())
		}
		var r precreateResp
		if err := c.call(ctx, opCreate, methodPrecreate, biz, c.notifyParams(false), &r, &r.commonResp); err != nil {
			return nil, err
		}
		res, err := qrResult(&r, req.OrderNo)
		if err != nil {
			return nil, c.fail(opCreate, adapters.KindAmbiguous, codeBadResponse, err.Error())
		}
		return res, nil
	case payment.MethodAlipayPage:
		biz, err := newPagePayBiz(req)
		if err != nil {
			return nil, c.fail(opCreate, adapters.KindInvalid, codeInvalidRequest, err.Error())
		}
		p, err := c.signedParams(methodPagePay, biz, c.notifyParams(true))
		if err != nil {
			return nil, c.fail(opCreate, adapters.KindInvalid, codeInvalidRequest, err.Error())
		}
		return &adapters.CreateResult{Action: payment.Action{Type: "redirect", URL: c.endpoint + "?" + p.Encode()}}, nil
	default:
		return nil, adapters.Unsupported(c.cfg.ID, opCreate)
	}
}

// Query asks for the trade's state. A trade Alipay does not know (a QR code
// not scanned yet, a page pay URL never opened) is OrderNotFound, not an error.
func (c *Client) Query(ctx context.Context, req *adapters.QueryRequest) (*adapters.OrderState, error) {
	var r queryResp
	err := c.call(ctx, opQuery, methodQuery, tradeBiz{OutTradeNo: req.OrderNo}, nil, &r, &r.commonResp)
	if isCode(err, subTradeNotExist) {
		return &adapters.OrderState{Status: adapters.OrderNotFound}, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := orderState(&r, req)
	if err != nil {
		return nil, c.fail(opQuery, adapters.KindAmbiguous, codeBadResponse, err.Error())
	}
	return st, nil
}

// errNotYetClosable: Alipay has no trade to close until the payer scans the
// code (or opens the page), yet the code stays payable until its
// time_expire. Closing is not possible, and nil would be a false close: the
// gateway closes such a payment once it has expired.
func errNotYetClosable(c *Client, code string) error {
	return c.fail(opClose, adapters.KindNotFound, code, "no trade to close before the payer scans the code; it stays payable until its time_expire")
}

// Close closes an unpaid (WAIT_BUYER_PAY) trade; one already closed counts
// as closed. A trade Alipay does not know yet (QR code not scanned, page not
// opened) cannot be closed although its code stays payable until
// time_expire: that is errNotYetClosable (KindNotFound), never a nil that
// would announce a false close. A paid trade is KindDeclined.
func (c *Client) Close(ctx context.Context, req *adapters.QueryRequest) error {
	var r closeResp
	err := c.call(ctx, opClose, methodClose, tradeBiz{OutTradeNo: req.OrderNo}, nil, &r, &r.commonResp)
	if isCode(err, subTradeHasClose) {
		return nil
	}
	if isCode(err, subTradeNotExist) {
		return errNotYetClosable(c, subTradeNotExist)
	}
	if isCode(err, subTradeStatusError) || isCode(err, subStatusInvalid) {
		// Only WAIT_BUYER_PAY trades can be closed; this one is closed
		// already (time_expire) or paid. The query says which.
		st, qerr := c.Query(ctx, req)
		if qerr == nil && st.Status == adapters.OrderClosed {
			return nil
		}
		if qerr == nil && st.Status == adapters.OrderNotFound {
			return errNotYetClosable(c, subTradeNotExist)
		}
		return err
	}
	if err != nil {
		return err
	}
	if r.OutTradeNo != "" && r.OutTradeNo != req.OrderNo {
		return c.fail(opClose, adapters.KindAmbiguous, codeBadResponse, fmt.Sprintf("out_trade_no %q in the answer is not %q", r.OutTradeNo, req.OrderNo))
	}
	return nil
}

// Refund refunds req.Amount of the trade under out_request_no = req.RefundNo
// (idempotent at Alipay: the same number again refunds nothing more).
func (c *Client) Refund(ctx context.Context, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	biz, err := newRefundBiz(req)
	if err != nil {
		return nil, c.fail(opRefund, adapters.KindInvalid, codeInvalidRequest, err.Error())
	}
	var r refundResp
	if err := c.call(ctx, opRefund, methodRefund, biz, nil, &r, &r.commonResp); err != nil {
		return nil, err
	}
	st, err := refundState(&r, req)
	if err != nil {
		return nil, c.fail(opRefund, adapters.KindAmbiguous, codeBadResponse, err.Error())
	}
	return st, nil
}

// QueryRefund asks for the refund req.RefundNo of the trade req.OrderNo. A
// refund Alipay has no record of (no refund_status) is RefundNotFound.
func (c *Client) QueryRefund(ctx context.Context, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	if err := checkRefund(req); err != nil {
		return nil, c.fail(opQueryRefund, adapters.KindInvalid, codeInvalidRequest, err.Error())
	}
	var r refundQueryResp
	err := c.call(ctx, opQueryRefund, methodRefundQuery,
		refundQueryBiz{OutTradeNo: req.OrderNo, OutRequestNo: req.RefundNo}, nil, &r, &r.commonResp)
	if isCode(err, subTradeNotExist) {
		return &adapters.RefundState{Status: adapters.RefundNotFound}, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := refundQueryState(&r, req)
	if err != nil {
		return nil, c.fail(opQueryRefund, adapters.KindAmbiguous, codeBadResponse, err.Error())
	}
	return st, nil
}

// notifyParams are the URL parameters of the calls that create a trade:
// notify_url, and return_url for the browser (page pay).
func (c *Client) notifyParams(browser bool) url.Values {
	p := url.Values{}
	if c.cfg.NotifyURL != "" {
		p.Set("notify_url", c.cfg.NotifyURL)
	}
	if browser && c.cfg.ReturnURL != "" {
		p.Set("return_url", c.cfg.ReturnURL)
	}
	return p
}

// signedParams builds the common parameters (PROTOCOLS §B.2) around biz,
// adds extra (single values) and signs them all.
func (c *Client) signedParams(method string, biz any, extra url.Values) (url.Values, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Alipay takes the JSON as is; "<" need not be \u003c
	if err := enc.Encode(biz); err != nil {
		return nil, fmt.Errorf("biz_content: %w", err)
	}
	p := url.Values{}
	p.Set("app_id", c.cfg.AppID)
	p.Set("method", method)
	p.Set("format", "JSON")
	p.Set("charset", "utf-8")
	p.Set("sign_type", "RSA2")
	p.Set("timestamp", formatTime(c.now()))
	p.Set("version", "1.0")
	p.Set("biz_content", strings.TrimSuffix(buf.String(), "\n"))
	for k, v := range extra {
		p[k] = v
	}
	if err := c.sign(p); err != nil {
		return nil, err
	}
	return p, nil
}

// sign adds sign over p (PROTOCOLS §B.3: every parameter but sign,
// sign_type included, empty values dropped, sorted, raw values).
func (c *Client) sign(p url.Values) error {
	sum := sha256.Sum256([]byte(signContent(p, "sign")))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.cfg.PrivateKey, crypto.SHA256, sum[:])
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	p.Set("sign", base64.StdEncoding.EncodeToString(sig))
	return nil
}

// signContent is "k1=v1&k2=v2…" over the parameters of p not in exclude with
// a non-empty value, keys sorted by bytes, values raw (not URL-encoded). Each
// key must have one value (callers ensure it).
func signContent(p url.Values, exclude ...string) string {
	keys := make([]string, 0, len(p))
	for k, v := range p {
		if len(v) == 0 || v[0] == "" || contains(exclude, k) {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(p.Get(k))
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// verify checks an Alipay RSA2 signature (standard base64) over msg.
func verify(pub *rsa.PublicKey, msg []byte, sign string) error {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return errors.New("sign is not base64")
	}
	sum := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("signature does not verify")
	}
	return nil
}

// call sends one API call and decodes the verified answer into out (whose
// embedded commonResp is common). It returns nil only for code 10000 with a
// valid signature; every other outcome is an *adapters.Error.
func (c *Client) call(ctx context.Context, op, method string, biz any, extra url.Values, out any, common *commonResp) error {
	p, err := c.signedParams(method, biz, extra)
	if err != nil {
		return c.fail(op, adapters.KindInvalid, codeInvalidRequest, err.Error())
	}
	req, err := http.NewRequest(http.MethodPost, c.endpoint, strings.NewReader(p.Encode()))
	if err != nil {
		return c.fail(op, adapters.KindInvalid, codeInvalidRequest, err.Error())
	}
	req.Header.Set("Content-Type", formContentType)
	req.Header.Set("Accept", "application/json")
	adapters.MarkReplayable(req) // every method used here is idempotent on out_trade_no / out_request_no
	resp, err := c.caller.Do(ctx, op, req)
	if err != nil {
		return err // classified by Caller
	}
	if resp.Status != http.StatusOK {
		// Alipay's gateway answers 200 to everything it processes; another
		// status comes from the infrastructure in front of it (PROTOCOLS §B.5).
		e := c.fail(op, adapters.KindUnavailable, fmt.Sprintf("http_%d", resp.Status), http.StatusText(resp.Status))
		if resp.Status == http.StatusGatewayTimeout {
			// A proxy gave up waiting for Alipay: the call may have been processed.
			e.Kind = adapters.KindAmbiguous
		}
		e.Status = resp.Status
		return e
	}
	raw, err := extractResponse(resp.Body, method)
	if err != nil {
		return c.failStatus(op, adapters.KindAmbiguous, codeBadResponse, err.Error(), resp.Status)
	}
	signed := raw.Sign != ""
	if signed {
		if err := verify(c.cfg.AlipayPublicKey, raw.Value, raw.Sign); err != nil {
			return c.failStatus(op, adapters.KindAmbiguous, codeBadResponseSignature, err.Error(), resp.Status)
		}
	}
	if err := json.Unmarshal(raw.Value, common); err != nil {
		return c.failStatus(op, adapters.KindAmbiguous, codeBadResponse, "answer fields: "+err.Error(), resp.Status)
	}
	switch {
	case common.Code == "":
		return c.failStatus(op, adapters.KindAmbiguous, codeBadResponse, "answer has no code", resp.Status)
	case !signed && (common.Code == codeSuccess || common.Code == codeBusinessFailed):
		// Alipay signs every answer it gives about a trade. Without sign,
		// only gateway-level refusals (bad app id, bad arguments, busy) are
		// believed, as errors (smartwalle does the same); a success or a
		// business answer is not.
		return c.failStatus(op, adapters.KindAmbiguous, codeBadResponseSignature, "answer with code "+common.Code+" has no sign", resp.Status)
	case common.Code != codeSuccess:
		e := c.failStatus(op, errorKind(common.Code, common.SubCode), common.Code, joinMsg(common.Msg, common.SubMsg), resp.Status)
		if common.SubCode != "" {
			e.Code = common.SubCode
		}
		return e
	case raw.Key == errorResponseKey:
		return c.failStatus(op, adapters.KindAmbiguous, codeBadResponse, "error_response with code 10000", resp.Status)
	}
	if err := json.Unmarshal(raw.Value, out); err != nil {
		return c.failStatus(op, adapters.KindAmbiguous, codeBadResponse, "answer fields: "+err.Error(), resp.Status)
	}
	return nil
}

func joinMsg(msg, subMsg string) string {
	switch {
	case subMsg == "":
		return msg
	case msg == "":
		return subMsg
	}
	return msg + ": " + subMsg
}

func (c *Client) fail(op string, kind adapters.Kind, code, msg string) *adapters.Error {
	return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: kind, Code: code, Message: msg}
}

func (c *Client) failStatus(op string, kind adapters.Kind, code, msg string, status int) *adapters.Error {
	e := c.fail(op, kind, code, msg)
	e.Status = status
	return e
}

// isCode reports whether err is an *adapters.Error with the given code.
func isCode(err error, code string) bool {
	e, ok := adapters.AsError(err)
	return ok && e.Code == code
}

// Interface guards.
var (
	_ adapters.Channel      = (*Client)(nil)
	_ adapters.Refunder     = (*Client)(nil)
	_ adapters.NotifyParser = (*Client)(nil)
	_ adapters.NotifyHinter = (*Client)(nil)
)
