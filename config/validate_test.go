package config

import (
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sandboxOn turns sandbox mode on the way a sandbox config has it: the
// simulators need an explicit loopback host:port in each base_url.
func sandboxOn(c *Config) {
	c.Sandbox.Enabled = true
	for i := range c.Channels {
		c.Channels[i].BaseURL = "http://127.0.0.1:" + []string{"9101", "9102", "9103", "9104"}[i]
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *Config, dir string)
		want   []string // "{dir}" stands for the fixture dir
	}{
		// server
		{"listen not host:port", func(c *Config, _ string) { c.Server.Listen = "8080" },
			[]string{`server.listen: want host:port such as ":8080" or "127.0.0.1:9090", got "8080"`}},
		{"listen bad port", func(c *Config, _ string) { c.Server.Listen = ":http" },
			[]string{`server.listen: want host:port such as ":8080" or "127.0.0.1:9090", got ":http"`}},
		{"admin_listen not host:port", func(c *Config, _ string) { c.Server.AdminListen = "localhost" },
			[]string{`server.admin_listen: want host:port such as ":8080" or "127.0.0.1:9090", got "localhost"`}},
		{"admin_listen clashes with listen", func(c *Config, _ string) { c.Server.AdminListen = "127.0.0.1:8080" },
			[]string{`server.admin_listen: address "127.0.0.1:8080" is also used by server.listen`}},
		{"public_url not http", func(c *Config, _ string) { c.Server.PublicURL = "ftp://gw.example" },
			[]string{`server.public_url: want an absolute http:// or https:// URL, got "ftp://gw.example"`}},
		{"public_url relative", func(c *Config, _ string) { c.Server.PublicURL = "/callbacks" },
			[]string{`server.public_url: want an absolute http:// or https:// URL, got "/callbacks"`}},
		{"public_url missing", func(c *Config, _ string) { c.Server.PublicURL = "" },
			[]string{`server.public_url: required when server.listen is not host:port`}},
		{"max_body_bytes 0", func(c *Config, _ string) { c.Server.MaxBodyBytes = 0 },
			[]string{`server.max_body_bytes: must be between 1 and 16777216 (16 MiB), got 0`}},
		{"max_body_bytes over 16MiB", func(c *Config, _ string) { c.Server.MaxBodyBytes = 16<<20 + 1 },
			[]string{`server.max_body_bytes: must be between 1 and 16777216 (16 MiB), got 16777217`}},
		{"max_header_bytes small", func(c *Config, _ string) { c.Server.MaxHeaderBytes = 100 },
			[]string{`server.max_header_bytes: must be between 1024 and 1048576 (1 MiB), got 100`}},
		{"read_timeout 0", func(c *Config, _ string) { c.Server.ReadTimeout = 0 },
			[]string{`server.read_timeout: must be greater than 0, got 0s`}},
		{"write_timeout negative", func(c *Config, _ string) { c.Server.WriteTimeout = Duration(-time.Second) },
			[]string{`server.write_timeout: must be greater than 0, got -1s`}},
		{"idle_timeout 0", func(c *Config, _ string) { c.Server.IdleTimeout = 0 },
			[]string{`server.idle_timeout: must be greater than 0, got 0s`}},
		{"shutdown_timeout 0", func(c *Config, _ string) { c.Server.ShutdownTimeout = 0 },
			[]string{`server.shutdown_timeout: must be greater than 0, got 0s`}},
		{"max_conns_per_ip 0", func(c *Config, _ string) { c.Server.MaxConnsPerIP = 0 },
			[]string{`server.max_conns_per_ip: must be at least 1, got 0`}},
		{"tls key without cert", func(c *Config, dir string) { c.Server.TLS.KeyFile = filepath.Join(dir, "key.pem") },
			[]string{`server.tls: set both cert_file and key_file, or neither`}},
		{"tls files missing", func(c *Config, dir string) {
			c.Server.TLS.CertFile, c.Server.TLS.KeyFile = filepath.Join(dir, "nope.pem"), filepath.Join(dir, "nope.key")
		}, []string{`server.tls: cannot load the certificate: open {dir}/nope.pem: no such file or directory`}},
		{"trusted proxy not a CIDR", func(c *Config, _ string) { c.Server.TrustedProxies = []string{"10.0.0.1", "10.0.0.0/33"} },
			[]string{`server.trusted_proxies: [1]: want a CIDR or an IP address, got "10.0.0.0/33"`}},
		{"proxy protocol without trusted proxies", func(c *Config, _ string) { c.Server.ProxyProtocol = true },
			[]string{`server.proxy_protocol: needs server.trusted_proxies: only a trusted proxy may send a PROXY header`}},
		{"admin token missing", func(c *Config, _ string) { c.Server.AdminTokenFile = "" },
			[]string{`server.admin_token: required: set admin_token_env or admin_token_file`}},
		{"admin token inline outside sandbox", func(c *Config, _ string) {
			c.Server.AdminTokenFile, c.Server.AdminToken = "", "inline-admin-token-0123456789"
		}, []string{`server.admin_token: inline secrets need sandbox mode; use admin_token_env or admin_token_file`}},
		{"admin token two forms", func(c *Config, _ string) { c.Server.AdminTokenEnv = "PAYGATE_ADMIN_TOKEN" },
			[]string{`server.admin_token: set only one of admin_token, admin_token_env, admin_token_file`}},
		{"admin token short outside sandbox", func(c *Config, dir string) { c.Server.AdminTokenFile = filepath.Join(dir, "short.secret") },
			[]string{`server.admin_token: must be at least 16 bytes, got 9`}},
		{"admin token file missing", func(c *Config, dir string) { c.Server.AdminTokenFile = filepath.Join(dir, "nope") },
			[]string{`server.admin_token_file: read secret file: open {dir}/nope: no such file or directory`}},
		{"admin token file empty", func(c *Config, dir string) { c.Server.AdminTokenFile = filepath.Join(dir, "empty.secret") },
			[]string{`server.admin_token: is empty`}},
		{"admin token env unset", func(c *Config, _ string) {
			c.Server.AdminTokenFile, c.Server.AdminTokenEnv = "", "PAYGATE_TEST_SURELY_UNSET_VAR"
		}, []string{`server.admin_token_env: environment variable PAYGATE_TEST_SURELY_UNSET_VAR is not set`}},

		// store
		{"redis addrs not host:port", func(c *Config, _ string) { c.Store.Redis.Addrs = []string{"redis", ":6379", "r:0", "r:70000"} },
			[]string{`store.redis.addrs[0]: want host:port, got "redis"`, `store.redis.addrs[1]: want host:port, got ":6379"`,
				`store.redis.addrs[2]: want host:port, got "r:0"`, `store.redis.addrs[3]: want host:port, got "r:70000"`}},
		{"redis addr repeated", func(c *Config, _ string) { c.Store.Redis.Addrs = []string{"r1:6379", "r2:6379", "r1:6379"} },
			[]string{`store.redis.addrs[2]: duplicate address "r1:6379" (also store.redis.addrs[0])`}},
		{"redis password inline outside sandbox", func(c *Config, _ string) { c.Store.Redis.Password = "hunter2" },
			[]string{`store.redis.password: inline secrets need sandbox mode; use password_env or password_file`}},
		{"redis password two forms", func(c *Config, dir string) {
			c.Store.Redis.PasswordEnv, c.Store.Redis.PasswordFile = "REDIS_PASSWORD", filepath.Join(dir, "demo.secret")
		}, []string{`store.redis.password: set only one of password, password_env, password_file`}},
		{"redis db negative", func(c *Config, _ string) { c.Store.Redis.DB = -1 },
			[]string{`store.redis.db: must be at least 0, got -1`}},
		{"redis db with cluster", func(c *Config, _ string) { c.Store.Redis.Addrs, c.Store.Redis.DB = []string{"r1:6379", "r2:6379"}, 2 },
			[]string{`store.redis.db: Redis Cluster (several addrs) has only database 0`}},
		{"redis key_prefix empty", func(c *Config, _ string) { c.Store.Redis.KeyPrefix = "" },
			[]string{`store.redis.key_prefix: must not be empty`}},
		{"redis pool_size negative", func(c *Config, _ string) { c.Store.Redis.PoolSize = -1 },
			[]string{`store.redis.pool_size: must be at least 0, got -1`}},
		{"redis timeouts 0", func(c *Config, _ string) {
			c.Store.Redis.DialTimeout, c.Store.Redis.ReadTimeout, c.Store.Redis.WriteTimeout = 0, 0, 0
		}, []string{`store.redis.dial_timeout: must be greater than 0, got 0s`,
			`store.redis.read_timeout: must be greater than 0, got 0s`, `store.redis.write_timeout: must be greater than 0, got 0s`}},

		// sandbox, security, log
		{"sandbox time_scale 0", func(c *Config, _ string) { c.Sandbox.TimeScale = 0 },
			[]string{`sandbox.time_scale: must be greater than 0, got 0`}},
		{"sandbox auto_pay negative", func(c *Config, _ string) { c.Sandbox.AutoPay.After = Duration(-time.Second) },
			[]string{`sandbox.auto_pay.after: must not be negative, got -1s`}},
		{"sandbox auto_pay ratio over 1", func(c *Config, _ string) { c.Sandbox.AutoPay.Ratio = 1.5 },
			[]string{`sandbox.auto_pay.ratio: must be between 0 and 1, got 1.5`}},
		{"sandbox control_listen bad", func(c *Config, _ string) { sandboxOn(c); c.Sandbox.ControlListen = "9100" },
			[]string{`sandbox.control_listen: want host:port such as ":8080" or "127.0.0.1:9090", got "9100"`}},
		{"sandbox base_url without port", func(c *Config, _ string) { sandboxOn(c); c.Channels[1].BaseURL = "http://127.0.0.1/gateway.do" },
			[]string{`channels[1].base_url: sandbox mode listens on the URL's host:port; give an explicit port`}},
		{"sandbox base_url clashes with control_listen", func(c *Config, _ string) { sandboxOn(c); c.Channels[2].BaseURL = "http://127.0.0.1:9100" },
			[]string{`channels[2].base_url: address "127.0.0.1:9100" is also used by sandbox.control_listen`}},
		{"sandbox two channels on one address", func(c *Config, _ string) { sandboxOn(c); c.Channels[3].BaseURL = "http://127.0.0.1:9103/b" },
			[]string{`channels[3].base_url: address "127.0.0.1:9103" is also used by channels[2].base_url`}},
		{"sandbox channel on the gateway's port", func(c *Config, _ string) { sandboxOn(c); c.Channels[0].BaseURL = "http://127.0.0.1:8080" },
			[]string{`channels[0].base_url: address "127.0.0.1:8080" is also used by server.listen`}},
		{"timestamp_window 0", func(c *Config, _ string) { c.Security.TimestampWindow = 0 },
			[]string{`security.timestamp_window: must be greater than 0, got 0s`}},
		{"log level unknown", func(c *Config, _ string) { c.Log.Level = "verbose" },
			[]string{`log.level: want debug, info, warn, error, got "verbose"`}},
		{"log format unknown", func(c *Config, _ string) { c.Log.Format = "text" },
			[]string{`log.format: want json, console, got "text"`}},

		// merchants
		{"merchant id bad characters", func(c *Config, _ string) { c.Merchants[0].ID = "demo shop" },
			[]string{`merchants[0].id: want 1-32 characters of [A-Za-z0-9_-], got "demo shop"`}},
		{"merchant id too long", func(c *Config, _ string) { c.Merchants[0].ID = strings.Repeat("m", 33) },
			[]string{`merchants[0].id: want 1-32 characters of [A-Za-z0-9_-], got "` + strings.Repeat("m", 33) + `"`}},
		{"merchant id empty", func(c *Config, _ string) { c.Merchants[1].ID = "" },
			[]string{`merchants[1].id: want 1-32 characters of [A-Za-z0-9_-], got ""`}},
		{"merchant id duplicate", func(c *Config, _ string) { c.Merchants[2].ID = "demo" },
			[]string{`merchants[2].id: duplicate merchant id "demo" (also merchants[0])`}},
		{"merchant algorithm missing", func(c *Config, _ string) { c.Merchants[0].Key.Algorithm = "" },
			[]string{`merchants[0].key.algorithm: required: hmac-sha256, rsa-sha256 or ed25519`}},
		{"merchant algorithm unknown", func(c *Config, _ string) { c.Merchants[0].Key.Algorithm = "md5" },
			[]string{`merchants[0].key.algorithm: want hmac-sha256, rsa-sha256 or ed25519, got "md5"`}},
		{"hmac secret inline outside sandbox", func(c *Config, _ string) {
			c.Merchants[0].Key.SecretFile, c.Merchants[0].Key.Secret = "", "inline-secret-0123456789abcdef0123456789"
		}, []string{`merchants[0].key.secret: inline secrets need sandbox mode; use secret_env or secret_file`}},
		{"hmac secret missing", func(c *Config, _ string) { c.Merchants[0].Key.SecretFile = "" },
			[]string{`merchants[0].key.secret: required: set secret_env or secret_file`}},
		{"hmac secret short", func(c *Config, dir string) { c.Merchants[0].Key.SecretFile = filepath.Join(dir, "short.secret") },
			[]string{`merchants[0].key.secret: must be at least 32 bytes, got 9`}},
		{"hmac secret two forms", func(c *Config, _ string) { c.Merchants[0].Key.SecretEnv = "DEMO_SECRET" },
			[]string{`merchants[0].key.secret: set only one of secret, secret_env, secret_file`}},
		{"hmac with a public key", func(c *Config, dir string) { c.Merchants[0].Key.PublicKeyFile = filepath.Join(dir, "rsa.pub.pem") },
			[]string{`merchants[0].key.public_key: only rsa-sha256 and ed25519 keys have a public key; hmac-sha256 uses secret`}},
		{"rsa public key missing", func(c *Config, _ string) { c.Merchants[1].Key.PublicKeyFile = "" },
			[]string{`merchants[1].key.public_key: public_key or public_key_file is required`}},
		{"rsa public key both forms", func(c *Config, _ string) { c.Merchants[1].Key.PublicKey = "-----BEGIN PUBLIC KEY-----" },
			[]string{`merchants[1].key.public_key: set only one of public_key, public_key_file`}},
		{"rsa public key not PEM", func(c *Config, dir string) { c.Merchants[1].Key.PublicKeyFile = filepath.Join(dir, "garbage.pem") },
			[]string{`merchants[1].key.public_key_file: no PEM block found`}},
		{"rsa public key file missing", func(c *Config, dir string) { c.Merchants[1].Key.PublicKeyFile = filepath.Join(dir, "nope.pem") },
			[]string{`merchants[1].key.public_key_file: read public key file: open {dir}/nope.pem: no such file or directory`}},
		{"rsa given an ed25519 key", func(c *Config, dir string) { c.Merchants[1].Key.PublicKeyFile = filepath.Join(dir, "ed.pub.pem") },
			[]string{`merchants[1].key.public_key_file: is an Ed25519 key, not an rsa-sha256 key`}},
		{"rsa key too small", func(c *Config, dir string) { c.Merchants[1].Key.PublicKeyFile = filepath.Join(dir, "small.pub.pem") },
			[]string{`merchants[1].key.public_key_file: RSA key has 1024 bits; at least 2048 are required`}},
		{"rsa key given a certificate", func(c *Config, dir string) { c.Merchants[1].Key.PublicKeyFile = filepath.Join(dir, "root.pem") },
			[]string{`merchants[1].key.public_key_file: PEM block is "CERTIFICATE", want "PUBLIC KEY"`}},
		{"rsa with a secret", func(c *Config, dir string) { c.Merchants[1].Key.SecretFile = filepath.Join(dir, "demo.secret") },
			[]string{`merchants[1].key.secret: only hmac-sha256 keys have a secret; rsa-sha256 uses public_key or public_key_file`}},
		{"ed25519 given an rsa key", func(c *Config, dir string) { c.Merchants[2].Key.PublicKeyFile = filepath.Join(dir, "rsa.pub.pem") },
			[]string{`merchants[2].key.public_key_file: is an RSA key, not an ed25519 key`}},
		{"webhook secret missing", func(c *Config, _ string) { c.Merchants[0].WebhookSecretFile = "" },
			[]string{`merchants[0].webhook_secret: required: set webhook_secret_env or webhook_secret_file`}},
		{"webhook secret short", func(c *Config, dir string) { c.Merchants[0].WebhookSecretFile = filepath.Join(dir, "short.secret") },
			[]string{`merchants[0].webhook_secret: must be at least 16 bytes, got 9`}},
		{"webhook secret inline outside sandbox", func(c *Config, _ string) {
			c.Merchants[1].WebhookSecretFile, c.Merchants[1].WebhookSecret = "", "inline-webhook-secret-0123"
		}, []string{`merchants[1].webhook_secret: inline secrets need sandbox mode; use webhook_secret_env or webhook_secret_file`}},
		{"embedded store outside sandbox", func(c *Config, _ string) { c.Store.Redis.Addrs = nil },
			[]string{`store.redis.addrs: at least one Redis address is required outside sandbox mode (the embedded store is not durable)`}},
		{"ledger missing outside sandbox", func(c *Config, _ string) { c.Store.Postgres.DSNFile = "" },
			[]string{`store.postgres.dsn: required outside sandbox mode (the embedded ledger is not durable): set dsn_env or dsn_file`}},
		{"ledger dsn inline outside sandbox", func(c *Config, _ string) {
			c.Store.Postgres.DSNFile, c.Store.Postgres.DSN = "", "postgres://u:pw@db/paygate"
		}, []string{`store.postgres.dsn: inline secrets need sandbox mode; use dsn_env or dsn_file`}},
		{"ledger pool", func(c *Config, _ string) {
			c.Store.Postgres.MaxConns, c.Store.Postgres.MinConns, c.Store.Postgres.ConnectTimeout = 0, -1, 0
		}, []string{`store.postgres.max_conns: must be at least 1, got 0`,
			`store.postgres.min_conns: must be 0–max_conns (0), got -1`,
			`store.postgres.connect_timeout: must be greater than 0, got 0s`}},
		{"ledger purge too soon", func(c *Config, _ string) { c.Store.Postgres.PurgeDeliveredAfter = Duration(30 * time.Minute) },
			[]string{`store.postgres.purge_delivered_after: must be 0 (keep) or at least 1h, got 30m0s`}},
		{"notify_allow_networks outside sandbox", func(c *Config, _ string) { c.Merchants[0].NotifyAllowNetworks = []string{"10.0.0.0/8"} },
			[]string{`merchants[0].notify_allow_networks: allowing notifications to private networks is for sandbox mode only`}},
		{"notify_allow_networks not CIDR", func(c *Config, _ string) {
			c.Merchants[0].NotifyAllowNetworks = []string{"10.0.0.0/8", "10.1.2.3", "::1/129"}
		},
			[]string{`merchants[0].notify_allow_networks: allowing notifications to private networks is for sandbox mode only`,
				`merchants[0].notify_allow_networks[1]: want a CIDR such as "10.0.0.0/8", got "10.1.2.3"`,
				`merchants[0].notify_allow_networks[2]: want a CIDR such as "10.0.0.0/8", got "::1/129"`}},
		{"merchant methods empty", func(c *Config, _ string) { c.Merchants[1].Methods = nil },
			[]string{`merchants[1].methods: at least one method is required`}},
		{"merchant method unknown", func(c *Config, _ string) { c.Merchants[1].Methods = []string{"qr", "cash"} },
			[]string{`merchants[1].methods[1]: unknown method "cash" (want one of qr, wechat_native, wechat_jsapi, alipay_qr, alipay_page, bank_redirect)`}},
		{"merchant method repeated", func(c *Config, _ string) { c.Merchants[1].Methods = []string{"qr", "qr"} },
			[]string{`merchants[1].methods[1]: "qr" is listed twice`}},
		{"merchant method served by no channel", func(c *Config, _ string) { c.Channels[1].Methods = []string{"qr", "alipay_qr"} },
			[]string{`merchants[0].methods[4]: no channel serves method "alipay_page"`}},
		{"merchant max_amount 0", func(c *Config, _ string) { c.Merchants[0].Limits.MaxAmount = 0 },
			[]string{`merchants[0].limits.max_amount: must be at least 1, got 0`}},
		{"merchant requests_per_second 0", func(c *Config, _ string) { c.Merchants[0].Limits.RequestsPerSecond = 0 },
			[]string{`merchants[0].limits.requests_per_second: must be at least 1, got 0`}},

		// channels
		{"channel id bad", func(c *Config, _ string) { c.Channels[1].ID = "Alipay_Main" },
			[]string{`channels[1].id: want 1-32 characters of [a-z0-9-], starting with a letter or digit, got "Alipay_Main"`,
				`routing.rules[1].channels[1]: unknown channel "alipay-main"`}},
		{"channel id starts with dash", func(c *Config, _ string) { c.Channels[1].ID = "-alipay" },
			[]string{`channels[1].id: want 1-32 characters of [a-z0-9-], starting with a letter or digit, got "-alipay"`,
				`routing.rules[1].channels[1]: unknown channel "alipay-main"`}},
		{"channel id duplicate", func(c *Config, _ string) { c.Channels[3].ID = "bank-a" },
			[]string{`channels[3].id: duplicate channel id "bank-a" (also channels[2])`,
				`routing.rules[0].channels[1]: unknown channel "bank-b"`}},
		{"channel type unknown", func(c *Config, _ string) { c.Channels[1].Type = "paypal" },
			[]string{`channels[1].type: want wechat, alipay or bank, got "paypal"`}},
		{"channel base_url not http", func(c *Config, _ string) { c.Channels[0].BaseURL = "ftp://api.mch.weixin.qq.com" },
			[]string{`channels[0].base_url: want an absolute http:// or https:// URL, got "ftp://api.mch.weixin.qq.com"`}},
		{"channel base_url missing", func(c *Config, _ string) { c.Channels[0].BaseURL = "" },
			[]string{`channels[0].base_url: want an absolute http:// or https:// URL, got ""`}},
		{"channel base_url bad port", func(c *Config, _ string) { c.Channels[0].BaseURL = "https://x.example:99999" },
			[]string{`channels[0].base_url: bad port "99999"`}},
		{"channel methods empty", func(c *Config, _ string) { c.Channels[3].Methods = nil },
			[]string{`channels[3].methods: at least one method is required`,
				`routing.rules[0].channels[1]: channel "bank-b" serves none of the rule's methods (qr)`}},
		{"channel method unknown", func(c *Config, _ string) { c.Channels[2].Methods = []string{"qr", "bank_redirect", "cash"} },
			[]string{`channels[2].methods[2]: unknown method "cash" (want one of qr, wechat_native, wechat_jsapi, alipay_qr, alipay_page, bank_redirect)`}},
		{"channel method not of its type", func(c *Config, _ string) { c.Channels[0].Methods = append(c.Channels[0].Methods, "alipay_qr") },
			[]string{`channels[0].methods[3]: a wechat channel cannot serve "alipay_qr" (it serves qr, wechat_native, wechat_jsapi)`}},
		{"channel currencies empty", func(c *Config, _ string) { c.Channels[0].Currencies = nil },
			[]string{`channels[0].currencies: at least one currency is required`}},
		{"channel currency not ISO", func(c *Config, _ string) { c.Channels[0].Currencies = []string{"CNY", "rmb", "USDT"} },
			[]string{`channels[0].currencies[1]: want an ISO 4217 code such as "CNY", got "rmb"`,
				`channels[0].currencies[2]: want an ISO 4217 code such as "CNY", got "USDT"`}},
		{"channel currency repeated", func(c *Config, _ string) { c.Channels[0].Currencies = []string{"CNY", "CNY"} },
			[]string{`channels[0].currencies[1]: "CNY" is listed twice`}},
		{"channel timeout 0", func(c *Config, _ string) { c.Channels[0].Timeout = 0 },
			[]string{`channels[0].timeout: must be greater than 0, got 0s`}},
		{"channel latency_target 0", func(c *Config, _ string) { c.Channels[0].LatencyTarget = 0 },
			[]string{`channels[0].latency_target: must be greater than 0, got 0s`}},
		{"breaker failure_ratio 0", func(c *Config, _ string) { c.Channels[0].Breaker.FailureRatio = 0 },
			[]string{`channels[0].breaker.failure_ratio: must be greater than 0 and at most 1, got 0`}},
		{"breaker failure_ratio over 1", func(c *Config, _ string) { c.Channels[0].Breaker.FailureRatio = 1.01 },
			[]string{`channels[0].breaker.failure_ratio: must be greater than 0 and at most 1, got 1.01`}},
		{"breaker failure_ratio NaN", func(c *Config, _ string) { c.Channels[0].Breaker.FailureRatio = math.NaN() },
			[]string{`channels[0].breaker.failure_ratio: must be greater than 0 and at most 1, got NaN`}},
		{"breaker min_requests 0", func(c *Config, _ string) { c.Channels[0].Breaker.MinRequests = 0 },
			[]string{`channels[0].breaker.min_requests: must be at least 1, got 0`}},
		{"breaker half_open_requests 0", func(c *Config, _ string) { c.Channels[0].Breaker.HalfOpenRequests = 0 },
			[]string{`channels[0].breaker.half_open_requests: must be at least 1, got 0`}},
		{"breaker open_for 0", func(c *Config, _ string) { c.Channels[0].Breaker.OpenFor = 0 },
			[]string{`channels[0].breaker.open_for: must be greater than 0, got 0s`}},
		{"breaker interval negative", func(c *Config, _ string) { c.Channels[0].Breaker.Interval = Duration(-time.Second) },
			[]string{`channels[0].breaker.interval: must not be negative, got -1s`}},

		// credentials
		{"private key missing", func(c *Config, _ string) { c.Channels[0].Credentials.PrivateKeyFile = "" },
			[]string{`channels[0].credentials.private_key: required: set private_key_env or private_key_file`}},
		{"private key inline outside sandbox", func(c *Config, _ string) {
			c.Channels[2].Credentials.PrivateKeyFile, c.Channels[2].Credentials.PrivateKey = "", "-----BEGIN PRIVATE KEY-----"
		}, []string{`channels[2].credentials.private_key: inline secrets need sandbox mode; use private_key_env or private_key_file`}},
		{"private key two forms", func(c *Config, _ string) { c.Channels[2].Credentials.PrivateKeyEnv = "BANK_KEY" },
			[]string{`channels[2].credentials.private_key: set only one of private_key, private_key_env, private_key_file`}},
		{"private key not PEM", func(c *Config, dir string) {
			c.Channels[1].Credentials.PrivateKeyFile = filepath.Join(dir, "garbage.pem")
		},
			[]string{`channels[1].credentials.private_key: no PEM block found`}},
		{"private key is a public key", func(c *Config, dir string) {
			c.Channels[1].Credentials.PrivateKeyFile = filepath.Join(dir, "rsa.pub.pem")
		},
			[]string{`channels[1].credentials.private_key: PEM block is "PUBLIC KEY", want "PRIVATE KEY" or "RSA PRIVATE KEY"`}},
		{"private key too small", func(c *Config, dir string) {
			c.Channels[1].Credentials.PrivateKeyFile = filepath.Join(dir, "small.pem")
		},
			[]string{`channels[1].credentials.private_key: RSA key has 1024 bits; at least 2048 are required`}},
		{"wechat mchid missing", func(c *Config, _ string) { c.Channels[0].Credentials.MchID = "" },
			[]string{`channels[0].credentials.mchid: required`}},
		{"wechat mchid not digits", func(c *Config, _ string) { c.Channels[0].Credentials.MchID = "19x" },
			[]string{`channels[0].credentials.mchid: want digits, got "19x"`}},
		{"wechat appid missing", func(c *Config, _ string) { c.Channels[0].Credentials.AppID = "" },
			[]string{`channels[0].credentials.appid: required`}},
		{"wechat serial_no not hex", func(c *Config, _ string) { c.Channels[0].Credentials.SerialNo = "3775B6A45ACD5888****" },
			[]string{`channels[0].credentials.serial_no: want hex digits, got "3775B6A45ACD5888****"`}},
		{"wechat apiv3_key missing", func(c *Config, _ string) { c.Channels[0].Credentials.APIv3KeyFile = "" },
			[]string{`channels[0].credentials.apiv3_key: required: set apiv3_key_env or apiv3_key_file`}},
		{"wechat apiv3_key wrong length", func(c *Config, dir string) {
			c.Channels[0].Credentials.APIv3KeyFile = filepath.Join(dir, "demo.secret")
		},
			[]string{`channels[0].credentials.apiv3_key: must be exactly 32 bytes, got 38`}},
		{"wechat apiv3_key inline outside sandbox", func(c *Config, _ string) {
			c.Channels[0].Credentials.APIv3KeyFile, c.Channels[0].Credentials.APIv3Key = "", "sandboxAPIv3key0123456789abcdef0"
		}, []string{`channels[0].credentials.apiv3_key: inline secrets need sandbox mode; use apiv3_key_env or apiv3_key_file`}},
		{"wechat platform key missing", func(c *Config, _ string) { c.Channels[0].Credentials.PlatformPublicKeyFile = "" },
			[]string{`channels[0].credentials.platform_public_key_file: required`}},
		{"wechat platform key not RSA", func(c *Config, dir string) {
			c.Channels[0].Credentials.PlatformPublicKeyFile = filepath.Join(dir, "ed.pub.pem")
		},
			[]string{`channels[0].credentials.platform_public_key_file: want an RSA public key, got ed25519.PublicKey`}},
		{"wechat platform_serial missing", func(c *Config, _ string) { c.Channels[0].Credentials.PlatformSerial = "" },
			[]string{`channels[0].credentials.platform_serial: required`}},
		{"wechat with a bank key", func(c *Config, _ string) { c.Channels[0].Credentials.MerID = "777290058110048" },
			[]string{`channels[0].credentials.mer_id: not used by wechat channels`}},
		{"alipay app_id missing", func(c *Config, _ string) { c.Channels[1].Credentials.AlipayAppID = "" },
			[]string{`channels[1].credentials.app_id: required`}},
		{"alipay public key missing", func(c *Config, _ string) { c.Channels[1].Credentials.AlipayPublicKeyFile = "" },
			[]string{`channels[1].credentials.alipay_public_key_file: required`}},
		{"alipay public key file missing", func(c *Config, dir string) {
			c.Channels[1].Credentials.AlipayPublicKeyFile = filepath.Join(dir, "nope.pem")
		},
			[]string{`channels[1].credentials.alipay_public_key_file: open {dir}/nope.pem: no such file or directory`}},
		{"alipay with a wechat key", func(c *Config, _ string) { c.Channels[1].Credentials.APIv3KeyEnv = "APIV3" },
			[]string{`channels[1].credentials.apiv3_key_env: not used by alipay channels`}},
		{"two channels on one merchant account", func(c *Config, _ string) { c.Channels[3].Credentials.MerID = c.Channels[2].Credentials.MerID },
			[]string{`channels[3].credentials.mer_id: account "777290058110048" is also used by channels[2]; one merchant account may back one channel only`}},
		{"bank mer_id missing", func(c *Config, _ string) { c.Channels[2].Credentials.MerID = "" },
			[]string{`channels[2].credentials.mer_id: required`}},
		{"bank cert_id not decimal", func(c *Config, _ string) { c.Channels[2].Credentials.CertID = "0x1F" },
			[]string{`channels[2].credentials.cert_id: want decimal digits, got "0x1F"`}},
		{"bank root cert is a key", func(c *Config, dir string) {
			c.Channels[2].Credentials.RootCertFile = filepath.Join(dir, "rsa.pub.pem")
		},
			[]string{`channels[2].credentials.root_cert_file: PEM block is "PUBLIC KEY", want "CERTIFICATE"`}},
		{"bank root cert missing", func(c *Config, _ string) { c.Channels[3].Credentials.RootCertFile = "" },
			[]string{`channels[3].credentials.root_cert_file: required`}},

		// routing
		{"rule name empty", func(c *Config, _ string) { c.Routing.Rules[0].Name = "" },
			[]string{`routing.rules[0].name: required`}},
		{"rule name duplicate", func(c *Config, _ string) { c.Routing.Rules[1].Name = "large-to-bank" },
			[]string{`routing.rules[1].name: duplicate rule name "large-to-bank" (also routing.rules[0])`}},
		{"rule channel unknown", func(c *Config, _ string) { c.Routing.Rules[0].Channels[1].ID = "bank-z" },
			[]string{`routing.rules[0].channels[1]: unknown channel "bank-z"`}},
		{"rule channel id empty", func(c *Config, _ string) { c.Routing.Rules[0].Channels[1].ID = "" },
			[]string{`routing.rules[0].channels[1].id: required`}},
		{"rule channel listed twice", func(c *Config, _ string) { c.Routing.Rules[0].Channels[1].ID = "bank-a" },
			[]string{`routing.rules[0].channels[1]: channel "bank-a" is listed twice (also routing.rules[0].channels[0])`}},
		{"rule channels empty", func(c *Config, _ string) { c.Routing.Rules[1].Channels = nil },
			[]string{`routing.rules[1].channels: at least one channel is required`}},
		{"rule weight negative", func(c *Config, _ string) { c.Routing.Rules[1].Channels[0].Weight = -1 },
			[]string{`routing.rules[1].channels[0].weight: must be at least 0, got -1`}},
		{"rule weight NaN", func(c *Config, _ string) { c.Routing.Rules[1].Channels[0].Weight = math.NaN() },
			[]string{`routing.rules[1].channels[0].weight: must be at least 0, got NaN`}},
		{"rule priority negative", func(c *Config, _ string) { c.Routing.Rules[1].Channels[1].Priority = -1 },
			[]string{`routing.rules[1].channels[1].priority: must be at least 0, got -1`}},
		{"rule amount_min over amount_max", func(c *Config, _ string) { c.Routing.Rules[0].When.AmountMax = 1000 },
			[]string{`routing.rules[0].when.amount_min: greater than amount_max (500000 > 1000)`}},
		{"rule amounts negative", func(c *Config, _ string) {
			c.Routing.Rules[1].When.AmountMin, c.Routing.Rules[1].When.AmountMax = -1, -2
		},
			[]string{`routing.rules[1].when.amount_min: must be at least 0, got -1`,
				`routing.rules[1].when.amount_max: must be at least 0 (0: no upper bound), got -2`}},
		{"rule method unknown", func(c *Config, _ string) { c.Routing.Rules[1].When.Methods = []string{"qr", "cash"} },
			[]string{`routing.rules[1].when.methods[1]: unknown method "cash" (want one of qr, wechat_native, wechat_jsapi, alipay_qr, alipay_page, bank_redirect)`}},
		{"rule channel serves none of its methods", func(c *Config, _ string) { c.Routing.Rules[1].When.Methods = []string{"alipay_page"} },
			[]string{`routing.rules[1].channels[0]: channel "wechat-main" serves none of the rule's methods (alipay_page)`}},
		{"rule currency no channel lists", func(c *Config, _ string) { c.Routing.Rules[1].When.Currencies = []string{"USD"} },
			[]string{`routing.rules[1].when.currencies[0]: no channel lists currency "USD"`}},
		{"rule currency not ISO", func(c *Config, _ string) { c.Routing.Rules[1].When.Currencies = []string{"yuan"} },
			[]string{`routing.rules[1].when.currencies[0]: want an ISO 4217 code such as "CNY", got "yuan"`}},
		{"rule merchant unknown", func(c *Config, _ string) { c.Routing.Rules[1].When.Merchants = []string{"demo", "ghost"} },
			[]string{`routing.rules[1].when.merchants[1]: unknown merchant "ghost"`}},
		{"failover max_attempts 0", func(c *Config, _ string) { c.Routing.Failover.MaxAttempts = 0 },
			[]string{`routing.failover.max_attempts: must be between 1 and 5, got 0`}},
		{"failover max_attempts 6", func(c *Config, _ string) { c.Routing.Failover.MaxAttempts = 6 },
			[]string{`routing.failover.max_attempts: must be between 1 and 5, got 6`}},
		{"exploration negative", func(c *Config, _ string) { c.Routing.Exploration = -0.1 },
			[]string{`routing.exploration: must be between 0 and 0.5, got -0.1`}},
		{"exploration over half", func(c *Config, _ string) { c.Routing.Exploration = 0.6 },
			[]string{`routing.exploration: must be between 0 and 0.5, got 0.6`}},
		{"health window 0", func(c *Config, _ string) { c.Routing.Health.Window = 0 },
			[]string{`routing.health.window: must be greater than 0, got 0s`}},
		{"health buckets 0", func(c *Config, _ string) { c.Routing.Health.Buckets = 0 },
			[]string{`routing.health.buckets: must be between 1 and 3600, got 0`}},
		{"health buckets too fine", func(c *Config, _ string) {
			c.Routing.Health.Window, c.Routing.Health.Buckets = Duration(2*time.Second), 40
		},
			[]string{`routing.health.buckets: window / buckets must be at least 100ms, got 50ms`}},
		{"health min_samples 0", func(c *Config, _ string) { c.Routing.Health.MinSamples = 0 },
			[]string{`routing.health.min_samples: must be at least 1, got 0`}},
		{"health sync_interval 0", func(c *Config, _ string) { c.Routing.Health.SyncInterval = 0 },
			[]string{`routing.health.sync_interval: must be greater than 0, got 0s`}},
		{"health sync_interval over window", func(c *Config, _ string) { c.Routing.Health.SyncInterval = Duration(2 * time.Minute) },
			[]string{`routing.health.sync_interval: must not exceed routing.health.window (1m0s)`}},

		// notifications, reconcile
		{"schedule empty", func(c *Config, _ string) { c.Notifications.Schedule = nil },
			[]string{`notifications.schedule: at least one retry interval is required`}},
		{"schedule entry 0", func(c *Config, _ string) { c.Notifications.Schedule[2] = 0 },
			[]string{`notifications.schedule[2]: must be greater than 0, got 0s`}},
		{"workers 0", func(c *Config, _ string) { c.Notifications.Workers = 0 },
			[]string{`notifications.workers: must be at least 1, got 0`}},
		{"notify timeout 0", func(c *Config, _ string) { c.Notifications.Timeout = 0 },
			[]string{`notifications.timeout: must be greater than 0 and at most 60s, got 0s`}},
		{"notify timeout over 60s", func(c *Config, _ string) { c.Notifications.Timeout = Duration(61 * time.Second) },
			[]string{`notifications.timeout: must be greater than 0 and at most 60s, got 1m1s`,
				`notifications.lease: must be longer than notifications.timeout (1m1s), got 30s`}},
		{"notify lease not over timeout", func(c *Config, _ string) { c.Notifications.Lease = Duration(10 * time.Second) },
			[]string{`notifications.lease: must be longer than notifications.timeout (10s), got 10s`}},
		{"notify lease 0", func(c *Config, _ string) { c.Notifications.Lease = 0 },
			[]string{`notifications.lease: must be greater than 0, got 0s`}},
		{"reconcile delay 0", func(c *Config, _ string) { c.Reconcile.Delays[1] = 0 },
			[]string{`reconcile.delays[1]: must be greater than 0, got 0s`}},
		{"reconcile interval 0", func(c *Config, _ string) { c.Reconcile.Interval = 0 },
			[]string{`reconcile.interval: must be greater than 0, got 0s`}},
		{"reconcile lease 0", func(c *Config, _ string) { c.Reconcile.Lease = 0 },
			[]string{`reconcile.lease: must be greater than 0, got 0s`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, dir := mustBase(t)
			tt.mutate(cfg, dir)
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "{dir}", dir)
			}
			got := problems(t, cfg.Validate())
			if !reflect.DeepEqual(got, want) {
				t.Errorf("problems:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg, _ := mustBase(t)
	cfg.Server.Listen = "x"
	cfg.Merchants[0].Limits.MaxAmount = 0
	cfg.Routing.Rules[0].Channels[1].ID = "bank-z"
	cfg.Notifications.Workers = 0
	got := problems(t, cfg.Validate())
	want := []string{
		`server.listen: want host:port such as ":8080" or "127.0.0.1:9090", got "x"`,
		`merchants[0].limits.max_amount: must be at least 1, got 0`,
		`routing.rules[0].channels[1]: unknown channel "bank-z"`,
		`notifications.workers: must be at least 1, got 0`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
	if err := cfg.Validate(); err.Error() != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestValidateNoMerchantsOrChannels(t *testing.T) {
	t.Parallel()
	cfg, _ := mustBase(t)
	cfg.Merchants, cfg.Channels, cfg.Routing.Rules = nil, nil, nil
	got := problems(t, cfg.Validate())
	want := []string{`merchants: at least one merchant is required`, `channels: at least one channel is required`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
}

func TestValidateSandboxAcceptsInlineSecrets(t *testing.T) {
	t.Parallel()
	cfg, _ := mustBase(t)
	sandboxOn(cfg)
	cfg.Server.AdminTokenFile, cfg.Server.AdminToken = "", "short" // short is fine in sandbox mode
	cfg.Merchants[0].Key.SecretFile, cfg.Merchants[0].Key.Secret = "", "inline-secret-0123456789abcdef0123456789"
	cfg.Merchants[0].WebhookSecretFile, cfg.Merchants[0].WebhookSecret = "", "inline-webhook-0123"
	cfg.Store.Redis.Password = "redis-pass"
	cfg.Channels[0].Credentials.APIv3KeyFile, cfg.Channels[0].Credentials.APIv3Key = "", "sandboxAPIv3key0123456789abcdef0"
	cfg.Channels[1].Credentials.PrivateKeyFile = ""
	cfg.Channels[1].Credentials.PrivateKey = Secret(keyFiles["merchant.pem"])
	if err := cfg.Validate(); err != nil {
		t.Fatalf("sandbox config with inline secrets: %v", err)
	}
	for _, tc := range []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{"admin token", cfg.Server.ResolveAdminToken, "short"},
		{"hmac secret", cfg.Merchants[0].Key.ResolveSecret, "inline-secret-0123456789abcdef0123456789"},
		{"webhook secret", cfg.Merchants[0].ResolveWebhookSecret, "inline-webhook-0123"},
		{"redis password", cfg.Store.Redis.ResolvePassword, "redis-pass"},
		{"apiv3 key", cfg.Channels[0].Credentials.ResolveAPIv3Key, "sandboxAPIv3key0123456789abcdef0"},
		{"private key", cfg.Channels[1].Credentials.ResolvePrivateKey, string(keyFiles["merchant.pem"])},
		{"private key from file", cfg.Channels[2].Credentials.ResolvePrivateKey, strings.TrimSuffix(string(keyFiles["merchant.pem"]), "\n")},
	} {
		got, err := tc.got()
		if err != nil || got != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
