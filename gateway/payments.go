package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/routing"
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

// view is the public payment object.
func view(rec *payment.Record) *payment.Payment {
	p := rec.Payment
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	return &p
}

// inProgress reports whether another request is still creating the payment
// at its channel (the create has not returned yet).
func inProgress(rec *payment.Record) bool {
	n := len(rec.Attempts)
	return rec.Status == payment.StatusPending && n > 0 && rec.Attempts[n-1].Outcome == ""
}

// createPayment serves POST /v1/payments.
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

	now := s.stamp()
	table := s.router.Table()
	decision := table.Decide(routing.Request{Merchant: m.id, Method: method, Amount: req.amount, Currency: req.Currency, Metadata: req.Metadata})
	var eligible []string
	for _, c := range decision.Candidates {
		if c.Eligible {
			eligible = append(eligible, c.Channel)
		}
	}
	if len(eligible) == 0 {
		// Nothing can serve it now: answer a replay if the out_trade_no is
		// known, else 503 without creating anything.
		existing, err := s.store.GetPaymentByOutTradeNo(rl.ctx, nonce, m.id, req.OutTradeNo)
		if err == nil {
			return s.replay(ctx, &req, existing, rl)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return apiErr(http.StatusServiceUnavailable, codeNoChannel, "no channel can serve method %s now", method)
	}
	if max := table.MaxAttempts(); len(eligible) > max {
		eligible = eligible[:max]
	}

	pid := payment.NewPaymentID()
	rec := &payment.Record{
		Payment: payment.Payment{
			PaymentID: pid, MerchantID: m.id, OutTradeNo: req.OutTradeNo, Status: payment.StatusPending,
			Amount: req.amount, Currency: req.Currency, Method: method, Channel: eligible[0],
			Subject: req.Subject, Metadata: req.Metadata, CreatedAt: now, UpdatedAt: now,
			ExpiresAt: now.Add(time.Duration(req.expireIn) * time.Second),
		},
		NotifyURL:      req.NotifyURL,
		ChannelOrderNo: payment.OrderNo(pid),
		Payer:          payerOf(&req),
		Attempts:       []payment.Attempt{{Channel: eligible[0], At: now}},
	}
	stored, created, err := s.store.CreatePayment(rl.ctx, nonce, rec, now.Add(s.sweepDelay(snap, 0)))
	if err != nil {
		return err
	}
	if !created {
		return s.replay(ctx, &req, stored, rl)
	}
	rl.paymentID = pid
	cerr := s.createAtChannels(rl.ctx, table, rec, eligible)
	rl.channel = rec.Channel
	if cerr != nil {
		return cerr
	}
	writeJSON(ctx, http.StatusCreated, view(rec))
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

// replay answers a repeated out_trade_no: the same request again is 200
// with the payment as it is now; another request is 409.
func (s *Server) replay(ctx *fasthttp.RequestCtx, req *createPaymentRequest, rec *payment.Record, rl *reqLog) error {
	rl.paymentID, rl.channel = rec.PaymentID, rec.Channel
	if rec.Amount != req.amount || rec.Currency != req.Currency || string(rec.Method) != req.Method || rec.NotifyURL != req.NotifyURL {
		return apiErr(http.StatusConflict, codeOutTradeNoConflict, "out_trade_no %s was used for another payment (%s)", rec.OutTradeNo, rec.PaymentID)
	}
	if inProgress(rec) {
		return apiErr(http.StatusConflict, codeInProgress, "payment %s is being created; retry shortly", rec.PaymentID)
	}
	ctx.Response.Header.Set("Idempotent-Replayed", "true")
	writeJSON(ctx, http.StatusOK, view(rec))
	return nil
}

// createAtChannels tries the eligible channels in order. It fails over only
// when the channel provably did not create the order (connection refused,
// breaker open, our request rejected, a documented "retry" 5xx); an
// ambiguous outcome leaves the payment pending on that channel, resolved by
// query. Every attempt is recorded on the payment before and after the call.
// Failover also stops when the request's own deadline (reqCtx) leaves less
// than the next channel's timeout: each attempt runs on its own context, so
// that a merchant hanging up never turns a channel call into an ambiguous one.
func (s *Server) createAtChannels(reqCtx context.Context, table *routing.Table, rec *payment.Record, eligible []string) error {
	creq := createRequestOf(rec)
	// save stores a change through compare-and-set: should a callback or
	// the reconciler have changed the payment meanwhile, the change is made
	// again on the fresh copy instead of failing the request.
	save := func(change func(r *payment.Record), ch func(r *payment.Record) store.Change) error {
		fresh, err := s.mutatePayment(context.Background(), rec, func(r *payment.Record) (store.Change, bool, error) {
			change(r)
			return ch(r), true, nil
		})
		if err != nil {
			return err
		}
		*rec = *fresh
		return nil
	}
	sweepSoon := func(*payment.Record) store.Change {
		return store.Change{SweepAt: s.now().Add(s.sweepDelay(s.snap.Load(), 0))}
	}
	var lastErr error
	for i, chID := range eligible {
		if i > 0 {
			if dl, ok := reqCtx.Deadline(); ok && dl.Sub(s.now()) < s.channelTimeout(table, chID) {
				break
			}
			s.router.RecordFailover(eligible[i-1], chID)
			if err := save(func(r *payment.Record) {
				r.Channel = chID
				r.Attempts = append(r.Attempts, payment.Attempt{Channel: chID, At: s.stamp()})
			}, sweepSoon); err != nil {
				return err
			}
		}
		idx := len(rec.Attempts) - 1
		ch, ok := table.Channel(chID)
		if !ok {
			lastErr = &adapters.Error{Channel: chID, Op: "create", Kind: adapters.KindUnavailable, Code: "not_configured"}
			rec.Attempts[idx].Outcome = payment.OutcomeNotCreated
			continue
		}
		start := s.now()
		var res *adapters.CreateResult
		err := s.callCreate(table, chID, rec.Method, func(ctx context.Context) error {
			var err error
			res, err = ch.Create(ctx, creq)
			return err
		})
		latency := s.now().Sub(start).Milliseconds()
		attempt := func(outcome string) func(r *payment.Record) {
			return func(r *payment.Record) {
				if len(r.Attempts) <= idx {
					return
				}
				a := &r.Attempts[idx]
				a.Outcome, a.LatencyMS = outcome, latency
				if err != nil {
					a.Error = err.Error()
					if ce, ok := adapters.AsError(err); ok {
						a.Code = ce.Code
					}
				}
				r.UpdatedAt = s.stamp()
			}
		}
		if err == nil {
			return save(func(r *payment.Record) {
				attempt(payment.OutcomeCreated)(r)
				action := res.Action
				r.Action, r.ChannelTradeNo = &action, res.ChannelTradeNo
			}, sweepSoon)
		}
		lastErr = err
		ce, _ := adapters.AsError(err)
		switch {
		case ce != nil && ce.NotCreated():
			attempt(payment.OutcomeNotCreated)(rec)
			continue
		case ce == nil || ce.Ambiguous():
			if err := save(attempt(payment.OutcomeAmbiguous), sweepSoon); err != nil {
				return err
			}
			s.logger.Warn("ambiguous channel outcome; payment stays pending and is resolved by query",
				zap.String("payment_id", rec.PaymentID), zap.String("channel", chID), zap.Error(err))
			return apiErr(http.StatusBadGateway, codeChannelError,
				"the channel's answer was lost; payment %s stays pending and is confirmed with the channel (retrying with the same out_trade_no returns it)", rec.PaymentID)
		default:
			attempt(payment.OutcomeDeclined)(rec)
			return s.failCreate(rec, ce.Code, ce.Message, apiErr(http.StatusBadGateway, codeChannelError, "channel %s refused the payment (%s)", chID, ce.Code))
		}
	}
	code := "no_channel_available"
	if ce, ok := adapters.AsError(lastErr); ok && ce.Code != "" {
		code = ce.Code
	}
	return s.failCreate(rec, code, "no channel could take the payment", apiErr(http.StatusServiceUnavailable, codeNoChannel, "no channel could take payment %s", rec.PaymentID))
}

// createRequestOf is the channel create request of a payment; it is the
// same every time, so that a create sent again is identical.
func createRequestOf(rec *payment.Record) *adapters.CreateRequest {
	creq := &adapters.CreateRequest{
		OrderNo: rec.ChannelOrderNo, Method: rec.Method, Amount: rec.Amount, Currency: rec.Currency,
		Subject: rec.Subject, CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt,
	}
	if rec.Payer != nil {
		creq.PayerOpenID, creq.ClientIP = rec.Payer.OpenID, rec.Payer.ClientIP
	}
	return creq
}

func payerOf(req *createPaymentRequest) *payment.Payer {
	if req.Payer == nil || (req.Payer.OpenID == "" && req.Payer.ClientIP == "") {
		return nil
	}
	return &payment.Payer{OpenID: req.Payer.OpenID, ClientIP: req.Payer.ClientIP}
}

// failCreate marks a payment that no channel created as failed (notifying
// the merchant) and returns apiError for the synchronous answer. The
// attempts recorded on rec so far are kept.
func (s *Server) failCreate(rec *payment.Record, code, msg string, apiError error) error {
	attempts := rec.Attempts
	fresh, err := s.mutatePayment(context.Background(), rec, func(r *payment.Record) (store.Change, bool, error) {
		if r.Status.Final() {
			return store.Change{}, false, nil
		}
		r.Attempts = attempts
		r.Status, r.UpdatedAt = payment.StatusFailed, s.stamp()
		r.Failure = &payment.Failure{Code: code, Message: msg}
		ev, err := s.event(payment.EventPaymentFailed, r.PaymentID, r, view(r))
		if err != nil {
			return store.Change{}, false, err
		}
		return store.Change{Event: ev, SweepAt: s.checksAt(r)}, true, nil
	})
	if err != nil {
		return err
	}
	*rec = *fresh
	return apiError
}

// callChannel runs one channel operation through the router (breaker and
// health) with the channel's timeout.
func (s *Server) callChannel(table *routing.Table, chID, op string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.channelTimeout(table, chID))
	defer cancel()
	return s.router.Call(ctx, chID, op, fn)
}

