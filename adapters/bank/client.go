// Package bank is the adapter of a bank gateway that speaks the UnionPay ACP
// 5.1.0 online-gateway protocol ("全渠道", signMethod 01: SHA-256 digests
// signed with RSA certificates). Several banks (bank-a, bank-b) are several
// configured instances of this adapter, each with its own merId, keys and
// base URL.
//
// Methods: bank_redirect is a front consume: paygate signs the consume form
// and the payer's browser posts it to the bank (no server call); qr applies
// for a QR code (backTransReq.do, txnSubType 07). Queries, refunds and back
// notifications follow ACP. docs/channels/bank.md is the operator's view,
// including the codes and the decisions this package makes.
//
// Spec: UnionPay ACP 5.1.0 (https://open.unionpay.com/tjweb/api/list);
// facts used are listed in PROTOCOLS.md §C.
package bank

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
)

// Config configures one bank channel instance.
type Config struct {
	// ID is the channel id ("bank-a"); errors and metrics carry it. Required.
	ID string
	// BaseURL is the bank gateway's base URL (production UnionPay:
	// https://gateway.95516.com); the ACP paths /gateway/api/... are appended
	// to it, after any path it has. Required, http or https.
	BaseURL string
	// MerID is the merchant number at the bank (ACP merId, 15 characters).
	// Required.
	MerID string
	// CertID is the decimal serial number of the merchant signing
	// certificate; the bank selects the verification key by it. Required.
	CertID string
	// PrivateKey is the merchant signing key (the key of that certificate).
	// Required; at least 2048 bits.
	PrivateKey *rsa.PrivateKey
	// Roots are the pinned certificates (the bank's root and, if any, middle
	// certificates) one of which must have issued the signPubKeyCert carried
	// by every answer and notification. Required.
	Roots *x509.CertPool
	// Middles are the bank's middle (intermediate) certificates: a
	// signPubKeyCert may chain to Roots through them. They are not trust
	// anchors. Optional.
	Middles *x509.CertPool
	// Identity is whose certificate signPubKeyCert must be: the third
	// '@'-separated field of its subject CN. Chaining to the root is not
	// enough, because the same root issues merchants' certificates too.
	// "" means DefaultIdentity (UnionPay's production identity).
	Identity string
	// NotifyURL is the gateway's callback URL for this channel, sent as
	// backUrl. Required.
	NotifyURL string
	// FrontURL is sent as frontUrl in front consumes: where the bank sends
	// the payer's browser after the payment. paygate has no payer-facing
	// page, so "" means the origin of NotifyURL plus "/".
	FrontURL string
	// Client sends the calls; nil means adapters' default client (no
	// overall timeout: callers put the deadline on the context).
	Client *http.Client
	// Observer is told of every call; nil means none.
	Observer adapters.Observer
	// Now is the clock for certificate validity and times; nil is time.Now.
	Now func() time.Time
}

// Client is one bank channel instance. It is safe for concurrent use.
type Client struct {
	cfg    Config
	m      merchant
	now    func() time.Time
	caller *adapters.Caller
	base   string // BaseURL without a trailing slash
}

// New validates cfg and returns the channel.
func New(cfg Config) (*Client, error) {
	if cfg.ID == "" {
		return nil, errors.New("bank: channel id is required")
	}
	fail := func(format string, a ...any) (*Client, error) {
		return nil, fmt.Errorf("bank %s: "+format, append([]any{cfg.ID}, a...)...)
	}
	base, err := httpURL(cfg.BaseURL)
	if err != nil {
		return fail("base_url: %v", err)
	}
	if cfg.MerID == "" || len(cfg.MerID) > 15 || !isAlnum(cfg.MerID) {
		return fail("mer_id: must be 1-15 letters or digits")
	}
	if cfg.CertID == "" || len(cfg.CertID) > 40 || !isDigits(cfg.CertID) {
		return fail("cert_id: must be the decimal serial number of the signing certificate")
	}
	if cfg.PrivateKey == nil {
		return fail("private key is required")
	}
	if cfg.PrivateKey.N.BitLen() < 2048 {
		return fail("private key: RSA key of %d bits; at least 2048 are required", cfg.PrivateKey.N.BitLen())
	}
	if cfg.Roots == nil {
		return fail("root certificates are required")
	}
	if cfg.Identity == "" {
		cfg.Identity = DefaultIdentity
	} else if strings.Contains(cfg.Identity, "@") {
		return fail("cert_identity: cannot contain '@'")
	}
	notify, err := httpURL(cfg.NotifyURL)
	if err != nil {
		return fail("notify url: %v", err)
	}
	front := cfg.FrontURL
	if front == "" {
		front = notify.Scheme + "://" + notify.Host + "/"
	} else if _, err := httpURL(front); err != nil {
		return fail("front url: %v", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		cfg: cfg,
		m:   merchant{merID: cfg.MerID, certID: cfg.CertID, backURL: cfg.NotifyURL, frontURL: front},
		now: now,
		caller: &adapters.Caller{
			Channel: cfg.ID, Client: cfg.Client, Observer: cfg.Observer, Now: cfg.Now,
		},
		base: strings.TrimSuffix(base.String(), "/"),
	}, nil
}

func httpURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q must not have a query or fragment", s)
	}
	return u, nil
}

