package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/store"
)

// CreateRequest is a merchant's create, authenticated and validated by the
// edge (fields in range, method enabled, amount under the merchant's limit).
type CreateRequest struct {
	Merchant string
	// Nonce is the request's nonce, claimed by the first store operation
	// (nil: none to claim).
	Nonce      *store.Nonce
	OutTradeNo string
	Amount     int64 // fen
	Currency   string
	Method     payment.Method
	Subject    string
	NotifyURL  string
	ExpiresIn  time.Duration
	Payer      *payment.Payer // nil: none given
	Metadata   map[string]string
}

// CreateResult is what a create did.
type CreateResult struct {
	// Payment is the payment as it is now. With an error it is set when a
	// payment was stored (the error then says what became of it).
	Payment *payment.Record
	// Replayed: the out_trade_no was known and the request was the same;
	// Payment is the existing payment and nothing was sent to a channel.
	Replayed bool
}

// A Gate decides whether a create may proceed at all. CreatePayment calls
// it after the edge authenticated the merchant and validated the request
// and after routing found a channel that can take it (a create answered
// no_channel_available never reaches it), before any payment is stored or
// any channel is called, replays of a known out_trade_no included. An error refuses
// the create: the request's nonce is claimed, nothing is stored or sent,
// and the error is returned as it is (an *Error whose Code the edge maps).
type Gate func(ctx context.Context, req *CreateRequest) error

// CreatePayment creates a payment: it checks the gate, records the payment
// as pending (claiming the out_trade_no, atomically, before any channel
// call) and creates it at the first channel routing offers, failing over
// only while a channel provably did not create the order.
func (e *Engine) CreatePayment(ctx context.Context, req *CreateRequest) (*CreateResult, error) {
	now := e.stamp()
	table := e.router.Table()
	decision := table.Decide(routing.Request{Merchant: req.Merchant, Method: req.Method, Amount: req.Amount, Currency: req.Currency, Metadata: req.Metadata})
	var eligible []string
	for _, c := range decision.Candidates {
		if c.Eligible {
			eligible = append(eligible, c.Channel)
		}
	}
	if len(eligible) == 0 {
		// Nothing can serve it now: answer a replay if the out_trade_no is
		// known, else refuse without creating anything.
		existing, err := e.store.GetPaymentByOutTradeNo(ctx, req.Nonce, req.Merchant, req.OutTradeNo)
		if err == nil {
			return replay(req, existing)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, refuse(CodeNoChannel, "no channel can serve method %s now", req.Method)
	}
	if max := table.MaxAttempts(); len(eligible) > max {
		eligible = eligible[:max]
	}
	// The one place for checks that must pass before money can move: after
	// routing (a create no channel can take now is not counted by any rule),
	// before anything is stored or sent.
	if e.gate != nil {
		if err := e.gate(ctx, req); err != nil {
			return nil, e.refuseAfterNonce(ctx, req.Nonce, err)
		}
	}

	pid := payment.NewPaymentID()
	rec := &payment.Record{
		Payment: payment.Payment{
			PaymentID: pid, MerchantID: req.Merchant, OutTradeNo: req.OutTradeNo, Status: payment.StatusPending,
			Amount: req.Amount, Currency: req.Currency, Method: req.Method, Channel: eligible[0],
			Subject: req.Subject, Metadata: req.Metadata, CreatedAt: now, UpdatedAt: now,
			ExpiresAt: now.Add(req.ExpiresIn),
		},
		NotifyURL:      req.NotifyURL,
		ChannelOrderNo: payment.OrderNo(pid),
		Payer:          req.Payer,
		Attempts:       []payment.Attempt{{Channel: eligible[0], At: now}},
	}
	stored, created, err := e.store.CreatePayment(ctx, req.Nonce, rec, now.Add(e.sweepDelay(0)))
	if err != nil {
		return nil, err
	}
	if !created {
		return replay(req, stored)
	}
	err = e.createAtChannels(ctx, table, rec, eligible)
	return &CreateResult{Payment: rec}, afterStored(err)
}

// afterStored turns a store failure met after the payment or refund was
// stored (recording the channel's answer) into store.ErrOutcomeUnknown: the
// object exists and may have reached its channel, so the answer must never
// be "nothing was done"; a retry with the same out_trade_no or
// out_refund_no finds it, and the reconciler finishes it.
func afterStored(err error) error {
	if errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrOutcomeUnknown) {
		return fmt.Errorf("%w: stored, then: %w", store.ErrOutcomeUnknown, err)
	}
	return err
}