// callCreate is callChannel for a create of a payment of method m: its
// outcome ranks the channel for m's payments too (routing.Router.CallCreate).
func (s *Server) callCreate(table *routing.Table, chID string, m payment.Method, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.channelTimeout(table, chID))
	defer cancel()
	return s.router.CallCreate(ctx, chID, m, fn)
}

// channelTimeout is the configured per-call timeout of a channel.
func (s *Server) channelTimeout(table *routing.Table, chID string) time.Duration {
	if cc, ok := table.ChannelConfig(chID); ok && cc.Timeout > 0 {
		return cc.Timeout.D()
	}
	return 3 * time.Second
}

// sweepDelay is when the reconciler next looks at a pending object after
// its n-th look (0: first).
func (s *Server) sweepDelay(snap *snapshot, n int) time.Duration {
	if n < len(snap.delays) {
		return snap.delays[n]
	}
	if len(snap.delays) > 0 {
		return snap.delays[len(snap.delays)-1]
	}
	return 30 * time.Second
}

// loadPayment authenticates a request about payment id and reads it, with
// the nonce claimed in the same round trip; an id that cannot exist is 404
// after the nonce is claimed, as for an unknown one.
func (s *Server) loadPayment(ctx *fasthttp.RequestCtx, id string, rl *reqLog) (*payment.Record, error) {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return nil, err
	}
	rl.paymentID = id
	if payment.OrderNo(id) == "" {
		if err := s.store.ClaimNonce(rl.ctx, *nonce); err != nil {
			return nil, err
		}
		return nil, apiErr(http.StatusNotFound, codeNotFound, "no payment %s", id)
	}
	rec, err := s.store.GetPayment(rl.ctx, nonce, m.id, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apiErr(http.StatusNotFound, codeNotFound, "no payment %s", id)
	}
	return rec, err
}

