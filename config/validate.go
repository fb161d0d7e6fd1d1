package config

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/payment"
)

// Problem is one thing wrong with a config: where (a YAML path such as
// "routing.rules[0].channels[1]", or "line N" for a YAML syntax error) and what.
type Problem struct {
	Path    string
	Message string
}

// String formats p as "path: message" (just the message when there is no path).
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ProblemsError is every problem found in a config, in document order
// (decoding problems first). Its Error is one problem per line.
type ProblemsError struct {
	Problems []Problem
}

func (e *ProblemsError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Validate checks c (with its defaults applied, as Parse leaves it) and
// returns a *ProblemsError listing every problem, or nil. It resolves every
// secret and reads every key file the config names, so it sees what the
// gateway will see at start.
func (c *Config) Validate() error {
	if probs := c.validate(); len(probs) > 0 {
		return &ProblemsError{Problems: probs}
	}
	return nil
}

// Channel types.
const (
	TypeWechat = "wechat"
	TypeAlipay = "alipay"
	TypeBank   = "bank"
)

// typeMethods lists the methods each channel type can serve.
var typeMethods = map[string][]payment.Method{
	TypeWechat: {payment.MethodQR, payment.MethodWechatNative, payment.MethodWechatJSAPI},
	TypeAlipay: {payment.MethodQR, payment.MethodAlipayQR, payment.MethodAlipayPage},
	TypeBank:   {payment.MethodQR, payment.MethodBankRedirect},
}

// typeCredentials lists the credential keys each channel type uses.
var typeCredentials = map[string][]string{
	TypeWechat: {"mchid", "appid", "serial_no", "apiv3_key", "apiv3_key_env", "apiv3_key_file",
		"platform_public_key_file", "platform_serial", "private_key", "private_key_env", "private_key_file"},
	TypeAlipay: {"app_id", "alipay_public_key_file", "private_key", "private_key_env", "private_key_file"},
	TypeBank: {"mer_id", "cert_id", "root_cert_file", "middle_cert_file", "cert_identity",
		"private_key", "private_key_env", "private_key_file"},
}

const maxBodyLimit = 16 << 20

var (
	merchantIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	channelIDRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	currencyRe   = regexp.MustCompile(`^[A-Z]{3}$`)
	digitsRe     = regexp.MustCompile(`^[0-9]+$`)
	hexRe        = regexp.MustCompile(`^[0-9A-Fa-f]+$`)
)

type validator struct {
	c     *Config
	probs []Problem
	// listeners are the addresses this config listens on, to find clashes.
	listeners []listener
}

type listener struct{ path, host, port string }

func (v *validator) add(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *Config) validate() []Problem {
	v := &validator{c: c}
	v.server()
	v.store()
	v.sandbox()
	v.positive("security.timestamp_window", c.Security.TimestampWindow)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "json", "console")
	v.merchants()
	v.channels()
	v.routing()
	v.notifications()
	v.reconcile()
	v.risk()
	return v.probs
}

func (v *validator) server() {
	s := v.c.Server
	v.listen("server.listen", s.Listen)
	v.listen("server.admin_listen", s.AdminListen)
	if s.PublicURL == "" {
		v.add("server.public_url", "required when server.listen is not host:port")
	} else {
		v.httpURL("server.public_url", s.PublicURL)
	}
	if s.MaxBodyBytes < 1 || s.MaxBodyBytes > maxBodyLimit {
		v.add("server.max_body_bytes", "must be between 1 and %d (16 MiB), got %d", maxBodyLimit, s.MaxBodyBytes)
	}
	if s.MaxHeaderBytes < 1024 || s.MaxHeaderBytes > 1<<20 {
		v.add("server.max_header_bytes", "must be between 1024 and %d (1 MiB), got %d", 1<<20, s.MaxHeaderBytes)
	}
	v.positive("server.read_timeout", s.ReadTimeout)
	v.positive("server.write_timeout", s.WriteTimeout)
	v.positive("server.idle_timeout", s.IdleTimeout)
	v.positive("server.shutdown_timeout", s.ShutdownTimeout)
	if s.ShutdownDelay < 0 || (s.ShutdownTimeout > 0 && s.ShutdownDelay >= s.ShutdownTimeout) {
		v.add("server.shutdown_delay", "must be at least 0 and below server.shutdown_timeout (%s), got %s", s.ShutdownTimeout, s.ShutdownDelay)
	}
	if s.MaxConnsPerIP < 1 {
		v.add("server.max_conns_per_ip", "must be at least 1, got %d", s.MaxConnsPerIP)
	}
	v.serverEdge(s)
	tok, ok := v.secret("server", "admin_token", s.AdminToken, s.AdminTokenEnv, s.AdminTokenFile, true)
	if ok && !v.c.Sandbox.Enabled && len(tok) < 16 {
		v.add("server.admin_token", "must be at least 16 bytes, got %d", len(tok))
	}
}

