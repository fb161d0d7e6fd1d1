package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDecodeProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edits []string // applied to baseYAML
		want  []string
	}{
		{"unknown top-level key", []string{"server:\n", "servre: {}\nserver:\n"},
			[]string{`servre: unknown key`}},
		{"unknown server key", []string{`  listen: ":8080"`, `  listen: ":8080"` + "\n  listne: \":8081\""},
			[]string{`server.listne: unknown key`}},
		{"unknown redis key", []string{`    addrs: ["10.0.0.1:6379"]`, `    addrs: ["10.0.0.1:6379"]` + "\n    adress: x"},
			[]string{`store.redis.adress: unknown key`}},
		{"unknown merchant key", []string{"    webhook_secret_file: demo.webhook\n    methods: [qr]\n  - id: ed", "    webhook_secret_file: demo.webhook\n    method: [qr]\n    methods: [qr]\n  - id: ed"},
			[]string{`merchants[1].method: unknown key`}},
		{"unknown merchant key key", []string{"{algorithm: hmac-sha256, secret_file: demo.secret}", "{algoritm: hmac-sha256, algorithm: hmac-sha256, secret_file: demo.secret}"},
			[]string{`merchants[0].key.algoritm: unknown key`}},
		{"unknown credentials key", []string{`      mchid: "1900000001"`, `      mchid: "1900000001"` + "\n      mch_id: x"},
			[]string{`channels[0].credentials.mch_id: unknown key`}},
		{"unknown key in merged mapping", []string{`      root_cert_file: root.pem`, `      root_cert_file: root.pem` + "\n      root_cert: x"},
			[]string{`channels[2].credentials.root_cert: unknown key`, `channels[3].credentials.root_cert: unknown key`}},
		{"unknown channel ref key", []string{"{id: wechat-main, weight: 60}", "{id: wechat-main, wieght: 60}"},
			[]string{`routing.rules[1].channels[0].wieght: unknown key`}},
		{"unknown match key", []string{"{methods: [qr], amount_min: 500000}", "{methods: [qr], min_amount: 500000}"},
			[]string{`routing.rules[0].when.min_amount: unknown key`}},
		{"duplicate key", []string{`  listen: ":8080"`, `  listen: ":8080"` + "\n  listen: \":8081\""},
			[]string{`server.listen: duplicate key (first at line 2)`}},
		{"int given a string", []string{`  listen: ":8080"`, `  listen: ":8080"` + "\n  max_body_bytes: lots"},
			[]string{`server.max_body_bytes: want an integer, got "lots"`}},
		{"int given a quoted number", []string{`  listen: ":8080"`, `  listen: ":8080"` + "\n  max_body_bytes: \"65536\""},
			[]string{`server.max_body_bytes: want an integer, got "65536"`}},
		{"uint given a negative", []string{"  failover: {max_attempts: 2}", "  failover: {max_attempts: 2}\nchannels_x: 1"},
			[]string{`channels_x: unknown key`}},
		{"bool given yes", []string{"server:\n", "sandbox: {enabled: yes}\nserver:\n"},
			[]string{`sandbox.enabled: want true or false, got "yes"`}},
		{"float given a string", []string{"  failover: {max_attempts: 2}", "  failover: {max_attempts: 2}\n  exploration: some"},
			[]string{`routing.exploration: want a number, got "some"`}},
		{"list given a mapping", []string{"    methods: [qr, alipay_qr, alipay_page]", "    methods: {qr: true}"},
			// The value is unusable: problems at its path are not repeated,
			// its consequences elsewhere are reported.
			[]string{`channels[1].methods: want a list, got a mapping`,
				`merchants[0].methods[3]: no channel serves method "alipay_qr"`,
				`merchants[0].methods[4]: no channel serves method "alipay_page"`,
				`routing.rules[1].channels[1]: channel "alipay-main" serves none of the rule's methods (qr)`}},
		{"mapping given a scalar", []string{"server:\n", "log: loud\nserver:\n"},
			[]string{`log: want a mapping, got "loud"`}},
		{"string given a list", []string{"      appid: wxd678efh567hg6787", "      appid: [wx]"},
			[]string{`channels[0].credentials.appid: want a string, got a list`}},
		{"duration without unit", []string{"server:\n", "security: {timestamp_window: 300}\nserver:\n"},
			[]string{`security.timestamp_window: duration 300 needs a unit, e.g. "300s" or "300ms"`}},
		{"duration malformed", []string{"server:\n", "security: {timestamp_window: 5 minutes}\nserver:\n"},
			[]string{`security.timestamp_window: want a duration such as "300s", "2m" or "1h30m", got "5 minutes"`}},
		{"duration in a list", []string{"  failover: {max_attempts: 2}", "  failover: {max_attempts: 2}\nnotifications: {schedule: [15s, 90]}"},
			[]string{`notifications.schedule[1]: duration 90 needs a unit, e.g. "90s" or "90ms"`}},
		{"uint32 negative", []string{"    methods: [qr, wechat_native, wechat_jsapi]", "    methods: [qr, wechat_native, wechat_jsapi]\n    breaker: {min_requests: -1}"},
			[]string{`channels[0].breaker.min_requests: want a non-negative integer, got "-1"`}},
		{"channel ref list", []string{"[bank-a, bank-b]", "[bank-a, [bank-b]]"},
			[]string{`routing.rules[0].channels[1]: want a channel id or {id, weight, priority}, got a list`}},
		{"decode and validation problems together", []string{`  listen: ":8080"`, `  listen: "8080"` + "\n  listne: x"},
			[]string{`server.listne: unknown key`, `server.listen: want host:port such as ":8080" or "127.0.0.1:9090", got "8080"`,
				`server.public_url: required when server.listen is not host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := parseBase(t, tt.edits...)
			if cfg != nil {
				t.Errorf("config returned with problems")
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unclosed flow sequence", "server:\n  listen: [\n", []string{"line 2: did not find expected node content"}},
		{"missing colon", "server: {}\nlog: {}\nsandbox\nstore: {}\n", []string{"line 3: could not find expected ':'"}},
		{"unclosed flow mapping", "server: {listen: x\n", []string{"line 1: did not find expected ',' or '}'"}},
		{"two documents", "server: {}\n---\nlog: {}\n", []string{"line 2: only one YAML document is allowed"}},
		{"unknown anchor", "server: *nope\n", []string{"unknown anchor 'nope' referenced"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml), "")
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseAliasesAndMergeKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edits []string
		want  []string
	}{
		{"merge into itself", []string{"server:\n", "server: &s\n  <<: *s\n"},
			[]string{"server: line 1: merge key refers to its own mapping"}},
		{"alias of an ancestor", []string{"    - name: default-qr\n      when: {methods: [qr]}\n      channels: [{id: wechat-main, weight: 60}, {id: alipay-main, weight: 40}]",
			"    - &r\n      name: default-qr\n      when: {methods: [qr]}\n      channels: [*r]"},
			[]string{"routing.rules[1].channels[0].name: unknown key", "routing.rules[1].channels[0].when: unknown key",
				"routing.rules[1].channels[0].channels: unknown key", "routing.rules[1].channels[0].id: required"}},
		{"alias expansion bomb", []string{"server:\n", bomb() + "server:\n"},
			[]string{"document too large once aliases are expanded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := parseBase(t, tt.edits...)
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// bomb is a "billion laughs" document: 10 levels of 10 aliases each.
func bomb() string {
	var b strings.Builder
	b.WriteString("x0: &a0 {level: info}\n")
	for i := 1; i <= 10; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", ")
		fmt.Fprintf(&b, "x%d: &a%d {<<: [%s]}\n", i, i, refs)
	}
	b.WriteString("log: {<<: *a10}\n")
	return b.String()
}

func TestParseMergeKeyOverride(t *testing.T) {
	t.Parallel()
	cfg, _ := mustBase(t)
	a, b := cfg.Channels[2].Credentials, cfg.Channels[3].Credentials
	if a.MerID != "777290058110048" || b.MerID != "777290058110097" {
		t.Errorf("mer_id: bank-a %q, bank-b %q; the mapping's own key must win over the merged one", a.MerID, b.MerID)
	}
	if b.CertID != a.CertID || b.RootCertFile != a.RootCertFile || b.PrivateKeyFile != a.PrivateKeyFile {
		t.Errorf("merged keys not applied: %+v", b)
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	dir := fixtureDir(t)
	const minimal = `
server: {admin_token_file: admin.token}
store: {redis: {addrs: ["10.0.0.5:6379"]}, postgres: {dsn_file: pg.dsn}}
merchants:
  - id: demo
    key: {algorithm: hmac-sha256, secret_file: demo.secret}
    webhook_secret_file: demo.webhook
    methods: [bank_redirect]
channels:
  - id: bank-a
    type: bank
    base_url: https://gateway.95516.com
    methods: [bank_redirect]
    credentials: {mer_id: "1", cert_id: "2", private_key_file: merchant.pem, root_cert_file: root.pem}
routing:
  rules:
    - name: r
      channels: [bank-a, {id: bank-a-2}]
`
	// bank-a-2 is unknown: make it known to test ref defaults without
	// another channel's worth of YAML.
	cfg, err := Parse([]byte(strings.Replace(minimal, ", {id: bank-a-2}", "", 1)), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Server.AdminTokenFile = filepath.Join(dir, "admin.token")
	want.Store.Redis.Addrs = []string{"10.0.0.5:6379"}
	want.Store.Postgres.DSNFile = filepath.Join(dir, "pg.dsn")
	want.Server.PublicURL = "http://127.0.0.1:8080"
	want.Sandbox.KeysDir = filepath.Join(dir, "sandbox/keys")
	want.Merchants = []Merchant{{
		ID:                "demo",
		Key:               Key{Algorithm: "hmac-sha256", SecretFile: filepath.Join(dir, "demo.secret")},
		WebhookSecretFile: filepath.Join(dir, "demo.webhook"),
		Methods:           []string{"bank_redirect"},
		Limits:            Limits{MaxAmount: 5000000, RequestsPerSecond: 500},
	}}
	want.Channels = []Channel{{
		ID: "bank-a", Type: "bank", BaseURL: "https://gateway.95516.com", Methods: []string{"bank_redirect"},
		Currencies: []string{"CNY"}, Timeout: Duration(3 * time.Second), LatencyTarget: Duration(time.Second),
		Breaker:     Breaker{MinRequests: 20, FailureRatio: 0.5, OpenFor: Duration(10 * time.Second), HalfOpenRequests: 5, Interval: Duration(30 * time.Second), ConsecutiveFailures: 5},
		Credentials: Credentials{MerID: "1", CertID: "2", PrivateKeyFile: filepath.Join(dir, "merchant.pem"), RootCertFile: filepath.Join(dir, "root.pem")},
	}}
	want.Routing.Rules = []Rule{{Name: "r", Channels: []ChannelRef{{ID: "bank-a", Weight: 1}}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}

	// The default values the contract names.
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Server.Listen, ":8080"},
		{"admin_listen", cfg.Server.AdminListen, "127.0.0.1:9090"},
		{"max_body_bytes", cfg.Server.MaxBodyBytes, 65536},
		{"timestamp_window", cfg.Security.TimestampWindow.D(), 300 * time.Second},
		{"log", cfg.Log, Log{Level: "info", Format: "json"}},
		{"control_listen", cfg.Sandbox.ControlListen, "127.0.0.1:9100"},
		{"time_scale", cfg.Sandbox.TimeScale, 1.0},
		{"schedule", fmtDurations(cfg.Notifications.Schedule), "15s 15s 30s 3m0s 10m0s 20m0s 30m0s 30m0s 30m0s 1h0m0s 3h0m0s 3h0m0s 3h0m0s 6h0m0s 6h0m0s"},
		{"reconcile delays", fmtDurations(cfg.Reconcile.Delays), "30s 2m0s 5m0s"},
		{"max_attempts", cfg.Routing.Failover.MaxAttempts, 2},
		{"exploration", cfg.Routing.Exploration, 0.02},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func fmtDurations(ds []Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, " ")
}

// An explicit value, even zero, replaces the default; an absent or null one keeps it.
func TestParseExplicitValuesReplaceDefaults(t *testing.T) {
	t.Parallel()
	cfg, _, err := parseBase(t,
		"  failover: {max_attempts: 2}", "  failover: {max_attempts: 2}\n  exploration: 0\n  health: ~",
		"{id: alipay-main, weight: 40}", "{id: alipay-main, weight: 0, priority: 1}",
		"server:\n", "notifications: {schedule: [1m], workers: ~}\nsandbox: {time_scale: 60, auto_pay: {after: 2s, ratio: 0.9}}\nserver:\n",
		"    methods: [qr, alipay_qr, alipay_page]\n", "    methods: [qr, alipay_qr, alipay_page]\n    currencies: [CNY, USD]\n    breaker: {interval: 0}\n",
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"exploration 0 kept", cfg.Routing.Exploration, 0.0},
		{"null health keeps defaults", cfg.Routing.Health.Buckets, 12},
		{"weight 0 kept", cfg.Routing.Rules[1].Channels[1], ChannelRef{ID: "alipay-main", Weight: 0, Priority: 1}},
		{"mapping ref without weight", cfg.Routing.Rules[1].Channels[0], ChannelRef{ID: "wechat-main", Weight: 60}},
		{"bare ref weight 1", cfg.Routing.Rules[0].Channels[1], ChannelRef{ID: "bank-b", Weight: 1}},
		{"schedule replaced", fmtDurations(cfg.Notifications.Schedule), "1m0s"},
		{"null workers keeps default", cfg.Notifications.Workers, 8},
		{"time_scale", cfg.Sandbox.TimeScale, 60.0},
		{"auto_pay", cfg.Sandbox.AutoPay, AutoPay{After: Duration(2 * time.Second), Ratio: 0.9}},
		{"currencies replaced", cfg.Channels[1].Currencies, []string{"CNY", "USD"}},
		{"other channels keep currencies", cfg.Channels[0].Currencies, []string{"CNY"}},
		{"breaker interval 0 kept", cfg.Channels[1].Breaker.Interval, Duration(0)},
		{"breaker other fields keep defaults", cfg.Channels[1].Breaker.MinRequests, uint32(20)},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestParsePublicURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, listen, publicURL, want string }{
		{"all addresses", ":8080", "", "http://127.0.0.1:8080"},
		{"all IPv4", "0.0.0.0:80", "", "http://127.0.0.1:80"},
		{"all IPv6", "[::]:8080", "", "http://127.0.0.1:8080"},
		{"one address", "10.1.2.3:8443", "", "http://10.1.2.3:8443"},
		{"IPv6 loopback", "[::1]:8080", "", "http://[::1]:8080"},
		{"explicit", ":8080", "https://pay.example.com", "https://pay.example.com"},
		{"trailing slash dropped", ":8080", "https://pay.example.com/gw/", "https://pay.example.com/gw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			line := `  listen: "` + tt.listen + `"`
			if tt.publicURL != "" {
				line += "\n  public_url: " + tt.publicURL
			}
			cfg, _, err := parseBase(t, `  listen: ":8080"`, line)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.PublicURL != tt.want {
				t.Errorf("public_url = %q, want %q", cfg.Server.PublicURL, tt.want)
			}
		})
	}
}

func TestParseResolvesRelativeFiles(t *testing.T) {
	t.Parallel()
	abs := filepath.Join(t.TempDir(), "elsewhere.pem")
	if err := os.WriteFile(abs, keyFiles2(t)["merchant.pem"], 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, dir, err := parseBase(t,
		"      private_key_file: merchant-pkcs1.pem", "      private_key_file: "+abs,
		"server:\n", "sandbox: {keys_dir: keys}\nserver:\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"private_key_file", cfg.Channels[0].Credentials.PrivateKeyFile, filepath.Join(dir, "merchant.pem")},
		{"absolute path kept", cfg.Channels[1].Credentials.PrivateKeyFile, abs},
		{"platform_public_key_file", cfg.Channels[0].Credentials.PlatformPublicKeyFile, filepath.Join(dir, "rsa.pub.pem")},
		{"merged root_cert_file", cfg.Channels[3].Credentials.RootCertFile, filepath.Join(dir, "root.pem")},
		{"admin_token_file", cfg.Server.AdminTokenFile, filepath.Join(dir, "admin.token")},
		{"secret_file", cfg.Merchants[0].Key.SecretFile, filepath.Join(dir, "demo.secret")},
		{"public_key_file", cfg.Merchants[1].Key.PublicKeyFile, filepath.Join(dir, "rsa.pub.pem")},
		{"webhook_secret_file", cfg.Merchants[0].WebhookSecretFile, filepath.Join(dir, "demo.webhook")},
		{"keys_dir", cfg.Sandbox.KeysDir, filepath.Join(dir, "keys")},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

// keyFiles2 returns the generated test keys.
func keyFiles2(t testing.TB) map[string][]byte {
	fixtureDir(t)
	return keyFiles
}

func TestLoadResolvesAgainstTheFilesDirectory(t *testing.T) {
	t.Parallel()
	dir := fixtureDir(t)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(baseYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Channels[0].Credentials.PrivateKeyFile; got != filepath.Join(dir, "merchant.pem") {
		t.Errorf("private_key_file = %q", got)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestDurationUnmarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"300s", 300 * time.Second, ""},
		{"2m", 2 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{`"45s"`, 45 * time.Second, ""},
		{"0", 0, ""},
		{"-5s", -5 * time.Second, ""},
		{"300", 0, `duration 300 needs a unit, e.g. "300s" or "300ms"`},
		{"1.5", 0, `duration 1.5 needs a unit, e.g. "1.5s" or "1.5ms"`},
		{"soon", 0, `want a duration such as "300s", "2m" or "1h30m", got "soon"`},
		{"[1s]", 0, `want a duration such as "300s", got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			var v struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte("d: "+tt.in), &v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || v.D.D() != tt.want {
				t.Fatalf("got %v, %v; want %v", v.D.D(), err, tt.want)
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				D Duration `yaml:"d"`
			}
			if err := yaml.Unmarshal(out, &back); err != nil || back.D != v.D {
				t.Fatalf("round trip %q: %v, %v", out, back.D, err)
			}
		})
	}
}

func TestChannelRefUnmarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ChannelRef
		wantErr string
	}{
		{"bank-a", ChannelRef{ID: "bank-a", Weight: 1}, ""},
		{"{id: bank-a}", ChannelRef{ID: "bank-a", Weight: 1}, ""},
		{"{id: bank-a, weight: 2.5, priority: 1}", ChannelRef{ID: "bank-a", Weight: 2.5, Priority: 1}, ""},
		{"{id: bank-a, weight: 0}", ChannelRef{ID: "bank-a"}, ""},
		{"{id: bank-a, wieght: 2}", ChannelRef{}, "wieght: unknown key"},
		{"{id: bank-a, weight: heavy}", ChannelRef{}, `weight: want a number, got "heavy"`},
		{"[bank-a]", ChannelRef{}, "want a channel id or {id, weight, priority}, got a list"},
		{`""`, ChannelRef{}, "want a channel id or {id, weight, priority}, got nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			var v struct {
				R ChannelRef `yaml:"r"`
			}
			err := yaml.Unmarshal([]byte("r: "+tt.in), &v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || v.R != tt.want {
				t.Fatalf("got %+v, %v; want %+v", v.R, err, tt.want)
			}
		})
	}
}
