package load

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/paygate/paygate/gateway/client"
)

var (
	methodGet  = []byte("GET")
	methodPost = []byte("POST")
	pathCreate = []byte("/v1/payments")

	refundedNothing = []byte(`"refunded_amount":0,`)
)

// worker sends one request at a time with buffers it owns, so that a
// request allocates nothing once the buffers have grown.
type worker struct {
	r    *runner
	req  *fasthttp.Request
	resp *fasthttp.Response

	uri, body, msg, sig, nonce, ts, id []byte
}

func newWorker(r *runner) *worker {
	return &worker{r: r, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse(),
		uri: make([]byte, 0, 128), body: make([]byte, 0, 512), msg: make([]byte, 0, 1024),
		sig: make([]byte, 0, 64), nonce: make([]byte, 0, 64), ts: make([]byte, 0, 16), id: make([]byte, 0, 64)}
}

func (w *worker) release() {
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
}

// do sends job j's request and records the outcome. A get before any
// create, and a refund before any payment is known paid, become a create
// and a get of a created payment (which is how paid ones become known).
func (w *worker) do(j job) {
	o := w.r.ops[j.seq%int64(len(w.r.ops))]
	ok := false
	if id := w.r.cfg.GetID; id != "" {
		o, w.id = opGet, append(w.id[:0], id...)
	}
	if o == opRefund {
		if w.id, ok = w.r.ids.popPaid(w.id[:0]); !ok {
			o = opGet
		}
	}
	if o == opGet && w.r.cfg.GetID == "" {
		if w.id, ok = w.r.ids.pickCreated(w.id[:0]); !ok {
			o = opCreate
		}
	}
	ts := j.at.Unix()
	switch o {
	case opCreate:
		w.uri = append(w.uri[:0], pathCreate...)
		w.body = w.createBody(w.body[:0], j.seq)
		w.prepare(methodPost, w.body, ts, j.seq)
	case opGet:
		w.uri = append(append(w.uri[:0], "/v1/payments/"...), w.id...)
		w.prepare(methodGet, nil, ts, j.seq)
	case opRefund:
		w.uri = append(append(append(w.uri[:0], "/v1/payments/"...), w.id...), "/refunds"...)
		w.body = w.refundBody(w.body[:0], j.seq)
		w.prepare(methodPost, w.body, ts, j.seq)
	}
	w.r.sent(j, o)
	err := w.r.hc.Do(w.req, w.resp)
	d := time.Since(j.at)
	if err != nil {
		w.r.failed(j, classify(err))
		return
	}
	status := w.resp.StatusCode()
	body := w.resp.Body()
	var channel []byte
	switch {
	case o == opCreate && (status == fasthttp.StatusCreated || status == fasthttp.StatusOK):
		channel = jsonField(body, `"channel":"`)
		w.r.ids.addCreated(jsonField(body, `"payment_id":"`))
	case o == opGet && status == fasthttp.StatusOK && w.r.cfg.GetID == "":
		// Paid and not refunded yet: a refund can take it. (A payment read
		// again before its refund lands may be refunded twice; each refund
		// is a tenth, so that stays within the amount.)
		if string(jsonField(body, `"status":"`)) == "succeeded" && bytes.Contains(body, refundedNothing) {
			w.r.ids.addPaid(w.id)
		}
	}
	w.r.answered(j, status, channel, d)
}

// prepare builds and signs the request for w.uri and body; seq < 0 (the
// preflight) takes a nonce of its own.
func (w *worker) prepare(method, body []byte, ts int64, seq int64) {
	r := w.r
	w.nonce = append(append(w.nonce[:0], "ld"...), r.runID...)
	if seq < 0 {
		w.nonce = append(w.nonce, "-preflight"...)
	} else {
		w.nonce = itoa36(append(w.nonce, '-'), seq)
	}
	w.ts = strconv.AppendInt(w.ts[:0], ts, 10)
	w.msg = client.AppendMessage(w.msg[:0], method, w.uri, ts, w.nonce, body)
	w.sig, _ = r.signer.AppendSignature(w.sig[:0], w.msg) // hmac cannot fail

	req := w.req
	req.Reset() // keeps its buffers: a GET after a POST must not keep the POST's length
	req.Header.SetMethodBytes(method)
	req.SetRequestURIBytes(w.uri)
	req.Header.SetHost(r.host)
	req.Header.Set("X-Paygate-Merchant", r.cfg.Merchant)
	req.Header.SetBytesV("X-Paygate-Timestamp", w.ts)
	req.Header.SetBytesV("X-Paygate-Nonce", w.nonce)
	req.Header.SetBytesV("X-Paygate-Signature", w.sig)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	req.SetTimeout(r.cfg.Timeout)
}

// createBody is POST /v1/payments's body; out_trade_no is unique to the run.
func (w *worker) createBody(b []byte, seq int64) []byte {
	c := w.r.cfg
	b = append(b, `{"out_trade_no":"ld`...)
	b = append(b, w.r.runID[:12]...)
	b = itoa36(append(b, '-'), seq)
	b = append(b, `","amount":`...)
	b = strconv.AppendInt(b, c.Amount, 10)
	b = append(b, `,"currency":"CNY","method":`...)
	b = strconv.AppendQuote(b, c.Method)
	b = append(b, `,"subject":"paygate load","notify_url":`...)
	b = strconv.AppendQuote(b, c.NotifyURL)
	if c.Method == "wechat_jsapi" {
		b = append(b, `,"payer":{"openid":"o-paygate-load"}`...)
	}
	return append(b, '}')
}

// refundBody is a partial refund: a tenth of the amount (at least 1 fen).
func (w *worker) refundBody(b []byte, seq int64) []byte {
	b = append(b, `{"out_refund_no":"lr`...)
	b = append(b, w.r.runID[:12]...)
	b = itoa36(append(b, '-'), seq)
	b = append(b, `","amount":`...)
	b = strconv.AppendInt(b, max(w.r.cfg.Amount/10, 1), 10)
	return append(b, `,"reason":"paygate load"}`...)
}

// classify sorts a request that got no answer.
func classify(err error) errKind {
	var op *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return errTimeout
	case errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, fasthttp.ErrConnectionClosed),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.As(err, &op):
		return errConnect
	}
	return errOther
}
