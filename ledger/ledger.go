// Package ledger is paygate's system of record in PostgreSQL (pgx v5,
// pgxpool): payments (with their channel attempts), refunds, the merchant
// notification outbox and the reconciliation (sweep) schedule.
//
// Every state change and the event it produces are written in one
// transaction (the transactional outbox); out_trade_no and out_refund_no are
// unique per merchant; updates are versioned compare-and-set; a refund
// reserves its amount under a row lock on its payment, so concurrent refunds
// never add up to more than the payment.
//
// A *Ledger has the record, outbox and sweep methods of *store.Store with
// the same signatures and errors, and hands what is shared and short-lived
// (request nonces, throttles, channel health) to Redis, so it can stand in
// for a *store.Store wholesale. See docs/store.md.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
)

// Shared is what stays in Redis: nonces, throttles, channel health and the
// risk velocity counters, short-lived state that several instances share.
// *store.Store implements it.
type Shared interface {
	ClaimNonce(ctx context.Context, n store.Nonce) error
	Throttle(ctx context.Context, merchant, key string, ttl time.Duration) (bool, error)
	RiskCheck(ctx context.Context, n *store.Nonce, merchant, outTradeNo string, block bool, limits []store.RiskLimit, now time.Time) (store.RiskResult, error)
	RiskUsage(ctx context.Context, merchant string, limits []store.RiskLimit, now time.Time) ([]int64, error)
	AddHealth(ctx context.Context, buckets []store.HealthBucket, ttl time.Duration) error
	ReadHealth(ctx context.Context, channel string, from, to int64) ([]store.HealthBucket, error)
	Ping(ctx context.Context) error
	Close() error
}

// Ledger is the PostgreSQL ledger plus the Redis it delegates nonces,
// throttles and health to. It is safe for concurrent use.
type Ledger struct {
	pool   *pgxpool.Pool
	shared Shared
	log    *zap.Logger
}

// Open connects to the PostgreSQL of cfg (its DSN resolved from dsn, dsn_env
// or dsn_file), applies the embedded migrations unless cfg.Migrate is off,
// and returns a Ledger that delegates to shared (which it then owns: Close
// closes it too).
func Open(ctx context.Context, cfg config.Postgres, shared Shared, logger *zap.Logger) (*Ledger, error) {
	dsn, err := cfg.ResolveDSN()
	if err != nil {
		return nil, fmt.Errorf("ledger: dsn: %w", err)
	}
	if dsn == "" {
		return nil, errors.New("ledger: no dsn configured")
	}
	pool, err := NewPool(ctx, dsn, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Migrate {
		applied, err := Migrate(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, err
		}
		if len(applied) > 0 && logger != nil {
			logger.Info("ledger: schema migrated", zap.Ints("versions", applied))
		}
	}
	return New(pool, shared, logger), nil
}

// NewPool makes a pgx pool for dsn with cfg's pool settings (zero values
// keep pgxpool's defaults) and checks that the database answers.
func NewPool(ctx context.Context, dsn string, cfg config.Postgres) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("ledger: the dsn does not parse (see docs/config.md for its form)")
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = int32(cfg.MaxConns)
	}
	if cfg.MinConns > 0 {
		pc.MinConns = int32(cfg.MinConns)
	}
	if d := cfg.MaxConnLifetime.D(); d > 0 {
		pc.MaxConnLifetime = d
	}
	if d := cfg.MaxConnIdleTime.D(); d > 0 {
		pc.MaxConnIdleTime = d
	}
	if d := cfg.ConnectTimeout.D(); d > 0 {
		pc.ConnConfig.ConnectTimeout = d
	}
	if d := cfg.StatementTimeout.D(); d > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	if cfg.SimpleProtocol {
		pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, classify("open", err, false)
	}
	pctx, cancel := context.WithTimeout(ctx, pc.ConnConfig.ConnectTimeout+5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, classify("open", err, false)
	}
	return pool, nil
}

// New makes a Ledger on an open pool whose schema is current.
func New(pool *pgxpool.Pool, shared Shared, logger *zap.Logger) *Ledger {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Ledger{pool: pool, shared: shared, log: logger.Named("ledger")}
}

// Pool is the connection pool (for migrations and reports).
func (l *Ledger) Pool() *pgxpool.Pool { return l.pool }

// Close closes the pool and the shared Redis store.
func (l *Ledger) Close() error {
	l.pool.Close()
	if l.shared != nil {
		return l.shared.Close()
	}
	return nil
}

// Embedded reports false: the PostgreSQL ledger is durable and shared.
func (l *Ledger) Embedded() bool { return false }

// Ping checks that PostgreSQL and Redis both answer.
func (l *Ledger) Ping(ctx context.Context) error {
	if err := l.pool.Ping(ctx); err != nil {
		return classify("ping", err, false)
	}
	return l.shared.Ping(ctx)
}

// ClaimNonce, Throttle, AddHealth and ReadHealth are Redis's.

// ClaimNonce claims a merchant request nonce in Redis.
func (l *Ledger) ClaimNonce(ctx context.Context, n store.Nonce) error {
	return l.shared.ClaimNonce(ctx, n)
}

