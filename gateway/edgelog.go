package gateway

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"regexp"
	"strings"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// What the HTTP servers themselves log.
//
// fasthttp's messages about a request it could not read carry the request's
// bytes: "error when reading request headers: …, contents: <up to 16 KiB of
// the request>", so a malformed request (say Transfer-Encoding: xchunked) or
// a slow one cut off by read_timeout would put its signature, nonce and body
// (a payer's openid, a channel notification) into the log. Neither
// fasthttp's Logger nor net/http's ErrorLog is therefore ever given the
// message as it comes: both go through a redacting adapter that logs the
// fact, its kind and the peer's address, and never a byte of the request.

// readErrorKind names what went wrong reading a request, without quoting it.
func readErrorKind(err error) string {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return "body too large"
	case errors.As(err, &small), errors.Is(err, fasthttp.ErrSmallReadBuffer):
		return "headers too large"
	case errors.As(err, &ne) && ne.Timeout(), strings.Contains(err.Error(), "timeout"):
		return "read timeout"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed mid-request"
	case errors.Is(err, fasthttp.ErrBadTrailer):
		return "bad trailer"
	}
	return "malformed request"
}

// redactingLogger is fasthttp's Logger. fasthttp formats its messages with
// Printf; the format strings are fasthttp's own constants, the arguments may
// carry request bytes. The message is the format's text up to its first verb;
// addresses and numbers among the arguments are kept as fields, errors only
// as their kind, every other argument is dropped.
type redactingLogger struct{ l *zap.Logger }

func (r redactingLogger) Printf(format string, args ...any) {
	msg := format
	if i := strings.IndexByte(msg, '%'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimRight(strings.TrimSpace(msg), ":")
	fields := make([]zap.Field, 0, len(args))
	var addrs []string
	for _, a := range args {
		switch v := a.(type) {
		case net.Addr:
			addrs = append(addrs, v.String())
		case error:
			fields = append(fields, zap.String("kind", readErrorKind(v)))
		case int, int64, uint32, uint64:
			fields = append(fields, zap.Any("n", v))
		}
	}
	// fasthttp names the local address first, then the remote one.
	switch len(addrs) {
	case 0:
	case 1:
		fields = append(fields, zap.String("remote", addrs[0]))
	default:
		fields = append(fields, zap.String("local", addrs[0]), zap.String("remote", addrs[len(addrs)-1]))
	}
	r.l.Warn("http server: "+msg, fields...)
}

// netHTTPLine matches what net/http's ErrorLog says: "http: <what> [from|serving
// <addr>]: <detail>". Only <what> and <addr> are logged.
var netHTTPLine = regexp.MustCompile(`^(http2?: [^:]*?)(?: (?:from|serving) (\S+?))?(?::\s|$)`)

// errorLogWriter is the io.Writer under net/http's ErrorLog.
type errorLogWriter struct{ l *zap.Logger }

func (w errorLogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		m := netHTTPLine.FindSubmatch(line)
		if m == nil {
			// A line of a stack trace or a detail: never repeated.
			continue
		}
		fields := []zap.Field{}
		if len(m[2]) > 0 {
			fields = append(fields, zap.String("remote", string(m[2])))
		}
		w.l.Warn("http server: "+string(m[1]), fields...)
	}
	return len(p), nil
}

// redactingErrorLog is a net/http Server.ErrorLog that logs through l the
// fact and the peer, never the detail (which can quote a request).
func redactingErrorLog(l *zap.Logger) *log.Logger { return log.New(errorLogWriter{l}, "", 0) }

// Interface guards
var (
	_ fasthttp.Logger = redactingLogger{}
	_ io.Writer       = errorLogWriter{}
)
