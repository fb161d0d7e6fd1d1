// Package banksim simulates a bank gateway that speaks the UnionPay ACP
// 5.1.0 online-gateway protocol (signMethod 01), for sandbox mode and for the
// tests of adapters/bank.
//
// At start it generates its own RSA signing key and a certificate for it,
// issued by the test CA in keysDir (bank-root-ca.pem and bank-root-ca.key.pem,
// or, when the channel configures middle_cert_file, the middle CA
// bank-middle-ca.pem that root issued) and valid around env.Now. Its CN names
// the channel's cert_identity (default UnionPay's, 中国银联股份有限公司) as
// UnionPay's certificates do: 041@Z12@<identity>@00000001. Every answer and back notification carries that
// certificate as signPubKeyCert and is signed with its key. It knows the
// merchant's public key under the configured cert_id (derived from the
// channel's configured private key) and verifies every request with it.
//
// Served paths (after any path prefix of the channel's base_url), POST only:
//
//	/gateway/api/frontTransReq.do  the payer's browser posts the signed front consume form;
//	                               the order is created and a small HTML page answers
//	/gateway/api/backTransReq.do   QR code apply (txnType 01/07) and refund (04/00)
//	/gateway/api/queryTrans.do     query (00/00) of a consume or a refund by orderId + txnTime
//
// docs/channels/bank.md lists the respCodes the simulator answers and the
// sandbox deviations from ACP.
package banksim

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/sandbox"
)

// ACP paths.
const (
	pathFront = "/gateway/api/frontTransReq.do"
	pathBack  = "/gateway/api/backTransReq.do"
	pathQuery = "/gateway/api/queryTrans.do"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// Sim is one bank channel instance's simulator. It is safe for concurrent use.
type Sim struct {
	env         sandbox.Env
	now         func() time.Time
	log         *zap.Logger
	merID       string
	certID      string
	merchantPub *rsa.PublicKey
	key         *rsa.PrivateKey // the simulator's signing key
	certPEM     string          // its certificate, sent as signPubKeyCert
	prefix      string          // path of the channel's base_url, without a trailing slash

	mu        sync.Mutex
	txns      map[string]*txn // by orderId: consumes and refunds
	byQueryID map[string]*txn
}

// New builds the simulator of one bank channel instance (a sandbox.Factory).
func New(ch config.Channel, env sandbox.Env, keysDir string) (sandbox.Sim, error) {
	cr := ch.Credentials
	if cr.MerID == "" {
		return nil, fmt.Errorf("banksim %s: credentials.mer_id is required", ch.ID)
	}
	if cr.CertID == "" {
		return nil, fmt.Errorf("banksim %s: credentials.cert_id is required", ch.ID)
	}
	merchantKey, err := cr.RSAPrivateKey() // the simulator derives the merchant public key from it
	if err != nil {
		return nil, fmt.Errorf("banksim %s: %w", ch.ID, err)
	}
	u, err := url.Parse(ch.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("banksim %s: base_url: %w", ch.ID, err)
	}
	if keysDir == "" {
		keysDir = "sandbox/keys"
	}
	now := env.Now
	if now == nil {
		now = time.Now
	}
	if env.OrderCreated == nil {
		env.OrderCreated = func(string) {}
	}
	log := env.Logger
	if log == nil {
		log = zap.NewNop()
	}
	identity := cr.CertIdentity
	if identity == "" {
		identity = unionPayIdentity
	}
	// The certificate follows the channel's configuration: the identity the
	// adapter expects, and a middle certificate when it has one.
	key, certPEM, err := issueSigningCert(keysDir, now(), identity, cr.MiddleCertFile != "")
	if err != nil {
		return nil, fmt.Errorf("banksim %s: %w", ch.ID, err)
	}
	return &Sim{
		env: env, now: now, log: log.Named("banksim"),
		merID: cr.MerID, certID: cr.CertID, merchantPub: &merchantKey.PublicKey,
		key: key, certPEM: certPEM,
		prefix:    strings.TrimSuffix(u.Path, "/"),
		txns:      map[string]*txn{},
		byQueryID: map[string]*txn{},
	}, nil
}

// ServeHTTP serves the ACP endpoints.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, s.prefix)
	if !ok || (rest != pathFront && rest != pathBack && rest != pathQuery) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		}
		return
	}
	switch rest {
	case pathFront:
		s.serveFront(w, body)
	case pathBack:
		s.serveBack(w, body)
	case pathQuery:
		s.serveQuery(w, body)
	}
}

// Unavailable writes ACP's signed "06 system busy, retry later" answer with
// HTTP 200, as the bank does.
func (s *Sim) Unavailable(w http.ResponseWriter) {
	s.answer(w, nil, &refusal{code: codeBusy, msg: msgs[codeBusy]}, nil)
}

// Pay makes the payer pay the consume orderNo: it becomes paid (respCode
// 00), gets its queryId, and a signed back notification goes to its backUrl.
func (s *Sim) Pay(orderNo string) error { return s.finish(orderNo, codeOK) }

// Fail makes the payer's payment of orderNo fail with respCode 61 (invalid
// card number); a back notification with that respCode goes to its backUrl.
func (s *Sim) Fail(orderNo string) error { return s.finish(orderNo, codePayFailed) }

func (s *Sim) finish(orderNo, code string) error {
	now := s.now()
	s.mu.Lock()
	t, ok := s.txns[orderNo]
	if !ok || t.kind != kindConsume {
		s.mu.Unlock()
		return sandbox.ErrNoOrder
	}
	t.lapse(now)
	if t.status != statusAwaiting {
		s.mu.Unlock()
		return sandbox.ErrOrderState
	}
	if code == codeOK {
		t.status = statusPaid
	} else {
		t.status = statusFailed
	}
	t.respCode = code
	s.assignQueryID(t, now)
	fields := s.consumeNotification(t)
	s.mu.Unlock()
	s.notify(t.backURL, fields)
	return nil
}

// notify signs a back notification and hands it to the Notifier. The bank
// counts it delivered on HTTP 200, whatever the body.
func (s *Sim) notify(backURL string, fields map[string]string) {
	if s.env.Notifier == nil {
		s.log.Warn("no notifier: back notification not sent")
		return
	}
	fields["signPubKeyCert"] = s.certPEM
	if err := signFields(s.key, fields); err != nil {
		s.log.Error("sign back notification", zap.Error(err))
		return
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	s.env.Notifier.Send(backURL, h, []byte(encode(fields)), func(status int, _ []byte) bool {
		return status == http.StatusOK
	})
}

// Interface guard.
var _ sandbox.Sim = (*Sim)(nil)