// Throttle is store.Store.Throttle, in Redis.
func (l *Ledger) Throttle(ctx context.Context, merchant, key string, ttl time.Duration) (bool, error) {
	return l.shared.Throttle(ctx, merchant, key, ttl)
}

// AddHealth is store.Store.AddHealth, in Redis.
func (l *Ledger) AddHealth(ctx context.Context, buckets []store.HealthBucket, ttl time.Duration) error {
	return l.shared.AddHealth(ctx, buckets, ttl)
}

// ReadHealth is store.Store.ReadHealth, in Redis.
func (l *Ledger) ReadHealth(ctx context.Context, channel string, from, to int64) ([]store.HealthBucket, error) {
	return l.shared.ReadHealth(ctx, channel, from, to)
}

// claim claims n (if not nil) in Redis before a call on merchant's records:
// a replayed nonce stops the call before anything is read or written.
func (l *Ledger) claim(ctx context.Context, n *store.Nonce, merchant string) error {
	if merchant == "" {
		return store.ErrEmptyMerchant
	}
	if n == nil {
		return nil
	}
	if err := store.CheckNonceFor(n, merchant); err != nil {
		return err
	}
	return l.shared.ClaimNonce(ctx, *n)
}

// maxTxTries bounds the retries of a transaction that PostgreSQL rolled
// back itself (deadlock, serialization failure): nothing was done, so
// running it again is safe.
const maxTxTries = 3

// write runs fn in a transaction and commits it. Errors fn returns on
// purpose (store sentinels, our own errors) come back unchanged; database
// errors are classified (see classify): before COMMIT nothing was done,
// while an answer lost after COMMIT was sent is store.ErrOutcomeUnknown.
func (l *Ledger) write(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	for try := 1; ; try++ {
		tx, err := l.pool.Begin(ctx)
		if err != nil {
			return classify(op, err, false)
		}
		if err := fn(tx); err != nil {
			rollback(tx)
			if isRetryable(err) && try < maxTxTries {
				continue
			}
			if ours(err) {
				return err
			}
			return classify(op, err, false)
		}
		if err := tx.Commit(ctx); err != nil {
			if isRetryable(err) && try < maxTxTries {
				continue
			}
			return classify(op, err, true)
		}
		return nil
	}
}

func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = tx.Rollback(ctx) // a broken connection rolls back by itself
}

// exec runs one autocommitted write statement: its outcome is unknown if the
// answer is lost after it was sent.
func (l *Ledger) exec(ctx context.Context, op, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := l.pool.Exec(ctx, sql, args...)
	if err != nil {
		return tag, classify(op, err, true)
	}
	return tag, nil
}

// fault is an error of ours (not the database's) returned from inside a
// transaction: it passes through write unchanged.
type fault struct{ error }

func (f fault) Unwrap() error { return f.error }

func faultf(format string, a ...any) error { return fault{fmt.Errorf(format, a...)} }

func ours(err error) bool {
	var f fault
	return errors.As(err, &f) ||
		errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrInvalidState) || errors.Is(err, store.ErrExceedsPayment) ||
		errors.Is(err, store.ErrNonceReplayed)
}

func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// classify wraps a database error for op. With an answer from the server
// that means "cannot serve now" (connection exceptions, shutdown, too many
// connections, a statement timeout, a read-only standby, a rolled-back
// transaction) or no answer at all, it is store.ErrUnavailable — unless
// sent is true (the error hit a COMMIT or an autocommitted write) and the
// request may have reached the server, which makes it store.ErrOutcomeUnknown.
// Any other server error (a constraint, a bug) is returned as is.
func classify(op string, err error, sent bool) error {
	if err == nil {
		return nil
	}
	if ours(err) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// The server answered: the statement or transaction failed, so
		// nothing was done.
		if unavailableState(pe.Code) {
			return fmt.Errorf("ledger: %s: %w: %s (SQLSTATE %s)", op, store.ErrUnavailable, pe.Message, pe.Code)
		}
		return fmt.Errorf("ledger: %s: %w", op, err)
	}
	if sent && !pgconn.SafeToRetry(err) {
		return fmt.Errorf("ledger: %s: %w: %w", op, store.ErrOutcomeUnknown, scrub(err))
	}
	return fmt.Errorf("ledger: %s: %w: %w", op, store.ErrUnavailable, scrub(err))
}

// scrub keeps a connection error's cause without the connect string, which
// pgconn may put into its message.
func scrub(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		var ne net.Error
		if errors.As(ce, &ne) {
			return fmt.Errorf("connect: %w", ne)
		}
		return errors.New("connect failed")
	}
	return err
}

func unavailableState(code string) bool {
	switch code[:2] {
	case "08", // connection exception
		"53", // insufficient resources (too many connections, disk full, out of memory)
		"57", // operator intervention: shutdown, cannot connect now, statement timeout
		"58": // system error
		return true
	}
	switch code {
	case "40001", "40P01", // rolled back by the server after our retries
		"25006", // read-only transaction: connected to a standby (failover)
		"55P03": // lock not available
		return true
	}
	return false
}

// isUnique reports whether err is a unique violation of constraint.
func isUnique(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (constraint == "" || pe.ConstraintName == constraint)
}

func ms(t time.Time) int64 { return t.UnixMilli() }
