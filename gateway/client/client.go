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
	"net/http"
	"strconv"
	"time"
)

// Signer signs requests for one merchant.
type Signer struct {
	Merchant string
	sign     func(msg []byte) ([]byte, error)
}

// HMAC returns a signer for an hmac-sha256 merchant key.
func HMAC(merchant string, secret []byte) *Signer {
	key := append([]byte(nil), secret...)
	return &Signer{Merchant: merchant, sign: func(msg []byte) ([]byte, error) {
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		return m.Sum(nil), nil
	}}
}

// RSA returns a signer for an rsa-sha256 merchant key (PKCS#1 v1.5, SHA-256).
func RSA(merchant string, key *rsa.PrivateKey) *Signer {
	return &Signer{Merchant: merchant, sign: func(msg []byte) ([]byte, error) {
		d := sha256.Sum256(msg)
		return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	}}
}

// Ed25519 returns a signer for an ed25519 merchant key.
func Ed25519(merchant string, key ed25519.PrivateKey) *Signer {
	return &Signer{Merchant: merchant, sign: func(msg []byte) ([]byte, error) { return ed25519.Sign(key, msg), nil }}
}

// Message is the canonical message: METHOD, REQUEST_URI (path plus "?" and
// the raw query), TIMESTAMP, NONCE and BODY, each followed by "\n".
func Message(method, requestURI string, ts int64, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(method)+len(requestURI)+len(nonce)+len(body)+20)
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, requestURI...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, body...)
	return append(b, '\n')
}

// Sign returns the X-Paygate-Signature value.
func (s *Signer) Sign(method, requestURI string, ts int64, nonce string, body []byte) (string, error) {
	sig, err := s.sign(Message(method, requestURI, ts, nonce, body))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

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
