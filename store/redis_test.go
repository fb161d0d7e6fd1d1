package store

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

// closedAddr is a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := Open(config.Redis{Addrs: []string{closedAddr(t)}, DialTimeout: config.Duration(200 * time.Millisecond)}, zap.NewNop())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("open of a closed port: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("open took %v to fail", d)
	}
}

func TestOpenEmbeddedWarns(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.WarnLevel)
	s, err := Open(config.Redis{}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Embedded() {
		t.Fatal("not embedded")
	}
	if !strings.HasPrefix(s.emb.addr(), "127.0.0.1:") {
		t.Fatalf("embedded store listens on %s", s.emb.addr())
	}
	w := logs.FilterMessageSnippet("not durable").All()
	if len(w) != 1 || w[0].Level != zapcore.WarnLevel || w[0].LoggerName != "store" ||
		!strings.Contains(w[0].Message, "single process") {
		t.Fatalf("warnings = %+v", logs.All())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestOpenConfig(t *testing.T) {
	t.Parallel()
	srv := storetest.Redis(t)
	if _, err := srv.Do("CONFIG", "SET", "requirepass", "s3cret-redis"); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte("s3cret-redis\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("no password", func(t *testing.T) {
		t.Parallel()
		_, err := Open(config.Redis{Addrs: []string{srv.Addr()}}, zap.NewNop())
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("open without the password: %v, want ErrUnavailable", err)
		}
	})
	t.Run("password file", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, config.Redis{Addrs: []string{srv.Addr()}, PasswordFile: passFile, DB: 3, KeyPrefix: "pgx"})
		m := merchantOf(t)
		if err := s.ClaimNonce(context.Background(), Nonce{Merchant: m, Value: "n1", TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		// The key is in db 3 under the configured prefix.
		for db, want := range map[int]int64{3: 1, 0: 0} {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "s3cret-redis", DB: db})
			n, err := c.Exists(context.Background(), "pgx:{"+m+"}:n:n1").Result()
			_ = c.Close()
			if err != nil || n != want {
				t.Fatalf("db %d holds the nonce key %d times (%v), want %d", db, n, err, want)
			}
		}
	})
	t.Run("two password forms", func(t *testing.T) {
		t.Parallel()
		_, err := Open(config.Redis{Addrs: []string{srv.Addr()}, Password: "x", PasswordFile: passFile}, zap.NewNop())
		if err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("two password forms: %v", err)
		}
	})
	t.Run("bad prefix", func(t *testing.T) {
		t.Parallel()
		if _, err := Open(config.Redis{KeyPrefix: "p{x}"}, zap.NewNop()); err == nil {
			t.Fatal("prefix with braces accepted")
		}
	})
}

// TestStoreDown: with Redis gone every call fails fast with ErrUnavailable
// (the gateway answers 503 and never accepts an unclaimed nonce), and the
// same Store works again once Redis is back (scripts are reloaded: the
// restarted server has an empty script cache).
func TestStoreDown(t *testing.T) {
	t.Parallel()
	srv := storetest.Redis(t)
	s := openStore(t, config.Redis{
		Addrs:        []string{srv.Addr()},
		DialTimeout:  config.Duration(200 * time.Millisecond),
		ReadTimeout:  config.Duration(200 * time.Millisecond),
		WriteTimeout: config.Duration(200 * time.Millisecond),
	})
	ctx := context.Background()
	m := merchantOf(t)
	mustCreate(t, s, newPayment(m, "order-before", 100))

	srv.Stop()
	calls := []struct {
		name string
		call func() error
	}{
		{"ClaimNonce", func() error { return s.ClaimNonce(ctx, *newNonce(m)) }},
		{"CreatePayment", func() error {
			_, _, err := s.CreatePayment(ctx, newNonce(m), newPayment(m, "order-down", 1), t0)
			return err
		}},
		{"GetPayment", func() error { _, err := s.GetPayment(ctx, newNonce(m), m, payment.NewPaymentID()); return err }},
		{"PaymentMerchant", func() error { _, err := s.PaymentMerchant(ctx, payment.NewPaymentID()); return err }},
		{"ClaimEvents", func() error { _, err := s.ClaimEvents(ctx, m, t0, time.Minute, 10); return err }},
		{"OutboxStats", func() error { _, _, err := s.OutboxStats(ctx, m); return err }},
		{"AddHealth", func() error { return s.AddHealth(ctx, []HealthBucket{{Channel: "c", OK: 1}}, time.Minute) }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", c.name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v to fail", c.name, d)
		}
	}

	srv.Start()
	// The pool may still hold connections to the dead server; go-redis drops
	// them when it finds them closed. Allow a short while for that.
	deadline := time.Now().Add(5 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not come back after Redis restarted")
		}
		time.Sleep(20 * time.Millisecond) // waiting on another process; no clock to inject
	}
	rec := newPayment(m, "order-after", 100)
	if _, created, err := s.CreatePayment(ctx, newNonce(m), rec, t0); err != nil || !created {
		t.Fatalf("create after restart: created=%v err=%v", created, err)
	}
	if _, err := s.GetPayment(ctx, newNonce(m), m, rec.PaymentID); err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if _, err := s.ClaimEvents(ctx, m, t0, time.Minute, 10); err != nil {
		t.Fatalf("claim after restart: %v", err)
	}
}

func TestContextCancelledIsUnavailable(t *testing.T) {
	t.Parallel()
	s := openAddrs(t, storetest.Redis(t).Addr())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.ClaimNonce(ctx, *newNonce("m"))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled claim: %v, want ErrUnavailable and context.Canceled", err)
	}
}

func TestUnavailableClassification(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"deadline", context.DeadlineExceeded, true},
		{"loading", redisErr("LOADING Redis is loading the dataset in memory"), true},
		{"cluster down", redisErr("CLUSTERDOWN The cluster is down"), true},
		{"busy", redisErr("BUSY Redis is busy running a script"), true},
		{"oom", redisErr("OOM command not allowed when used memory > 'maxmemory'"), true},
		{"script bug", redisErr("ERR user_script:1: Script attempted to access nonexistent global variable"), false},
		{"cross slot", redisErr("CROSSSLOT Keys in request don't hash to the same slot"), false},
		{"wrong type", redisErr("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := errors.Is(wrap("op", c.err), ErrUnavailable); got != c.want {
				t.Fatalf("unavailable = %v, want %v", got, c.want)
			}
		})
	}
}

// redisErr is an error reply as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}
