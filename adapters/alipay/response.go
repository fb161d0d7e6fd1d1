package alipay

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Alipay signs the exact bytes of the "<method>_response" value, not a
// re-serialisation of it (PROTOCOLS §B.4; the Java SDK's extractSignContent,
// gopay's getSignData). So the answer is not unmarshalled first: a scanner
// finds the value's extent in the raw body, the signature is checked over
// those bytes, and only the verified bytes are decoded.

// errorResponseKey is the member gateway-level failures use instead of
// "<method>_response".
const errorResponseKey = "error_response"

// rawResponse is the part of an Alipay answer that matters, as raw bytes.
type rawResponse struct {
	Key   string // the member the answer came in: "<method>_response" or "error_response"
	Value []byte // the exact raw bytes of its value (a JSON object), as signed
	Sign  string // the "sign" member; "" when the answer carries none
}

// responseKey is the member name of method's answer: dots become
// underscores, plus "_response".
func responseKey(method string) string {
	return strings.ReplaceAll(method, ".", "_") + "_response"
}

// extractResponse finds method's answer (or error_response) and the sign in
// an Alipay response body. The returned Value aliases body.
func extractResponse(body []byte, method string) (rawResponse, error) {
	m, err := topLevelMembers(body)
	if err != nil {
		return rawResponse{}, err
	}
	key := responseKey(method)
	v, ok := m[key]
	if !ok {
		key = errorResponseKey
		if v, ok = m[key]; !ok {
			return rawResponse{}, fmt.Errorf("answer has neither %s nor %s", responseKey(method), errorResponseKey)
		}
	}
	if len(v) == 0 || v[0] != '{' {
		return rawResponse{}, fmt.Errorf("%s is not an object", key)
	}
	r := rawResponse{Key: key, Value: v}
	if s, ok := m["sign"]; ok {
		if err := json.Unmarshal(s, &r.Sign); err != nil {
			return rawResponse{}, errors.New("sign is not a string")
		}
	}
	return r, nil
}

// topLevelMembers returns the exact raw bytes of each member value of the JSON
// object in body, by decoded member name. The body must be valid JSON (checked
// first, so the scanner below only has to find extents: it tracks strings and
// their escapes, so braces inside strings do not count). A duplicated member
// name is refused: verifying one copy and decoding another must be impossible.
func topLevelMembers(body []byte) (map[string][]byte, error) {
	if !json.Valid(body) {
		return nil, errors.New("answer is not valid JSON")
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, errors.New("answer is not a JSON object")
	}
	out := map[string][]byte{}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return out, nil
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return nil, errMalformed
		}
		kEnd := skipString(body, i)
		if kEnd < 0 {
			return nil, errMalformed
		}
		var key string
		if err := json.Unmarshal(body[i:kEnd], &key); err != nil {
			return nil, errMalformed
		}
		i = skipSpace(body, kEnd)
		if i >= len(body) || body[i] != ':' {
			return nil, errMalformed
		}
		i = skipSpace(body, i+1)
		vEnd := skipValue(body, i)
		if vEnd < 0 {
			return nil, errMalformed
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("answer repeats member %q", key)
		}
		out[key] = body[i:vEnd]
		i = skipSpace(body, vEnd)
		if i >= len(body) {
			return nil, errMalformed
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return out, nil
		default:
			return nil, errMalformed
		}
	}
}

var errMalformed = errors.New("answer is malformed")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just after the string starting at b[i] (a
// quote), or -1. A backslash always escapes the next byte (\" and \\ are the
// ones that matter for finding the end; \uXXXX needs no special case).
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index just after the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := skipString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}
