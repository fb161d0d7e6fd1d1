package gateway

import (
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/paygate/paygate/engine"
)

// createRefund serves POST /v1/payments/{id}/refunds; the engine sends the
// refund to the channel that took the payment.
func (s *Server) createRefund(ctx *fasthttp.RequestCtx, paymentID string, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	rl.paymentID = paymentID
	var req createRefundRequest
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		return s.rejectAfterNonce(rl.ctx, nonce, err)
	}
	if err := req.validate(); err != nil {
		return s.rejectAfterNonce(rl.ctx, nonce, err)
	}
	res, err := s.eng.CreateRefund(rl.ctx, &engine.RefundRequest{
		Merchant: m.id, Nonce: nonce, PaymentID: paymentID, OutRefundNo: req.OutRefundNo, Amount: req.amount, Reason: req.Reason,
	})
	if res != nil && res.Payment != nil {
		rl.channel = res.Payment.Channel
	}
	if err != nil {
		return err
	}
	if res.Replayed {
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
		writeJSON(ctx, http.StatusOK, &res.Refund.Refund)
		return nil
	}
	writeJSON(ctx, http.StatusCreated, &res.Refund.Refund)
	return nil
}

// getRefund serves GET /v1/refunds/{id}.
func (s *Server) getRefund(ctx *fasthttp.RequestCtx, id string, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	rf, err := s.eng.Refund(rl.ctx, nonce, m.id, id)
	if err != nil {
		return err
	}
	rl.paymentID, rl.channel = rf.PaymentID, rf.Channel
	writeJSON(ctx, http.StatusOK, &rf.Refund)
	return nil
}
