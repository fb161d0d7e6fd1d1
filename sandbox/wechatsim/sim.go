// Package wechatsim simulates WeChat Pay API v3 for one merchant account
// (direct merchant, "普通商户"): Native and JSAPI orders, query by
// out_trade_no, close, domestic refunds and their queries, and the encrypted,
// signed TRANSACTION.SUCCESS / REFUND.SUCCESS notifications.
//
// It is faithful where PROTOCOLS.md §A allows: every request's Authorization
// is parsed and verified with the merchant public key (401 SIGN_ERROR),
// fields are validated (400 PARAM_ERROR with detail), every answer — errors
// and the empty 204 included — is signed with the platform key, and
// notification resources are AEAD_AES_256_GCM-encrypted with the APIv3 key.
// It deliberately shares no code with adapters/wechatpay, so that a mistake
// on one side is caught by the other. Deviations from the real service are
// listed in docs/channels/wechatpay.md.
package wechatsim

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/sandbox"
)

// PlatformKeyFile is the platform private key the simulator signs with,
// relative to the keys directory.
const PlatformKeyFile = "wechat-platform.pem"

// maxBody bounds a request body.
const maxBody = 1 << 20

// Sim is one simulated WeChat Pay merchant account. It is safe for concurrent use.
type Sim struct {
	prefix         string // path prefix of the channel's base_url
	mchID          string
	appID          string
	merchantSerial string
	merchantKey    *rsa.PublicKey
	platformSerial string
	platformKey    *rsa.PrivateKey
	apiv3Key       []byte

	notifier     *sandbox.Notifier // nil: notifications are not sent
	now          func() time.Time
	orderCreated func(string)
	logger       *zap.Logger

	mu      sync.Mutex
	orders  map[string]*order  // by out_trade_no
	refunds map[string]*refund // by out_refund_no
}

// New builds the simulator of a "wechat" channel; it matches sandbox.Factory.
// The merchant's public key is derived from the channel's private key; the
// platform key is keysDir/wechat-platform.pem.
func New(ch config.Channel, env sandbox.Env, keysDir string) (sandbox.Sim, error) {
	return newSim(ch, env, keysDir)
}