// DefaultIdentity is the identity UnionPay's production signing
// certificates carry in their CN (for example
// 041@Z12@中国银联股份有限公司@00000001).
const DefaultIdentity = "中国银联股份有限公司"

// FromConfig builds the channel from its configuration: credentials mer_id,
// cert_id, private_key (or private_key_env / private_key_file; PEM, PKCS#1
// or PKCS#8), root_cert_file (PEM, one or more certificates), optionally
// middle_cert_file (PEM, the middle certificates) and cert_identity.
// notifyURL is the gateway's callback URL for this channel.
func FromConfig(ch config.Channel, notifyURL string, obs adapters.Observer) (*Client, error) {
	cr := ch.Credentials
	key, err := cr.RSAPrivateKey()
	if err != nil {
		return nil, fmt.Errorf("bank %s: %w", ch.ID, err)
	}
	if cr.RootCertFile == "" {
		return nil, fmt.Errorf("bank %s: root_cert_file: required", ch.ID)
	}
	pemBytes, err := os.ReadFile(cr.RootCertFile)
	if err != nil {
		return nil, fmt.Errorf("bank %s: root_cert_file: %w", ch.ID, err)
	}
	roots, err := ParseRoots(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("bank %s: root_cert_file: %w", ch.ID, err)
	}
	var middles *x509.CertPool
	if cr.MiddleCertFile != "" {
		if pemBytes, err = os.ReadFile(cr.MiddleCertFile); err == nil {
			middles, err = ParseRoots(pemBytes)
		}
		if err != nil {
			return nil, fmt.Errorf("bank %s: middle_cert_file: %w", ch.ID, err)
		}
	}
	return New(Config{
		ID: ch.ID, BaseURL: ch.BaseURL, MerID: cr.MerID, CertID: cr.CertID,
		PrivateKey: key, Roots: roots, Middles: middles, Identity: cr.CertIdentity,
		NotifyURL: notifyURL, Observer: obs,
	})
}

// ParseRoots parses PEM certificates into a pool: every CERTIFICATE block
// of the file (root_cert_file's are trust anchors, middle_cert_file's are
// intermediates).
func ParseRoots(pemBytes []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no certificate")
	}
	return pool, nil
}

// ID is the configured channel id.
func (c *Client) ID() string { return c.cfg.ID }

// ---------------------------------------------------------------------------
// Signing (ACP 5.1.0, signMethod 01)
//
//  1. signString: every field except "signature", keys sorted ascending,
//     "k=v" joined by "&", values raw (not URL-encoded);
//  2. digest = lowercase hex of SHA-256(signString) (64 ASCII characters);
//  3. signature = base64(RSASSA-PKCS1-v1_5(SHA-256, key, digest)): the RSA
//     signature is over the hex TEXT, so the message is hashed twice.

// signString is step 1.
func signString(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(fields[k])
	}
	return b.String()
}

// digestHex is step 2.
func digestHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// sign is step 3: it returns the signature of fields.
func sign(key *rsa.PrivateKey, fields map[string]string) (string, error) {
	h := sha256.Sum256([]byte(digestHex(signString(fields))))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// verifySignature checks fields["signature"] with pub.
func verifySignature(pub *rsa.PublicKey, fields map[string]string) error {
	sig, err := base64.StdEncoding.DecodeString(fields["signature"])
	if err != nil || len(sig) == 0 {
		return errors.New("signature is not base64")
	}
	h := sha256.Sum256([]byte(digestHex(signString(fields))))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		return errors.New("signature does not verify")
	}
	return nil
}

