package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/paygate/paygate/engine"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// paymentList and refundList are the list answers: data is never null.
type paymentList struct {
	Data    []*payment.Payment `json:"data"`
	HasMore bool               `json:"has_more"`
}

type refundList struct {
	Data    []*payment.Refund `json:"data"`
	HasMore bool              `json:"has_more"`
}

// listPayments serves GET /v1/payments without out_trade_no: a page of the
// merchant's payments, newest first, filtered by the query.
func (s *Server) listPayments(ctx *fasthttp.RequestCtx, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	q, err := parsePaymentQuery(ctx.QueryArgs())
	if err != nil {
		return s.rejectAfterNonce(rl.ctx, nonce, err)
	}
	q.Merchant = m.id
	recs, more, err := s.eng.ListPayments(rl.ctx, nonce, q)
	if errors.Is(err, engine.ErrStartingAfter) {
		return invalid("starting_after", "%s is not one of your payments", q.StartingAfter)
	}
	if err != nil {
		return err
	}
	out := paymentList{Data: make([]*payment.Payment, len(recs)), HasMore: more}
	for i, rec := range recs {
		out.Data[i] = engine.View(rec)
	}
	writeJSON(ctx, http.StatusOK, &out)
	return nil
}

// parsePaymentQuery reads the list's query parameters; an unknown, repeated
// or malformed one is invalid_request naming it.
func parsePaymentQuery(args *fasthttp.Args) (store.PaymentQuery, error) {
	var (
		q    store.PaymentQuery
		bad  error
		seen = map[string]bool{}
	)
	visit := func(k, v []byte) {
		if bad != nil {
			return
		}
		key, val := string(k), string(v)
		if seen[key] {
			bad = invalid(key, "query parameter given more than once")
			return
		}
		seen[key] = true
		switch key {
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > store.MaxListLimit {
				bad = invalid("limit", "must be an integer from 1 to %d", store.MaxListLimit)
				return
			}
			q.Limit = n
		case "starting_after":
			if !isRefToken(val, 64) {
				bad = invalid("starting_after", "must be a payment id")
				return
			}
			q.StartingAfter = val
		case "created_gte", "created_lt":
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				bad = invalid(key, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
				return
			}
			if key == "created_gte" {
				q.CreatedGTE = t
			} else {
				q.CreatedLT = t
			}
		case "status":
			switch st := payment.Status(val); st {
			case payment.StatusPending, payment.StatusSucceeded, payment.StatusFailed, payment.StatusClosed:
				q.Status = st
			default:
				bad = invalid("status", "must be pending, succeeded, failed or closed")
			}
		default:
			bad = invalid(key, "unknown query parameter")
		}
	}
	for k, v := range args.All() {
		visit(k, v)
	}
	return q, bad
}

// listRefunds serves GET /v1/payments/{id}/refunds: every refund of the
// payment, newest first.
func (s *Server) listRefunds(ctx *fasthttp.RequestCtx, paymentID string, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	rl.paymentID = paymentID
	rfs, err := s.eng.Refunds(rl.ctx, nonce, m.id, paymentID)
	if err != nil {
		return err
	}
	out := refundList{Data: make([]*payment.Refund, len(rfs))}
	for i, rf := range rfs {
		out.Data[i] = &rf.Refund
	}
	writeJSON(ctx, http.StatusOK, &out)
	return nil
}

// getRefundByOutRefundNo serves GET /v1/refunds?out_refund_no=.
func (s *Server) getRefundByOutRefundNo(ctx *fasthttp.RequestCtx, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	orn := string(ctx.QueryArgs().Peek("out_refund_no"))
	if !isRefToken(orn, 64) {
		return s.rejectAfterNonce(rl.ctx, nonce, invalid("out_refund_no", "query parameter must be 1-64 characters of [A-Za-z0-9_-]"))
	}
	rf, err := s.eng.RefundByOutRefundNo(rl.ctx, nonce, m.id, orn)
	if err != nil {
		return err
	}
	rl.paymentID, rl.channel = rf.PaymentID, rf.Channel
	writeJSON(ctx, http.StatusOK, &rf.Refund)
	return nil
}
