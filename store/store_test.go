package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial to stderr; the store-down tests make
	// plenty on purpose.
	redis.SetLogger(quietLogger{})
	goleak.VerifyTestMain(m)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// t0 is the injected "now" of the tests; nothing depends on the wall clock.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// env is a store under test plus a way to open another Store instance on the
// same Redis (another gateway process, as far as Redis can tell).
type env struct {
	s     *Store
	other func(t *testing.T) *Store
}

type testCase struct {
	name string
	fn   func(t *testing.T, e env)
}

// suite runs on every backend: a real redis-server, the embedded store, and
// (TestCluster) a three-master Redis Cluster.
var suite = []testCase{
	{"ClaimNonce", testClaimNonce},
	{"NonceAcrossStores", testNonceAcrossStores},
	{"CreatePayment", testCreatePayment},
	{"CreatePaymentConcurrent", testCreatePaymentConcurrent},
	{"CreatePaymentReplayedNonce", testCreatePaymentReplayedNonce},
	{"GetPaymentClaimsNonce", testGetPaymentClaimsNonce},
	{"UpdatePaymentCAS", testUpdatePaymentCAS},
	{"UpdatePaymentConcurrentCAS", testUpdatePaymentConcurrentCAS},
	{"UpdatePaymentEventOnce", testUpdatePaymentEventOnce},
	{"UpdatePaymentSweep", testUpdatePaymentSweep},
	{"Refunds", testRefunds},
	{"RefundsConcurrent", testRefundsConcurrent},
	{"RefundNonceAndChange", testRefundNonceAndChange},
	{"OutboxLease", testOutboxLease},
	{"OutboxRetryDeadReplay", testOutboxRetryDeadReplay},
	{"OutboxTwoStores", testOutboxTwoStores},
	{"Sweep", testSweep},
	{"Throttle", testThrottle},
	{"Health", testHealth},
	{"Validation", testValidation},
	{"Risk", testRisk},
	{"RiskNonce", testRiskNonce},
	{"RiskConcurrent", testRiskConcurrent},
}

func runSuite(t *testing.T, open func(t *testing.T) env) {
	t.Helper()
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// TestRedis runs the suite against a real redis-server, one per test.
func TestRedis(t *testing.T) {
	t.Parallel()
	runSuite(t, func(t *testing.T) env {
		srv := storetest.Redis(t)
		return env{s: openAddrs(t, srv.Addr()), other: func(t *testing.T) *Store { return openAddrs(t, srv.Addr()) }}
	})
}

// TestEmbedded runs the suite against the embedded store (miniredis).
func TestEmbedded(t *testing.T) {
	t.Parallel()
	runSuite(t, func(t *testing.T) env {
		s := openStore(t, config.Redis{ReadTimeout: slow, WriteTimeout: slow})
		if !s.Embedded() {
			t.Fatal("no addrs did not give the embedded store")
		}
		addr, pw := s.emb.addr(), s.emb.password
		return env{s: s, other: func(t *testing.T) *Store {
			return openStore(t, config.Redis{Addrs: []string{addr}, Password: config.Secret(pw), ReadTimeout: slow, WriteTimeout: slow})
		}}
	})
}

// openAddrs opens a Store with generous timeouts: the machine running the
// tests may be busy, and only TestStoreDown is about timeouts.
func openAddrs(t testing.TB, addrs ...string) *Store {
	t.Helper()
	return openStore(t, config.Redis{Addrs: addrs, ReadTimeout: slow, WriteTimeout: slow})
}

const slow = config.Duration(10 * time.Second)

func openStore(t testing.TB, cfg config.Redis) *Store {
	t.Helper()
	s, err := Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// merchantOf is a merchant id unique to the test, so tests that share a
// Redis (the cluster) never see each other's data.
func merchantOf(t testing.TB) string {
	return "m_" + nonAlnum.ReplaceAllString(t.Name(), "_")
}

var nonceSeq atomic.Int64

func newNonce(merchant string) *Nonce {
	return &Nonce{Merchant: merchant, Value: fmt.Sprintf("nonce-%016d", nonceSeq.Add(1)), TTL: 10 * time.Minute}
}

func newPayment(merchant, outTradeNo string, amount int64) *payment.Record {
	id := payment.NewPaymentID()
	return &payment.Record{
		Payment: payment.Payment{
			PaymentID: id, MerchantID: merchant, OutTradeNo: outTradeNo, Status: payment.StatusPending,
			Amount: amount, Currency: "CNY", Method: payment.MethodQR, Channel: "wechat-main",
			Subject: "Coffee", Metadata: map[string]string{"cart": "42"},
			CreatedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute),
		},
		NotifyURL:      "https://merchant.example/notify",
		ChannelOrderNo: payment.OrderNo(id),
	}
}

// mustCreatePayment stores a payment that then has succeeded (version 2).
func mustSucceededPayment(t *testing.T, s *Store, merchant string, amount int64) *payment.Record {
	t.Helper()
	ctx := context.Background()
	rec := mustCreate(t, s, newPayment(merchant, "order-"+payment.OrderNo(payment.NewPaymentID())[:12], amount))
	rec.Status = payment.StatusSucceeded
	paid := t0.Add(time.Minute)
	rec.PaidAt = &paid
	if err := s.UpdatePayment(ctx, rec, Change{}); err != nil {
		t.Fatalf("mark succeeded: %v", err)
	}
	return rec
}

func mustCreate(t *testing.T, s *Store, rec *payment.Record) *payment.Record {
	t.Helper()
	got, created, err := s.CreatePayment(context.Background(), nil, rec, time.Time{})
	if err != nil || !created {
		t.Fatalf("create payment: created=%v err=%v", created, err)
	}
	return got
}

func newRefund(p *payment.Record, outRefundNo string, amount int64) *payment.RefundRecord {
	id := payment.NewRefundID(p.PaymentID)
	return &payment.RefundRecord{
		Refund: payment.Refund{
			RefundID: id, PaymentID: p.PaymentID, OutRefundNo: outRefundNo, Amount: amount,
			Status: payment.RefundPending, Reason: "damaged", CreatedAt: t0, UpdatedAt: t0,
		},
		MerchantID: p.MerchantID, Channel: p.Channel, ChannelOrderNo: p.ChannelOrderNo,
		RefundOrderNo: payment.RefundOrderNo(id),
	}
}

// The embedded store's port is on loopback, where any local process can
// connect: without the password it answers nothing.
func TestEmbeddedRequiresPassword(t *testing.T) {
	s := openStore(t, config.Redis{ReadTimeout: slow, WriteTimeout: slow})
	_, err := Open(config.Redis{Addrs: []string{s.emb.addr()}, ReadTimeout: slow, WriteTimeout: slow}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("a client without the password got in: %v", err)
	}
}
