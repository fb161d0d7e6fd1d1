package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paygate/paygate/config"
)

func TestConfigCheckCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"config", "check", "-config", "../../config.yaml"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "ok: ") {
		t.Fatalf("shipped config: exit %d, %q %q", code, out.String(), errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	b, err := os.ReadFile("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "channels: [bank-a, bank-b]", "channels: [bank-a, bank-z]", 1)
	s = strings.Replace(s, "  listen: \":8080\"", "  listne: \":8080\"", 1)
	if s == string(b) {
		t.Fatal("the edit did not apply")
	}
	// Key files are relative to the config file's directory: keep them reachable.
	keys, _ := filepath.Abs("../../sandbox/keys")
	s = strings.ReplaceAll(s, "sandbox/keys", keys)
	if err := os.WriteFile(bad, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	code := run([]string{"config", "check", "-config", bad}, &out, &errb)
	want := []string{`server.listne: unknown key`, `routing.rules[0].channels[1]: unknown channel "bank-z"`}
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, out.String())
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	if code := run([]string{"config", "check", "-config", filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errb); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
	if code := run([]string{"nonsense"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// -listen moves a derived public_url along, https when the listener serves
// TLS; an explicit public_url stays.
func TestListenFlagMovesDerivedPublicURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, public, want string
		tls                bool
	}{
		{"plain, derived", "http://127.0.0.1:8080", "http://127.0.0.1:9443", false},
		{"tls, derived", "https://127.0.0.1:8080", "https://127.0.0.1:9443", true},
		{"explicit", "https://pay.example.com", "https://pay.example.com", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := &config.Config{Server: config.Server{Listen: ":8080", PublicURL: tc.public}}
			if tc.tls {
				cfg.Server.TLS = config.ServerTLS{CertFile: "tls.crt", KeyFile: "tls.key"}
			}
			applyFlags(cfg, "127.0.0.1:9443", "")
			if cfg.Server.PublicURL != tc.want {
				t.Errorf("public_url %q, want %q", cfg.Server.PublicURL, tc.want)
			}
		})
	}
}
