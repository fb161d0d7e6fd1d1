// Package config is paygate's configuration: the YAML shape (these types),
// strict decoding, defaults, validation with YAML paths, and secret resolution.
// Every key is documented in docs/config.md.
//
// These are data types only; the runtime state built from them (the routing
// table, adapters, limits) lives in the packages that use it.
package config

import (
	"time"
)

// Config is the whole config.yaml.
type Config struct {
	Server        Server        `yaml:"server"`
	Store         Store         `yaml:"store"`
	Sandbox       Sandbox       `yaml:"sandbox"`
	Security      Security      `yaml:"security"`
	Log           Log           `yaml:"log"`
	Merchants     []Merchant    `yaml:"merchants"`
	Channels      []Channel     `yaml:"channels"`
	Routing       Routing       `yaml:"routing"`
	Notifications Notifications `yaml:"notifications"`
	Reconcile     Reconcile     `yaml:"reconcile"`
	Risk          Risk          `yaml:"risk"` // config/risk.go
}

// Server configures the merchant and admin listeners.
type Server struct {
	Listen      string `yaml:"listen"`       // default ":8080"
	AdminListen string `yaml:"admin_listen"` // default "127.0.0.1:9090"
	// PublicURL is the base URL channels use to reach paygate; channel
	// notify URLs are PublicURL + "/callbacks/{channel_id}".
	// Default "http://" + the host of Listen (127.0.0.1 when Listen has no
	// host or is 0.0.0.0 / ::) + ":" + its port. A trailing "/" is dropped.
	PublicURL       string   `yaml:"public_url"`
	MaxBodyBytes    int      `yaml:"max_body_bytes"`   // default 65536
	MaxHeaderBytes  int      `yaml:"max_header_bytes"` // default 8192
	ReadTimeout     Duration `yaml:"read_timeout"`     // default 10s
	WriteTimeout    Duration `yaml:"write_timeout"`    // default 30s
	IdleTimeout     Duration `yaml:"idle_timeout"`     // default 60s
	MaxConnsPerIP   int      `yaml:"max_conns_per_ip"` // default 1000; 0 after defaults is impossible
	ShutdownTimeout Duration `yaml:"shutdown_timeout"` // default 8s: the whole shutdown, signal to exit
	ShutdownDelay   Duration `yaml:"shutdown_delay"`   // default 2s of it: /readyz is 503, the listeners still serve
	AdminToken      Secret   `yaml:"admin_token"`      // secret
	AdminTokenEnv   string   `yaml:"admin_token_env"`  //
	AdminTokenFile  string   `yaml:"admin_token_file"` //
	// TLS serves the merchant listener over TLS (1.2 minimum) when its
	// cert_file and key_file are set; zero: plain HTTP (behind a
	// TLS-terminating proxy). The files are re-read on every reload;
	// turning TLS on or off needs a restart.
	TLS ServerTLS `yaml:"tls"`
	// TrustedProxies are the CIDRs (or single addresses) of proxies in front
	// of the merchant listener. Only a TCP peer inside them may name the
	// client: by X-Forwarded-For, or by a PROXY protocol header when
	// ProxyProtocol is on. Empty: every peer is the client. Reloadable.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyProtocol makes connections from TrustedProxies start with a
	// PROXY protocol v1 or v2 header (required from them); other peers
	// never may send one. Needs TrustedProxies. Read at start.
	ProxyProtocol bool `yaml:"proxy_protocol"`
}

// ServerTLS is the merchant listener's certificate: PEM files, the chain
// (leaf first) in CertFile. Both set or both empty.
type ServerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Store configures shared state.
type Store struct {
	Redis    Redis    `yaml:"redis"`
	Postgres Postgres `yaml:"postgres"`
}