// serverEdge checks the merchant listener's TLS and proxy settings.
func (v *validator) serverEdge(s Server) {
	if s.TLS.Enabled() {
		if s.TLS.CertFile == "" || s.TLS.KeyFile == "" {
			v.add("server.tls", "set both cert_file and key_file, or neither")
		} else if _, err := tls.LoadX509KeyPair(s.TLS.CertFile, s.TLS.KeyFile); err != nil {
			v.add("server.tls", "cannot load the certificate: %v", err)
		}
	}
	if _, err := ParsePrefixes(s.TrustedProxies); err != nil {
		v.add("server.trusted_proxies", "%v", err)
	}
	if s.ProxyProtocol && len(s.TrustedProxies) == 0 {
		v.add("server.proxy_protocol", "needs server.trusted_proxies: only a trusted proxy may send a PROXY header")
	}
}

// ParsePrefixes parses CIDRs; a bare address is a single-address prefix.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("[%d]: want a CIDR or an IP address, got %q", i, s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (v *validator) store() {
	r := v.c.Store.Redis
	if len(r.Addrs) == 0 && !v.c.Sandbox.Enabled {
		// The embedded store keeps everything in this process's memory:
		// payments and queued notifications would be lost on a restart.
		v.add("store.redis.addrs", "at least one Redis address is required outside sandbox mode (the embedded store is not durable)")
	}
	seen := map[string]int{}
	for i, a := range r.Addrs {
		p := fmt.Sprintf("store.redis.addrs[%d]", i)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || !validPort(port, false) {
			v.add(p, "want host:port, got %q", a)
			continue
		}
		if j, dup := seen[a]; dup {
			v.add(p, "duplicate address %q (also store.redis.addrs[%d])", a, j)
		}
		seen[a] = i
	}
	v.secret("store.redis", "password", r.Password, r.PasswordEnv, r.PasswordFile, false)
	if r.DB < 0 {
		v.add("store.redis.db", "must be at least 0, got %d", r.DB)
	} else if r.DB != 0 && len(r.Addrs) > 1 {
		v.add("store.redis.db", "Redis Cluster (several addrs) has only database 0")
	}
	if r.KeyPrefix == "" {
		v.add("store.redis.key_prefix", "must not be empty")
	}
	if r.PoolSize < 0 {
		v.add("store.redis.pool_size", "must be at least 0, got %d", r.PoolSize)
	}
	v.positive("store.redis.dial_timeout", r.DialTimeout)
	v.positive("store.redis.read_timeout", r.ReadTimeout)
	v.positive("store.redis.write_timeout", r.WriteTimeout)
	v.postgres()
}

