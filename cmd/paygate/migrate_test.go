package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paygate/paygate/ledger/pgtest"
)

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	b, err := os.ReadFile("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := filepath.Abs("../../sandbox/keys")
	s := strings.ReplaceAll(string(b), "sandbox/keys", keys)
	var out, errb bytes.Buffer
	shipped := filepath.Join(t.TempDir(), "shipped.yaml")
	if err := os.WriteFile(shipped, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"migrate", "-config", shipped}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no dsn") {
		t.Fatalf("without store.postgres: exit %d, %q", code, errb.String())
	}

	with := strings.Replace(s, "store:\n", "store:\n  postgres:\n    dsn: \""+srv.NewDatabase(t)+"\"\n", 1)
	if with == s {
		t.Fatal("the edit did not apply")
	}
	path := filepath.Join(t.TempDir(), "pg.yaml")
	if err := os.WriteFile(path, []byte(with), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"migrate", "-config", path}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "ok: applied [1") {
		t.Fatalf("first migrate: exit %d, %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"migrate", "-config", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "nothing to apply") {
		t.Fatalf("second migrate: exit %d, %q %q", code, out.String(), errb.String())
	}
}
