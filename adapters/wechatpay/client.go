// Package wechatpay is the WeChat Pay API v3 channel (direct merchant,
// "普通商户"): Native (QR) and JSAPI orders, query, close, domestic refunds and
// the encrypted asynchronous notifications.
//
// Protocol: https://pay.weixin.qq.com/doc/v3/merchant/4012365334 (签名认证),
// summarised with sources in PROTOCOLS.md §A. Requests are signed with the
// merchant API private key (SHA256-RSA2048); every 2xx answer and every
// notification is verified with the WeChat Pay platform public key selected
// by Wechatpay-Serial; notification resources are decrypted with the APIv3
// key (AEAD_AES_256_GCM). Only the standard library's crypto is used.
package wechatpay

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
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
)

// Authorization scheme of API v3 requests (PROTOCOLS §A.2).
const authScheme = "WECHATPAY2-SHA256-RSA2048"

// Config is a parsed, typed WeChat Pay channel configuration.
type Config struct {
	// ID is the channel id, e.g. "wechat-main"; it names the channel in errors and metrics.
	ID string
	// BaseURL is the API root, e.g. "https://api.mch.weixin.qq.com". A path
	// prefix is kept and is part of the signed REQUEST_URI.
	BaseURL string
	MchID   string // merchant number (商户号)
	AppID   string // the appid bound to MchID
	// SerialNo is the serial (hex) of the merchant API certificate whose key is PrivateKey.
	SerialNo   string
	PrivateKey *rsa.PrivateKey // merchant API private key: signs requests and JSAPI paySign
	// APIv3Key decrypts notification resources; exactly 32 bytes.
	APIv3Key []byte
	// PlatformSerial and PlatformKey are the WeChat Pay public key (or
	// platform certificate) that answers and notifications must be signed
	// with; an answer naming another serial is refused.
	PlatformSerial string
	PlatformKey    *rsa.PublicKey
	// NotifyURL is the gateway's callback URL for this channel, sent with every order and refund.
	NotifyURL string
	// Client sends the requests; nil means adapters' default client (no
	// redirects, no overall timeout: the caller's ctx bounds each call).
	Client *http.Client
	// Observer is told of every call; nil means none.
	Observer adapters.Observer
	// Now is the clock for request timestamps, the answer skew check and
	// JSAPI timeStamp; nil means time.Now. Call latency is measured on the
	// real clock regardless.
	Now func() time.Time
}

// Client is a WeChat Pay channel. It is safe for concurrent use.
type Client struct {
	cfg    Config
	base   *url.URL
	caller *adapters.Caller
	now    func() time.Time
	ua     string
}

// maxSkew is how far an answer's Wechatpay-Timestamp may be from our clock
// (the SDK's FiveMinute: |skew| ≥ 300 s is refused).
const maxSkew = 300 * time.Second

// New checks cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.ID == "":
		return nil, errors.New("wechatpay: channel id is empty")
	case cfg.MchID == "":
		return nil, errors.New("wechatpay: mchid is empty")
	case cfg.AppID == "":
		return nil, errors.New("wechatpay: appid is empty")
	case cfg.SerialNo == "":
		return nil, errors.New("wechatpay: serial_no is empty")
	case cfg.PrivateKey == nil:
		return nil, errors.New("wechatpay: private key is missing")
	case len(cfg.APIv3Key) != 32:
		return nil, fmt.Errorf("wechatpay: apiv3_key must be exactly 32 bytes, got %d", len(cfg.APIv3Key))
	case cfg.PlatformKey == nil:
		return nil, errors.New("wechatpay: platform public key is missing")
	case cfg.PlatformSerial == "":
		return nil, errors.New("wechatpay: platform_serial is empty")
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("wechatpay: base_url %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("wechatpay: base_url %q must not have a query or fragment", cfg.BaseURL)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	cfg.APIv3Key = bytes.Clone(cfg.APIv3Key)
	return &Client{
		cfg:    cfg,
		base:   u,
		caller: &adapters.Caller{Channel: cfg.ID, Client: cfg.Client, Observer: cfg.Observer},
		now:    now,
		ua:     "paygate-wechatpay/1 (" + runtime.GOOS + ") GO/" + runtime.Version(),
	}, nil
}

// FromConfig parses a "wechat" channel's credentials (resolving the secrets'
// inline, _env and _file forms) and builds the client. notifyURL is the
// gateway's callback URL for this channel.
func FromConfig(ch config.Channel, notifyURL string, obs adapters.Observer) (*Client, error) {
	c := ch.Credentials
	key, err := c.RSAPrivateKey()
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: %w", ch.ID, err)
	}
	v3, err := config.ResolveSecret(c.APIv3Key, c.APIv3KeyEnv, c.APIv3KeyFile)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: credentials.apiv3_key: %w", ch.ID, err)
	}
	if len(v3) != 32 {
		return nil, fmt.Errorf("wechatpay %s: credentials.apiv3_key: must be exactly 32 bytes, got %d", ch.ID, len(v3))
	}
	pub, err := config.ReadRSAPublicKey("platform_public_key_file", c.PlatformPublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: %w", ch.ID, err)
	}
	return New(Config{
		ID:             ch.ID,
		BaseURL:        ch.BaseURL,
		MchID:          c.MchID,
		AppID:          c.AppID,
		SerialNo:       c.SerialNo,
		PrivateKey:     key,
		APIv3Key:       []byte(v3),
		PlatformSerial: c.PlatformSerial,
		PlatformKey:    pub,
		NotifyURL:      notifyURL,
		Observer:       obs,
	})
}