func (v *validator) postgres() {
	pg := v.c.Store.Postgres
	if !pg.Configured() && !v.c.Sandbox.Enabled {
		// The embedded ledger lives in this process's memory.
		v.add("store.postgres.dsn", "required outside sandbox mode (the embedded ledger is not durable): set dsn_env or dsn_file")
	}
	v.secret("store.postgres", "dsn", pg.DSN, pg.DSNEnv, pg.DSNFile, false)
	if pg.MaxConns < 1 {
		v.add("store.postgres.max_conns", "must be at least 1, got %d", pg.MaxConns)
	}
	if pg.MinConns < 0 || pg.MinConns > pg.MaxConns {
		v.add("store.postgres.min_conns", "must be 0–max_conns (%d), got %d", pg.MaxConns, pg.MinConns)
	}
	v.positive("store.postgres.max_conn_lifetime", pg.MaxConnLifetime)
	v.positive("store.postgres.max_conn_idle_time", pg.MaxConnIdleTime)
	v.positive("store.postgres.connect_timeout", pg.ConnectTimeout)
	v.positive("store.postgres.statement_timeout", pg.StatementTimeout)
	if d := pg.PurgeDeliveredAfter; d != 0 && d < Duration(time.Hour) {
		v.add("store.postgres.purge_delivered_after", "must be 0 (keep) or at least 1h, got %s", d)
	}
}

func (v *validator) sandbox() {
	s := v.c.Sandbox
	if s.External && s.ControlListen == "" {
		v.add("sandbox.external", "needs sandbox.control_listen, where the separate simulators' control API listens")
	}
	if s.ControlListen != "" && s.Enabled && !s.External {
		v.listen("sandbox.control_listen", s.ControlListen)
	} else if s.ControlListen != "" {
		v.hostPort("sandbox.control_listen", s.ControlListen)
	}
	if !(s.TimeScale > 0 && !math.IsInf(s.TimeScale, 0)) {
		v.add("sandbox.time_scale", "must be greater than 0, got %v", s.TimeScale)
	}
	if s.AutoPay.After < 0 {
		v.add("sandbox.auto_pay.after", "must not be negative, got %s", s.AutoPay.After)
	}
	if !(s.AutoPay.Ratio >= 0 && s.AutoPay.Ratio <= 1) {
		v.add("sandbox.auto_pay.ratio", "must be between 0 and 1, got %v", s.AutoPay.Ratio)
	}
}

func (v *validator) merchants() {
	ms := v.c.Merchants
	if len(ms) == 0 {
		v.add("merchants", "at least one merchant is required")
	}
	served := map[payment.Method]bool{}
	for _, ch := range v.c.Channels {
		for _, m := range ch.Methods {
			served[payment.Method(m)] = true
		}
	}
	ids := map[string]int{}
	for i, m := range ms {
		p := fmt.Sprintf("merchants[%d]", i)
		switch j, dup := ids[m.ID]; {
		case !merchantIDRe.MatchString(m.ID):
			v.add(p+".id", "want 1-32 characters of [A-Za-z0-9_-], got %q", m.ID)
		case dup:
			v.add(p+".id", "duplicate merchant id %q (also merchants[%d])", m.ID, j)
		default:
			ids[m.ID] = i
		}
		v.merchantKey(p+".key", m.Key)
		if s, ok := v.secret(p, "webhook_secret", m.WebhookSecret, m.WebhookSecretEnv, m.WebhookSecretFile, true); ok && len(s) < 16 {
			v.add(p+".webhook_secret", "must be at least 16 bytes, got %d", len(s))
		}
		if len(m.NotifyAllowNetworks) > 0 && !v.c.Sandbox.Enabled {
			v.add(p+".notify_allow_networks", "allowing notifications to private networks is for sandbox mode only")
		}
		for j, n := range m.NotifyAllowNetworks {
			if _, err := netip.ParsePrefix(n); err != nil {
				v.add(fmt.Sprintf("%s.notify_allow_networks[%d]", p, j), "want a CIDR such as \"10.0.0.0/8\", got %q", n)
			}
		}
		if len(m.Methods) == 0 {
			v.add(p+".methods", "at least one method is required")
		}
		v.methods(p+".methods", m.Methods, func(path string, meth payment.Method) {
			if !served[meth] {
				v.add(path, "no channel serves method %q", meth)
			}
		})
		if m.Limits.MaxAmount < 1 {
			v.add(p+".limits.max_amount", "must be at least 1, got %d", m.Limits.MaxAmount)
		}
		if m.Limits.RequestsPerSecond < 1 {
			v.add(p+".limits.requests_per_second", "must be at least 1, got %d", m.Limits.RequestsPerSecond)
		}
	}
}

