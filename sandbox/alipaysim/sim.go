// Package alipaysim simulates Alipay's OpenAPI gateway (v2 "gateway.do",
// RSA2, public key mode) for paygate's sandbox: precreate (QR), the page pay
// cashier, query, close, refund, refund query and trade_status_sync
// notifications, following PROTOCOLS.md §B and its "Alipay simulator"
// checklist.
//
// It verifies every request signature with the app public key (derived from
// the channel's configured app private key), refuses in Alipay's own answer
// form, signs every answer with the simulated Alipay key
// (keysDir/alipay-platform.pem) over the exact bytes it writes, and keeps
// trades in memory.
//
// Sandbox deviations and our own choices (documented in
// docs/channels/alipay.md): timestamps are accepted within ±15 minutes;
// http:// notify URLs are accepted; Fail is unsupported (Alipay has no
// failed state for these trades); no notification is sent for closes.
package alipaysim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
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

const (
	gatewayPath = "/gateway.do"
	// maxSkew is our policy for the timestamp parameter; Alipay does not
	// publish one (PROTOCOLS §B.8).
	maxSkew = 15 * time.Minute
	// platformKeyFile is the simulated Alipay's private key in keysDir.
	platformKeyFile = "alipay-platform.pem"
)

// Methods served.
const (
	methodPrecreate   = "alipay.trade.precreate"
	methodPagePay     = "alipay.trade.page.pay"
	methodQuery       = "alipay.trade.query"
	methodClose       = "alipay.trade.close"
	methodRefund      = "alipay.trade.refund"
	methodRefundQuery = "alipay.trade.fastpay.refund.query"
)

// Trade states.
const (
	waitBuyerPay = "WAIT_BUYER_PAY"
	tradeSuccess = "TRADE_SUCCESS"
	tradeClosed  = "TRADE_CLOSED"
)

// Sim is one simulated Alipay app. It is safe for concurrent use.
type Sim struct {
	appID     string
	appPub    *rsa.PublicKey  // verifies requests
	alipayKey *rsa.PrivateKey // signs answers and notifications
	sellerID  string
	path      string // base_url path + /gateway.do
	env       sandbox.Env
	now       func() time.Time

	mu     sync.Mutex
	trades map[string]*trade // by out_trade_no
	seq    uint64
}

// trade is one out_trade_no. It exists at "Alipay" (scanned) only once the
// precreate code was scanned or the page pay cashier opened; before that,
// query and close answer ACQ.TRADE_NOT_EXIST.
type trade struct {
	outTradeNo  string
	productCode string
	amount      int64
	subject     string
	notifyURL   string
	qrCode      string    // precreate only
	expireAt    time.Time // zero: none
	scanned     bool
	dead        bool // precreate code expired before it was scanned

	tradeNo      string
	status       string
	createdAt    time.Time
	paidAt       time.Time
	buyerID      string
	buyerLogonID string
	refunded     int64
	refunds      map[string]*refund // by out_request_no
}

type refund struct {
	outRequestNo string
	amount       int64
	reason       string
	at           time.Time
}

// New builds the simulator of one Alipay channel (a sandbox.Factory).
func New(ch config.Channel, env sandbox.Env, keysDir string) (sandbox.Sim, error) {
	return newSim(ch, env, keysDir)
}

func newSim(ch config.Channel, env sandbox.Env, keysDir string) (*Sim, error) {
	cr := ch.Credentials
	if cr.AlipayAppID == "" {
		return nil, fmt.Errorf("alipaysim %s: credentials.app_id is required", ch.ID)
	}
	appKey, err := cr.RSAPrivateKey() // the simulator derives the app public key from it
	if err != nil {
		return nil, fmt.Errorf("alipaysim %s: %w", ch.ID, err)
	}
	pem, err := os.ReadFile(filepath.Join(keysDir, platformKeyFile))
	if err != nil {
		return nil, fmt.Errorf("alipaysim %s: %w", ch.ID, err)
	}
	alipayKey, err := config.ParseRSAPrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("alipaysim %s: %s: %w", ch.ID, platformKeyFile, err)
	}
	u, err := url.Parse(ch.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("alipaysim %s: base_url: %w", ch.ID, err)
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.OrderCreated == nil {
		env.OrderCreated = func(string) {}
	}
	if env.Logger == nil {
		env.Logger = zap.NewNop()
	}
	h := fnv.New64a()
	h.Write([]byte(cr.AlipayAppID))
	return &Sim{
		appID:     cr.AlipayAppID,
		appPub:    &appKey.PublicKey,
		alipayKey: alipayKey,
		sellerID:  fmt.Sprintf("2088%012d", h.Sum64()%1_000_000_000_000),
		path:      strings.TrimRight(u.Path, "/") + gatewayPath,
		env:       env,
		now:       env.Now,
		trades:    map[string]*trade{},
	}, nil
}

// ServeHTTP serves {base path}/gateway.do: API calls (POST form, or
// parameters in the query string) and the page pay cashier (the browser's
// GET or form POST of a signed alipay.trade.page.pay URL).
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p, err := readParams(r)
	if err != nil {
		writeAnswer(w, "error_response", invalidArg("isv.invalid-parameter", err.Error()), s.alipayKey)
		return
	}
	if p["method"] == methodPagePay {
		s.cashier(w, p)
		return
	}
	s.api(w, p)
}

// refusal is an answer given before the method's own logic runs.
type refusal struct {
	member string // "error_response" or "<method>_response"
	res    result
	signed bool
}

