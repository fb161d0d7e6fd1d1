package gateway_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

// An instance that dies between sending a create to the channel and
// recording the answer leaves an attempt with no outcome. The reconciler
// marks it ambiguous after a minute (so replays of the create answer the
// payment instead of request_in_progress forever) and asks the channel.
func TestReconcilerResolvesAbandonedCreate(t *testing.T) {
	s, in, offset, _ := clockedEnv(t)
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	sg := hmacSigner("m-hmac", hmacSecret)

	// What the crashed instance left behind: the pending record with the
	// attempt it was making, written before its channel call.
	ctx := context.Background()
	created := now().UTC().Truncate(time.Second)
	pid := seedPending(t, in, "crashed-1", created, 15*time.Minute, "")
	body := paymentBody("crashed-1", 100, "qr")
	if r := sg.do(t, in.url, http.MethodPost, "/v1/payments", body, reqOpts{}); r.status != 409 || r.errCode(t) != "request_in_progress" {
		t.Fatalf("while the create may still run: %d %s", r.status, r.body)
	}
	rc := in.reconciler(time.Second, 5*time.Second)
	rc.SweepOnce(ctx) // within the minute: left alone
	if got, _ := in.st.GetPayment(ctx, nil, "m-hmac", pid); got.Attempts[0].Outcome != "" {
		t.Fatalf("a live create was marked after %s", now().Sub(created))
	}
	offset.Store(int64(2 * time.Minute))
	rc.SweepOnce(ctx)
	// The channel never got the create (the instance died first): the
	// reconciler marks the attempt ambiguous, asks the channel (no such
	// order), and sends the create again, identically, to the same channel,
	// so the payment gets its one order and its action.
	got, err := in.st.GetPayment(ctx, nil, "m-hmac", pid)
	if err != nil || got.Attempts[0].Outcome != payment.OutcomeCreated || got.Status != payment.StatusPending || got.Action == nil || got.Action.CodeURL == "" {
		t.Fatalf("after the sweep: %+v %v", got, err)
	}
	r := sg.do(t, in.url, http.MethodPost, "/v1/payments", body, reqOpts{ts: now().Unix()})
	if r.status != 200 || r.json(t)["payment_id"] != pid || r.json(t)["action"] == nil {
		t.Fatalf("replay after the sweep: %d %s", r.status, r.body)
	}
	if n := s.creates.Load(); n != 1 {
		t.Fatalf("orders created at the channel: %d, want exactly 1", n)
	}
	// Another sweep sends nothing more.
	offset.Store(int64(5 * time.Minute))
	rc.SweepOnce(ctx)
	if n := s.creates.Load(); n != 1 {
		t.Fatalf("orders created at the channel after another sweep: %d, want 1", n)
	}
}

// A merchant disabled (or removed) by a reload can no longer call the API,
// but its pending payments are still reconciled and listed for delivery.
func TestRemovedMerchantKeepsItsWork(t *testing.T) {
	for _, how := range []string{"disabled", "removed"} {
		t.Run(how, func(t *testing.T) {
			s, in, offset, cfg := clockedEnv(t)
			sg := hmacSigner("m-hmac", hmacSecret)
			r := sg.do(t, in.url, http.MethodPost, "/v1/payments", paymentBody("gone-1", 300, "wechat_native"), reqOpts{})
			if r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			id := r.json(t)["payment_id"].(string)
			// Paid at the channel; its notification never reaches us (the
			// harness's public_url is unreachable): only a query can tell.
			if err := s.sim.Pay(payment.OrderNo(id)); err != nil {
				t.Fatal(err)
			}
			next := *cfg
			next.Merchants = append([]config.Merchant(nil), cfg.Merchants...)
			if how == "disabled" {
				next.Merchants[0].Disabled = true
			} else {
				next.Merchants = next.Merchants[1:]
			}
			if err := in.srv.Reload(&next); err != nil {
				t.Fatal(err)
			}
			if r := sg.do(t, in.url, http.MethodGet, "/v1/payments/"+id, nil, reqOpts{}); r.status != 401 || r.errCode(t) != "unknown_merchant" {
				t.Fatalf("the %s merchant still authenticates: %d %s", how, r.status, r.body)
			}
			offset.Store(int64(time.Minute)) // past the first reconcile delay
			in.reconciler(time.Second, 10*time.Second).SweepOnce(context.Background())
			got, err := in.st.GetPayment(context.Background(), nil, "m-hmac", id)
			if err != nil || got.Status != payment.StatusSucceeded {
				t.Fatalf("the %s merchant's payment was not reconciled: %+v %v", how, got, err)
			}
		})
	}
}

