package wechatsim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// authScheme is the only scheme API v3 accepts (PROTOCOLS §A.2).
const authScheme = "WECHATPAY2-SHA256-RSA2048"

// authorization is a parsed Authorization header.
type authorization struct {
	MchID     string
	Nonce     string
	Timestamp string
	SerialNo  string
	Signature string
}

// maxAuthorizationLen bounds what the parser looks at; a real header is
// about 500 bytes.
const maxAuthorizationLen = 4096

// parseAuthorization parses
//
//	WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",timestamp="…",serial_no="…",signature="…"
//
// The key="value" pairs may come in any order (the official Java utility and
// Go SDK use different orders), with optional spaces around the commas.
// Values are double-quoted and cannot contain '"'. Unknown keys are ignored;
// a repeated key, a missing or empty required key is an error.
func parseAuthorization(h string) (authorization, error) {
	var a authorization
	if len(h) > maxAuthorizationLen {
		return a, errors.New("header too long")
	}
	rest, ok := strings.CutPrefix(h, authScheme)
	if !ok {
		return a, errors.New("scheme is not " + authScheme)
	}
	if rest == "" || rest[0] != ' ' {
		return a, errors.New("no parameters after the scheme")
	}
	rest = strings.TrimLeft(rest, " ")
	seen := map[string]bool{}
	for {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return a, errors.New("expected key=\"value\"")
		}
		key := rest[:eq]
		if strings.ContainsAny(key, " \t,\"") {
			return a, fmt.Errorf("bad key %q", key)
		}
		rest = rest[eq+1:]
		if rest == "" || rest[0] != '"' {
			return a, fmt.Errorf("value of %s is not quoted", key)
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return a, fmt.Errorf("value of %s is not terminated", key)
		}
		val := rest[1 : 1+end]
		rest = rest[end+2:]
		if seen[key] {
			return a, fmt.Errorf("%s appears twice", key)
		}
		seen[key] = true
		switch key {
		case "mchid":
			a.MchID = val
		case "nonce_str":
			a.Nonce = val
		case "timestamp":
			a.Timestamp = val
		case "serial_no":
			a.SerialNo = val
		case "signature":
			a.Signature = val
		}
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return a, errors.New("expected ',' between parameters")
		}
		rest = strings.TrimLeft(rest[1:], " ")
	}
	for _, f := range []struct{ name, v string }{
		{"mchid", a.MchID}, {"nonce_str", a.Nonce}, {"timestamp", a.Timestamp},
		{"serial_no", a.SerialNo}, {"signature", a.Signature},
	} {
		if f.v == "" {
			return a, fmt.Errorf("%s is missing", f.name)
		}
	}
	return a, nil
}

// String formats a in the official SDK's order.
func (a authorization) String() string {
	return fmt.Sprintf(`%s mchid="%s",nonce_str="%s",timestamp="%s",serial_no="%s",signature="%s"`,
		authScheme, a.MchID, a.Nonce, a.Timestamp, a.SerialNo, a.Signature)
}

// signError is why a request's authentication failed, in WeChat's words.
type signError struct {
	message string // the answer's message
	issue   string // detail.detail.issue
}

// authenticate checks the Authorization of a request as WeChat Pay does:
// scheme, our mchid, the registered merchant certificate serial, the
// 5-minute timestamp window, and the SHA256-RSA signature over
// METHOD\nREQUEST_URI\nTIMESTAMP\nNONCE\nBODY\n with the merchant public key.
func (s *Sim) authenticate(r *http.Request, requestURI string, body []byte) *signError {
	a, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return &signError{"Http头缺少Authorization或格式错误", err.Error()}
	}
	if a.MchID != s.mchID {
		return &signError{"Http头Authorization中的mchid与商户号不一致", "mchid mismatch"}
	}
	if a.SerialNo != s.merchantSerial {
		return &signError{"商户证书序列号有误。请使用签名私钥匹配的证书序列号", "unknown serial_no"}
	}
	ts, err := strconv.ParseInt(a.Timestamp, 10, 64)
	if err != nil {
		return &signError{"Http头Authorization中的timestamp格式错误", "timestamp is not unix seconds"}
	}
	if skew := s.now().Unix() - ts; skew > maxSkewSeconds || skew < -maxSkewSeconds {
		return &signError{"Http头Authorization中的timestamp与发起请求的时间不得超过5分钟", "timestamp expired"}
	}
	sig, err := base64.StdEncoding.DecodeString(a.Signature)
	if err != nil {
		return &signError{"错误的签名,验签失败", "signature is not base64"}
	}
	msg := r.Method + "\n" + requestURI + "\n" + a.Timestamp + "\n" + a.Nonce + "\n" + string(body) + "\n"
	sum := sha256.Sum256([]byte(msg))
	if rsa.VerifyPKCS1v15(s.merchantKey, crypto.SHA256, sum[:], sig) != nil {
		return &signError{"错误的签名,验签失败", "sign not match"}
	}
	return nil
}

// maxSkewSeconds: WeChat refuses a request more than 5 minutes off.
const maxSkewSeconds = 300

// signPlatform is base64(SHA256-RSA(platform key, msg)).
func (s *Sim) signPlatform(msg []byte) (string, error) {
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.platformKey, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// signedHeaders are the Wechatpay-* headers of an answer or a notification:
// a signature over TIMESTAMP\nNONCE\nBODY\n with the platform key.
func (s *Sim) signedHeaders(h http.Header, body []byte) error {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	nonce := randomString(32, alnum)
	msg := make([]byte, 0, len(ts)+len(nonce)+len(body)+3)
	msg = append(append(append(append(append(append(msg, ts...), '\n'), nonce...), '\n'), body...), '\n')
	sig, err := s.signPlatform(msg)
	if err != nil {
		return err
	}
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Signature", sig)
	h.Set("Wechatpay-Serial", s.platformSerial)
	return nil
}

const (
	alnum  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	digits = "0123456789"
	hexLow = "0123456789abcdef"
)

// randomString is n characters of alphabet from crypto/rand.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("wechatsim: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