func (v *validator) merchantKey(p string, k Key) {
	hasSecret := k.Secret != "" || k.SecretEnv != "" || k.SecretFile != ""
	hasPublic := k.PublicKey != "" || k.PublicKeyFile != ""
	switch k.Algorithm {
	case AlgHMACSHA256:
		if hasPublic {
			v.add(p+".public_key", "only rsa-sha256 and ed25519 keys have a public key; hmac-sha256 uses secret")
		}
		if s, ok := v.secret(p, "secret", k.Secret, k.SecretEnv, k.SecretFile, true); ok && len(s) < 32 {
			v.add(p+".secret", "must be at least 32 bytes, got %d", len(s))
		}
	case AlgRSASHA256, AlgEd25519:
		if hasSecret {
			v.add(p+".secret", "only hmac-sha256 keys have a secret; %s uses public_key or public_key_file", k.Algorithm)
		}
		if _, err := k.ParsePublicKey(); err != nil {
			at := p + ".public_key"
			if k.PublicKeyFile != "" && k.PublicKey == "" {
				at = p + ".public_key_file"
			}
			v.add(at, "%s", err)
		}
	case "":
		v.add(p+".algorithm", "required: hmac-sha256, rsa-sha256 or ed25519")
	default:
		v.add(p+".algorithm", "want hmac-sha256, rsa-sha256 or ed25519, got %q", k.Algorithm)
	}
}

func (v *validator) channels() {
	chs := v.c.Channels
	if len(chs) == 0 {
		v.add("channels", "at least one channel is required")
	}
	ids := map[string]int{}
	accounts := map[string]int{}
	for i, ch := range chs {
		p := fmt.Sprintf("channels[%d]", i)
		// Every attempt of a payment carries the same order number, so two
		// channel ids on one merchant account would be one order seen
		// twice: checking an abandoned attempt on one could close the live
		// order of the other. One account, one channel.
		if acct, key := channelAccount(ch); acct != "" {
			k := ch.Type + "/" + acct
			if j, dup := accounts[k]; dup {
				v.add(p+".credentials."+key, "account %q is also used by channels[%d]; one merchant account may back one channel only", acct, j)
			} else {
				accounts[k] = i
			}
		}
		switch j, dup := ids[ch.ID]; {
		case !channelIDRe.MatchString(ch.ID):
			v.add(p+".id", "want 1-32 characters of [a-z0-9-], starting with a letter or digit, got %q", ch.ID)
		case dup:
			v.add(p+".id", "duplicate channel id %q (also channels[%d])", ch.ID, j)
		default:
			ids[ch.ID] = i
		}
		known := typeMethods[ch.Type] != nil
		if !known {
			v.add(p+".type", "want wechat, alipay or bank, got %q", ch.Type)
		}
		if v.httpURL(p+".base_url", ch.BaseURL) && v.c.Sandbox.Enabled {
			v.sandboxListener(p+".base_url", ch.BaseURL)
		}
		if len(ch.Methods) == 0 {
			v.add(p+".methods", "at least one method is required")
		}
		v.methods(p+".methods", ch.Methods, func(path string, m payment.Method) {
			if known && !serves(ch.Type, m) {
				v.add(path, "a %s channel cannot serve %q (it serves %s)", ch.Type, m, list(typeMethods[ch.Type]))
			}
		})
		if len(ch.Currencies) == 0 {
			v.add(p+".currencies", "at least one currency is required")
		}
		v.currencies(p+".currencies", ch.Currencies, nil)
		if v.positive(p+".timeout", ch.Timeout) && ch.Timeout.D() > MaxChannelTimeout {
			// The reconciler takes a create that has run longer than its
			// attempts could (max_attempts × the timeout) for abandoned by a
			// dead instance; unbounded timeouts would blur that line.
			v.add(p+".timeout", "at most %s, got %s", MaxChannelTimeout, ch.Timeout)
		}
		v.positive(p+".latency_target", ch.LatencyTarget)
		v.breaker(p+".breaker", ch.Breaker)
		if known {
			v.credentials(p+".credentials", ch.Type, ch.Credentials)
		}
	}
}