// Postgres configures the PostgreSQL ledger, the system of record for
// payments, refunds, the notification outbox and the reconciliation
// schedule. No DSN: the embedded ledger (sandbox mode only).
type Postgres struct {
	DSN     Secret `yaml:"dsn"` // secret: it carries the password
	DSNEnv  string `yaml:"dsn_env"`
	DSNFile string `yaml:"dsn_file"`
	// Pool settings (pgxpool).
	MaxConns         int      `yaml:"max_conns"`          // default 20
	MinConns         int      `yaml:"min_conns"`          // default 0
	MaxConnLifetime  Duration `yaml:"max_conn_lifetime"`  // default 30m
	MaxConnIdleTime  Duration `yaml:"max_conn_idle_time"` // default 5m
	ConnectTimeout   Duration `yaml:"connect_timeout"`    // default 2s
	StatementTimeout Duration `yaml:"statement_timeout"`  // default 5s
	Migrate          bool     `yaml:"migrate"`            // apply migrations at start; default true
	SimpleProtocol   bool     `yaml:"simple_protocol"`    // no prepared statements (pgbouncer in transaction mode before 1.21)
	// PurgeDeliveredAfter: delivered notification events older than this
	// are deleted from the outbox (hourly); 0 keeps them. Default 168h.
	PurgeDeliveredAfter Duration `yaml:"purge_delivered_after"`
}

// Configured reports whether a DSN is given in any of its forms.
func (p Postgres) Configured() bool { return p.DSN != "" || p.DSNEnv != "" || p.DSNFile != "" }

// Redis configures the Redis connection. No addrs: the embedded in-process
// store (single process, not durable). One addr: a single node (or a proxy).
// Several addrs: Redis Cluster.
type Redis struct {
	Addrs        []string `yaml:"addrs"`
	Username     string   `yaml:"username"`
	Password     Secret   `yaml:"password"` // secret
	PasswordEnv  string   `yaml:"password_env"`
	PasswordFile string   `yaml:"password_file"`
	DB           int      `yaml:"db"`            // single node only; default 0
	KeyPrefix    string   `yaml:"key_prefix"`    // default "pg"
	PoolSize     int      `yaml:"pool_size"`     // 0: go-redis default (10 per CPU)
	DialTimeout  Duration `yaml:"dial_timeout"`  // default 2s
	ReadTimeout  Duration `yaml:"read_timeout"`  // default 1s
	WriteTimeout Duration `yaml:"write_timeout"` // default 1s
	TLS          bool     `yaml:"tls"`
}

// Sandbox configures sandbox mode: in-process channel simulators, inline
// secrets allowed, sandbox controls on the admin API.
type Sandbox struct {
	Enabled bool `yaml:"enabled"`
	// ControlListen is where the simulators' control API listens (pay, fail,
	// faults); the gateway's /admin/sandbox endpoints call it. Default
	// "127.0.0.1:9100".
	ControlListen string `yaml:"control_listen"`
	// External: the simulators run in a separate `paygate sim` process
	// (same config); `paygate serve` then starts none and drives them
	// through the control API at ControlListen. Default false.
	External bool `yaml:"external"`
	// KeysDir holds the simulators' test keys (TEST ONLY). Default "sandbox/keys".
	KeysDir string  `yaml:"keys_dir"`
	AutoPay AutoPay `yaml:"auto_pay"`
	// TimeScale divides the channels' notification retry intervals (1: real
	// time; 60: a minute becomes a second). Default 1.
	TimeScale float64 `yaml:"time_scale"`
}

// AutoPay makes the simulators pay orders by themselves.
type AutoPay struct {
	After Duration `yaml:"after"` // 0: auto-pay off
	Ratio float64  `yaml:"ratio"` // share of orders paid, 0..1; the rest stay unpaid
}

// Security configures merchant request authentication.
type Security struct {
	TimestampWindow Duration `yaml:"timestamp_window"` // default 300s
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error; default info
	Format string `yaml:"format"` // json | console; default json
}

// Merchant is one merchant allowed to call /v1.
type Merchant struct {
	ID                  string   `yaml:"id"`
	Key                 Key      `yaml:"key"`
	WebhookSecret       Secret   `yaml:"webhook_secret"` // secret
	WebhookSecretEnv    string   `yaml:"webhook_secret_env"`
	WebhookSecretFile   string   `yaml:"webhook_secret_file"`
	NotifyAllowNetworks []string `yaml:"notify_allow_networks"`
	Methods             []string `yaml:"methods"`
	Limits              Limits   `yaml:"limits"`
	// Disabled: the merchant can no longer call the API (401
	// unknown_merchant), but its queued notifications are still delivered
	// and its pending payments still reconciled, in every instance.
	Disabled bool `yaml:"disabled"`
}