// Errors of bank message verification.
var (
	errNoCert       = errors.New("message has no signPubKeyCert")
	errUntrusted    = errors.New("signPubKeyCert is not issued by the pinned root or not valid now")
	errNotRSA       = errors.New("signPubKeyCert does not hold an RSA key")
	errNoSignature  = errors.New("message has no signature")
	errSigMismatch  = errors.New("signature does not verify")
	errCertNotParse = errors.New("signPubKeyCert is not a PEM certificate")
	errNotTheBank   = errors.New("signPubKeyCert is not the bank's")
)

// verifyBank verifies a message from the bank (an answer or a back
// notification): its signPubKeyCert must chain to the pinned roots (through
// the middle certificates, if any) and be valid at now, must be the bank's
// (identity), and its signature must verify with that certificate's key.
func (c *Client) verifyBank(fields map[string]string) error {
	now := c.now()
	certPEM, ok := fields["signPubKeyCert"]
	if !ok || certPEM == "" {
		return errNoCert
	}
	if fields["signature"] == "" {
		return errNoSignature
	}
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return errCertNotParse
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return errCertNotParse
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:         c.cfg.Roots,
		Intermediates: c.cfg.Middles,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("%w: %v", errUntrusted, err)
	}
	if id := certIdentity(cert); id != c.cfg.Identity {
		return fmt.Errorf("%w: its CN names %q, want %q", errNotTheBank, id, c.cfg.Identity)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errNotRSA
	}
	if err := verifySignature(pub, fields); err != nil {
		return errSigMismatch
	}
	return nil
}

// certIdentity is the identity a UnionPay certificate names: the third
// '@'-separated field of its subject CN ("" when the CN has fewer fields),
// as the official ACP SDKs read it.
func certIdentity(cert *x509.Certificate) string {
	parts := strings.Split(cert.Subject.CommonName, "@")
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// signed returns fields with the signature added.
func (c *Client) signed(fields map[string]string) (map[string]string, error) {
	sig, err := sign(c.cfg.PrivateKey, fields)
	if err != nil {
		return nil, err
	}
	fields["signature"] = sig
	return fields, nil
}

// ---------------------------------------------------------------------------
// Calls

// call signs fields, posts them to path and returns the verified answer.
// Errors are *adapters.Error: transport (from the Caller), HTTP status,
// unparseable or unverifiable answers.
func (c *Client) call(ctx context.Context, op, path string, fields map[string]string) (map[string]string, error) {
	fields, err := c.signed(fields)
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindUnavailable, Code: "sign_failed", Err: err}
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(encodeForm(fields)))
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindUnavailable, Code: "bad_request", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	req.Header.Set("Accept", "*/*")
	if path == pathQuery {
		adapters.MarkReplayable(req) // queries are idempotent; ACP consumes and refunds are not (respCode 12 on a repeat)
	}
	resp, err := c.caller.Do(ctx, op, req)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		e := &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindUnavailable, Status: resp.Status,
			Code: fmt.Sprintf("http_%d", resp.Status), Message: "bank answered HTTP " + http.StatusText(resp.Status)}
		if resp.Status == http.StatusGatewayTimeout || resp.Status == http.StatusRequestTimeout {
			// A proxy's timeout: the bank may have processed the request.
			e.Kind = adapters.KindAmbiguous
		}
		return nil, e
	}
	ans, err := parseForm(resp.Body)
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindAmbiguous, Code: "bad_response",
			Status: resp.Status, Message: "answer is not a form", Err: err}
	}
	if err := c.verifyBank(ans); err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindAmbiguous, Code: "bad_response_signature",
			Status: resp.Status, Message: "answer failed verification", Err: err}
	}
	return ans, nil
}

// respError is the error for an answer whose respCode is not handled by op.
func (c *Client) respError(op string, ans map[string]string) *adapters.Error {
	code := ans["respCode"]
	return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: errorKind(classify(code)), Code: code,
		Message: ans["respMsg"], Status: http.StatusOK}
}

// badAnswer is the error for a verified answer that does not fit the request.
func (c *Client) badAnswer(op string, err error) *adapters.Error {
	return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindAmbiguous, Code: "bad_response",
		Status: http.StatusOK, Message: "answer does not match the request", Err: err}
}

func (c *Client) invalid(op, code, msg string) *adapters.Error {
	return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindInvalid, Code: code, Message: msg}
}

