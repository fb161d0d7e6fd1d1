package wechatpay

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/adapters"
)

// Headers of WeChat Pay's answers and notifications (PROTOCOLS §A.3).
const (
	hdrTimestamp     = "Wechatpay-Timestamp"
	hdrNonce         = "Wechatpay-Nonce"
	hdrSignature     = "Wechatpay-Signature"
	hdrSerial        = "Wechatpay-Serial"
	hdrSignatureType = "Wechatpay-Signature-Type"
)

// signTestPrefix marks WeChat's deliberately invalid probe signatures
// (https://pay.weixin.qq.com/doc/v3/merchant/4016241880).
const signTestPrefix = "WECHATPAY/SIGNTEST/"

// maxNotifyBytes bounds the notification body the parser accepts.
const maxNotifyBytes = 64 << 10

// Verification failures. They never include the signature itself.
var (
	errNoSignature    = errors.New("missing Wechatpay-Timestamp, -Nonce, -Signature or -Serial header")
	errUnknownSerial  = errors.New("Wechatpay-Serial names a key we do not have")
	errSignTest       = errors.New("WECHATPAY/SIGNTEST/ probe signature")
	errBadTimestamp   = errors.New("Wechatpay-Timestamp is not unix seconds")
	errSkew           = errors.New("Wechatpay-Timestamp is 5 minutes or more away from our clock")
	errSignatureType  = errors.New("unsupported Wechatpay-Signature-Type")
	errSignatureCheck = errors.New("signature does not verify with the platform key")
)

// verify checks the Wechatpay-* headers of an answer or a notification over
// TIMESTAMP\nNONCE\nBODY\n with the platform key chosen by Wechatpay-Serial.
func (c *Client) verify(h http.Header, body []byte) error {
	ts, nonce, sig, serial := h.Get(hdrTimestamp), h.Get(hdrNonce), h.Get(hdrSignature), h.Get(hdrSerial)
	if ts == "" || nonce == "" || sig == "" || serial == "" {
		return errNoSignature
	}
	if t := h.Get(hdrSignatureType); t != "" && t != authScheme {
		return errSignatureType
	}
	if serial != c.cfg.PlatformSerial {
		return errUnknownSerial
	}
	if strings.HasPrefix(sig, signTestPrefix) {
		return errSignTest
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errBadTimestamp
	}
	skew := c.now().Sub(time.Unix(sec, 0))
	if skew >= maxSkew || skew <= -maxSkew {
		return errSkew
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return errSignatureCheck
	}
	msg := make([]byte, 0, len(ts)+len(nonce)+len(body)+3)
	msg = append(append(append(append(append(append(msg, ts...), '\n'), nonce...), '\n'), body...), '\n')
	sum := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(c.cfg.PlatformKey, crypto.SHA256, sum[:], raw); err != nil {
		return errSignatureCheck
	}
	return nil
}

// notifyEnvelope is the JSON body of a notification (PROTOCOLS §A.8).
type notifyEnvelope struct {
	ID           string         `json:"id"`
	CreateTime   string         `json:"create_time"`
	ResourceType string         `json:"resource_type"`
	EventType    string         `json:"event_type"`
	Summary      string         `json:"summary"`
	Resource     notifyResource `json:"resource"`
}

