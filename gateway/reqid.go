package gateway

// Request correlation: X-Request-Id and W3C Trace Context.
//
// A caller (a merchant, a proxy, a mesh) that sends a well-formed
// X-Request-Id gets it back and finds it in paygate's log line; anything
// else gets a fresh id. A valid W3C traceparent header's trace id is logged
// with the request (trace_id), so the line can be found from a trace.

// maxRequestIDLen bounds an incoming X-Request-Id.
const maxRequestIDLen = 64

// validRequestID reports whether b is an X-Request-Id paygate honours: 1–64
// characters of [A-Za-z0-9._-]. Anything else (empty, longer, spaces,
// quotes, control or non-ASCII bytes) could break a log line, a header or a
// JSON body it is echoed into, and is replaced by a fresh id.
func validRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > maxRequestIDLen {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// traceID returns the trace id of a W3C traceparent header
// (https://www.w3.org/TR/trace-context/#traceparent-header):
//
//	version "-" trace-id "-" parent-id "-" trace-flags
//	2 hex      32 hex        16 hex        2 hex        (lower-case)
//
// Version ff is invalid; an all-zero trace id or parent id is invalid. A
// version other than 00 may append fields after a "-" (the spec's forward
// compatibility rule); version 00 must be exactly 55 characters. ok is false
// for anything else, and the header is then ignored.
func traceID(h []byte) (id string, ok bool) {
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return "", false
	}
	if !lowerHex(h[0:2]) || !lowerHex(h[3:35]) || !lowerHex(h[36:52]) || !lowerHex(h[53:55]) {
		return "", false
	}
	switch {
	case h[0] == 'f' && h[1] == 'f':
		return "", false
	case h[0] == '0' && h[1] == '0' && len(h) != 55:
		return "", false
	case len(h) > 55 && h[55] != '-':
		return "", false
	case allZero(h[3:35]), allZero(h[36:52]):
		return "", false
	}
	return string(h[3:35]), true
}

func lowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}