// MaxChannelTimeout bounds channels[].timeout.
const MaxChannelTimeout = 30 * time.Second

// channelAccount is a channel's merchant account at its provider and the
// credentials key that holds it.
func channelAccount(ch Channel) (account, key string) {
	switch ch.Type {
	case TypeWechat:
		return ch.Credentials.MchID, "mchid"
	case TypeAlipay:
		return ch.Credentials.AlipayAppID, "app_id"
	case TypeBank:
		return ch.Credentials.MerID, "mer_id"
	}
	return "", ""
}

func (v *validator) breaker(p string, b Breaker) {
	if !(b.FailureRatio > 0 && b.FailureRatio <= 1) {
		v.add(p+".failure_ratio", "must be greater than 0 and at most 1, got %v", b.FailureRatio)
	}
	if b.MinRequests < 1 {
		v.add(p+".min_requests", "must be at least 1, got %d", b.MinRequests)
	}
	if b.HalfOpenRequests < 1 {
		v.add(p+".half_open_requests", "must be at least 1, got %d", b.HalfOpenRequests)
	}
	v.positive(p+".open_for", b.OpenFor)
	if b.Interval < 0 {
		v.add(p+".interval", "must not be negative, got %s", b.Interval)
	}
}

func (v *validator) credentials(p, typ string, c Credentials) {
	used := map[string]bool{}
	for _, k := range typeCredentials[typ] {
		used[k] = true
	}
	for _, f := range credentialFields(c) {
		if f.value != "" && !used[f.key] {
			v.add(p+"."+f.key, "not used by %s channels", typ)
		}
	}
	if pemText, ok := v.secret(p, "private_key", c.PrivateKey, c.PrivateKeyEnv, c.PrivateKeyFile, true); ok {
		if _, err := ParseRSAPrivateKey([]byte(pemText)); err != nil {
			v.add(p+".private_key", "%s", err)
		}
	}
	switch typ {
	case TypeWechat:
		v.pattern(p+".mchid", c.MchID, digitsRe, "digits")
		v.required(p+".appid", c.AppID)
		v.pattern(p+".serial_no", c.SerialNo, hexRe, "hex digits")
		if k, ok := v.secret(p, "apiv3_key", c.APIv3Key, c.APIv3KeyEnv, c.APIv3KeyFile, true); ok && len(k) != 32 {
			v.add(p+".apiv3_key", "must be exactly 32 bytes, got %d", len(k))
		}
		v.keyFile(p+".platform_public_key_file", c.PlatformPublicKeyFile, func(b []byte) error {
			_, err := ParseRSAPublicKey(b)
			return err
		})
		v.required(p+".platform_serial", c.PlatformSerial)
	case TypeAlipay:
		v.pattern(p+".app_id", c.AlipayAppID, digitsRe, "digits")
		v.keyFile(p+".alipay_public_key_file", c.AlipayPublicKeyFile, func(b []byte) error {
			_, err := ParseRSAPublicKey(b)
			return err
		})
	case TypeBank:
		v.required(p+".mer_id", c.MerID)
		v.pattern(p+".cert_id", c.CertID, digitsRe, "decimal digits")
		v.keyFile(p+".root_cert_file", c.RootCertFile, func(b []byte) error {
			_, err := parseCertificate(b)
			return err
		})
		if c.MiddleCertFile != "" {
			v.keyFile(p+".middle_cert_file", c.MiddleCertFile, func(b []byte) error {
				_, err := parseCertificate(b)
				return err
			})
		}
		if strings.Contains(c.CertIdentity, "@") {
			v.add(p+".cert_identity", "is one '@'-separated field of the certificate's CN and cannot contain '@'")
		}
	}
}

type credField struct{ key, value string }

