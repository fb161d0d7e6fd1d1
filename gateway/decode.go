package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/paygate/paygate/notify"
	"github.com/paygate/paygate/payment"
)

// createPaymentRequest is the body of POST /v1/payments (CONTRACT §4), as
// decodeStrict reads it: the tags are the exact, case-sensitive names.
type createPaymentRequest struct {
	OutTradeNo string     `json:"out_trade_no"`
	Amount     number     `json:"amount"`
	Currency   string     `json:"currency"`
	Method     string     `json:"method"`
	Subject    string     `json:"subject"`
	NotifyURL  string     `json:"notify_url"`
	ExpireIn   *number    `json:"expire_in"`
	Payer      *payerInfo `json:"payer"`
	Metadata   metadata   `json:"metadata"`

	amount   int64 // parsed
	expireIn int64 // parsed, default applied
}

type payerInfo struct {
	OpenID   string `json:"openid"`
	ClientIP string `json:"client_ip"`
}

// createRefundRequest is the body of POST /v1/payments/{id}/refunds.
type createRefundRequest struct {
	OutRefundNo string `json:"out_refund_no"`
	Amount      number `json:"amount"`
	Reason      string `json:"reason"`

	amount int64
}

// number is a JSON number kept as its literal text. A quoted string is a
// type error: "amount": "100" is refused (UnmarshalJSONFrom).
type number string

// metadata is a payment's metadata: string names and string values.
type metadata map[string]string

// maxMetadataKeys is the most metadata keys a payment may carry (CONTRACT §4).
const maxMetadataKeys = 20

// maxDepth is the nesting jsontext follows before calling a body
// malformed, so a body of 64 KiB of '[' cannot exhaust the stack.
const maxDepth = 10000

// strictJSON are the options of the one JSON decoder every merchant body
// goes through (github.com/go-json-experiment/json, the design of Go's
// encoding/json/v2). Everything a merchant's JSON library might read
// differently from ours is refused: a name repeated in one object at any
// depth, a name that differs from a field only in case, unknown fields,
// invalid UTF-8 and unpaired surrogate escapes (RFC 7493, I-JSON), trailing
// data. Two rules the library's options alone let through are added by
// the UnmarshalJSONFrom methods below: a number given as a string
// ("amount":"100"; exponents and fractions are then refused by parseAmount)
// and null for a metadata value ({"a":null} would otherwise become "a":"").
// Methods rather than json.WithUnmarshalers: the library then looks no type
// up per value.
var strictJSON = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// syntaxOnly reads any well-formed JSON: explainDecode's second pass.
var syntaxOnly = json.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// kindError is a value of the wrong JSON kind for its field.
type kindError string

func (e kindError) Error() string { return string(e) }

const (
	errNotNumber kindError = "must be a number"
	errNotString kindError = "must be a string"
	errNotObject kindError = "must be an object"
)

// decodeStrict decodes one JSON object (a *createPaymentRequest or
// *createRefundRequest) from body with strictJSON. Each problem is 400
// invalid_request naming the field by its full path ("payer.openid",
// "metadata.cart"). A syntax error wins over any other problem, as with
// encoding/json, so the message says what is wrong first; finding it costs
// a second scan, on the error path only.
func decodeStrict(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return invalid("body", "a JSON object is required")
	}
	var err error
	if trimmed[0] != '{' {
		err = invalid("body", "must be an object") // null included, which Unmarshal would take as {}
	} else if err = json.Unmarshal(body, v, strictJSON); err == nil {
		return nil
	}
	return explainDecode(body, err)
}

// UnmarshalJSONFrom keeps a JSON number as its literal text and refuses
// every other kind, null included (a nullable number is a *number, which
// the library sets to nil for null without calling this).
func (n *number) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if dec.PeekKind() != '0' {
		return errNotNumber
	}
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	*n = number(v)
	return nil
}

// UnmarshalJSONFrom decodes an object of strings (null leaves it nil).
// Names repeated in it are refused by jsontext, as everywhere.
func (m *metadata) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	switch dec.PeekKind() {
	case 'n':
		_, err := dec.ReadToken()
		*m = nil
		return err
	case '{':
	default:
		return errNotObject
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	out := make(metadata)
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		key := tok.String() // before the next read voids tok
		if len(out) == maxMetadataKeys {
			return invalid(pointerPath(dec.StackPointer().Parent()), "at most %d keys", maxMetadataKeys)
		}
		if dec.PeekKind() != '"' {
			return errNotString
		}
		val, err := dec.ReadToken()
		if err != nil {
			return err
		}
		out[key] = val.String()
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	*m = out
	return nil
}

