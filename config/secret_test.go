package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
)

// Not parallel: t.Setenv.
func TestSecretsFromEnv(t *testing.T) {
	keys := keyFiles2(t)
	env := map[string]string{
		"PG_TEST_ADMIN":   "admin-token-from-env-0123",
		"PG_TEST_HMAC":    "hmac-secret-from-env-0123456789abcdef",
		"PG_TEST_WEBHOOK": "webhook-from-env-0123",
		"PG_TEST_REDIS":   "redis-from-env",
		"PG_TEST_APIV3":   "apiv3-from-env-0123456789abcdef0",
		"PG_TEST_PRIVKEY": string(keys["merchant.pem"]),
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, _, err := parseBase(t,
		"  admin_token_file: admin.token", "  admin_token_env: PG_TEST_ADMIN",
		"secret_file: demo.secret}", "secret_env: PG_TEST_HMAC}",
		"    webhook_secret_file: demo.webhook\n    methods: [qr, wechat_native", "    webhook_secret_env: PG_TEST_WEBHOOK\n    methods: [qr, wechat_native",
		`    addrs: ["10.0.0.1:6379"]`, `    addrs: ["10.0.0.1:6379"]`+"\n    password_env: PG_TEST_REDIS",
		"      apiv3_key_file: apiv3.key", "      apiv3_key_env: PG_TEST_APIV3",
		"      private_key_file: merchant.pem\n      apiv3", "      private_key_env: PG_TEST_PRIVKEY\n      apiv3",
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{"admin token", cfg.Server.ResolveAdminToken, env["PG_TEST_ADMIN"]},
		{"hmac secret", cfg.Merchants[0].Key.ResolveSecret, env["PG_TEST_HMAC"]},
		{"webhook secret", cfg.Merchants[0].ResolveWebhookSecret, env["PG_TEST_WEBHOOK"]},
		{"redis password", cfg.Store.Redis.ResolvePassword, env["PG_TEST_REDIS"]},
		{"apiv3 key", cfg.Channels[0].Credentials.ResolveAPIv3Key, env["PG_TEST_APIV3"]},
		{"private key", cfg.Channels[0].Credentials.ResolvePrivateKey, env["PG_TEST_PRIVKEY"]},
		{"webhook from file", cfg.Merchants[1].ResolveWebhookSecret, "demo-webhook-secret-0123"},
		{"no redis password elsewhere", Redis{}.ResolvePassword, ""},
	} {
		got, err := tc.got()
		if err != nil || got != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	t.Setenv("PG_TEST_ADMIN", "")
	_, _, err = parseBase(t, "  admin_token_file: admin.token", "  admin_token_env: PG_TEST_ADMIN")
	want := []string{"server.admin_token_env: environment variable PG_TEST_ADMIN is not set"}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("empty env: got %q, want %q", got, want)
	}
}

func TestResolveSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lf, crlf, two := write("lf", "s3cret\n"), write("crlf", "s3cret\r\n"), write("two", "s3cret\n\n")
	tests := []struct {
		name, value, env, file string
		want                   string
		wantErr                bool
	}{
		{"none", "", "", "", "", false},
		{"inline", "s3cret", "", "", "s3cret", false},
		{"file, newline dropped", "", "", lf, "s3cret", false},
		{"file, CRLF dropped", "", "", crlf, "s3cret", false},
		{"file, only one newline dropped", "", "", two, "s3cret\n", false},
		{"file missing", "", "", filepath.Join(dir, "nope"), "", true},
		{"env unset", "", "PG_TEST_SURELY_UNSET_VAR", "", "", true},
		{"two forms", "s3cret", "", lf, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveSecret(Secret(tt.value), tt.env, tt.file)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	keys := keyFiles2(t)
	tests := []struct {
		name, alg, pem string
		wantType       string
		wantErr        string
	}{
		{"rsa PKIX", AlgRSASHA256, string(keys["rsa.pub.pem"]), "*rsa.PublicKey", ""},
		{"rsa PKCS#1", AlgRSASHA256, string(keys["rsa-pkcs1.pub.pem"]), "*rsa.PublicKey", ""},
		{"ed25519", AlgEd25519, string(keys["ed.pub.pem"]), "ed25519.PublicKey", ""},
		{"rsa too small", AlgRSASHA256, string(keys["small.pub.pem"]), "", "RSA key has 1024 bits; at least 2048 are required"},
		{"wrong type", AlgEd25519, string(keys["rsa.pub.pem"]), "", "is an RSA key, not an ed25519 key"},
		{"not PEM", AlgEd25519, "hello", "", "no PEM block found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub, err := Key{Algorithm: tt.alg, PublicKey: tt.pem}.ParsePublicKey()
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			gotType := ""
			if pub != nil {
				gotType = reflect.TypeOf(pub).String()
			}
			if gotType != tt.wantType || gotErr != tt.wantErr {
				t.Errorf("got %s, %q; want %s, %q", gotType, gotErr, tt.wantType, tt.wantErr)
			}
		})
	}
}

// A config printed, dumped as JSON or YAML, or logged never shows a secret.
func TestSecretsNeverPrint(t *testing.T) {
	const s = "sandbox-demo-secret-0123456789abcdef"
	c := &Config{Merchants: []Merchant{{ID: "demo", Key: Key{Algorithm: "hmac-sha256", Secret: s}, WebhookSecret: s}},
		Server: Server{AdminToken: s}, Store: Store{Redis: Redis{Password: s}},
		Channels: []Channel{{ID: "wx", Credentials: Credentials{APIv3Key: s, PrivateKey: s}}}}
	j, _ := json.Marshal(c)
	y, _ := yaml.Marshal(c)
	var logged bytes.Buffer
	zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logged), zap.DebugLevel)).Info("config", zap.Any("config", c))
	for what, out := range map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", *c), "%#v": fmt.Sprintf("%#v", *c), "%s": fmt.Sprintf("%s", c.Merchants[0].Key.Secret),
		"json": string(j), "yaml": string(y), "zap": logged.String(),
	} {
		if strings.Contains(out, s) || !strings.Contains(out, "[REDACTED]") {
			t.Errorf("%s shows the secret or no redaction: %s", what, out)
		}
	}
	if got, _ := ResolveSecret(c.Merchants[0].Key.Secret, "", ""); got != s {
		t.Fatalf("the value itself is still readable through ResolveSecret: %q", got)
	}
}
