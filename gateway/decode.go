package gateway

import (
	"errors"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/paygate/paygate/notify"
	"github.com/paygate/paygate/payment"
)

// createPaymentRequest is the body of POST /v1/payments (CONTRACT §4). It is
// filled by decodeStrict, not by encoding/json; the tags document the names.
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

// createRefundRequest is the body of POST /v1/payments/{id}/refunds.
type createRefundRequest struct {
	OutRefundNo string `json:"out_refund_no"`
	Amount      number `json:"amount"`
	Reason      string `json:"reason"`

	amount int64
}

// number is a JSON number kept as its literal text. A quoted string is a
// type error: "amount": "100" is refused.
type number string

// maxMetadataKeys is the most metadata keys a payment may carry (CONTRACT §4).
const maxMetadataKeys = 20

// The members of each body, in JSON spelling. Keys match exactly
// (case-sensitively), unlike encoding/json: {"amount":1,"AMOUNT":2} must not
// mean one thing to the merchant's JSON library and another to ours.
var (
	createPaymentMembers = []string{"out_trade_no", "amount", "currency", "method", "subject", "notify_url", "expire_in", "payer", "metadata"}
	payerMembers         = []string{"openid", "client_ip"}
	createRefundMembers  = []string{"out_refund_no", "amount", "reason"}
)

// jsonObject is a body (or nested object) that decodeStrict fills member by
// member. members lists its JSON keys; decodeMember decodes the value of
// members()[i] at d, path being the object's own path ("" at the top).
type jsonObject interface {
	members() []string
	decodeMember(d *decoder, path string, i int) error
}

// decodeStrict decodes one JSON object into v in a single pass over body.
// Everything a merchant's JSON library might read differently from ours is
// refused as 400 invalid_request naming the field by its full path
// ("payer.openid", "metadata.cart"): duplicate keys at any level, keys that
// differ from a member only in case, invalid UTF-8 and unpaired surrogate
// escapes (RFC 7493, I-JSON), unknown fields, wrong types, trailing data and
// an empty body. A syntax error wins over any other problem, as with
// encoding/json, so the message says what is wrong first; finding it costs
// a second scan, on the error path only.
func decodeStrict(body []byte, v jsonObject) error {
	d := decoder{data: body}
	d.ws()
	if d.off == len(body) {
		return invalid("body", "a JSON object is required")
	}
	if err := d.object("", v); err != nil {
		return explainDecode(body, err)
	}
	d.ws()
	if d.off != len(body) {
		return invalid("body", "unexpected data after the JSON object")
	}
	return nil
}

func (r *createPaymentRequest) members() []string { return createPaymentMembers }

func (r *createPaymentRequest) decodeMember(d *decoder, path string, i int) error {
	var err error
	switch name := createPaymentMembers[i]; name {
	case "out_trade_no":
		r.OutTradeNo, err = d.str(path, name, true)
	case "amount":
		r.Amount, err = d.num(path, name, false)
	case "currency":
		r.Currency, err = d.str(path, name, true)
	case "method":
		r.Method, err = d.str(path, name, true)
	case "subject":
		r.Subject, err = d.str(path, name, true)
	case "notify_url":
		r.NotifyURL, err = d.str(path, name, true)
	case "expire_in":
		var n number
		if n, err = d.num(path, name, true); err == nil && n != "" {
			r.ExpireIn = &n
		}
	case "payer":
		if d.null() {
			return nil
		}
		r.Payer = new(payerInfo)
		err = d.object(join(path, name), r.Payer)
	case "metadata":
		r.Metadata, err = d.metadata(join(path, name))
	}
	return err
}

func (p *payerInfo) members() []string { return payerMembers }

func (p *payerInfo) decodeMember(d *decoder, path string, i int) error {
	var err error
	switch name := payerMembers[i]; name {
	case "openid":
		p.OpenID, err = d.str(path, name, true)
	case "client_ip":
		p.ClientIP, err = d.str(path, name, true)
	}
	return err
}

func (r *createRefundRequest) members() []string { return createRefundMembers }

func (r *createRefundRequest) decodeMember(d *decoder, path string, i int) error {
	var err error
	switch name := createRefundMembers[i]; name {
	case "out_refund_no":
		r.OutRefundNo, err = d.str(path, name, true)
	case "amount":
		r.Amount, err = d.num(path, name, false)
	case "reason":
		r.Reason, err = d.str(path, name, true)
	}
	return err
}

// decoder reads the JSON text data from off. Its methods return an *Error
// for a problem with the content, or errSyntax for malformed JSON, which
// explainDecode turns into a message with the offending byte.
type decoder struct {
	data  []byte
	off   int
	buf   []byte // unescaped string contents; reused, so copy before the next string
	depth int    // nesting depth in skipValue
	deep  bool   // skipValue stopped at maxDepth
}

// errSyntax is the main pass's "malformed JSON"; explainDecode rescans to say where.
var errSyntax = errors.New("malformed JSON")