// explainDecode turns the decoder's error into the merchant's message.
// When body is not well-formed JSON, the syntax error is reported, whatever
// the strict pass stopped at first (an unknown field, say, before a
// truncation).
func explainDecode(body []byte, err error) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body), syntaxOnly)
	if serr := dec.SkipValue(); serr != nil {
		var se *jsontext.SyntacticError
		switch {
		case dec.StackDepth() >= maxDepth:
			return invalid("body", "malformed JSON: nested more than %d levels", maxDepth)
		case errors.Is(serr, io.ErrUnexpectedEOF) || serr == io.EOF:
			return invalid("body", "malformed JSON: unexpected end")
		case errors.As(serr, &se):
			return invalid("body", "malformed JSON at byte %d", offendingByte(body, se.ByteOffset)+1)
		}
		return invalid("body", "malformed JSON")
	}
	end := dec.InputOffset() // the first value is well-formed: the strict pass found something else
	var e *Error
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &syn) && syn.ByteOffset >= end:
		return invalid("body", "unexpected data after the JSON object")
	case errors.As(err, &syn) && syn.Err == jsontext.ErrDuplicateName:
		return invalid(pointerPath(syn.JSONPointer), "duplicate field")
	case errors.As(err, &syn): // well-formed, so not valid Unicode: invalid UTF-8, an unpaired surrogate
		if inName(body, syn.ByteOffset) {
			return invalid(orBody(pointerPath(syn.JSONPointer)), "field names must be valid UTF-8")
		}
		return invalid(pointerPath(syn.JSONPointer), "must be valid UTF-8")
	case errors.As(err, &sem):
		path := orBody(pointerPath(sem.JSONPointer))
		var ke kindError
		switch {
		case sem.Err == json.ErrUnknownName:
			return invalid(path, "unknown field")
		case errors.As(sem.Err, &ke):
			return invalid(path, "%s", ke)
		case sem.GoType != nil && sem.GoType.Kind() == reflect.String:
			return invalid(path, "%s", errNotString)
		case sem.GoType != nil:
			return invalid(path, "%s", errNotObject)
		}
	}
	return invalid("body", "malformed JSON")
}

// offendingByte refines the offset jsontext reports for a syntax error to
// the byte that makes the text malformed: for a comma followed by no value
// jsontext names the comma (the byte after it is at fault, unless the comma
// opens the object or array), and for a bad escape its backslash.
func offendingByte(body []byte, off int64) int64 {
	i := int(off)
	if i < 0 || i >= len(body) {
		return off
	}
	switch body[i] {
	case ',':
		p := i - 1
		for p >= 0 && isSpace(body[p]) {
			p--
		}
		if p < 0 || body[p] == '{' || body[p] == '[' {
			break
		}
		i++
		for i < len(body) && isSpace(body[i]) {
			i++
		}
	case '\\':
		i++
		if i < len(body) && body[i] == 'u' {
			i++
			for k := 0; k < 4 && i < len(body) && isHex(body[i]); k++ {
				i++
			}
		}
	}
	return int64(i)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// inName reports whether the string holding body[off] (well-formed JSON)
// is an object member's name, i.e. followed by ':'.
func inName(body []byte, off int64) bool {
	i := int(off)
	for ; i < len(body) && body[i] != '"'; i++ {
		if body[i] == '\\' {
			i++
		}
	}
	for i++; i < len(body); i++ {
		if !isSpace(body[i]) {
			return body[i] == ':'
		}
	}
	return false
}

// pointerPath is a JSON pointer ("/payer/openid") as the dotted path error
// messages use ("payer.openid"), each name cut by displayKey.
func pointerPath(p jsontext.Pointer) string {
	var path string
	for name := range p.Tokens() {
		path = join(path, displayKey([]byte(name)))
	}
	return path
}

// join is the path of member name of the object at path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// displayKey is a merchant-supplied key (valid UTF-8) as echoed in an error
// message: at most 64 bytes, cut at a character boundary.
func displayKey(key []byte) string {
	const max = 64
	if len(key) <= max {
		return string(key)
	}
	n := max
	for n > 0 && !utf8.RuneStart(key[n]) {
		n--
	}
	return string(key[:n]) + "..."
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
	if err := validNotifyURL(r.NotifyURL); err != nil {
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
			// A zone ("fe80::1%eth0") names an interface of the sender's
			// host, not a payer: refused, so that no spelling of one
			// address can pass for another payer in risk rules.
			if a, err := netip.ParseAddr(r.Payer.ClientIP); err != nil || a.Zone() != "" {
				return invalid("payer.client_ip", "must be an IP address without a zone")
			}
		}
	}
	if payment.Method(r.Method) == payment.MethodWechatJSAPI && (r.Payer == nil || r.Payer.OpenID == "") {
		return invalid("payer.openid", "is required for method wechat_jsapi")
	}
	if len(r.Metadata) > maxMetadataKeys {
		return invalid("metadata", "at most %d keys", maxMetadataKeys)
	}
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad key named is the same on every try
	for _, k := range keys {
		switch n := utf8.RuneCountInString(k); {
		case n == 0:
			return invalid("metadata", "keys must not be empty")
		case n > 64:
			return invalid("metadata."+displayKey([]byte(k)), "keys must be at most 64 characters")
		}
		if utf8.RuneCountInString(r.Metadata[k]) > 256 {
			return invalid("metadata."+k, "must be at most 256 characters")
		}
	}
	return nil
}

// validNotifyURL applies notify.ValidateNotifyURL, the check the
// dispatcher makes before every delivery, so that a URL that could never be
// delivered (a numeric host such as http://2130706433/) is a 400 now rather
// than a dead letter later.
func validNotifyURL(s string) error {
	if s == "" {
		return invalid("notify_url", "is required")
	}
	if err := notify.ValidateNotifyURL(s); err != nil {
		msg := strings.TrimPrefix(err.Error(), "notify_url: ")
		return invalid("notify_url", "%s", strings.TrimPrefix(msg, "notify: "))
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
