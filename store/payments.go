package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/paygate/paygate/payment"
)

// A payment is stored as a hash so that Lua can compare-and-set and account
// for refunds without parsing JSON:
//
//	rec       JSON of payment.Record (Version and RefundedAmount are not
//	          authoritative there; see below)
//	status    the payment status, for the refund checks
//	ver       the version, compared and set by UpdatePayment
//	amount    the amount, for the refund checks
//	refunded  sum of succeeded refunds → Record.RefundedAmount on read
//	reserved  sum of pending refunds

// CreatePayment stores a new payment, in one atomic script: it claims n (if
// not nil; ErrNonceReplayed and nothing else done), and if the merchant's
// out_trade_no is already indexed returns that stored record with
// created=false (comparing the content is the caller's job); otherwise it
// stores rec with Version 1 (rec.Version is set to 1), indexes it, schedules
// it in the sweep at sweepAt (zero: not scheduled) and returns rec, true.
//
// The payment → merchant index used by channel callbacks is written in the
// same pipeline (one round trip); it is removed again when the payment was
// not created.
func (s *Store) CreatePayment(ctx context.Context, n *Nonce, rec *payment.Record, sweepAt time.Time) (*payment.Record, bool, error) {
	if err := CheckNewPayment(rec); err != nil {
		return nil, false, err
	}
	m := rec.MerchantID
	nk, ttl, err := s.nonceArgs(n, m)
	if err != nil {
		return nil, false, err
	}
	body, err := marshalPayment(rec, 1)
	if err != nil {
		return nil, false, err
	}
	keys := []string{nk, s.k.outTradeNo(m, rec.OutTradeNo), s.k.payment(m, rec.PaymentID), s.k.sweep(m),
		s.k.payments(m), s.k.paymentsByStatus(m, string(rec.Status))}
	args := []any{ttl, rec.PaymentID, body, string(rec.Status), strconv.FormatInt(rec.Amount, 10),
		sweepMember(SweepPayment, rec.PaymentID), msOrEmpty(sweepAt), s.k.paymentPrefix(m), ms(rec.CreatedAt)}

	pmKey := s.k.paymentMerchant(rec.PaymentID)
	pipe := s.rdb.Pipeline()
	pm := pipe.SetNX(ctx, pmKey, m, 0)
	cmd := scCreatePayment.EvalSha(ctx, pipe, keys, args...)
	_, _ = pipe.Exec(ctx) // errors are read per command below
	if isNoScript(cmd.Err()) {
		cmd = scCreatePayment.Eval(ctx, s.rdb, keys, args...)
	}
	res, err := cmd.Slice()
	if err != nil {
		return nil, false, wrapScript("create payment", err)
	}
	if err := pm.Err(); err != nil {
		return nil, false, wrapScript("create payment: index payment", err)
	}

	var (
		stored *payment.Record
		keep   bool // the payment → merchant key belongs to a stored payment
	)
	switch o := outcome(res); o {
	case "created":
		if !pm.Val() {
			// 143 random bits make this a broken id generator, not bad luck.
			return nil, false, fmt.Errorf("store: payment id %s is already indexed for another payment", rec.PaymentID)
		}
		rec.Version = 1
		rec.RefundedAmount = 0
		return rec, true, nil
	case "exists":
		stored, err = decodePayment(res[1:])
		if err != nil {
			return nil, false, fmt.Errorf("store: create payment: out_trade_no %s: %w", rec.OutTradeNo, err)
		}
		if stored.PaymentID == rec.PaymentID {
			return stored, false, nil // a retry of a create that went through
		}
	case "replay":
		err = ErrNonceReplayed
		// The payment exists: an earlier run of this very call (resent
		// after a lost reply) created it, and its index must stay.
		keep = len(res) > 1 && num(res[1]) == 1
	case "dupid":
		err = fmt.Errorf("store: payment id %s already stored", rec.PaymentID)
		keep = true
	default:
		err = fmt.Errorf("store: create payment: unexpected outcome %q", o)
	}
	// Nothing was created: drop the payment → merchant index we just wrote.
	if pm.Val() && !keep {
		if derr := s.rdb.Del(ctx, pmKey).Err(); derr != nil {
			s.log.Warn("create payment: orphan payment index left", zap.String("payment_id", rec.PaymentID), zap.Error(derr))
		}
	}
	return stored, false, err
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

func validPaymentStatus(st payment.Status) bool {
	switch st {
	case payment.StatusPending, payment.StatusSucceeded, payment.StatusFailed, payment.StatusClosed:
		return true
	}
	return false
}

// storedForm is how records are encoded in the rec field: JSON without its
// zero fields (a payment's record is about a third shorter, and Redis holds
// one per payment), decoded about 2.5× faster than encoding/json does (the
// read path decodes one per request). Invalid UTF-8 (a channel's text) is
// replaced by U+FFFD as encoding/json did. Records written with every field
// present (before this form) decode to the same record.
var storedForm = jsonv2.JoinOptions(jsonv2.OmitZeroStructFields(true), jsontext.AllowInvalidUTF8(true))

// marshalPayment is the rec field: rec with its new version; RefundedAmount
// is owned by the store's counters and stored as 0.
func marshalPayment(rec *payment.Record, version int64) ([]byte, error) {
	c := *rec
	c.Version = version
	c.RefundedAmount = 0
	b, err := jsonv2.Marshal(&c, storedForm)
	if err != nil {
		return nil, fmt.Errorf("store: encode payment: %w", err)
	}
	return b, nil
}

// decodePayment decodes {rec, ver, refunded} as returned by the scripts.
func decodePayment(v []any) (*payment.Record, error) {
	if len(v) < 3 || v[0] == nil {
		return nil, errors.New("index points to a missing payment")
	}
	var rec payment.Record
	if err := jsonv2.Unmarshal([]byte(str(v[0])), &rec, storedForm); err != nil {
		return nil, fmt.Errorf("decode payment: %w", err)
	}
	rec.Version = num(v[1])
	rec.RefundedAmount = num(v[2])
	return &rec, nil
}

// GetPayment returns a payment of merchant, claiming n (if not nil) in the
// same round trip: ErrNonceReplayed, ErrNotFound.
func (s *Store) GetPayment(ctx context.Context, n *Nonce, merchant, paymentID string) (*payment.Record, error) {
	if merchant == "" {
		return nil, errEmptyMerchant
	}
	nk, ttl, err := s.nonceArgs(n, merchant)
	if err != nil {
		return nil, err
	}
	// A read changes nothing, so it needs no script: the nonce claim and the
	// read go pipelined in one round trip, and a replayed nonce's read is
	// dropped. Redis runs the two commands for about half the CPU of a
	// script call (the read path's Redis cost).
	var claim *redis.BoolCmd
	var h *redis.SliceCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if ttl != "" {
			claim = p.SetNX(ctx, nk, "1", n.TTL)
		}
		h = p.HMGet(ctx, s.k.payment(merchant, paymentID), "rec", "ver", "refunded")
		return nil
	}); err != nil {
		return nil, wrap("get payment", err)
	}
	if claim != nil && !claim.Val() {
		return nil, ErrNonceReplayed
	}
	v := h.Val()
	if len(v) == 0 || v[0] == nil {
		return nil, ErrNotFound
	}
	rec, err := decodePayment(v)
	if err != nil {
		return nil, fmt.Errorf("store: get payment: %w", err)
	}
	return rec, nil
}

