package ledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/ledger/pgtest"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/conformance"
	"github.com/paygate/paygate/store/storetest"
)

// testPool config: short timeouts so that fault tests fail fast.
var testCfg = config.Postgres{
	MaxConns:         20,
	ConnectTimeout:   config.Duration(time.Second),
	StatementTimeout: config.Duration(5 * time.Second),
	Migrate:          true,
}

func newPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := NewPool(context.Background(), dsn, testCfg)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func openRedis(t *testing.T, addr string) *store.Store {
	t.Helper()
	rs, err := store.Open(config.Redis{Addrs: []string{addr}}, zap.NewNop())
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	return rs
}

// newLedger is a migrated ledger on a fresh database of srv, with its nonces
// in the Redis at redisAddr.
func newLedger(t *testing.T, srv *pgtest.Server, redisAddr string) *Ledger {
	t.Helper()
	pool := newPool(t, srv.NewDatabase(t))
	if _, err := Migrate(context.Background(), pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return New(pool, openRedis(t, redisAddr), zap.NewNop())
}

// TestConformance runs the suite the Redis store runs, on PostgreSQL.
func TestConformance(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	rds := storetest.Redis(t)
	conformance.Run(t, func(t *testing.T) conformance.Ledger { return newLedger(t, srv, rds.Addr()) })
}

func TestMigrateFromEmpty(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx := context.Background()
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("migrations: %v %v", ms, err)
	}
	pool := newPool(t, srv.NewDatabase(t))
	if v, err := SchemaVersion(ctx, pool); err != nil || v != 0 {
		t.Fatalf("empty database at version %d, %v", v, err)
	}
	// Several instances starting at once: one applies, the others wait and
	// find the schema current.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []int
	)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vs, err := Migrate(ctx, pool)
			if err != nil {
				t.Errorf("migrate: %v", err)
			}
			mu.Lock()
			applied = append(applied, vs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(applied) != len(ms) {
		t.Fatalf("applied %v by 5 concurrent migrators, want each of %d migrations once", applied, len(ms))
	}
	if v, err := SchemaVersion(ctx, pool); err != nil || v != len(ms) {
		t.Fatalf("version %d, %v; want %d", v, err, len(ms))
	}
	// The schema works: a full ledger round trip on it.
	l := New(pool, openRedis(t, storetest.Redis(t).Addr()), nil)
	rec := conformance.NewPayment("m", "o-1", 10, conformance.T0)
	if _, created, err := l.CreatePayment(ctx, conformance.Nonce("m"), rec, time.Time{}); err != nil || !created {
		t.Fatalf("create on the migrated schema: %v %v", created, err)
	}
	// A database newer than the binary is refused.
	if _, err := pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, pool); err == nil {
		t.Fatal("migrated a database newer than the binary")
	}
}

// TestOpen goes through config: the DSN from a file, migrations at start.
func TestOpen(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	file := filepath.Join(t.TempDir(), "pg.dsn")
	if err := os.WriteFile(file, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testCfg
	cfg.DSNFile = file
	rs := openRedis(t, storetest.Redis(t).Addr())
	l, err := Open(context.Background(), cfg, rs, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if v, err := SchemaVersion(context.Background(), l.Pool()); err != nil || v < 1 {
		t.Fatalf("not migrated at start: %d %v", v, err)
	}
	if err := l.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Embedded() {
		t.Fatal("the PostgreSQL ledger says it is embedded")
	}
	// A DSN that does not parse never appears in the error.
	cfg.DSNFile = ""
	cfg.DSN = "postgres://u:s3cret@[bad"
	if _, err := Open(context.Background(), cfg, rs, nil); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad dsn: %v", err)
	}
}

// TestPostgresDown: with the server gone, calls fail promptly with
// ErrUnavailable (the connection was refused: nothing was sent, so the
// outcome is known), and work again once it is back, without a restart.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	l := newLedger(t, srv, storetest.Redis(t).Addr())
	ctx := context.Background()
	before := conformance.NewPayment("m", "before", 10, conformance.T0)
	if _, _, err := l.CreatePayment(ctx, nil, before, time.Time{}); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, err := l.CreatePayment(cctx, conformance.Nonce("m"), conformance.NewPayment("m", "during", 10, conformance.T0), time.Time{})
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("create with PostgreSQL down: %v; want ErrUnavailable, not ErrOutcomeUnknown", err)
	}
	if cctx.Err() != nil {
		t.Fatal("the create waited for the caller's deadline instead of failing")
	}
	if _, err := l.GetPayment(ctx, nil, "m", before.PaymentID); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("get with PostgreSQL down: %v", err)
	}
	if _, err := l.ClaimEvents(ctx, "m", conformance.T0, time.Minute, 10); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("claim with PostgreSQL down: %v", err)
	}
	if err := l.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ping with PostgreSQL down: %v", err)
	}

	srv.Start()
	var got *payment.Record
	for try := 0; ; try++ {
		// The pool may hand out a connection that died with the server
		// once; the retry gets a fresh one.
		got, err = l.GetPayment(ctx, nil, "m", before.PaymentID)
		if err == nil || try == 3 {
			break
		}
	}
	if err != nil || got.PaymentID != before.PaymentID {
		t.Fatalf("after PostgreSQL came back: %v", err)
	}
	if _, created, err := l.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "after", 10, conformance.T0), time.Time{}); err != nil || !created {
		t.Fatalf("create after PostgreSQL came back: %v %v", created, err)
	}
	if _, err := l.GetPaymentByOutTradeNo(ctx, nil, "m", "during"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the create that failed left a payment: %v", err)
	}
}

func TestPurgeAcked(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	l := newLedger(t, srv, storetest.Redis(t).Addr())
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := l.EnqueueEvent(ctx, store.OutboxEvent{ID: id, Merchant: "m", NotifyURL: "https://x", Body: []byte("{}")}, conformance.T0); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b"} {
		if err := l.AckEvent(ctx, "m", id); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.PurgeAcked(ctx, time.Now().Add(-time.Hour), 100); err != nil || n != 0 {
		t.Fatalf("purged %d recent events, %v", n, err)
	}
	if n, err := l.PurgeAcked(ctx, time.Now().Add(time.Hour), 100); err != nil || n != 2 {
		t.Fatalf("purged %d, %v; want the 2 acknowledged", n, err)
	}
	if p, _, _ := l.OutboxStats(ctx, "m"); p != 1 {
		t.Fatalf("pending %d after the purge, want 1", p)
	}
}
