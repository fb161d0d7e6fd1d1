package bank

import (
	"context"
	"net/http"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

// ParseNotify verifies a back notification (a form POST to backUrl) and
// decodes it. Verification comes first and uses only the raw bytes: the
// form's signPubKeyCert must chain to the pinned roots and be valid now, be
// the bank's (its CN's identity, see Config.Identity), and the signature over every other field must verify with its key. Then merId
// must be ours (account_mismatch otherwise: another bank instance's
// notification). Consumes (txnType 01) become payment notifications, refunds
// (txnType 04) refund notifications; other transaction types are refused.
func (c *Client) ParseNotify(_ context.Context, cb *adapters.Callback) (*adapters.Notification, error) {
	const op = "notify"
	fields, err := parseForm(cb.Body)
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindBadSignature, Code: "malformed",
			Message: "notification is not a form", Err: err}
	}
	if err := c.verifyBank(fields); err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindBadSignature, Code: "bad_signature",
			Message: "notification failed verification", Err: err}
	}
	if fields["merId"] != c.m.merID {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindBadSignature, Code: "account_mismatch",
			Message: "notification is for another merId"}
	}
	n, err := decodeNotification(fields, c.now())
	if err != nil {
		return nil, &adapters.Error{Channel: c.cfg.ID, Op: op, Kind: adapters.KindInvalid, Code: "bad_notification", Err: err}
	}
	return n, nil
}

// NotifyHint names the payment order an unverified back notification claims
// to be about (a refund's orderId starts with its payment's order number).
// The edge uses it only to query the bank sooner; it trusts nothing in it.
func (c *Client) NotifyHint(cb *adapters.Callback) string {
	fields, err := parseForm(cb.Body)
	if err != nil {
		return ""
	}
	return payment.OrderNo(payment.PaymentIDFromOrderNo(fields["orderId"]))
}

// Ack is the answer the bank expects: HTTP 200 acknowledges (the body is
// not read; paygate writes "ok"); anything else makes the bank resend.
func (c *Client) Ack(err error) adapters.Ack {
	if err == nil {
		return adapters.Ack{Status: http.StatusOK, ContentType: "text/plain; charset=utf-8", Body: []byte("ok")}
	}
	return adapters.Ack{Status: http.StatusBadRequest, ContentType: "text/plain; charset=utf-8", Body: []byte("fail")}
}