// maxDepth bounds the nesting skipValue follows (as encoding/json does), so
// a body of 64 KiB of '[' cannot exhaust the stack.
const maxDepth = 10000

// explainDecode is the error path: when body is not well-formed JSON the
// syntax error is reported, whatever the main pass stopped at first
// (an unknown field, say, before a truncation).
func explainDecode(body []byte, err error) error {
	s := decoder{data: body}
	s.ws()
	if !s.skipValue() {
		switch {
		case s.deep:
			return invalid("body", "malformed JSON: nested more than %d levels", maxDepth)
		case s.off >= len(body):
			return invalid("body", "malformed JSON: unexpected end")
		}
		return invalid("body", "malformed JSON at byte %d", s.off+1)
	}
	if err == errSyntax { // not expected: both passes share the scanning code
		return invalid("body", "malformed JSON")
	}
	return err
}

// object decodes the object at d into v, refusing unknown and repeated keys.
func (d *decoder) object(path string, v jsonObject) error {
	names := v.members()
	if !d.peek('{') {
		return invalid(orBody(path), "must be an object")
	}
	d.off++
	var seen uint32 // bit i: names[i] was present; a body has at most 32 members
	for first := true; ; first = false {
		key, more, err := d.nextKey(path, first)
		if err != nil || !more {
			return err
		}
		i := indexOf(names, key)
		if i < 0 {
			return invalid(join(path, displayKey(key)), "unknown field")
		}
		if seen&(1<<i) != 0 {
			return invalid(join(path, names[i]), "duplicate field")
		}
		seen |= 1 << i
		if err := v.decodeMember(d, path, i); err != nil {
			return err
		}
	}
}

// metadata decodes an object of strings (or null, which leaves it nil).
func (d *decoder) metadata(path string) (map[string]string, error) {
	if d.null() {
		return nil, nil
	}
	if !d.peek('{') {
		return nil, invalid(path, "must be an object")
	}
	d.off++
	m := make(map[string]string)
	for first := true; ; first = false {
		key, more, err := d.nextKey(path, first)
		if err != nil {
			return nil, err
		}
		if !more {
			return m, nil
		}
		k := string(key) // key aliases d.buf, which the value may overwrite
		if _, dup := m[k]; dup {
			return nil, invalid(join(path, displayKey(key)), "duplicate field")
		}
		if len(m) == maxMetadataKeys {
			return nil, invalid(path, "at most %d keys", maxMetadataKeys)
		}
		v, err := d.str(path, k, false)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
}

// nextKey moves to the next member of the object being read (whose '{' is
// consumed) and returns its key, with the ':' consumed. At the '}' it
// consumes it and returns more == false. The key may alias d.buf.
func (d *decoder) nextKey(path string, first bool) (key []byte, more bool, err error) {
	d.ws()
	if d.off >= len(d.data) {
		return nil, false, errSyntax
	}
	switch d.data[d.off] {
	case '}':
		d.off++
		return nil, false, nil
	case ',':
		if first {
			return nil, false, errSyntax
		}
		d.off++
		d.ws()
	default:
		if !first {
			return nil, false, errSyntax
		}
	}
	if !d.peek('"') {
		return nil, false, errSyntax
	}
	key, ok := d.stringLit()
	if key == nil {
		return nil, false, errSyntax
	}
	if !ok {
		return nil, false, invalid(orBody(path), "field names must be valid UTF-8")
	}
	d.ws()
	if !d.peek(':') {
		return nil, false, errSyntax
	}
	d.off++
	return key, true, nil
}

// str decodes a string value of member name of the object at path. null is
// the empty string when nullable, a type error otherwise.
func (d *decoder) str(path, name string, nullable bool) (string, error) {
	d.ws()
	if d.peek('"') {
		b, ok := d.stringLit()
		if b == nil {
			return "", errSyntax
		}
		if !ok {
			return "", invalid(join(path, displayKey([]byte(name))), "must be valid UTF-8")
		}
		return string(b), nil
	}
	if nullable && d.null() {
		return "", nil
	}
	return "", invalid(join(path, displayKey([]byte(name))), "must be a string")
}

// num decodes a number value as its literal text. null is "" when
// nullable, a type error otherwise.
func (d *decoder) num(path, name string, nullable bool) (number, error) {
	d.ws()
	if d.off < len(d.data) {
		if c := d.data[d.off]; c == '-' || '0' <= c && c <= '9' {
			start := d.off
			if !d.skipNumber() {
				return "", errSyntax
			}
			return number(d.data[start:d.off]), nil
		}
	}
	if nullable && d.null() {
		return "", nil
	}
	return "", invalid(join(path, name), "must be a number")
}

// null consumes a null literal if one is next.
func (d *decoder) null() bool {
	d.ws()
	if len(d.data)-d.off >= 4 && string(d.data[d.off:d.off+4]) == "null" {
		d.off += 4
		return true
	}
	return false
}

// stringLit reads the string literal at d.off (a '"') and returns its
// contents, unescaped. It returns nil for malformed JSON, and ok == false
// for text that is not valid Unicode (invalid UTF-8, an unpaired surrogate
// escape), which JSON libraries disagree on. The result aliases data or d.buf.
func (d *decoder) stringLit() (s []byte, ok bool) {
	raw, escaped, ascii := d.skipString()
	if raw == nil {
		return nil, false
	}
	if !escaped {
		return raw, ascii || utf8.Valid(raw)
	}
	b := d.buf[:0]
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			b = append(b, raw[i:j]...)
			i = j
			continue
		}
		switch e := raw[i+1]; e { // skipString has checked every escape
		case 'u':
			r := rune(hex4(raw[i+2:]))
			i += 6
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return []byte{}, false
				}
				lo := rune(hex4(raw[i+2:]))
				if lo < 0xDC00 || lo > 0xDFFF {
					return []byte{}, false
				}
				r = utf16.DecodeRune(r, lo)
				i += 6
			}
			b = utf8.AppendRune(b, r)
		default:
			b = append(b, unescape[e])
			i += 2
		}
	}
	d.buf = b
	return b, ascii || utf8.Valid(b)
}

