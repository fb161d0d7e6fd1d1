package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/config"
)

// Every failed start of `paygate serve` ends the same way: one line
// "paygate: cannot start: <cause>" on stderr and exit code 1 — never a panic.
// Each case below makes one real part of the start fail: a port held by
// another listener, a Redis nobody answers on, an unreadable key.
func TestServeCannotStart(t *testing.T) {
	occupy := func(t *testing.T, addr string) {
		t.Helper()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("occupy %s: %v", addr, err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	load := func(t *testing.T, path string) *config.Config {
		t.Helper()
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	rewrite := func(t *testing.T, path, old, new string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(b), old, new, 1)
		if s == string(b) {
			t.Fatalf("%q not in the config", old)
		}
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) string // returns the config path
		cause []string                  // what the line must name
	}{
		{"busy merchant port", func(t *testing.T) string {
			path := writeConfig(t, e2eOpts{})
			occupy(t, load(t, path).Server.Listen)
			return path
		}, []string{"server.listen", "address already in use"}},
		{"busy admin port", func(t *testing.T) string {
			path := writeConfig(t, e2eOpts{})
			occupy(t, load(t, path).Server.AdminListen)
			return path
		}, []string{"server.admin_listen", "address already in use"}},
		{"busy simulator port", func(t *testing.T) string {
			path := writeConfig(t, e2eOpts{})
			for _, ch := range load(t, path).Channels {
				if ch.ID == "bank-b" {
					u, err := url.Parse(ch.BaseURL)
					if err != nil {
						t.Fatal(err)
					}
					occupy(t, u.Host)
				}
			}
			return path
		}, []string{"sandbox", "address already in use"}},
		{"unreachable redis", func(t *testing.T) string {
			return writeConfig(t, e2eOpts{redisAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))})
		}, []string{"store: open 127.0.0.1:", "connection refused"}},
		{"unreachable postgres", func(t *testing.T) string {
			return writeConfig(t, e2eOpts{pgDSN: fmt.Sprintf("postgres://paygate@127.0.0.1:%d/paygate?sslmode=disable", freePort(t))})
		}, []string{"store.postgres: ledger: open", "connection refused"}},
		{"failed migration", func(t *testing.T) string {
			// A database migrated by a newer paygate: this binary refuses it.
			dsn := newPG(t).NewDatabase(t)
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(context.Background(), `CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO schema_migrations (version, name) VALUES (999, 'future')`); err != nil {
				t.Fatal(err)
			}
			return writeConfig(t, e2eOpts{pgDSN: dsn})
		}, []string{"store.postgres: ledger: ", "999"}},
		{"bad channel key", func(t *testing.T) string {
			path := writeConfig(t, e2eOpts{})
			bad := filepath.Join(t.TempDir(), "bad.pem")
			if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			keys, _ := filepath.Abs("../../sandbox/keys")
			rewrite(t, path, keys+"/alipay-app.pem", bad)
			return path
		}, []string{"channels[1].credentials.private_key"}},
		{"bad root certificate", func(t *testing.T) string {
			path := writeConfig(t, e2eOpts{})
			bad := filepath.Join(t.TempDir(), "root.pem")
			if err := os.WriteFile(bad, []byte("no certificate here\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			keys, _ := filepath.Abs("../../sandbox/keys")
			rewrite(t, path, keys+"/bank-root-ca.pem", bad)
			return path
		}, []string{"channels[2].credentials.root_cert_file"}},
		{"missing config file", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "missing.yaml")
		}, []string{"missing.yaml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.setup(t)
			var out, errb bytes.Buffer
			code := run([]string{"serve", "-config", path}, &out, &errb)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, errb.String())
			}
			msg := errb.String()
			if !strings.HasPrefix(msg, "paygate: cannot start: ") {
				t.Fatalf("stderr %q lacks the prefix", msg)
			}
			for _, w := range c.cause {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q does not name %q", msg, w)
				}
			}
		})
	}
}

// After a failed start the ports it took are free again: the listener that
// did bind is closed, so a retry (or the next process) can have it.
func TestFailedStartReleasesPorts(t *testing.T) {
	path := writeConfig(t, e2eOpts{})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Server.AdminListen)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "-config", path}, &out, &errb); code != 1 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	ln.Close()
	for _, addr := range []string{cfg.Server.Listen, cfg.Channels[0].BaseURL[len("http://"):]} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after the failed start: %v", addr, err)
			continue
		}
		l.Close()
	}
}