// Create places an order: bank_redirect returns the signed front consume
// form (nothing is sent to the bank: the order comes into existence when the
// payer's browser posts it); qr applies for a QR code. Other methods are
// unsupported.
func (c *Client) Create(ctx context.Context, req *adapters.CreateRequest) (*adapters.CreateResult, error) {
	const op = "create"
	if req.Method != payment.MethodBankRedirect && req.Method != payment.MethodQR {
		return nil, adapters.Unsupported(c.cfg.ID, op)
	}
	if req.Currency != "CNY" {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindUnsupported, Code: "currency",
			Message: "currency " + req.Currency + " is not supported; ACP gateway payments are in CNY"}
	}
	switch {
	case !validOrderID(req.OrderNo):
		return nil, c.invalid(op, "order_no", "order number must be 8-32 letters or digits")
	case req.Amount < 1:
		return nil, c.invalid(op, "amount", "amount must be at least 1 fen")
	case req.CreatedAt.IsZero():
		return nil, c.invalid(op, "created_at", "creation time (txnTime) is required")
	}
	if req.Method == payment.MethodBankRedirect {
		fields, err := c.signed(consumeFields(c.m, req))
		if err != nil {
			return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindUnavailable, Code: "sign_failed", Err: err}
		}
		return &adapters.CreateResult{Action: payment.Action{Type: "form", URL: c.base + pathFront, Fields: fields}}, nil
	}
	ans, err := c.call(ctx, op, pathBack, qrApplyFields(c.m, req))
	if err != nil {
		return nil, err
	}
	if classify(ans["respCode"]) != outcomeOK {
		return nil, c.respError(op, ans)
	}
	want := map[string]string{"merId": c.m.merID, "orderId": req.OrderNo, "txnAmt": fen(req.Amount)}
	if err := checkEcho(ans, want, "merId", "orderId"); err != nil {
		return nil, c.badAnswer(op, err)
	}
	if ans["qrCode"] == "" {
		return nil, c.badAnswer(op, errors.New("answer has no qrCode"))
	}
	return &adapters.CreateResult{Action: payment.Action{Type: "qr_code", CodeURL: ans["qrCode"]}}, nil
}

// Query asks the bank for the consume req.OrderNo placed at req.CreatedAt.
// A front consume whose form the payer never posted is unknown to the bank:
// OrderNotFound.
func (c *Client) Query(ctx context.Context, req *adapters.QueryRequest) (*adapters.OrderState, error) {
	return c.query(ctx, "query", req)
}

func (c *Client) query(ctx context.Context, op string, req *adapters.QueryRequest) (*adapters.OrderState, error) {
	if !validOrderID(req.OrderNo) {
		return nil, c.invalid(op, "order_no", "order number must be 8-32 letters or digits")
	}
	if req.CreatedAt.IsZero() {
		return nil, c.invalid(op, "created_at", "creation time (txnTime) is required")
	}
	ans, err := c.call(ctx, op, pathQuery, queryFields(c.m, req.OrderNo, req.CreatedAt))
	if err != nil {
		return nil, err
	}
	switch classify(ans["respCode"]) {
	case outcomeOK:
	case outcomeNotFound:
		return &adapters.OrderState{Status: adapters.OrderNotFound}, nil
	default:
		return nil, c.respError(op, ans)
	}
	want := map[string]string{"merId": c.m.merID, "orderId": req.OrderNo}
	if req.Amount > 0 {
		want["txnAmt"] = fen(req.Amount)
	}
	if err := checkEcho(ans, want, "merId", "orderId", "origRespCode"); err != nil {
		return nil, c.badAnswer(op, err)
	}
	st := &adapters.OrderState{
		Status:         orderStatus(ans["origRespCode"]),
		ChannelTradeNo: ans["queryId"],
		Currency:       currencyOf(ans["currencyCode"]),
	}
	if s, ok := ans["txnAmt"]; ok {
		if st.Amount, err = parseFen(s); err != nil {
			return nil, c.badAnswer(op, err)
		}
	}
	if st.Status == adapters.OrderPaid {
		st.PaidAt = c.now()
		if t, ok := paidAtFrom(ans["txnTime"], ans["traceTime"]); ok {
			st.PaidAt = t
		}
	}
	return st, nil
}