func newSim(ch config.Channel, env sandbox.Env, keysDir string) (*Sim, error) {
	c := ch.Credentials
	for _, f := range []struct{ name, v string }{
		{"mchid", c.MchID}, {"appid", c.AppID}, {"serial_no", c.SerialNo}, {"platform_serial", c.PlatformSerial},
	} {
		if f.v == "" {
			return nil, fmt.Errorf("wechatsim %s: credentials.%s is required", ch.ID, f.name)
		}
	}
	merchant, err := c.RSAPrivateKey() // the simulator derives the merchant public key from it
	if err != nil {
		return nil, fmt.Errorf("wechatsim %s: %w", ch.ID, err)
	}
	v3, err := config.ResolveSecret(c.APIv3Key, c.APIv3KeyEnv, c.APIv3KeyFile)
	if err != nil {
		return nil, fmt.Errorf("wechatsim %s: credentials.apiv3_key: %w", ch.ID, err)
	}
	if len(v3) != 32 {
		return nil, fmt.Errorf("wechatsim %s: credentials.apiv3_key must be 32 bytes", ch.ID)
	}
	platformPEM, err := os.ReadFile(filepath.Join(keysDir, PlatformKeyFile))
	if err != nil {
		return nil, fmt.Errorf("wechatsim %s: platform key: %w", ch.ID, err)
	}
	platform, err := config.ParseRSAPrivateKey(platformPEM)
	if err != nil {
		return nil, fmt.Errorf("wechatsim %s: platform key: %w", ch.ID, err)
	}
	u, err := url.Parse(ch.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("wechatsim %s: base_url: %w", ch.ID, err)
	}
	s := &Sim{
		prefix:         strings.TrimRight(u.Path, "/"),
		mchID:          c.MchID,
		appID:          c.AppID,
		merchantSerial: c.SerialNo,
		merchantKey:    &merchant.PublicKey,
		platformSerial: c.PlatformSerial,
		platformKey:    platform,
		apiv3Key:       []byte(v3),
		notifier:       env.Notifier,
		now:            env.Now,
		orderCreated:   env.OrderCreated,
		logger:         env.Logger,
		orders:         map[string]*order{},
		refunds:        map[string]*refund{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.orderCreated == nil {
		s.orderCreated = func(string) {}
	}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	return s, nil
}

// ServeHTTP authenticates the request, then serves the v3 API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		s.writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "请求体读取失败或过大", nil)
		return
	}
	requestURI := r.RequestURI
	if requestURI == "" {
		requestURI = r.URL.RequestURI()
	}
	if e := s.authenticate(r, requestURI, body); e != nil {
		s.logger.Debug("wechatsim: request refused", zap.String("issue", e.issue))
		s.writeError(w, http.StatusUnauthorized, "SIGN_ERROR", e.message, signErrorDetail(r.Method, requestURI, e.issue))
		return
	}
	// The merchant names the platform key it can verify; we have one.
	if ws := r.Header.Get("Wechatpay-Serial"); ws != "" && ws != s.platformSerial {
		s.writeError(w, http.StatusBadRequest, "PARAM_ERROR", "Wechatpay-Serial对应的平台证书或公钥不存在",
			paramDetail{Field: "Wechatpay-Serial", Value: ws, Issue: "unknown platform serial", Location: "header"})
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, s.prefix)
	if !ok {
		s.notFound(w)
		return
	}
	if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		s.writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "Content-Type必须为application/json", nil)
		return
	}
	const outTradeNo = "/v3/pay/transactions/out-trade-no/"
	const refunds = "/v3/refund/domestic/refunds"
	switch {
	case r.Method == http.MethodPost && path == "/v3/pay/transactions/native":
		s.createOrder(w, tradeNative, body)
	case r.Method == http.MethodPost && path == "/v3/pay/transactions/jsapi":
		s.createOrder(w, tradeJSAPI, body)
	case strings.HasPrefix(path, outTradeNo):
		no := strings.TrimPrefix(path, outTradeNo)
		if c, ok := strings.CutSuffix(no, "/close"); ok && r.Method == http.MethodPost && !strings.Contains(c, "/") {
			s.closeOrder(w, c, body)
			return
		}
		if r.Method == http.MethodGet && no != "" && !strings.Contains(no, "/") {
			s.queryOrder(w, no, r.URL.Query())
			return
		}
		s.notFound(w)
	case r.Method == http.MethodPost && path == refunds:
		s.createRefund(w, body)
	case r.Method == http.MethodGet && strings.HasPrefix(path, refunds+"/"):
		no := strings.TrimPrefix(path, refunds+"/")
		if no == "" || strings.Contains(no, "/") {
			s.notFound(w)
			return
		}
		s.queryRefund(w, no)
	default:
		s.notFound(w)
	}
}

// Pay is the simulated payer paying an order: NOTPAY → SUCCESS, then the
// TRANSACTION.SUCCESS notification.
func (s *Sim) Pay(orderNo string) error {
	s.mu.Lock()
	o, ok := s.orders[orderNo]
	if !ok {
		s.mu.Unlock()
		return sandbox.ErrNoOrder
	}
	s.expireLocked(o)
	if o.state != stateNotPay {
		s.mu.Unlock()
		return fmt.Errorf("%w: order is %s", sandbox.ErrOrderState, o.state)
	}
	now := s.now()
	o.state = stateSuccess
	o.transactionID = "42000" + randomString(23, digits)
	o.successTime = now
	if o.payerOpenID == "" {
		o.payerOpenID = "o" + randomString(27, alnum)
	}
	plain, err := json.Marshal(s.transactionLocked(o))
	notifyURL := o.notifyURL
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.notify(notifyURL, "TRANSACTION.SUCCESS", "支付成功", "transaction", plain)
}