func credentialFields(c Credentials) []credField {
	return []credField{
		{"mchid", c.MchID}, {"appid", c.AppID}, {"serial_no", c.SerialNo},
		{"apiv3_key", string(c.APIv3Key)}, {"apiv3_key_env", c.APIv3KeyEnv}, {"apiv3_key_file", c.APIv3KeyFile},
		{"platform_public_key_file", c.PlatformPublicKeyFile}, {"platform_serial", c.PlatformSerial},
		{"app_id", c.AlipayAppID}, {"alipay_public_key_file", c.AlipayPublicKeyFile},
		{"mer_id", c.MerID}, {"cert_id", c.CertID}, {"root_cert_file", c.RootCertFile},
		{"middle_cert_file", c.MiddleCertFile}, {"cert_identity", c.CertIdentity},
		{"private_key", string(c.PrivateKey)}, {"private_key_env", c.PrivateKeyEnv}, {"private_key_file", c.PrivateKeyFile},
	}
}

func (v *validator) routing() {
	r := v.c.Routing
	chans := map[string]Channel{}
	for _, ch := range v.c.Channels {
		chans[ch.ID] = ch
	}
	merchants := map[string]bool{}
	for _, m := range v.c.Merchants {
		merchants[m.ID] = true
	}
	currencies := map[string]bool{}
	for _, ch := range v.c.Channels {
		for _, cur := range ch.Currencies {
			currencies[cur] = true
		}
	}
	names := map[string]int{}
	for i, rule := range r.Rules {
		p := fmt.Sprintf("routing.rules[%d]", i)
		if j, dup := names[rule.Name]; dup && rule.Name != "" {
			v.add(p+".name", "duplicate rule name %q (also routing.rules[%d])", rule.Name, j)
		} else if rule.Name == "" {
			v.add(p+".name", "required")
		} else {
			names[rule.Name] = i
		}
		w := rule.When
		v.methods(p+".when.methods", w.Methods, nil)
		v.currencies(p+".when.currencies", w.Currencies, func(path, cur string) {
			if !currencies[cur] {
				v.add(path, "no channel lists currency %q", cur)
			}
		})
		for j, m := range w.Merchants {
			if !merchants[m] {
				v.add(fmt.Sprintf("%s.when.merchants[%d]", p, j), "unknown merchant %q", m)
			}
		}
		if w.AmountMin < 0 {
			v.add(p+".when.amount_min", "must be at least 0, got %d", w.AmountMin)
		}
		if w.AmountMax < 0 {
			v.add(p+".when.amount_max", "must be at least 0 (0: no upper bound), got %d", w.AmountMax)
		}
		if w.AmountMax > 0 && w.AmountMin > w.AmountMax {
			v.add(p+".when.amount_min", "greater than amount_max (%d > %d)", w.AmountMin, w.AmountMax)
		}
		if len(rule.Channels) == 0 {
			v.add(p+".channels", "at least one channel is required")
		}
		refs := map[string]int{}
		for j, ref := range rule.Channels {
			rp := fmt.Sprintf("%s.channels[%d]", p, j)
			ch, ok := chans[ref.ID]
			switch k, dup := refs[ref.ID]; {
			case ref.ID == "":
				v.add(rp+".id", "required")
			case !ok:
				v.add(rp, "unknown channel %q", ref.ID)
			case dup:
				v.add(rp, "channel %q is listed twice (also %s.channels[%d])", ref.ID, p, k)
			case len(w.Methods) > 0 && !servesAny(ch, w.Methods):
				v.add(rp, "channel %q serves none of the rule's methods (%s)", ref.ID, strings.Join(w.Methods, ", "))
			}
			refs[ref.ID] = j
			if !(ref.Weight >= 0) || math.IsInf(ref.Weight, 0) {
				v.add(rp+".weight", "must be at least 0, got %v", ref.Weight)
			}
			if ref.Priority < 0 {
				v.add(rp+".priority", "must be at least 0, got %d", ref.Priority)
			}
		}
	}
	if r.Failover.MaxAttempts < 1 || r.Failover.MaxAttempts > 5 {
		v.add("routing.failover.max_attempts", "must be between 1 and 5, got %d", r.Failover.MaxAttempts)
	}
	if !(r.Exploration >= 0 && r.Exploration <= 0.5) {
		v.add("routing.exploration", "must be between 0 and 0.5, got %v", r.Exploration)
	}
	if !(r.Tolerance >= 0 && r.Tolerance <= 1) {
		v.add("routing.tolerance", "must be between 0 and 1, got %v", r.Tolerance)
	}
	h := r.Health
	v.positive("routing.health.window", h.Window)
	v.positive("routing.health.half_life", h.HalfLife)
	if !(h.LatencyPercentile >= 0.5 && h.LatencyPercentile < 1) {
		v.add("routing.health.latency_percentile", "must be at least 0.5 and below 1, got %v", h.LatencyPercentile)
	}
	if h.Buckets < 1 || h.Buckets > 3600 {
		v.add("routing.health.buckets", "must be between 1 and 3600, got %d", h.Buckets)
	} else if h.Window > 0 && h.Window.D()/time.Duration(h.Buckets) < 100*time.Millisecond {
		v.add("routing.health.buckets", "window / buckets must be at least 100ms, got %s", h.Window.D()/time.Duration(h.Buckets))
	}
	if h.MinSamples < 1 {
		v.add("routing.health.min_samples", "must be at least 1, got %d", h.MinSamples)
	}
	if v.positive("routing.health.sync_interval", h.SyncInterval) && h.Window > 0 && h.SyncInterval > h.Window {
		v.add("routing.health.sync_interval", "must not exceed routing.health.window (%s)", h.Window)
	}
}

