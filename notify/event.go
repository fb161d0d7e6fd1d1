package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
)

// MaxNotifyURLLen is the longest notify_url accepted (CONTRACT §4).
const MaxNotifyURLLen = 255

// ErrInvalidEvent is wrapped by every NewEvent error.
var ErrInvalidEvent = errors.New("notify: invalid event")

// NewEvent builds the outbox event announcing that object objectID of
// merchant reached the final state eventType (one of the payment.Event*
// types). Its id is payment.EventID(objectID, eventType), so a repeated state
// change yields the same event, which the store enqueues at most once.
//
// The body {"id","type","created_at","data"} is marshalled here, exactly
// once: the store keeps these bytes and every attempt resends them verbatim
// (only the signature header is fresh per attempt). created_at is now in UTC,
// RFC 3339. data (the public payment or refund object) is marshalled with
// encoding/json and must be a JSON object; pass a json.RawMessage for JSON
// encoded already.
func NewEvent(eventType, objectID, merchant, notifyURL string, data any, now time.Time) (*store.OutboxEvent, error) {
	if !knownEventType(eventType) {
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, eventType)
	}
	// The notify URL is only required to be present: a URL the Dispatcher
	// cannot use must end as a visible dead letter, not as a state change
	// that fails to record its event. The edge checks it with
	// ValidateNotifyURL when the payment is created.
	if objectID == "" || merchant == "" || notifyURL == "" {
		return nil, fmt.Errorf("%w: empty object id, merchant or notify url", ErrInvalidEvent)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: data: %w", ErrInvalidEvent, err)
	}
	if !bytes.HasPrefix(raw, []byte("{")) {
		return nil, fmt.Errorf("%w: data is not a JSON object", ErrInvalidEvent)
	}
	id := payment.EventID(objectID, eventType)
	body, err := json.Marshal(payment.Event{ID: id, Type: eventType, CreatedAt: now.UTC(), Data: raw})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return &store.OutboxEvent{ID: id, Merchant: merchant, NotifyURL: notifyURL, Body: body}, nil
}

func knownEventType(t string) bool {
	switch t {
	case payment.EventPaymentSucceeded, payment.EventPaymentFailed, payment.EventPaymentClosed,
		payment.EventRefundSucceeded, payment.EventRefundFailed:
		return true
	}
	return false
}

// ValidateNotifyURL checks the shape of a notify_url (CONTRACT §4): an
// absolute http or https URL with a host, at most MaxNotifyURLLen characters,
// whose host is not a non-canonical numeric IP form (see Dialer). It does not
// resolve the host: whether the address may be dialled is decided at dial
// time, per merchant, by the Dialer. The edge can call it to answer 400 early.
func ValidateNotifyURL(raw string) error {
	if len(raw) > MaxNotifyURLLen {
		return fmt.Errorf("notify_url: longer than %d characters", MaxNotifyURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("notify_url: not a URL") // url.Error would echo the URL
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("notify_url: scheme must be http or https")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("notify_url: no host")
	}
	if u.Opaque != "" {
		return errors.New("notify_url: not an absolute URL")
	}
	if err := checkHostForm(u.Hostname()); err != nil {
		return fmt.Errorf("notify_url: %w", err)
	}
	return nil
}
