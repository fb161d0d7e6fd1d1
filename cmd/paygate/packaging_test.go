package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// compose.yaml mounts deploy/compose/config.yaml over the sandbox image's
// /etc/paygate/config.yaml, next to the image's sandbox/keys: it must pass
// config check laid out the same way.
func TestComposeConfigChecks(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../../deploy/compose/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	sandbox, _ := filepath.Abs("../../sandbox")
	if err := os.Symlink(sandbox, filepath.Join(dir, "sandbox")); err != nil {
		t.Fatal(err)
	}
	// compose.yaml sets the ledger's DSN in the environment.
	t.Setenv("PAYGATE_PG_DSN", "postgres://paygate:paygate-sandbox@postgres:5432/paygate?sslmode=disable")
	var out, errb bytes.Buffer
	if code := run([]string{"config", "check", "-config", filepath.Join(dir, "config.yaml")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errb.String())
	}
}

// The production image (the Dockerfile's last stage, what a plain `docker
// build` makes) carries the binary only: no sandbox config, no test keys.
// The sandbox target has both. Both run `paygate healthcheck`.
func TestDockerfileStages(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string][]string{}
	var order []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if strings.EqualFold(f[0], "FROM") {
			cur = f[len(f)-1]
			order = append(order, cur)
			continue
		}
		stages[cur] = append(stages[cur], line)
	}
	if len(order) == 0 || order[len(order)-1] != "production" {
		t.Fatalf("stages %v: the last (default) one must be production", order)
	}
	has := func(stage, s string) bool {
		for _, l := range stages[stage] {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}
	for _, s := range []string{"sandbox/keys", "config.yaml\" /etc", "/src/config.yaml"} {
		if has("production", s) {
			t.Errorf("production stage copies %q", s)
		}
	}
	for _, s := range []string{"/src/sandbox/keys", "/src/config.yaml"} {
		if !has("sandbox", s) {
			t.Errorf("sandbox stage lacks %q", s)
		}
	}
	for _, st := range []string{"sandbox", "production"} {
		if !has(st, `"healthcheck"`) || !has(st, "USER nonroot") {
			t.Errorf("%s stage: no paygate healthcheck or not non-root", st)
		}
	}
	if !has("build", "CGO_ENABLED=0") || !has("build", "-trimpath") {
		t.Error("build stage: not a static, trimmed build")
	}
}