// Key is a merchant's request-signing key.
type Key struct {
	Algorithm     string `yaml:"algorithm"` // hmac-sha256 | rsa-sha256 | ed25519
	Secret        Secret `yaml:"secret"`    // hmac-sha256; secret; at least 32 bytes
	SecretEnv     string `yaml:"secret_env"`
	SecretFile    string `yaml:"secret_file"`
	PublicKey     string `yaml:"public_key"`      // rsa-sha256 / ed25519: PEM (PKIX)
	PublicKeyFile string `yaml:"public_key_file"` // or a file holding it
}

// Limits are per-merchant limits.
type Limits struct {
	MaxAmount         int64 `yaml:"max_amount"`          // fen; default 5000000
	RequestsPerSecond int   `yaml:"requests_per_second"` // default 500; per gateway instance
}

// Channel is one channel instance.
type Channel struct {
	ID         string   `yaml:"id"`
	Type       string   `yaml:"type"` // wechat | alipay | bank
	BaseURL    string   `yaml:"base_url"`
	Methods    []string `yaml:"methods"`
	Currencies []string `yaml:"currencies"` // default [CNY]
	// Timeout bounds one call to the channel. Default 3s.
	Timeout Duration `yaml:"timeout"`
	// LatencyTarget: latency above it lowers the health score. Default 1s.
	LatencyTarget Duration    `yaml:"latency_target"`
	Breaker       Breaker     `yaml:"breaker"`
	Credentials   Credentials `yaml:"credentials"`
	// Disabled drains the channel: it is never routed to, but it still
	// serves the payments already made on it (callbacks, queries, closes,
	// refunds) in every instance, restarted ones included. Default false.
	Disabled bool `yaml:"disabled"`
}

// Breaker configures the channel's circuit breaker (routing/breaker.go: a rolling window on the router's clock).
type Breaker struct {
	MinRequests      uint32   `yaml:"min_requests"`       // default 20
	FailureRatio     float64  `yaml:"failure_ratio"`      // default 0.5
	OpenFor          Duration `yaml:"open_for"`           // default 10s
	HalfOpenRequests uint32   `yaml:"half_open_requests"` // default 5
	// ConsecutiveFailures also opens the breaker, whatever the window's
	// count: a channel that fails this many creates in a row while little
	// traffic reaches it (its success estimate eliminated it) still trips.
	// Default 5.
	ConsecutiveFailures uint32 `yaml:"consecutive_failures"`
	// Interval is the rolling window the closed breaker counts over (in
	// tenths): it trips on the failure share of the last interval. Default 30s.
	Interval Duration `yaml:"interval"`
}

// Credentials are a channel's credentials; which keys apply depends on the
// channel type (docs/config.md). Keys marked secret have _env and _file forms.
type Credentials struct {
	// wechat
	MchID                 string `yaml:"mchid"`
	AppID                 string `yaml:"appid"`
	SerialNo              string `yaml:"serial_no"` // merchant API certificate serial (hex)
	APIv3Key              Secret `yaml:"apiv3_key"` // secret; 32 bytes
	APIv3KeyEnv           string `yaml:"apiv3_key_env"`
	APIv3KeyFile          string `yaml:"apiv3_key_file"`
	PlatformPublicKeyFile string `yaml:"platform_public_key_file"` // WeChat Pay public key (PEM)
	PlatformSerial        string `yaml:"platform_serial"`          // e.g. PUB_KEY_ID_...
	// alipay
	AlipayAppID         string `yaml:"app_id"`
	AlipayPublicKeyFile string `yaml:"alipay_public_key_file"`
	// bank
	MerID        string `yaml:"mer_id"`
	CertID       string `yaml:"cert_id"`        // decimal serial of the merchant signing cert
	RootCertFile string `yaml:"root_cert_file"` // CA that signs the bank's signPubKeyCert (pinned)
	// MiddleCertFile holds the bank's middle (intermediate) certificates
	// between the root and the signing certificate; optional.
	MiddleCertFile string `yaml:"middle_cert_file"`
	// CertIdentity is the identity the signing certificate must carry (the
	// third '@'-separated field of its subject CN); "" is UnionPay's
	// 中国银联股份有限公司. The UnionPay test environment's is 00040000:SIGN.
	CertIdentity string `yaml:"cert_identity"`
	// all types: the merchant's private signing key (PEM, PKCS#1 or PKCS#8)
	PrivateKey     Secret `yaml:"private_key"` // secret
	PrivateKeyEnv  string `yaml:"private_key_env"`
	PrivateKeyFile string `yaml:"private_key_file"`
}

