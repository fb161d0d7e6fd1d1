// Package client signs merchant requests to paygate (CONTRACT §2). It is
// what a Go merchant integration needs, and what paygate's own tests and its
// load generator use.
package client

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Signer signs requests for one merchant. It is safe for concurrent use.
type Signer struct {
	Merchant string
	// sign appends the base64 signature of msg to dst.
	sign func(dst, msg []byte) ([]byte, error)
}

// hmacState is a keyed hash with room for its sum: hmac.New costs
// allocations and two key-block hashes, Reset keeps the keyed state.
type hmacState struct {
	h   hash.Hash
	sum []byte
}

// HMAC returns a signer for an hmac-sha256 merchant key. Its signatures
// allocate nothing (a pool of keyed hashes), which the load generator needs.
func HMAC(merchant string, secret []byte) *Signer {
	key := append([]byte(nil), secret...)
	pool := &sync.Pool{New: func() any {
		return &hmacState{h: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
	}}
	return &Signer{Merchant: merchant, sign: func(dst, msg []byte) ([]byte, error) {
		st := pool.Get().(*hmacState)
		st.h.Reset()
		st.h.Write(msg)
		st.sum = st.h.Sum(st.sum[:0])
		dst = base64.StdEncoding.AppendEncode(dst, st.sum)
		pool.Put(st)
		return dst, nil
	}}
}

// RSA returns a signer for an rsa-sha256 merchant key (PKCS#1 v1.5, SHA-256).
func RSA(merchant string, key *rsa.PrivateKey) *Signer {
	return &Signer{Merchant: merchant, sign: func(dst, msg []byte) ([]byte, error) {
		d := sha256.Sum256(msg)
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
		if err != nil {
			return dst, err
		}
		return base64.StdEncoding.AppendEncode(dst, sig), nil
	}}
}

// Ed25519 returns a signer for an ed25519 merchant key.
func Ed25519(merchant string, key ed25519.PrivateKey) *Signer {
	return &Signer{Merchant: merchant, sign: func(dst, msg []byte) ([]byte, error) {
		return base64.StdEncoding.AppendEncode(dst, ed25519.Sign(key, msg)), nil
	}}
}

// Message is the canonical message: METHOD, REQUEST_URI (path plus "?" and
// the raw query), TIMESTAMP, NONCE and BODY, each followed by "\n".
func Message(method, requestURI string, ts int64, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(method)+len(requestURI)+len(nonce)+len(body)+20)
	return AppendMessage(b, []byte(method), []byte(requestURI), ts, []byte(nonce), body)
}

// AppendMessage appends the canonical message to dst (Message without an
// allocation when dst has room).
func AppendMessage(dst, method, requestURI []byte, ts int64, nonce, body []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, '\n')
	dst = append(dst, requestURI...)
	dst = append(dst, '\n')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, '\n')
	dst = append(dst, nonce...)
	dst = append(dst, '\n')
	dst = append(dst, body...)
	return append(dst, '\n')
}

// Sign returns the X-Paygate-Signature value.
func (s *Signer) Sign(method, requestURI string, ts int64, nonce string, body []byte) (string, error) {
	sig, err := s.AppendSignature(nil, Message(method, requestURI, ts, nonce, body))
	return string(sig), err
}

// AppendSignature appends the X-Paygate-Signature value of msg, a canonical
// message (AppendMessage), to dst.
func (s *Signer) AppendSignature(dst, msg []byte) ([]byte, error) { return s.sign(dst, msg) }

// NewNonce returns a random 32-character nonce.
func NewNonce() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SetHeaders signs req (whose body is body) now, with a fresh nonce, and
// sets the four auth headers.
func (s *Signer) SetHeaders(req *http.Request, body []byte) error {
	ts := time.Now().Unix()
	nonce := NewNonce()
	sig, err := s.Sign(req.Method, req.URL.RequestURI(), ts, nonce, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Paygate-Merchant", s.Merchant)
	req.Header.Set("X-Paygate-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Paygate-Nonce", nonce)
	req.Header.Set("X-Paygate-Signature", sig)
	return nil
}
