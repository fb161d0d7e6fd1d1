package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test keys are generated once per test binary and written into each
// test's own t.TempDir(); no test depends on the shipped sandbox keys.
var (
	keysOnce sync.Once
	keyFiles map[string][]byte
)

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func genKeys() map[string][]byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	smallPub, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "paygate test root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return map[string][]byte{
		"merchant.pem":       pemBytes("PRIVATE KEY", pkcs8),
		"merchant-pkcs1.pem": pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)),
		"small.pem":          pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)),
		"rsa.pub.pem":        pemBytes("PUBLIC KEY", pub),
		"rsa-pkcs1.pub.pem":  pemBytes("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&key.PublicKey)),
		"small.pub.pem":      pemBytes("PUBLIC KEY", smallPub),
		"ed.pub.pem":         pemBytes("PUBLIC KEY", edDER),
		"root.pem":           pemBytes("CERTIFICATE", cert),
		"garbage.pem":        []byte("not a key\n"),
		"admin.token":        []byte("admin-token-0123456789\n"),
		"demo.secret":        []byte("demo-secret-0123456789abcdef0123456789\n"),
		"demo.webhook":       []byte("demo-webhook-secret-0123\n"),
		"apiv3.key":          []byte("apiv3key0123456789abcdef01234567\n"),
		"short.secret":       []byte("too-short\n"),
		"empty.secret":       []byte(""),
		"pg.dsn":             []byte("postgres://paygate:pw@10.0.0.2:5432/paygate\n"),
	}
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic(err)
	}
	return n
}

// fixtureDir returns a new temp dir holding every test key and secret file.
func fixtureDir(t testing.TB) string {
	t.Helper()
	keysOnce.Do(func() { keyFiles = genKeys() })
	dir := t.TempDir()
	for name, b := range keyFiles {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// baseYAML is a valid production-style config (sandbox off, secrets from
// files) using every channel type and merchant key algorithm. File paths are
// relative to the fixture dir.
const baseYAML = `server:
  listen: ":8080"
  admin_token_file: admin.token
store:
  redis:
    addrs: ["10.0.0.1:6379"]
  postgres:
    dsn_file: pg.dsn
merchants:
  - id: demo
    key: {algorithm: hmac-sha256, secret_file: demo.secret}
    webhook_secret_file: demo.webhook
    methods: [qr, wechat_native, wechat_jsapi, alipay_qr, alipay_page, bank_redirect]
  - id: rsa-merchant
    key: {algorithm: rsa-sha256, public_key_file: rsa.pub.pem}
    webhook_secret_file: demo.webhook
    methods: [qr]
  - id: ed-merchant
    key: {algorithm: ed25519, public_key_file: ed.pub.pem}
    webhook_secret_file: demo.webhook
    methods: [qr]
channels:
  - id: wechat-main
    type: wechat
    base_url: https://api.mch.weixin.qq.com
    methods: [qr, wechat_native, wechat_jsapi]
    credentials:
      mchid: "1900000001"
      appid: wxd678efh567hg6787
      serial_no: 5157F09EFDC096DE15EBE81A47057A7232F1B8E1
      private_key_file: merchant.pem
      apiv3_key_file: apiv3.key
      platform_public_key_file: rsa.pub.pem
      platform_serial: PUB_KEY_ID_0114232134912410000000000000
  - id: alipay-main
    type: alipay
    base_url: https://openapi.alipay.com/gateway.do
    methods: [qr, alipay_qr, alipay_page]
    credentials:
      app_id: "2021000000000001"
      private_key_file: merchant-pkcs1.pem
      alipay_public_key_file: rsa-pkcs1.pub.pem
  - id: bank-a
    type: bank
    base_url: https://gateway.95516.com
    methods: [qr, bank_redirect]
    credentials: &bank
      mer_id: "777290058110048"
      cert_id: "69629715588"
      private_key_file: merchant.pem
      root_cert_file: root.pem
  - id: bank-b
    type: bank
    base_url: https://gateway.test.95516.com
    methods: [qr, bank_redirect]
    credentials:
      <<: *bank
      mer_id: "777290058110097"
routing:
  rules:
    - name: large-to-bank
      when: {methods: [qr], amount_min: 500000}
      channels: [bank-a, bank-b]
    - name: default-qr
      when: {methods: [qr]}
      channels: [{id: wechat-main, weight: 60}, {id: alipay-main, weight: 40}]
  failover: {max_attempts: 2}
`

// parseBase parses baseYAML with edits (old, new pairs applied with
// strings.Replace, each must match) in a fresh fixture dir.
func parseBase(t testing.TB, edits ...string) (*Config, string, error) {
	t.Helper()
	dir := fixtureDir(t)
	text := baseYAML
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			t.Fatalf("edit %q does not match baseYAML", edits[i])
		}
		text = strings.Replace(text, edits[i], edits[i+1], 1)
	}
	cfg, err := Parse([]byte(text), dir)
	return cfg, dir, err
}

// mustBase is the valid base config, parsed.
func mustBase(t testing.TB) (*Config, string) {
	t.Helper()
	cfg, dir, err := parseBase(t)
	if err != nil {
		t.Fatalf("base config: %v", err)
	}
	return cfg, dir
}

// problems returns the lines of err, a *ProblemsError, or fails.
func problems(t testing.TB, err error) []string {
	t.Helper()
	pe, ok := err.(*ProblemsError)
	if !ok {
		t.Fatalf("want *ProblemsError, got %T %v", err, err)
	}
	out := make([]string, len(pe.Problems))
	for i, p := range pe.Problems {
		out[i] = p.String()
	}
	return out
}