// ID is the configured channel id.
func (c *Client) ID() string { return c.cfg.ID }

// Create places a Native (qr, wechat_native) or JSAPI (wechat_jsapi) order.
// WeChat answers a repeated out_trade_no with identical content with the
// original code_url / prepay_id, so Create is idempotent per req.OrderNo.
func (c *Client) Create(ctx context.Context, req *adapters.CreateRequest) (*adapters.CreateResult, error) {
	const op = "create"
	kind := tradeKindOf(req.Method)
	if kind == 0 {
		return nil, adapters.Unsupported(c.cfg.ID, op)
	}
	body, err := buildOrder(c.cfg.AppID, c.cfg.MchID, c.cfg.NotifyURL, kind, req)
	if err != nil {
		code := "invalid_request"
		if errors.Is(err, errMissingOpenID) {
			code = "missing_openid"
		}
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindInvalid, Code: code, Message: err.Error()}
	}
	path := "/v3/pay/transactions/native"
	if kind == tradeJSAPI {
		path = "/v3/pay/transactions/jsapi"
	}
	resp, err := c.call(ctx, op, http.MethodPost, path, "", body)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, c.errorFrom(op, resp)
	}
	if kind == tradeNative {
		var a nativeResponse
		if err := json.Unmarshal(resp.Body, &a); err != nil || !strings.HasPrefix(a.CodeURL, "weixin://") {
			return nil, c.badResponse(op, resp.Status, "answer has no code_url", err)
		}
		return &adapters.CreateResult{Action: payAction("qr_code", a.CodeURL, nil)}, nil
	}
	var a jsapiResponse
	if err := json.Unmarshal(resp.Body, &a); err != nil || a.PrepayID == "" {
		return nil, c.badResponse(op, resp.Status, "answer has no prepay_id", err)
	}
	params, err := c.JSAPIParams(a.PrepayID)
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindAmbiguous, Code: "sign_failed", Err: err}
	}
	return &adapters.CreateResult{Action: payAction("jsapi", "", params)}, nil
}

// JSAPIParams builds the parameters of WeixinJSBridge getBrandWCPayRequest /
// wx.requestPayment for a prepay_id, with paySign = base64 SHA256-RSA
// (merchant private key) over "appId\ntimeStamp\nnonceStr\npackage\n".
func (c *Client) JSAPIParams(prepayID string) (map[string]string, error) {
	nonce, err := nonceStr()
	if err != nil {
		return nil, err
	}
	p := jsapiParams(c.cfg.AppID, prepayID, nonce, c.now())
	sig, err := c.sign(jsapiMessage(p["appId"], p["timeStamp"], p["nonceStr"], p["package"]))
	if err != nil {
		return nil, err
	}
	p["paySign"] = sig
	return p, nil
}

// Query asks for an order by out_trade_no. An order WeChat does not know is
// OrderNotFound, not an error.
func (c *Client) Query(ctx context.Context, req *adapters.QueryRequest) (*adapters.OrderState, error) {
	const op = "query"
	path := "/v3/pay/transactions/out-trade-no/" + url.PathEscape(req.OrderNo)
	resp, err := c.call(ctx, op, http.MethodGet, path, "mchid="+url.QueryEscape(c.cfg.MchID), nil)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		e := c.errorFrom(op, resp)
		if e.Kind == adapters.KindNotFound {
			return &adapters.OrderState{Status: adapters.OrderNotFound}, nil
		}
		return nil, e
	}
	var t transaction
	if err := json.Unmarshal(resp.Body, &t); err != nil {
		return nil, c.badResponse(op, resp.Status, "answer is not a transaction", err)
	}
	if t.OutTradeNo != req.OrderNo || t.MchID != c.cfg.MchID {
		return nil, c.badResponse(op, resp.Status, "answer is for another order or merchant", nil)
	}
	return orderState(&t), nil
}

// Close closes an unpaid order (204 No Content). Closing an order that is
// already closed succeeds; closing a paid one is KindDeclined.
func (c *Client) Close(ctx context.Context, req *adapters.QueryRequest) error {
	const op = "close"
	path := "/v3/pay/transactions/out-trade-no/" + url.PathEscape(req.OrderNo) + "/close"
	resp, err := c.call(ctx, op, http.MethodPost, path, "", closeRequest{MchID: c.cfg.MchID})
	if err != nil {
		return err
	}
	if resp.Status != http.StatusNoContent && resp.Status != http.StatusOK {
		return c.errorFrom(op, resp)
	}
	return nil
}

