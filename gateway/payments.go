package gateway

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// begin authenticates a /v1 request and applies the merchant's rate limit.
// The returned nonce must be claimed by the request's store operation.
func (s *Server) begin(ctx *fasthttp.RequestCtx, rl *reqLog) (*snapshot, *merchant, *store.Nonce, error) {
	snap := s.snap.Load()
	m, n, err := s.authenticate(ctx, snap, s.now())
	if m != nil {
		rl.merchant = m.id
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if ok, wait := m.limiter.take(); !ok {
		return nil, nil, nil, &Error{Status: http.StatusTooManyRequests, Code: codeRateLimited,
			Message: "too many requests for this merchant", RetryAfter: int(math.Ceil(wait.Seconds()))}
	}
	return snap, m, n, nil
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // our own types always marshal; never panic in a request
		writeErrorBody(ctx, http.StatusInternalServerError, codeInternal, "internal error", string(ctx.Response.Header.Peek("X-Request-Id")))
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// createPayment serves POST /v1/payments: the edge authenticates, decodes
// and validates, and checks the merchant's methods and amount limit; the
// engine creates the payment.
func (s *Server) createPayment(ctx *fasthttp.RequestCtx, rl *reqLog) error {
	snap, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	var req createPaymentRequest
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		return s.rejectAfterNonce(rl.ctx, nonce, err)
	}
	if err := req.validate(snap.currencies); err != nil {
		return s.rejectAfterNonce(rl.ctx, nonce, err)
	}
	method := payment.Method(req.Method)
	if !m.methods[method] {
		return s.rejectAfterNonce(rl.ctx, nonce, apiErr(http.StatusForbidden, codeMethodNotAllowed, "method %s is not enabled for this merchant", method))
	}
	if req.amount > m.maxAmount {
		return s.rejectAfterNonce(rl.ctx, nonce, apiErr(http.StatusForbidden, codeAmountOverLimit, "amount %d is over the merchant's limit of %d", req.amount, m.maxAmount))
	}
	res, err := s.eng.CreatePayment(rl.ctx, &engine.CreateRequest{
		Merchant: m.id, Nonce: nonce, OutTradeNo: req.OutTradeNo, Amount: req.amount, Currency: req.Currency,
		Method: method, Subject: req.Subject, NotifyURL: req.NotifyURL, ExpiresIn: time.Duration(req.expireIn) * time.Second,
		Payer: payerOf(&req), Metadata: req.Metadata,
	})
	if res != nil && res.Payment != nil {
		rl.paymentID, rl.channel = res.Payment.PaymentID, res.Payment.Channel
	}
	if err != nil {
		return err
	}
	if res.Replayed {
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
		writeJSON(ctx, http.StatusOK, engine.View(res.Payment))
		return nil
	}
	writeJSON(ctx, http.StatusCreated, engine.View(res.Payment))
	return nil
}

// rejectAfterNonce claims the nonce (the contract checks it before the body)
// and then returns the body's error.
func (s *Server) rejectAfterNonce(ctx context.Context, n *store.Nonce, bodyErr error) error {
	if err := s.store.ClaimNonce(ctx, *n); err != nil {
		return err
	}
	return bodyErr
}

func payerOf(req *createPaymentRequest) *payment.Payer {
	if req.Payer == nil || (req.Payer.OpenID == "" && req.Payer.ClientIP == "") {
		return nil
	}
	return &payment.Payer{OpenID: req.Payer.OpenID, ClientIP: req.Payer.ClientIP}
}

// getPayment serves GET /v1/payments/{id}.
func (s *Server) getPayment(ctx *fasthttp.RequestCtx, id string, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	rl.paymentID = id
	rec, err := s.eng.Payment(rl.ctx, nonce, m.id, id)
	if err != nil {
		return err
	}
	return answerPayment(ctx, rec, rl)
}

// getPaymentByOutTradeNo serves GET /v1/payments?out_trade_no=.
func (s *Server) getPaymentByOutTradeNo(ctx *fasthttp.RequestCtx, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	otn := string(ctx.QueryArgs().Peek("out_trade_no"))
	if !isRefToken(otn, 32) {
		return s.rejectAfterNonce(rl.ctx, nonce, invalid("out_trade_no", "query parameter must be 1-32 characters of [A-Za-z0-9_-]"))
	}
	rec, err := s.eng.PaymentByOutTradeNo(rl.ctx, nonce, m.id, otn)
	if err != nil {
		return err
	}
	return answerPayment(ctx, rec, rl)
}

// answerPayment writes a payment the engine read.
func answerPayment(ctx *fasthttp.RequestCtx, rec *payment.Record, rl *reqLog) error {
	rl.paymentID, rl.channel = rec.PaymentID, rec.Channel
	writeJSON(ctx, http.StatusOK, engine.View(rec))
	return nil
}

// closePayment serves POST /v1/payments/{id}/close.
func (s *Server) closePayment(ctx *fasthttp.RequestCtx, id string, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	rl.paymentID = id
	rec, err := s.eng.ClosePayment(rl.ctx, nonce, m.id, id)
	if rec != nil {
		rl.channel = rec.Channel
	}
	if err != nil {
		return err
	}
	writeJSON(ctx, http.StatusOK, engine.View(rec))
	return nil
}