// GetPaymentByOutTradeNo is GetPayment by the merchant's out_trade_no.
func (s *Store) GetPaymentByOutTradeNo(ctx context.Context, n *Nonce, merchant, outTradeNo string) (*payment.Record, error) {
	if merchant == "" {
		return nil, errEmptyMerchant
	}
	nk, ttl, err := s.nonceArgs(n, merchant)
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, "get payment", scGetByIndex,
		[]string{nk, s.k.outTradeNo(merchant, outTradeNo)}, ttl, s.k.paymentPrefix(merchant))
	if err != nil {
		return nil, err
	}
	return paymentResult(res)
}

func paymentResult(res []any) (*payment.Record, error) {
	switch o := outcome(res); o {
	case "ok":
		rec, err := decodePayment(res[1:])
		if err != nil {
			return nil, fmt.Errorf("store: get payment: %w", err)
		}
		return rec, nil
	case "notfound":
		return nil, ErrNotFound
	case "replay":
		return nil, ErrNonceReplayed
	default:
		return nil, fmt.Errorf("store: get payment: unexpected outcome %q", o)
	}
}

// PaymentMerchant returns the merchant a payment id belongs to (for channel
// callbacks, which know only the payment); ErrNotFound.
func (s *Store) PaymentMerchant(ctx context.Context, paymentID string) (string, error) {
	m, err := s.rdb.Get(ctx, s.k.paymentMerchant(paymentID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", wrap("payment merchant", err)
	}
	return m, nil
}

// UpdatePayment stores rec if the stored version still equals rec.Version
// (compare-and-set), as version rec.Version+1, and sets rec.Version to it;
// otherwise it returns ErrConflict and changes nothing (ErrNotFound if there
// is no such payment). rec.RefundedAmount is ignored: the store owns it.
//
// In the same atomic step, ch.Event is enqueued (due now) unless an event
// with its id was enqueued before, and the sweep entry is moved to ch.SweepAt
// (zero removes it).
func (s *Store) UpdatePayment(ctx context.Context, rec *payment.Record, ch Change) error {
	if err := CheckPaymentUpdate(rec); err != nil {
		return err
	}
	m := rec.MerchantID
	next := rec.Version + 1
	body, err := marshalPayment(rec, next)
	if err != nil {
		return err
	}
	ck, ca, err := s.changeArgs(m, SweepPayment, rec.PaymentID, ch)
	if err != nil {
		return err
	}
	keys := append([]string{s.k.payment(m, rec.PaymentID)}, ck...)
	args := append([]any{strconv.FormatInt(rec.Version, 10), strconv.FormatInt(next, 10), body, string(rec.Status)}, ca...)
	args = append(args, s.k.paymentsByStatus(m, ""), rec.PaymentID)
	res, err := s.run(ctx, "update payment", scUpdatePayment, keys, args...)
	if err != nil {
		return err
	}
	switch o := outcome(res); o {
	case "ok":
		rec.Version = next
		return nil
	case "conflict":
		return ErrConflict
	case "notfound":
		return ErrNotFound
	default:
		return fmt.Errorf("store: update payment: unexpected outcome %q", o)
	}
}

// changeArgs are the KEYS and ARGV of luaChange for one object.
func (s *Store) changeArgs(m, kind, id string, ch Change) ([]string, []any, error) {
	keys := []string{s.k.outbox(m), s.k.event(m, ""), s.k.sweep(m), s.k.sweepAttempts(m), s.k.seq(m)}
	args := []any{"", "", "", sweepMember(kind, id), msOrEmpty(ch.SweepAt)}
	if ev := ch.Event; ev != nil {
		if err := CheckEvent(ev, m); err != nil {
			return nil, nil, err
		}
		keys[1] = s.k.event(m, ev.ID)
		args[0], args[1], args[2] = ev.ID, ev.Body, ev.NotifyURL
	}
	return keys, args, nil
}