// getPayment serves GET /v1/payments/{id}.
func (s *Server) getPayment(ctx *fasthttp.RequestCtx, id string, rl *reqLog) error {
	rec, err := s.loadPayment(ctx, id, rl)
	if err != nil {
		return err
	}
	return s.answerPayment(ctx, rec, rl)
}

// getPaymentByOutTradeNo serves GET /v1/payments?out_trade_no=.
func (s *Server) getPaymentByOutTradeNo(ctx *fasthttp.RequestCtx, rl *reqLog) error {
	_, m, nonce, err := s.begin(ctx, rl)
	if err != nil {
		return err
	}
	otn := string(ctx.QueryArgs().Peek("out_trade_no"))
	if !isRefToken(otn, 32) {
		if err := s.store.ClaimNonce(rl.ctx, *nonce); err != nil {
			return err
		}
		return invalid("out_trade_no", "query parameter must be 1-32 characters of [A-Za-z0-9_-]")
	}
	rec, err := s.store.GetPaymentByOutTradeNo(rl.ctx, nonce, m.id, otn)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return apiErr(http.StatusNotFound, codeNotFound, "no payment with out_trade_no %s", otn)
		}
		return err
	}
	return s.answerPayment(ctx, rec, rl)
}

// answerPayment writes the payment, first asking its channel for the truth
// when it is pending (at most once per payment every 5 s, across instances).
func (s *Server) answerPayment(ctx *fasthttp.RequestCtx, rec *payment.Record, rl *reqLog) error {
	rl.paymentID, rl.channel = rec.PaymentID, rec.Channel
	if rec.Status == payment.StatusPending && !inProgress(rec) {
		if ok, err := s.store.Throttle(rl.ctx, rec.MerchantID, "q:"+rec.PaymentID, 5*time.Second); err == nil && ok {
			if fresh, err := s.refreshPayment(rec); err == nil {
				rec = fresh
			} else {
				s.logger.Info("query on read failed; answering the stored state", zap.String("payment_id", rec.PaymentID), zap.Error(err))
			}
		}
	}
	writeJSON(ctx, http.StatusOK, view(rec))
	return nil
}