// replay answers a repeated out_trade_no: the same request again gets the
// payment as it is now; another request is a conflict.
func replay(req *CreateRequest, rec *payment.Record) (*CreateResult, error) {
	res := &CreateResult{Payment: rec}
	if rec.Amount != req.Amount || rec.Currency != req.Currency || rec.Method != req.Method || rec.NotifyURL != req.NotifyURL {
		return res, refuse(CodeOutTradeNoConflict, "out_trade_no %s was used for another payment (%s)", rec.OutTradeNo, rec.PaymentID)
	}
	if inProgress(rec) {
		return res, refuse(CodeInProgress, "payment %s is being created; retry shortly", rec.PaymentID)
	}
	res.Replayed = true
	return res, nil
}

// inProgress reports whether another request is still creating the payment
// at its channel (the create has not returned yet).
func inProgress(rec *payment.Record) bool {
	n := len(rec.Attempts)
	return rec.Status == payment.StatusPending && n > 0 && rec.Attempts[n-1].Outcome == ""
}

// createAtChannels tries the eligible channels in order. It fails over only
// when the channel provably did not create the order (connection refused,
// breaker open, our request rejected, a documented "retry" 5xx); an
// ambiguous outcome leaves the payment pending on that channel, resolved by
// query. Every attempt is recorded on the payment before and after the call.
// Failover also stops when the request's own deadline (reqCtx) leaves less
// than the next channel's timeout: each attempt runs on its own context, so
// that a merchant hanging up never turns a channel call into an ambiguous one.
func (e *Engine) createAtChannels(reqCtx context.Context, table *routing.Table, rec *payment.Record, eligible []string) error {
	creq := createRequestOf(rec)
	// save stores a change through compare-and-set: should a callback or
	// the reconciler have changed the payment meanwhile, the change is made
	// again on the fresh copy instead of failing the request.
	save := func(change func(r *payment.Record), ch func(r *payment.Record) store.Change) error {
		fresh, err := e.mutatePayment(context.Background(), rec, func(r *payment.Record) (store.Change, bool, error) {
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
		return store.Change{SweepAt: e.now().Add(e.sweepDelay(0))}
	}
	var lastErr error
	// notCreated records the previous attempt's "not created" outcome. It
	// is applied to rec at once and again inside the failover's save, so
	// that a compare-and-set retried on a fresh copy keeps it.
	notCreated := func(*payment.Record) {}
	for i, chID := range eligible {
		if i > 0 {
			if dl, ok := reqCtx.Deadline(); ok && dl.Sub(e.now()) < e.channelTimeout(table, chID) {
				break
			}
			e.router.RecordFailover(eligible[i-1], chID)
			e.obs.Failover(eligible[i-1], chID)
			if err := save(func(r *payment.Record) {
				notCreated(r)
				r.Channel = chID
				r.Attempts = append(r.Attempts, payment.Attempt{Channel: chID, At: e.stamp()})
			}, sweepSoon); err != nil {
				return err
			}
		}
		idx := len(rec.Attempts) - 1
		ch, ok := table.Channel(chID)
		if !ok {
			lastErr = &adapters.Error{Channel: chID, Op: "create", Kind: adapters.KindUnavailable, Code: "not_configured"}
			notCreated = func(r *payment.Record) {
				if len(r.Attempts) > idx {
					r.Attempts[idx].Outcome = payment.OutcomeNotCreated
				}
			}
			notCreated(rec)
			continue
		}
		start := e.now()
		var res *adapters.CreateResult
		err := e.callCreate(table, chID, rec.Method, func(ctx context.Context) error {
			var err error
			res, err = ch.Create(ctx, creq)
			return err
		})
		latency := e.now().Sub(start).Milliseconds()
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
				r.UpdatedAt = e.stamp()
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
			notCreated = attempt(payment.OutcomeNotCreated)
			notCreated(rec)
			continue
		case ce == nil || ce.Ambiguous():
			if err := save(attempt(payment.OutcomeAmbiguous), sweepSoon); err != nil {
				return err
			}
			e.logger.Warn("ambiguous channel outcome; payment stays pending and is resolved by query",
				zap.String("payment_id", rec.PaymentID), zap.String("channel", chID), zap.Error(err))
			return refuse(CodeChannelError,
				"the channel's answer was lost; payment %s stays pending and is confirmed with the channel (retrying with the same out_trade_no returns it)", rec.PaymentID)
		default:
			attempt(payment.OutcomeDeclined)(rec)
			return e.failCreate(rec, ce.Code, ce.Message, refuse(CodeChannelError, "channel %s refused the payment (%s)", chID, ce.Code))
		}
	}
	code := "no_channel_available"
	if ce, ok := adapters.AsError(lastErr); ok && ce.Code != "" {
		code = ce.Code
	}
	return e.failCreate(rec, code, "no channel could take the payment", refuse(CodeNoChannel, "no channel could take payment %s", rec.PaymentID))
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

// failCreate marks a payment that no channel created as failed (notifying
// the merchant) and returns refusal for the synchronous answer. The
// attempts recorded on rec so far are kept.
func (e *Engine) failCreate(rec *payment.Record, code, msg string, refusal error) error {
	attempts := rec.Attempts
	fresh, err := e.mutatePayment(context.Background(), rec, func(r *payment.Record) (store.Change, bool, error) {
		if r.Status.Final() {
			return store.Change{}, false, nil
		}
		r.Attempts = attempts
		r.Status, r.UpdatedAt = payment.StatusFailed, e.stamp()
		r.Failure = &payment.Failure{Code: code, Message: msg}
		ev, err := e.event(payment.EventPaymentFailed, r.PaymentID, r, View(r))
		if err != nil {
			return store.Change{}, false, err
		}
		return store.Change{Event: ev, SweepAt: e.checksAt(r)}, true, nil
	})
	if err != nil {
		return err
	}
	*rec = *fresh
	return refusal
}

// loadPayment reads a merchant's payment, with the nonce claimed in the
// same round trip; an id that cannot exist is not found after the nonce is
// claimed, as an unknown one.
func (e *Engine) loadPayment(ctx context.Context, nonce *store.Nonce, merchant, id string) (*payment.Record, error) {
	if payment.OrderNo(id) == "" {
		return nil, e.refuseAfterNonce(ctx, nonce, refuse(CodeNotFound, "no payment %s", id))
	}
	rec, err := e.store.GetPayment(ctx, nonce, merchant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(CodeNotFound, "no payment %s", id)
	}
	return rec, err
}

// Payment answers a merchant's payment by id, as current as its channel
// can tell (see current).
func (e *Engine) Payment(ctx context.Context, nonce *store.Nonce, merchant, id string) (*payment.Record, error) {
	rec, err := e.loadPayment(ctx, nonce, merchant, id)
	if err != nil {
		return nil, err
	}
	return e.current(ctx, rec), nil
}

// PaymentByOutTradeNo answers a merchant's payment by its out_trade_no, as
// current as its channel can tell (see current).
func (e *Engine) PaymentByOutTradeNo(ctx context.Context, nonce *store.Nonce, merchant, outTradeNo string) (*payment.Record, error) {
	rec, err := e.store.GetPaymentByOutTradeNo(ctx, nonce, merchant, outTradeNo)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse(CodeNotFound, "no payment with out_trade_no %s", outTradeNo)
		}
		return nil, err
	}
	return e.current(ctx, rec), nil
}