// unescape maps the character after '\' to what it stands for.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func hex4(b []byte) uint16 {
	var v uint16
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		v = v<<4 | uint16(c)
	}
	return v
}

// skipString consumes the string literal at d.off (a '"'), checking its
// syntax: no control characters, only the escapes of RFC 8259. It returns
// the raw contents (non-nil on success, nil with d.off at the offending
// byte otherwise), whether they hold an escape and whether they are ASCII.
func (d *decoder) skipString() (raw []byte, escaped, ascii bool) {
	ascii = true
	start := d.off + 1
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.off = i + 1
			return d.data[start:i:i], escaped, ascii
		case c == '\\':
			escaped = true
			i++
			if i >= len(d.data) {
				d.off = i
				return nil, false, false
			}
			switch d.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for k := 1; k <= 4; k++ {
					if i+k >= len(d.data) || !isHex(d.data[i+k]) {
						d.off = i + k
						return nil, false, false
					}
				}
				i += 4
			default:
				d.off = i
				return nil, false, false
			}
		case c < 0x20:
			d.off = i
			return nil, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	d.off = len(d.data)
	return nil, false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipNumber consumes a number literal (RFC 8259 grammar). On failure d.off
// is at the offending byte.
func (d *decoder) skipNumber() bool {
	i, n := d.off, len(d.data)
	digits := func() bool {
		j := i
		for i < n && '0' <= d.data[i] && d.data[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < n && d.data[i] == '-' {
		i++
	}
	switch {
	case i < n && d.data[i] == '0':
		i++
	case !digits():
		d.off = i
		return false
	}
	if i < n && d.data[i] == '.' {
		i++
		if !digits() {
			d.off = i
			return false
		}
	}
	if i < n && (d.data[i] == 'e' || d.data[i] == 'E') {
		i++
		if i < n && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if !digits() {
			d.off = i
			return false
		}
	}
	d.off = i
	return true
}

// skipValue consumes any JSON value, checking only its syntax. On failure
// d.off is at the offending byte (len(data) when the text ended early).
func (d *decoder) skipValue() bool {
	d.ws()
	if d.off >= len(d.data) {
		return false
	}
	switch c := d.data[d.off]; c {
	case '{', '[':
		if d.depth++; d.depth > maxDepth {
			d.deep = true
			return false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		d.off++
		d.ws()
		if d.peek(end) {
			d.off++
			d.depth--
			return true
		}
		for {
			if c == '{' {
				d.ws()
				if !d.peek('"') {
					return false
				}
				if raw, _, _ := d.skipString(); raw == nil {
					return false
				}
				d.ws()
				if !d.peek(':') {
					return false
				}
				d.off++
			}
			if !d.skipValue() {
				return false
			}
			d.ws()
			switch {
			case d.peek(','):
				d.off++
			case d.peek(end):
				d.off++
				d.depth--
				return true
			default:
				return false
			}
		}
	case '"':
		raw, _, _ := d.skipString()
		return raw != nil
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.skipNumber()
}

func (d *decoder) literal(lit string) bool {
	for i := 0; i < len(lit); i++ {
		if d.off >= len(d.data) || d.data[d.off] != lit[i] {
			return false
		}
		d.off++
	}
	return true
}

func (d *decoder) ws() {
	for d.off < len(d.data) {
		switch d.data[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

func (d *decoder) peek(c byte) bool { return d.off < len(d.data) && d.data[d.off] == c }

func indexOf(names []string, key []byte) int {
	for i, n := range names {
		if n == string(key) {
			return i
		}
	}
	return -1
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
			if _, err := netip.ParseAddr(r.Payer.ClientIP); err != nil {
				return invalid("payer.client_ip", "must be an IP address")
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

// Interface guards
var (
	_ jsonObject = (*createPaymentRequest)(nil)
	_ jsonObject = (*payerInfo)(nil)
	_ jsonObject = (*createRefundRequest)(nil)
)
