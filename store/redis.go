package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
)

// Defaults for zero config values.
const (
	defaultPrefix       = "pg"
	defaultDialTimeout  = 2 * time.Second
	defaultReadTimeout  = time.Second
	defaultWriteTimeout = time.Second
	embeddedTimeout     = 5 * time.Second // read and write, embedded store

	// eventRetention is how long an acknowledged event's body is kept (and
	// so how long a second enqueue of the same id stays a no-op).
	eventRetention = 7 * 24 * time.Hour
)

// Store is paygate's shared state on Redis. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	k   keyspace
	log *zap.Logger
	emb *embedded // nil unless no address is configured
}

// Open connects to the Redis of cfg and pings it once.
//
// No address: an embedded in-process Redis (miniredis) on 127.0.0.1:0, for a
// single process; it is not durable and a WARN says so. One address: a single
// node (or a proxy in front of one), with cfg.DB. Several: a Redis Cluster
// (cfg.DB is ignored). Zero timeouts mean dial 2s, read 1s, write 1s; a zero
// pool size keeps go-redis' default (10 per CPU).
//
// Commands are never retried by the client: most scripts claim a nonce or
// compare-and-set a version, and a blind retry of one whose reply was lost
// would report a replay or a conflict for a call that succeeded. A failure
// is returned wrapped with ErrUnavailable instead and the caller decides.
func Open(cfg config.Redis, logger *zap.Logger) (*Store, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	prefix := cfg.KeyPrefix
	if prefix == "" {
		prefix = defaultPrefix
	}
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("store: key_prefix %q must not contain '{' or '}'", prefix)
	}
	s := &Store{k: keyspace{prefix: prefix}, log: logger.Named("store")}

	opts := &redis.UniversalOptions{
		Addrs:                 cfg.Addrs,
		Username:              cfg.Username,
		DB:                    cfg.DB,
		Protocol:              2, // no HELLO round trip; nothing here needs RESP3
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           orDefault(cfg.DialTimeout.D(), defaultDialTimeout),
		ReadTimeout:           orDefault(cfg.ReadTimeout.D(), defaultReadTimeout),
		WriteTimeout:          orDefault(cfg.WriteTimeout.D(), defaultWriteTimeout),
		ContextTimeoutEnabled: true,
		PoolSize:              cfg.PoolSize,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	if len(cfg.Addrs) > 0 {
		pass, err := config.ResolveSecret(cfg.Password, cfg.PasswordEnv, cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("store: redis password: %w", err)
		}
		opts.Password = pass
		if cfg.TLS {
			// ServerName is filled in per node from its address by crypto/tls.
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}

	switch len(cfg.Addrs) {
	case 0:
		// In-process: a timeout can only mean the process is overloaded,
		// which a short deadline would turn into failed requests.
		opts.ReadTimeout = orDefault(cfg.ReadTimeout.D(), embeddedTimeout)
		opts.WriteTimeout = orDefault(cfg.WriteTimeout.D(), embeddedTimeout)
		emb, password, err := startEmbedded(s.log)
		if err != nil {
			return nil, err
		}
		s.emb = emb
		opts.Addrs = []string{emb.addr()}
		opts.DB = 0
		opts.Username, opts.Password = "", password
		s.rdb = redis.NewClient(opts.Simple())
		s.log.Warn("embedded store: single process and not durable; payments, nonces and queued notifications are lost when paygate stops and are not shared with other instances; set store.redis.addrs in production",
			zap.String("addr", emb.addr()))
	case 1:
		s.rdb = redis.NewClient(opts.Simple())
	default:
		s.rdb = redis.NewClusterClient(opts.Cluster())
	}

	ctx, cancel := context.WithTimeout(context.Background(), opts.DialTimeout+opts.ReadTimeout)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: open %s: %w", strings.Join(cfg.Addrs, ","), err)
	}
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Close closes the connections (and stops the embedded Redis, whose data is
// then gone).
func (s *Store) Close() error {
	err := s.rdb.Close()
	if s.emb != nil {
		s.emb.close()
	}
	if errors.Is(err, redis.ErrClosed) {
		return nil
	}
	return err
}

// Embedded reports whether the store is the embedded in-process Redis.
func (s *Store) Embedded() bool { return s.emb != nil }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// wrap adds the operation to err and marks failures to reach Redis with
// ErrUnavailable. A reply from the server (a Redis error) is a failure to
// reach it only when it means "cannot serve now" (loading, cluster down,
// failover, out of memory, busy script, auth); anything else (a script error,
// a wrong type) is a bug and is returned as is.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// unavailablePrefixes are the error replies that mean "cannot serve now"
// (checked by prefix too, whatever type the client gives the reply).
var unavailablePrefixes = []string{
	"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "OOM", "BUSY",
	"NOAUTH", "WRONGPASS", "NOPERM", "MISCONF", "NOREPLICAS", "ERR max number of clients",
}

func unavailable(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		// Network errors, timeouts, pool exhaustion, a closed client and a
		// cancelled or expired context all mean no answer was obtained.
		return true
	}
	if redis.IsLoadingError(err) || redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) || redis.IsReadOnlyError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.IsAuthError(err) || redis.IsPermissionError(err) ||
		redis.IsNoReplicasError(err) {
		return true
	}
	for _, p := range unavailablePrefixes {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// run executes a script (EVALSHA, falling back to EVAL when the server does
// not know it, e.g. after a restart) and returns its table.
func (s *Store) run(ctx context.Context, op string, sc *redis.Script, keys []string, args ...any) ([]any, error) {
	res, err := sc.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, wrapScript(op, err)
	}
	return res, nil
}

// outcome is the first element of a script's table.
func outcome(res []any) string {
	if len(res) == 0 {
		return ""
	}
	s, _ := res[0].(string)
	return s
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// msOrEmpty is "" for the zero time (no schedule), else unix milliseconds.
func msOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ms(t)
}

// nonceArgs gives the nonce key and TTL argument for a script. With no nonce
// the key is a placeholder under the same tag that the script never touches.
func (s *Store) nonceArgs(n *Nonce, merchant string) (key, ttl string, err error) {
	if n == nil {
		return s.k.nonce(merchant, ""), "", nil
	}
	if err := CheckNonceFor(n, merchant); err != nil {
		return "", "", err
	}
	return s.k.nonce(merchant, n.Value), strconv.FormatInt(n.TTL.Milliseconds(), 10), nil
}

func checkNonce(n *Nonce) error {
	switch {
	case n.Merchant == "":
		return errEmptyMerchant
	case n.Value == "":
		return errors.New("store: empty nonce")
	case n.TTL < time.Millisecond:
		return errors.New("store: nonce ttl must be at least 1ms")
	}
	return nil
}

// ClaimNonce claims a merchant nonce for its TTL: nil the first time,
// ErrNonceReplayed after that (from any instance sharing the Redis).
func (s *Store) ClaimNonce(ctx context.Context, n Nonce) error {
	if err := checkNonce(&n); err != nil {
		return err
	}
	ok, err := s.rdb.SetNX(ctx, s.k.nonce(n.Merchant, n.Value), "1", n.TTL).Result()
	if err != nil {
		return wrap("claim nonce", err)
	}
	if !ok {
		return ErrNonceReplayed
	}
	return nil
}

// Throttle reports whether the caller may proceed with the action named key
// of merchant: true for the first caller in each ttl (SET NX PX), false for
// the others until the ttl has passed. For example "query:<payment id>"
// limits the active queries of one pending payment.
func (s *Store) Throttle(ctx context.Context, merchant, key string, ttl time.Duration) (bool, error) {
	if merchant == "" {
		return false, errEmptyMerchant
	}
	if ttl < time.Millisecond {
		return false, errors.New("store: throttle ttl must be at least 1ms")
	}
	ok, err := s.rdb.SetNX(ctx, s.k.throttle(merchant, key), "1", ttl).Result()
	if err != nil {
		return false, wrap("throttle", err)
	}
	return ok, nil
}