// Close: ACP has no close for an unpaid consume. Close queries the order:
// paid → KindDeclined "already_paid"; lapsed (69) or failed → nil (nothing
// can be paid any more); anything else → KindDeclined "not_closable", since
// the order stays payable until its payTimeout (the payment's expiry) and
// nil would be a false close.
func (c *Client) Close(ctx context.Context, req *adapters.QueryRequest) error {
	const op = "close"
	st, err := c.query(ctx, op, req)
	if err != nil {
		return err
	}
	switch st.Status {
	case adapters.OrderPaid:
		return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindDeclined, Code: "already_paid",
			Message: "the order is paid; ACP cannot close it"}
	case adapters.OrderClosed, adapters.OrderFailed:
		return nil // lapsed at payTimeout (or failed): nothing can be paid any more
	}
	// ACP cannot cancel an unpaid consume: it stays payable until its
	// payTimeout (the payment's expiry). Answering nil would be a false
	// close; the gateway closes the payment once it has expired.
	return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindDeclined, Code: "not_closable",
		Message: "ACP cannot close an unpaid order; it lapses at its payTimeout"}
}

// Refund asks the bank to refund req.Amount of the consume whose queryId is
// req.ChannelTradeNo. The bank's synchronous "00" only accepts the refund:
// the result is RefundPending until the back notification or QueryRefund.
func (c *Client) Refund(ctx context.Context, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	const op = "refund"
	switch {
	case req.ChannelTradeNo == "":
		return nil, c.invalid(op, "orig_qry_id", "the payment's queryId (channel trade no) is required")
	case !validOrderID(req.RefundNo):
		return nil, c.invalid(op, "refund_no", "refund number must be 8-32 letters or digits")
	case req.Amount < 1:
		return nil, c.invalid(op, "amount", "amount must be at least 1 fen")
	case req.Currency != "" && req.Currency != "CNY":
		return nil, c.invalid(op, "currency", "currency "+req.Currency+" is not supported")
	case req.CreatedAt.IsZero():
		return nil, c.invalid(op, "created_at", "refund creation time (txnTime) is required")
	}
	ans, err := c.call(ctx, op, pathBack, refundFields(c.m, req))
	if err != nil {
		return nil, err
	}
	switch classify(ans["respCode"]) {
	case outcomeOK, outcomeInProgress:
	default:
		return nil, c.respError(op, ans)
	}
	want := map[string]string{"merId": c.m.merID, "orderId": req.RefundNo, "txnAmt": fen(req.Amount)}
	if err := checkEcho(ans, want, "merId", "orderId"); err != nil {
		return nil, c.badAnswer(op, err)
	}
	return &adapters.RefundState{Status: adapters.RefundPending, ChannelRefundNo: ans["queryId"], Amount: req.Amount}, nil
}

// QueryRefund queries the refund transaction req.RefundNo placed at
// req.CreatedAt.
func (c *Client) QueryRefund(ctx context.Context, req *adapters.RefundRequest) (*adapters.RefundState, error) {
	const op = "query_refund"
	if !validOrderID(req.RefundNo) {
		return nil, c.invalid(op, "refund_no", "refund number must be 8-32 letters or digits")
	}
	if req.CreatedAt.IsZero() {
		return nil, c.invalid(op, "created_at", "refund creation time (txnTime) is required")
	}
	ans, err := c.call(ctx, op, pathQuery, queryFields(c.m, req.RefundNo, req.CreatedAt))
	if err != nil {
		return nil, err
	}
	switch classify(ans["respCode"]) {
	case outcomeOK:
	case outcomeNotFound:
		return &adapters.RefundState{Status: adapters.RefundNotFound}, nil
	default:
		return nil, c.respError(op, ans)
	}
	want := map[string]string{"merId": c.m.merID, "orderId": req.RefundNo}
	if req.Amount > 0 {
		want["txnAmt"] = fen(req.Amount)
	}
	if err := checkEcho(ans, want, "merId", "orderId", "origRespCode"); err != nil {
		return nil, c.badAnswer(op, err)
	}
	st := &adapters.RefundState{Status: refundStatus(ans["origRespCode"]), ChannelRefundNo: ans["queryId"]}
	if s, ok := ans["txnAmt"]; ok {
		if st.Amount, err = parseFen(s); err != nil {
			return nil, c.badAnswer(op, err)
		}
	}
	return st, nil
}

// Interface guards.
var (
	_ adapters.Channel      = (*Client)(nil)
	_ adapters.Refunder     = (*Client)(nil)
	_ adapters.NotifyParser = (*Client)(nil)
	_ adapters.NotifyHinter = (*Client)(nil)
)