// authenticate applies the gateway's checks, in this order: app_id, method,
// sign presence and type, the signature (PROTOCOLS §B.3: every parameter
// except sign, sign_type included), timestamp, charset/format/version.
//
// The timestamp must be within ±15 minutes of the simulator's clock (our
// policy). For the browser entry point (browser true) an older timestamp is
// accepted: a payer may open a page pay URL long after it was made, and
// time_expire bounds it instead.
func (s *Sim) authenticate(p map[string]string, known func(string) bool, browser bool) *refusal {
	if p["app_id"] != s.appID {
		// Unknown app: no key to sign with.
		return &refusal{member: "error_response", res: invalidArg("isv.invalid-app-id", "无效的AppID参数")}
	}
	method := p["method"]
	if method == "" {
		return &refusal{member: "error_response", res: missingArg("isv.missing-method", "缺少方法名参数"), signed: true}
	}
	if !known(method) {
		return &refusal{member: "error_response", res: invalidArg("isv.invalid-method", "不存在的方法名"), signed: true}
	}
	m := responseKey(method)
	switch {
	case p["sign"] == "":
		return &refusal{member: m, res: missingArg("isv.missing-signature", "缺少签名参数"), signed: true}
	case p["sign_type"] == "":
		return &refusal{member: m, res: missingArg("isv.missing-signature-type", "缺少签名类型参数"), signed: true}
	case p["sign_type"] != "RSA2":
		return &refusal{member: m, res: invalidArg("isv.invalid-signature-type", "无效的签名类型参数"), signed: true}
	}
	if !rsa2Verify(s.appPub, []byte(signContent(p, "sign")), p["sign"]) {
		return &refusal{member: m, res: invalidArg("isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配"), signed: true}
	}
	ts := p["timestamp"]
	if ts == "" {
		return &refusal{member: m, res: missingArg("isv.missing-timestamp", "缺少时间戳参数"), signed: true}
	}
	t, err := time.ParseInLocation(timeLayout, ts, beijing)
	if d := s.now().Sub(t); err != nil || (d > maxSkew && !browser) || d < -maxSkew {
		return &refusal{member: m, res: invalidArg("isv.invalid-timestamp", "非法的时间戳参数"), signed: true}
	}
	if c := p["charset"]; c != "" && !strings.EqualFold(c, "utf-8") {
		return &refusal{member: m, res: invalidArg("isv.invalid-charset", "字符集错误"), signed: true}
	}
	if f := p["format"]; f != "" && !strings.EqualFold(f, "JSON") {
		return &refusal{member: m, res: invalidArg("isv.invalid-format", "无效的数据格式参数"), signed: true}
	}
	if p["version"] != "1.0" {
		return &refusal{member: m, res: invalidArg("isv.invalid-version", "无效的版本号参数"), signed: true}
	}
	if p["biz_content"] == "" {
		return &refusal{member: m, res: missingArg("isv.missing-biz-content", "缺少业务参数"), signed: true}
	}
	if n := p["notify_url"]; n != "" && !absoluteHTTP(n) {
		return &refusal{member: m, res: invalidArg("isv.invalid-notify-url", "notify_url 无效"), signed: true}
	}
	return nil
}

// absoluteHTTP accepts http as well as https: a sandbox deviation, so that
// the gateway can run on plain loopback.
func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Sim) refuse(w http.ResponseWriter, r *refusal) {
	var key *rsa.PrivateKey
	if r.signed {
		key = s.alipayKey
	}
	writeAnswer(w, r.member, r.res, key)
}

// Pay is the payer: it scans the precreate code if nobody has yet (the
// trade comes into existence), pays, and sends the notification.
func (s *Sim) Pay(orderNo string) error {
	s.mu.Lock()
	t, ok := s.trades[orderNo]
	if !ok {
		s.mu.Unlock()
		return sandbox.ErrNoOrder
	}
	now := s.now()
	s.expire(t, now)
	if !t.scanned {
		if t.dead {
			s.mu.Unlock()
			return fmt.Errorf("%w: the QR code expired", sandbox.ErrOrderState)
		}
		s.scan(t, now)
	}
	if t.status != waitBuyerPay {
		st := t.status
		s.mu.Unlock()
		return fmt.Errorf("%w: trade is %s", sandbox.ErrOrderState, st)
	}
	t.status = tradeSuccess
	t.paidAt = now
	n := s.paymentNotification(t, now)
	s.mu.Unlock()
	s.send(n)
	return nil
}

// Fail is unsupported: an Alipay precreate or page pay trade has no failed
// state (a payer who cannot pay simply does not; the trade closes at
// time_expire).
func (s *Sim) Fail(orderNo string) error {
	return fmt.Errorf("%w: Alipay trades have no failed state", sandbox.ErrUnsupported)
}

// Unavailable writes Alipay's "service currently unavailable" answer, signed.
func (s *Sim) Unavailable(w http.ResponseWriter) {
	writeAnswer(w, "error_response", unavailable, s.alipayKey)
}

// scan brings a trade into existence. Callers hold s.mu.
func (s *Sim) scan(t *trade, now time.Time) {
	s.seq++
	t.scanned = true
	t.status = waitBuyerPay
	t.createdAt = now
	t.tradeNo = fmt.Sprintf("%s2200%016d", now.In(beijing).Format("20060102"), s.seq)
	t.buyerID = "2088" + randomDigits(12)
	t.buyerLogonID = "138****" + randomDigits(4)
}

// expire applies time_expire. Callers hold s.mu.
func (s *Sim) expire(t *trade, now time.Time) {
	if t.expireAt.IsZero() || !now.After(t.expireAt) {
		return
	}
	switch {
	case !t.scanned:
		t.dead = true
	case t.status == waitBuyerPay:
		t.status = tradeClosed
	}
}

func randomDigits(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var errNoTrade = errors.New("no such trade")

// Interface guard.
var _ sandbox.Sim = (*Sim)(nil)