type notifyResource struct {
	OriginalType   string `json:"original_type"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

// ParseNotify verifies a notification's Wechatpay-* headers over the exact
// raw body (signature, serial, SIGNTEST probes, 5-minute skew), then decrypts
// the AEAD_AES_256_GCM resource with the APIv3 key and decodes a transaction
// (TRANSACTION.*) or a refund (REFUND.*). A notification for another mchid is
// refused with KindBadSignature, code "account_mismatch".
func (c *Client) ParseNotify(_ context.Context, cb *adapters.Callback) (*adapters.Notification, error) {
	const op = "notify"
	fail := func(kind adapters.Kind, code, msg string, err error) error {
		return &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: kind, Code: code, Message: msg, Err: err}
	}
	if len(cb.Body) > maxNotifyBytes {
		return nil, fail(adapters.KindInvalid, "bad_notification", "body too large", nil)
	}
	if err := c.verify(cb.Header, cb.Body); err != nil {
		return nil, fail(adapters.KindBadSignature, "bad_signature", "notification failed verification", err)
	}
	var env notifyEnvelope
	if err := json.Unmarshal(cb.Body, &env); err != nil {
		return nil, fail(adapters.KindInvalid, "bad_notification", "body is not a notification envelope", err)
	}
	if env.Resource.Algorithm != "AEAD_AES_256_GCM" {
		return nil, fail(adapters.KindInvalid, "unsupported_algorithm",
			fmt.Sprintf("resource algorithm %q", env.Resource.Algorithm), nil)
	}
	plain, err := c.openResource(&env.Resource)
	if err != nil {
		// Authentication of the ciphertext failed: as untrustworthy as a bad signature.
		return nil, fail(adapters.KindBadSignature, "decrypt_failed", "resource does not decrypt with the APIv3 key", err)
	}
	var n *adapters.Notification
	switch {
	case strings.HasPrefix(env.EventType, "TRANSACTION."):
		var t transaction
		if err := json.Unmarshal(plain, &t); err != nil || t.OutTradeNo == "" {
			return nil, fail(adapters.KindInvalid, "bad_notification", "resource is not a transaction", err)
		}
		n = paymentNotification(&t)
	case strings.HasPrefix(env.EventType, "REFUND."):
		var r refundNotice
		if err := json.Unmarshal(plain, &r); err != nil || r.OutRefundNo == "" {
			return nil, fail(adapters.KindInvalid, "bad_notification", "resource is not a refund", err)
		}
		n = refundNotification(&r)
		if n.OrderNo == "" {
			return nil, fail(adapters.KindInvalid, "bad_notification", "refund names no order", nil)
		}
	default:
		return nil, fail(adapters.KindInvalid, "unknown_event", fmt.Sprintf("event_type %q", env.EventType), nil)
	}
	if n.Account != c.cfg.MchID {
		return nil, fail(adapters.KindBadSignature, "account_mismatch", "notification is for another mchid", nil)
	}
	return n, nil
}

// NotifyHint names the order a notification claims to be about, without
// verifying its signature (the resource is still opened with the APIv3 key).
// The edge uses it only to query the channel sooner.
func (c *Client) NotifyHint(cb *adapters.Callback) string {
	var env notifyEnvelope
	if len(cb.Body) > maxNotifyBytes || json.Unmarshal(cb.Body, &env) != nil {
		return ""
	}
	plain, err := c.openResource(&env.Resource)
	if err != nil {
		return ""
	}
	var ids struct {
		OutTradeNo string `json:"out_trade_no"`
	}
	if json.Unmarshal(plain, &ids) != nil {
		return ""
	}
	return ids.OutTradeNo
}

// Ack is WeChat Pay's answer to a notification: 204 without a body on
// success; otherwise 500 (400 when the notification failed verification)
// with {"code":"FAIL","message":"失败"}, which makes WeChat retry.
func (c *Client) Ack(err error) adapters.Ack {
	if err == nil {
		return adapters.Ack{Status: http.StatusNoContent}
	}
	status := http.StatusInternalServerError
	if e, ok := adapters.AsError(err); ok && e.Kind == adapters.KindBadSignature {
		status = http.StatusBadRequest
	}
	return adapters.Ack{Status: status, ContentType: "application/json", Body: []byte(`{"code":"FAIL","message":"失败"}`)}
}

// openResource decrypts a notification resource with the APIv3 key (32
// bytes, so AES-256-GCM).
func (c *Client) openResource(r *notifyResource) ([]byte, error) {
	if len(c.cfg.APIv3Key) != 32 {
		return nil, errors.New("APIv3 key is not 32 bytes")
	}
	return decryptAEAD(c.cfg.APIv3Key, r.Nonce, r.AssociatedData, r.Ciphertext)
}

// decryptAEAD opens an AES-GCM resource: key as-is (16, 24 or 32 bytes; the
// APIv3 key is 32, so AES-256), the nonce string's bytes as the IV,
// associatedData as the AAD, and base64 ciphertext whose last 16 bytes are
// the tag (PROTOCOLS §A.8).
func decryptAEAD(key []byte, nonce, associatedData, ciphertextB64 string) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(ciphertextB64)
	if err != nil {
		return nil, fmt.Errorf("ciphertext is not base64: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) == 0 {
		return nil, errors.New("empty nonce")
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
	if err != nil {
		return nil, err
	}
	if len(ct) < gcm.Overhead() {
		return nil, errors.New("ciphertext shorter than the tag")
	}
	return gcm.Open(nil, []byte(nonce), ct, []byte(associatedData))
}