// Refund asks for a (partial) refund of a paid order. WeChat's synchronous
// answer is usually PROCESSING; the final state comes by notification or
// QueryRefund. Repeating the same RefundNo never refunds twice.
func (c *Client) Refund(ctx context.Context, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	const op = "refund"
	body, err := buildRefund(c.cfg.NotifyURL, req)
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindInvalid, Code: "invalid_request", Message: err.Error()}
	}
	resp, err := c.call(ctx, op, http.MethodPost, "/v3/refund/domestic/refunds", "", body)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, c.errorFrom(op, resp)
	}
	return c.decodeRefund(op, resp, req.RefundNo)
}

// QueryRefund asks for a refund by out_refund_no; an unknown refund is
// RefundNotFound, not an error.
func (c *Client) QueryRefund(ctx context.Context, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	const op = "query_refund"
	resp, err := c.call(ctx, op, http.MethodGet, "/v3/refund/domestic/refunds/"+url.PathEscape(req.RefundNo), "", nil)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		e := c.errorFrom(op, resp)
		if e.Kind == adapters.KindNotFound {
			return &adapters.RefundState{Status: adapters.RefundNotFound}, nil
		}
		return nil, e
	}
	return c.decodeRefund(op, resp, req.RefundNo)
}

func (c *Client) decodeRefund(op string, resp *adapters.Response, refundNo string) (*adapters.RefundState, error) {
	var r refund
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		return nil, c.badResponse(op, resp.Status, "answer is not a refund", err)
	}
	if r.OutRefundNo != refundNo {
		return nil, c.badResponse(op, resp.Status, "answer is for another refund", nil)
	}
	return refundState(&r), nil
}

// call signs and sends one request and verifies a 2xx answer's signature.
// A non-2xx answer is returned unverified, as the official SDK does: the
// caller maps its status and code.
func (c *Client) call(ctx context.Context, op, method, path, rawQuery string, body any) (*adapters.Response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindInvalid, Code: "encode_failed", Err: err}
		}
	}
	// path is already escaped; the signed REQUEST_URI is exactly what the
	// request line carries (base path prefix included).
	target := c.base.String() + path
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(payload))
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindInvalid, Code: "bad_url", Err: err}
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	auth, err := c.authorization(method, req.URL.RequestURI(), payload)
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindUnavailable, Code: "sign_failed", Err: err}
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Wechatpay-Serial", c.cfg.PlatformSerial)
	adapters.MarkReplayable(req) // every v3 call used here is idempotent on its order or refund number

	resp, err := c.caller.Do(ctx, op, req)
	if err != nil {
		return nil, err
	}
	if resp.Status >= 200 && resp.Status < 300 {
		if err := c.verify(resp.Header, resp.Body); err != nil {
			return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindAmbiguous,
				Code: "bad_response_signature", Status: resp.Status, Err: err}
		}
	}
	return resp, nil
}

// authorization builds the Authorization header over
// METHOD\nREQUEST_URI\nTIMESTAMP\nNONCE\nBODY\n (PROTOCOLS §A.2).
func (c *Client) authorization(method, requestURI string, body []byte) (string, error) {
	nonce, err := nonceStr()
	if err != nil {
		return "", err
	}
	ts := strconv.FormatInt(c.now().Unix(), 10)
	sig, err := c.sign(method + "\n" + requestURI + "\n" + ts + "\n" + nonce + "\n" + string(body) + "\n")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`%s mchid="%s",nonce_str="%s",timestamp="%s",serial_no="%s",signature="%s"`,
		authScheme, c.cfg.MchID, nonce, ts, c.cfg.SerialNo, sig), nil
}

// sign is base64(RSASSA-PKCS1-v1_5(SHA-256(msg))) with the merchant key.
func (c *Client) sign(msg string) (string, error) {
	h := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.cfg.PrivateKey, crypto.SHA256, h[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// errorFrom maps a non-2xx answer to an *adapters.Error.
func (c *Client) errorFrom(op string, resp *adapters.Response) *adapters.Error {
	var body apiError
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		body = apiError{}
	}
	e := &adapters.Error{
		Channel: c.cfg.ID, Op: op, Kind: errorKind(resp.Status, body.Code),
		Code: body.Code, Message: body.Message, Status: resp.Status,
	}
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(resp.Status)
	}
	return e
}

func (c *Client) badResponse(op string, status int, msg string, err error) *adapters.Error {
	return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindAmbiguous, Code: "bad_response",
		Message: msg, Status: status, Err: err}
}

// nonceStr is 32 characters of [0-9A-Za-z], like the official SDK's.
func nonceStr() (string, error) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// Interface guards.
var (
	_ adapters.Channel      = (*Client)(nil)
	_ adapters.Refunder     = (*Client)(nil)
	_ adapters.NotifyParser = (*Client)(nil)
	_ adapters.NotifyHinter = (*Client)(nil)
)