// A create whose answer was lost, then a merchant close the channel cannot
// make (WeChat has no such order): paygate remembers the close, never sends
// the create again, and closes the payment once it has expired.
func TestCloseRequestedStopsRecovery(t *testing.T) {
	s, in, offset, _ := clockedEnv(t)
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	sg := hmacSigner("m-hmac", hmacSecret)
	ctx := context.Background()
	created := now().UTC().Truncate(time.Second)
	pid := seedPending(t, in, "lost-1", created, 15*time.Minute, payment.OutcomeAmbiguous)
	r := sg.do(t, in.url, http.MethodPost, "/v1/payments/"+pid+"/close", nil, reqOpts{})
	if r.status != 409 || r.errCode(t) != "invalid_state" {
		t.Fatalf("close of an order WeChat never got: %d %s", r.status, r.body)
	}
	rc := in.reconciler(time.Second, 10*time.Second)
	offset.Store(int64(time.Minute))
	rc.SweepOnce(ctx)
	if n := s.creates.Load(); n != 0 {
		t.Fatalf("the create was sent again after the merchant asked to close: %d orders", n)
	}
	if got, _ := in.st.GetPayment(ctx, nil, "m-hmac", pid); got.Status != payment.StatusPending || !got.CloseRequested {
		t.Fatalf("before expiry: %+v", got)
	}
	offset.Store(int64(17 * time.Minute)) // past expiry and the grace
	rc.SweepOnce(ctx)
	if got, _ := in.st.GetPayment(ctx, nil, "m-hmac", pid); got.Status != payment.StatusClosed {
		t.Fatalf("after expiry: %s", got.Status)
	}
	if n := s.creates.Load(); n != 0 {
		t.Fatalf("orders created: %d", n)
	}
}

// A lost create answer is not recovered once the payment has expired (a
// code sent then could be paid after expires_at), and the payment is closed
// only after the grace, once the channel confirms it has no such order.
func TestNoRecoveryAfterExpiryAndTheGrace(t *testing.T) {
	s, in, offset, _ := clockedEnv(t)
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	ctx := context.Background()
	created := now().UTC().Truncate(time.Second)
	pid := seedPending(t, in, "late-1", created, time.Minute, payment.OutcomeAmbiguous)
	rc := in.reconciler(time.Second, 10*time.Second)
	offset.Store(int64(90 * time.Second)) // expired, inside the grace
	rc.SweepOnce(ctx)
	got, _ := in.st.GetPayment(ctx, nil, "m-hmac", pid)
	if n := s.creates.Load(); n != 0 || got.Status != payment.StatusPending {
		t.Fatalf("inside the grace: %d creates, status %s", n, got.Status)
	}
	offset.Store(int64(3 * time.Minute)) // past the grace
	rc.SweepOnce(ctx)
	got, _ = in.st.GetPayment(ctx, nil, "m-hmac", pid)
	if n := s.creates.Load(); n != 0 || got.Status != payment.StatusClosed {
		t.Fatalf("past the grace: %d creates, status %s", n, got.Status)
	}
}

// clockedEnv is a redis-server, a WeChat simulator and one edge whose clock
// the test moves by offset (the clock the reconciler reads too).
func clockedEnv(t *testing.T) (*sim, *instance, *atomic.Int64, *config.Config) {
	t.Helper()
	rs := storetest.Redis(t)
	s := newSim(t)
	cfg := testConfig(t, s.srv.URL)
	s.start(t, cfg)
	offset := new(atomic.Int64)
	in := startInstance(t, cfg, rs.Addr(), gateway.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	return s, in, offset, cfg
}

// seedPending stores, as a gateway instance would before its channel call,
// a pending qr payment of m-hmac on wechat-main whose one attempt has the
// given outcome ("" = the call never returned); it returns the payment id.
func seedPending(t *testing.T, in *instance, otn string, created time.Time, expiresIn time.Duration, outcome string) string {
	t.Helper()
	pid := payment.NewPaymentID()
	rec := &payment.Record{
		Payment: payment.Payment{PaymentID: pid, MerchantID: "m-hmac", OutTradeNo: otn, Status: payment.StatusPending,
			Amount: 100, Currency: "CNY", Method: payment.MethodQR, Channel: "wechat-main", Subject: "Coffee",
			CreatedAt: created, UpdatedAt: created, ExpiresAt: created.Add(expiresIn)},
		NotifyURL: "http://127.0.0.1:1/notify", ChannelOrderNo: payment.OrderNo(pid),
		Attempts: []payment.Attempt{{Channel: "wechat-main", Outcome: outcome, At: created}},
	}
	if _, ok, err := in.st.CreatePayment(context.Background(), nil, rec, created); err != nil || !ok {
		t.Fatalf("seed: %v %v", ok, err)
	}
	return pid
}
