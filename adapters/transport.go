package adapters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxResponseBytes bounds what paygate reads of a channel's answer.
const MaxResponseBytes = 1 << 20

// Observer is told of every HTTP call to a channel: the hook for metrics.
// It must be cheap and safe for concurrent use.
type Observer interface {
	ObserveCall(channel, op string, status int, d time.Duration, err error)
}

// Caller sends HTTP requests to one channel, reads the answer, reports every
// call to its Observer, and classifies transport failures by whether the
// request can have reached the channel: a failure before the request was
// written is KindUnavailable, one after it KindAmbiguous.
type Caller struct {
	Channel  string
	Client   *http.Client     // nil: a client with no overall timeout (use the context)
	Observer Observer         // nil: none
	Now      func() time.Time // nil: time.Now
}

// MarkReplayable lets the HTTP client send req once more on a fresh
// connection when a reused keep-alive connection turns out to have been
// closed by the channel before any answer (net/http's retry for replayable
// requests; the marker header is not sent on the wire). Mark only operations
// the channel's protocol makes idempotent — a repeat with the same content
// has the effect of one call (WeChat Pay creates, queries, closes and
// refunds keyed by order or refund number; Alipay's likewise; ACP queries) —
// so that a stale connection is not mistaken for an ambiguous outcome.
func MarkReplayable(req *http.Request) { req.Header["Idempotency-Key"] = nil }

// Response is a channel's raw answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req (with ctx) and reads the whole answer. A non-2xx status is not
// an error here: the adapter maps it with its protocol's rules.
func (c *Caller) Do(ctx context.Context, op string, req *http.Request) (*Response, error) {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	client := c.Client
	if client == nil {
		client = defaultClient
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) }}
	req = req.WithContext(httptrace.WithClientTrace(ctx, trace))

	start := now()
	resp, err := client.Do(req)
	var out *Response
	if err == nil {
		var body []byte
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
		resp.Body.Close()
		if err == nil && len(body) > MaxResponseBytes {
			err = fmt.Errorf("answer larger than %d bytes", MaxResponseBytes)
		}
		out = &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	}
	status := 0
	if out != nil {
		status = out.Status
	}
	if err != nil {
		err = c.classify(op, err, wrote.Load() || out != nil)
		out = nil
	}
	if c.Observer != nil {
		c.Observer.ObserveCall(c.Channel, op, status, now().Sub(start), err)
	}
	return out, err
}

func (c *Caller) classify(op string, err error, sent bool) error {
	e := &Error{Channel: c.Channel, Op: op, Err: err}
	switch {
	case !sent || errors.Is(err, syscall.ECONNREFUSED):
		e.Kind, e.Code = KindUnavailable, "connect_failed"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		e.Kind, e.Code = KindAmbiguous, "timeout"
	default:
		e.Kind, e.Code = KindAmbiguous, "transport_error"
	}
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ConnectTimeout bounds the connect phase of a channel call: the TCP dial
// and, separately, the TLS handshake. A failure there provably sent
// nothing (KindUnavailable), so the gateway fails over at once; it must be
// short next to a channel's call timeout (default 3s), or a dial that hangs
// would use up the whole budget and leave no time for another channel.
const ConnectTimeout = time.Second

// defaultClient never follows redirects: a channel API answers, it does not redirect.
var defaultClient = &http.Client{
	Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: ConnectTimeout,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