// current first asks the channel of a pending payment for the truth (at
// most once per payment every 5 s, across instances); when it cannot, the
// stored state is the answer.
func (e *Engine) current(ctx context.Context, rec *payment.Record) *payment.Record {
	if rec.Status == payment.StatusPending && !inProgress(rec) {
		if ok, err := e.store.Throttle(ctx, rec.MerchantID, "q:"+rec.PaymentID, 5*time.Second); err == nil && ok {
			if fresh, err := e.refreshPayment(rec); err == nil {
				rec = fresh
			} else {
				e.logger.Info("query on read failed; answering the stored state", zap.String("payment_id", rec.PaymentID), zap.Error(err))
			}
		}
	}
	return rec
}

// ClosePayment closes a merchant's pending payment at its channel. When the
// channel cannot close it yet, the merchant's wish is recorded (the create
// is never sent again, and the payment is closed once it has expired) and
// the answer is invalid_state. With an error, the payment is returned too
// when it was found (for the request log).
func (e *Engine) ClosePayment(ctx context.Context, nonce *store.Nonce, merchant, id string) (*payment.Record, error) {
	rec, err := e.loadPayment(ctx, nonce, merchant, id)
	if err != nil {
		return nil, err
	}
	if rec.Status.Final() {
		return rec, refuse(CodeInvalidState, "payment %s is already %s", id, rec.Status)
	}
	if inProgress(rec) {
		return rec, refuse(CodeInProgress, "payment %s is being created; retry shortly", id)
	}
	closed, err := e.closeAtChannel(rec, "merchant")
	if err != nil {
		return rec, err
	}
	switch closed.Status {
	case payment.StatusClosed:
		return closed, nil
	case payment.StatusPending:
		if _, err := e.mutatePayment(ctx, closed, func(r *payment.Record) (store.Change, bool, error) {
			if r.Status.Final() || r.CloseRequested {
				return store.Change{}, false, nil
			}
			r.CloseRequested, r.UpdatedAt = true, e.stamp()
			return store.Change{SweepAt: closableAt(r)}, true, nil
		}); err != nil {
			return closed, err
		}
		return closed, refuse(CodeInvalidState,
			"channel %s cannot close payment %s now: the order stays payable until its expiry at %s; paygate closes it at %s",
			closed.Channel, id, closed.ExpiresAt.Format(time.RFC3339), closableAt(closed).Format(time.RFC3339))
	default:
		return closed, refuse(CodeInvalidState, "payment %s is %s at its channel", id, closed.Status)
	}
}