// Fail: WeChat Native and JSAPI orders have no failed state (PAYERROR is
// for code payments), so Fail is always sandbox.ErrUnsupported.
func (s *Sim) Fail(string) error { return sandbox.ErrUnsupported }

// Unavailable writes WeChat's signed 500 SYSTEM_ERROR ("retry with the same
// parameters").
func (s *Sim) Unavailable(w http.ResponseWriter) {
	s.writeError(w, http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误", nil)
}

// errorBody is WeChat's error answer (PROTOCOLS §A.7).
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// paramDetail is the detail of a PARAM_ERROR.
type paramDetail struct {
	Field    string `json:"field"`
	Value    any    `json:"value,omitempty"`
	Issue    string `json:"issue"`
	Location string `json:"location"`
}

// signErrorDetail is the detail WeChat gives with SIGN_ERROR (PROTOCOLS §A.2).
func signErrorDetail(method, requestURI, issue string) any {
	type signInfo struct {
		Method               string `json:"method"`
		URL                  string `json:"url"`
		TruncatedSignMessage string `json:"truncated_sign_message"`
		SignMessageLength    int    `json:"sign_message_length"`
	}
	head := method + "\n" + requestURI + "\n"
	return struct {
		Field           string   `json:"field"`
		Location        string   `json:"location"`
		SignInformation signInfo `json:"sign_information"`
		Detail          struct {
			Issue string `json:"issue"`
		} `json:"detail"`
	}{
		Field: "signature", Location: "authorization",
		SignInformation: signInfo{Method: method, URL: requestURI, TruncatedSignMessage: head, SignMessageLength: len(head)},
		Detail: struct {
			Issue string `json:"issue"`
		}{issue},
	}
}

func (s *Sim) notFound(w http.ResponseWriter) {
	s.writeError(w, http.StatusNotFound, "NOT_FOUND", "请求的资源不存在", nil)
}

func (s *Sim) writeError(w http.ResponseWriter, status int, code, message string, detail any) {
	s.writeJSON(w, status, errorBody{Code: code, Message: message, Detail: detail})
}

func (s *Sim) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"code":"SYSTEM_ERROR","message":"系统错误"}`)
	}
	s.writeSigned(w, status, body)
}

// writeSigned writes an answer with its Wechatpay-* signature headers; an
// empty body (204) is signed too.
func (s *Sim) writeSigned(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	if err := s.signedHeaders(h, body); err != nil {
		s.logger.Error("wechatsim: cannot sign answer", zap.Error(err))
		status, body = http.StatusInternalServerError, nil
	}
	h.Set("Request-Id", randomString(32, hexLow))
	if len(body) > 0 {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	if len(body) > 0 {
		w.Write(body)
	}
}

// notify sends an encrypted, signed notification to url (if the order or
// refund has one and the simulator has a notifier). Any 2xx acknowledges.
func (s *Sim) notify(notifyURL, eventType, summary, originalType string, plaintext []byte) error {
	if s.notifier == nil || notifyURL == "" {
		return nil
	}
	body, err := s.notificationBody(eventType, summary, originalType, plaintext)
	if err != nil {
		return err
	}
	headers := func() http.Header {
		h := http.Header{}
		if err := s.signedHeaders(h, body); err != nil {
			return h // unsigned: the receiver refuses it and the next attempt signs again
		}
		h.Set("Wechatpay-Signature-Type", authScheme)
		h.Set("Content-Type", "application/json")
		h.Set("Request-ID", randomString(32, hexLow))
		return h
	}
	if h := headers(); h.Get("Wechatpay-Signature") == "" {
		return fmt.Errorf("sign notification: no signature")
	}
	// WeChat signs every delivery anew: a resend keeps the body and the
	// event id but carries a fresh timestamp, nonce and signature.
	s.notifier.SendFresh(notifyURL, headers, body, func(status int, _ []byte) bool { return status >= 200 && status < 300 })
	return nil
}

// Interface guards.
var (
	_ sandbox.Sim     = (*Sim)(nil)
	_ sandbox.Factory = New
)
