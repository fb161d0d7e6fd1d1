package alipaysim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The simulator's own implementation of Alipay's wire rules. It does not
// import the adapter on purpose: a misreading of the protocol on one side is
// then caught by the other side's tests.

const timeLayout = "2006-01-02 15:04:05"

var beijing = time.FixedZone("CST", 8*60*60)

// signContent is Alipay's string to sign: every parameter whose key is not in
// exclude and whose value is not empty, sorted by key bytes, "k=v" joined by
// "&", values as they are (not URL-encoded).
func signContent(p map[string]string, exclude ...string) string {
	keys := make([]string, 0, len(p))
outer:
	for k, v := range p {
		if v == "" {
			continue
		}
		for _, x := range exclude {
			if k == x {
				continue outer
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + p[k]
	}
	return strings.Join(parts, "&")
}

func rsa2Sign(key *rsa.PrivateKey, msg []byte) string {
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		// Only a broken key or rand.Reader fails here; the key was checked at New.
		panic("alipaysim: sign: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func rsa2Verify(pub *rsa.PublicKey, msg []byte, sign string) bool {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(msg)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
}

// yuan writes fen as Alipay money: yuan with exactly two decimals.
func yuan(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }

// fenOf reads Alipay money (yuan, at most two decimals) into fen. It refuses
// signs, exponents, leading zeros, more than two decimals and more than 12
// integer digits.
func fenOf(s string) (int64, bool) {
	ip, fp, hasPoint := strings.Cut(s, ".")
	if ip == "" || len(ip) > 12 || (len(ip) > 1 && ip[0] == '0') || len(fp) > 2 || (hasPoint && fp == "") {
		return 0, false
	}
	var n int64
	for _, c := range ip {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	fp += "00"[len(fp):]
	for _, c := range fp {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// result is the code part of every answer.
type result struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code,omitempty"`
	SubMsg  string `json:"sub_msg,omitempty"`
}

var success = result{Code: "10000", Msg: "Success"}

func missingArg(sub, msg string) result {
	return result{Code: "40001", Msg: "Missing Required Arguments", SubCode: sub, SubMsg: msg}
}

func invalidArg(sub, msg string) result {
	return result{Code: "40002", Msg: "Invalid Arguments", SubCode: sub, SubMsg: msg}
}

func businessFailed(sub, msg string) result {
	return result{Code: "40004", Msg: "Business Failed", SubCode: sub, SubMsg: msg}
}

var unavailable = result{Code: "20000", Msg: "Service Currently Unavailable", SubCode: "isp.unknow-error", SubMsg: "系统繁忙"}

// responseKey is the member of method's answer.
func responseKey(method string) string {
	return strings.ReplaceAll(method, ".", "_") + "_response"
}

// writeAnswer writes {"<key>":B,"sign":"<sig over B>"}: B is produced once
// and the very same bytes are signed and written (PROTOCOLS §B.4). With
// key == nil the answer carries no sign (Alipay cannot sign for an app it
// does not know).
func writeAnswer(w http.ResponseWriter, member string, v any, key *rsa.PrivateKey) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	var out bytes.Buffer
	out.WriteString(`{"`)
	out.WriteString(member)
	out.WriteString(`":`)
	out.Write(b)
	if key != nil {
		out.WriteString(`,"sign":"`)
		out.WriteString(rsa2Sign(key, b))
		out.WriteString(`"`)
	}
	out.WriteString("}")
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(out.Bytes())
}

// readParams collects the request's parameters from the query string and,
// for a POST, the form body. A parameter given twice is refused: which copy
// was signed would be ambiguous.
func readParams(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	add := func(raw string) error {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return errors.New("malformed parameters")
		}
		for k, vs := range v {
			if _, dup := out[k]; dup || len(vs) != 1 {
				return fmt.Errorf("parameter %s is repeated", k)
			}
			out[k] = vs[0]
		}
		return nil
	}
	if err := add(r.URL.RawQuery); err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost {
		ct := r.Header.Get("Content-Type")
		if ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
			return nil, fmt.Errorf("content type %q is not a form", ct)
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			return nil, errors.New("body too large or unreadable")
		}
		if err := add(string(body)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

const maxBody = 64 << 10

// bizFields decodes biz_content: a JSON object whose values are strings
// (numbers are accepted for amounts, as Alipay does).
func bizFields(s string) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errors.New("biz_content is not a JSON object")
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var str string
		if err := json.Unmarshal(v, &str); err == nil {
			out[k] = str
			continue
		}
		var num json.Number
		if err := json.Unmarshal(v, &num); err == nil {
			out[k] = num.String()
			continue
		}
		// Objects and arrays (goods_detail, extend_params) are not used here.
		out[k] = string(v)
	}
	return out, nil
}