func (v *validator) notifications() {
	n := v.c.Notifications
	if len(n.Schedule) == 0 {
		v.add("notifications.schedule", "at least one retry interval is required")
	}
	for i, d := range n.Schedule {
		v.positive(fmt.Sprintf("notifications.schedule[%d]", i), d)
	}
	if n.Workers < 1 {
		v.add("notifications.workers", "must be at least 1, got %d", n.Workers)
	}
	if n.Timeout <= 0 || n.Timeout.D() > time.Minute {
		v.add("notifications.timeout", "must be greater than 0 and at most 60s, got %s", n.Timeout)
	}
	if v.positive("notifications.lease", n.Lease) && n.Lease <= n.Timeout {
		v.add("notifications.lease", "must be longer than notifications.timeout (%s), got %s", n.Timeout, n.Lease)
	}
}

func (v *validator) reconcile() {
	r := v.c.Reconcile
	for i, d := range r.Delays {
		v.positive(fmt.Sprintf("reconcile.delays[%d]", i), d)
	}
	v.positive("reconcile.interval", r.Interval)
	v.positive("reconcile.lease", r.Lease)
}

// secret checks one secret key K of the object at base against the secrets
// policy (one form at most; inline only in sandbox mode) and resolves it.
// ok is false when the secret is unset or did not resolve.
func (v *validator) secret(base, key string, value Secret, env, file string, required bool) (val string, ok bool) {
	p := base + "." + key
	n := 0
	for _, s := range []string{string(value), env, file} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		v.add(p, "set only one of %s, %s_env, %s_file", key, key, key)
		return "", false
	case value != "" && !v.c.Sandbox.Enabled:
		v.add(p, "inline secrets need sandbox mode; use %s_env or %s_file", key, key)
		return "", false
	case n == 0:
		if required {
			v.add(p, "required: set %s_env or %s_file", key, key)
		}
		return "", false
	}
	s, err := ResolveSecret(value, env, file)
	if err != nil {
		at := p + "_env"
		if file != "" {
			at = p + "_file"
		}
		v.add(at, "%s", err)
		return "", false
	}
	if s == "" {
		v.add(p, "is empty")
		return "", false
	}
	return s, true
}

// keyFile checks a required file holding a public key or certificate.
func (v *validator) keyFile(p, file string, parse func([]byte) error) {
	if file == "" {
		v.add(p, "required")
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		v.add(p, "%s", err)
		return
	}
	if err := parse(b); err != nil {
		v.add(p, "%s", err)
	}
}

func (v *validator) required(p, s string) {
	if s == "" {
		v.add(p, "required")
	}
}