// Routing configures channel selection.
type Routing struct {
	Rules    []Rule   `yaml:"rules"`
	Failover Failover `yaml:"failover"`
	// Exploration is the share (0..1) of payments routed to a random eligible
	// candidate to keep measuring channels that are not preferred. Default 0.02.
	Exploration float64 `yaml:"exploration"`
	// Tolerance: candidates whose success estimate is within it of the best
	// one share traffic by weight; the others are eliminated (exploration
	// and failover only). Default 0.05.
	Tolerance float64 `yaml:"tolerance"`
	Health    Health  `yaml:"health"`
}

// Rule is one routing rule; the first matching rule wins.
type Rule struct {
	Name     string       `yaml:"name"`
	When     Match        `yaml:"when"`
	Channels []ChannelRef `yaml:"channels"`
}

// Match selects requests. Empty fields match everything.
type Match struct {
	Methods    []string          `yaml:"methods"`
	AmountMin  int64             `yaml:"amount_min"` // fen, inclusive
	AmountMax  int64             `yaml:"amount_max"` // fen, inclusive; 0: no upper bound
	Currencies []string          `yaml:"currencies"`
	Merchants  []string          `yaml:"merchants"`
	Metadata   map[string]string `yaml:"metadata"` // every key must equal
}

// ChannelRef names a candidate channel: a bare id (weight 1) or
// {id, weight, priority}.
type ChannelRef struct {
	ID     string  `yaml:"id"`
	Weight float64 `yaml:"weight"` // default 1; 0 disables the candidate
	// Priority orders candidates in tiers: lower first; within a tier,
	// weight × score decides. Default 0.
	Priority int `yaml:"priority"`
}

// Failover bounds retries on another channel.
type Failover struct {
	MaxAttempts int `yaml:"max_attempts"` // default 2
}

// Health configures health scoring.
type Health struct {
	Window     Duration `yaml:"window"`      // default 60s
	Buckets    int      `yaml:"buckets"`     // default 12
	MinSamples int      `yaml:"min_samples"` // default 20
	// SyncInterval: how often local counts are pushed to the store. Default 2s.
	SyncInterval Duration `yaml:"sync_interval"`
	// HalfLife: the success estimate weighs a bucket of the window by
	// 2^(-age/half_life). Default 10s.
	HalfLife Duration `yaml:"half_life"`
	// LatencyPercentile: the latency percentile compared with each
	// channel's latency_target. Default 0.9.
	LatencyPercentile float64 `yaml:"latency_percentile"`
}

// Notifications configures merchant notification delivery.
type Notifications struct {
	Schedule []Duration `yaml:"schedule"` // default WeChat-like, 15s … 6h (~24h)
	Workers  int        `yaml:"workers"`  // default 8
	Timeout  Duration   `yaml:"timeout"`  // default 10s
	Lease    Duration   `yaml:"lease"`    // default 30s
}

// Reconcile configures the sweeper that queries channels about payments and
// refunds still pending.
type Reconcile struct {
	Delays   []Duration `yaml:"delays"`   // default [30s, 2m, 5m], then at expiry
	Interval Duration   `yaml:"interval"` // poll interval; default 1s
	Lease    Duration   `yaml:"lease"`    // default 30s
}

// Duration is a time.Duration written in YAML as "300s", "2m" or "1h30m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
