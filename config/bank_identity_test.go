package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bank channel's middle_cert_file must hold a certificate and its
// cert_identity is one CN field (no '@'); both are refused on other types.
func TestBankCertificateKeys(t *testing.T) {
	keys, _ := filepath.Abs("../sandbox/keys")
	bank := func(extra string) string {
		return `
server: {admin_token: "sandbox-admin-token"}
sandbox: {enabled: true, keys_dir: "` + keys + `"}
merchants:
  - id: demo
    key: {algorithm: hmac-sha256, secret: "sandbox-demo-secret-0123456789abcdef"}
    webhook_secret: "sandbox-demo-webhook-secret-0123456789"
    methods: [qr]
channels:
  - id: bank-a
    type: bank
    base_url: http://127.0.0.1:9103
    methods: [qr]
    credentials: {mer_id: "777290058110048", cert_id: "69629715588", private_key_file: "` + keys + `/bank-merchant.pem", root_cert_file: "` + keys + `/bank-root-ca.pem"` + extra + `}
`
	}
	cases := []struct{ name, extra, want string }{
		{"middle and identity", `, middle_cert_file: "` + keys + `/bank-middle-ca.pem", cert_identity: "00040000:SIGN"`, ""},
		{"middle is a key", `, middle_cert_file: "` + keys + `/bank-merchant.pem"`, "channels[0].credentials.middle_cert_file"},
		{"middle missing", `, middle_cert_file: "` + keys + `/nope.pem"`, "channels[0].credentials.middle_cert_file"},
		{"identity with @", `, cert_identity: "041@Z12"`, "channels[0].credentials.cert_identity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(bank(c.extra)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}