func (v *validator) pattern(p, s string, re *regexp.Regexp, what string) {
	switch {
	case s == "":
		v.add(p, "required")
	case !re.MatchString(s):
		v.add(p, "want %s, got %q", what, s)
	}
}

func (v *validator) oneOf(p, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.add(p, "want %s, got %q", strings.Join(allowed, ", "), s)
}

func (v *validator) positive(p string, d Duration) bool {
	if d <= 0 {
		v.add(p, "must be greater than 0, got %s", d)
		return false
	}
	return true
}

// methods checks a list of method names: known, not repeated; each is then
// passed to more (if not nil) for checks of its own.
func (v *validator) methods(p string, ms []string, more func(path string, m payment.Method)) {
	seen := map[string]bool{}
	for i, m := range ms {
		mp := fmt.Sprintf("%s[%d]", p, i)
		switch {
		case !payment.Method(m).Valid():
			v.add(mp, "unknown method %q (want one of %s)", m, list(payment.Methods))
		case seen[m]:
			v.add(mp, "%q is listed twice", m)
		case more != nil:
			more(mp, payment.Method(m))
		}
		seen[m] = true
	}
}

func (v *validator) currencies(p string, cs []string, more func(path, cur string)) {
	seen := map[string]bool{}
	for i, c := range cs {
		cp := fmt.Sprintf("%s[%d]", p, i)
		switch {
		case !currencyRe.MatchString(c):
			v.add(cp, "want an ISO 4217 code such as \"CNY\", got %q", c)
		case seen[c]:
			v.add(cp, "%q is listed twice", c)
		case more != nil:
			more(cp, c)
		}
		seen[c] = true
	}
}

// httpURL checks an absolute http(s) URL with a host.
func (v *validator) httpURL(p, s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		v.add(p, "want an absolute http:// or https:// URL, got %q", s)
		return false
	}
	if u.Port() != "" && !validPort(u.Port(), false) {
		v.add(p, "bad port %q", u.Port())
		return false
	}
	return true
}

// hostPort checks the syntax of a listen address; port 0 (any free port)
// is allowed, the host may be empty (every address).
func (v *validator) hostPort(p, s string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || !validPort(port, true) {
		v.add(p, "want host:port such as \":8080\" or \"127.0.0.1:9090\", got %q", s)
		return "", "", false
	}
	return host, port, true
}

// listen checks a listen address and that no other listener of this
// config uses it.
func (v *validator) listen(p, s string) {
	host, port, ok := v.hostPort(p, s)
	if ok {
		v.claim(p, s, host, port)
	}
}

// sandboxListener checks that a simulator can listen at a base_url's host:port.
func (v *validator) sandboxListener(p, raw string) {
	u, _ := url.Parse(raw) // checked by httpURL
	if u.Port() == "" {
		v.add(p, "sandbox mode listens on the URL's host:port; give an explicit port")
		return
	}
	v.claim(p, u.Host, u.Hostname(), u.Port())
}

// claim records a listener and reports a clash with an earlier one: the
// same port on the same host, or on any host when either listens on all.
func (v *validator) claim(p, addr, host, port string) {
	if port == "0" {
		return
	}
	for _, l := range v.listeners {
		if l.port == port && (l.host == host || wildcard(l.host) || wildcard(host)) {
			v.add(p, "address %q is also used by %s", addr, l.path)
			return
		}
	}
	v.listeners = append(v.listeners, listener{path: p, host: host, port: port})
}

func wildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

func validPort(port string, zeroOK bool) bool {
	n, err := strconv.Atoi(port)
	if err != nil || n > 65535 || n < 0 || (n == 0 && !zeroOK) {
		return false
	}
	return digitsRe.MatchString(port)
}

func serves(typ string, m payment.Method) bool {
	for _, s := range typeMethods[typ] {
		if s == m {
			return true
		}
	}
	return false
}

// servesAny reports whether ch lists at least one of methods.
func servesAny(ch Channel, methods []string) bool {
	for _, m := range methods {
		for _, cm := range ch.Methods {
			if m == cm {
				return true
			}
		}
	}
	return false
}

func list(ms []payment.Method) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}
