package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/paygate/paygate/payment"
)

// createPaymentRequest is the body of POST /v1/payments (CONTRACT §4).
type createPaymentRequest struct {
	OutTradeNo string            `json:"out_trade_no"`
	Amount     number            `json:"amount"`
	Currency   string            `json:"currency"`
	Method     string            `json:"method"`
	Subject    string            `json:"subject"`
	NotifyURL  string            `json:"notify_url"`
	ExpireIn   *number           `json:"expire_in"`
	Payer      *payerInfo        `json:"payer"`
	Metadata   map[string]string `json:"metadata"`

	amount   int64 // parsed
	expireIn int64 // parsed, default applied
}

type payerInfo struct {
	OpenID   string `json:"openid"`
	ClientIP string `json:"client_ip"`
}

type createRefundRequest struct {
	OutRefundNo string `json:"out_refund_no"`
	Amount      number `json:"amount"`
	Reason      string `json:"reason"`

	amount int64
}

// number is a JSON number kept as its literal text. Unlike json.Number it
// refuses a quoted string: "amount": "100" is a type error.
type number string

func (n *number) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || !(b[0] == '-' || '0' <= b[0] && b[0] <= '9') {
		return &json.UnmarshalTypeError{Value: "non-number", Type: reflect.TypeOf(int64(0))}
	}
	*n = number(b)
	return nil
}

// decodeStrict decodes one JSON object into v: unknown fields, wrong types,
// trailing data and an empty body are 400 invalid_request naming the field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("body", "a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("body", "unexpected data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return invalid(field, "must be %s", jsonKind(te.Type.Kind().String()))
	case errors.As(err, &se):
		return invalid("body", "malformed JSON at byte %d", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return invalid(name, "unknown field")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid("body", "malformed JSON: unexpected end")
	}
	return invalid("body", "malformed JSON")
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "int64", "int", "float64":
		return "a number"
	}
	return "of another type"
}

func isRefToken(s string, max int) bool {
	return len(s) >= 1 && len(s) <= max && isToken([]byte(s))
}

// parseAmount: an integer ≥ 1 in minor units, no fraction, no exponent.
func parseAmount(field string, n number) (int64, error) {
	if n == "" {
		return 0, invalid(field, "is required")
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, invalid(field, "must be an integer amount in minor units (fen)")
	}
	if v < 1 {
		return 0, invalid(field, "must be at least 1")
	}
	return v, nil
}

// validate checks every field rule of CONTRACT §4 that does not depend on
// the merchant (limits and allowed methods are checked by the caller).
func (r *createPaymentRequest) validate(currencies map[string]bool) error {
	if r.OutTradeNo == "" {
		return invalid("out_trade_no", "is required")
	}
	if !isRefToken(r.OutTradeNo, 32) {
		return invalid("out_trade_no", "must be 1-32 characters of [A-Za-z0-9_-]")
	}
	amt, err := parseAmount("amount", r.Amount)
	if err != nil {
		return err
	}
	r.amount = amt
	switch {
	case r.Currency == "":
		return invalid("currency", "is required")
	case r.Currency != "CNY" && !currencies[r.Currency]:
		return invalid("currency", "%q is not supported", r.Currency)
	}
	if r.Method == "" {
		return invalid("method", "is required")
	}
	if !payment.Method(r.Method).Valid() {
		return invalid("method", "unknown method %q", r.Method)
	}
	if n := utf8.RuneCountInString(r.Subject); n < 1 || n > 127 || !utf8.ValidString(r.Subject) {
		if r.Subject == "" {
			return invalid("subject", "is required")
		}
		return invalid("subject", "must be 1-127 characters")
	}
	if err := validateNotifyURL(r.NotifyURL); err != nil {
		return err
	}
	r.expireIn = 900
	if r.ExpireIn != nil {
		v, err := strconv.ParseInt(string(*r.ExpireIn), 10, 64)
		if err != nil || v < 60 || v > 86400 {
			return invalid("expire_in", "must be an integer number of seconds from 60 to 86400")
		}
		r.expireIn = v
	}
	if r.Payer != nil {
		if len(r.Payer.OpenID) > 128 {
			return invalid("payer.openid", "must be at most 128 characters")
		}
		if r.Payer.ClientIP != "" {
			if _, err := netip.ParseAddr(r.Payer.ClientIP); err != nil {
				return invalid("payer.client_ip", "must be an IP address")
			}
		}
	}
	if payment.Method(r.Method) == payment.MethodWechatJSAPI && (r.Payer == nil || r.Payer.OpenID == "") {
		return invalid("payer.openid", "is required for method wechat_jsapi")
	}
	if len(r.Metadata) > 20 {
		return invalid("metadata", "at most 20 keys")
	}
	for k, v := range r.Metadata {
		if k == "" || len(k) > 64 {
			return invalid("metadata", "keys must be 1-64 characters")
		}
		if utf8.RuneCountInString(v) > 256 {
			return invalid("metadata."+k, "must be at most 256 characters")
		}
	}
	return nil
}

func validateNotifyURL(s string) error {
	if s == "" {
		return invalid("notify_url", "is required")
	}
	if len(s) > 255 {
		return invalid("notify_url", "must be at most 255 characters")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return invalid("notify_url", "must be an absolute http or https URL")
	}
	return nil
}

func (r *createRefundRequest) validate() error {
	if r.OutRefundNo == "" {
		return invalid("out_refund_no", "is required")
	}
	if !isRefToken(r.OutRefundNo, 64) {
		return invalid("out_refund_no", "must be 1-64 characters of [A-Za-z0-9_-]")
	}
	amt, err := parseAmount("amount", r.Amount)
	if err != nil {
		return err
	}
	r.amount = amt
	if utf8.RuneCountInString(r.Reason) > 80 {
		return invalid("reason", "must be at most 80 characters")
	}
	return nil
}