// closePayment serves POST /v1/payments/{id}/close.
func (s *Server) closePayment(ctx *fasthttp.RequestCtx, id string, rl *reqLog) error {
	rec, err := s.loadPayment(ctx, id, rl)
	if err != nil {
		return err
	}
	rl.channel = rec.Channel
	if rec.Status.Final() {
		return apiErr(http.StatusConflict, codeInvalidState, "payment %s is already %s", id, rec.Status)
	}
	if inProgress(rec) {
		return apiErr(http.StatusConflict, codeInProgress, "payment %s is being created; retry shortly", id)
	}
	closed, err := s.closeAtChannel(rec, "merchant")
	if err != nil {
		return err
	}
	switch closed.Status {
	case payment.StatusClosed:
	case payment.StatusPending:
		// Remember the merchant's wish: the create is never sent again,
		// and the payment is closed once it has expired.
		if _, err := s.mutatePayment(rl.ctx, closed, func(r *payment.Record) (store.Change, bool, error) {
			if r.Status.Final() || r.CloseRequested {
				return store.Change{}, false, nil
			}
			r.CloseRequested, r.UpdatedAt = true, s.stamp()
			return store.Change{SweepAt: closableAt(r)}, true, nil
		}); err != nil {
			return err
		}
		return apiErr(http.StatusConflict, codeInvalidState,
			"channel %s cannot close payment %s now: the order stays payable until its expiry at %s; paygate closes it at %s",
			closed.Channel, id, closed.ExpiresAt.Format(time.RFC3339), closableAt(closed).Format(time.RFC3339))
	default:
		return apiErr(http.StatusConflict, codeInvalidState, "payment %s is %s at its channel", id, closed.Status)
	}
	writeJSON(ctx, http.StatusOK, view(closed))
	return nil
}
