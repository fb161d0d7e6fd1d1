package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		content  string // "" : no file
		wantCode int
		wantOut  string // "{path}" and "{dir}" are replaced
	}{
		{"valid", baseYAML, 0,
			"ok: {path}: 3 merchants, 4 channels, 2 routing rules; redis 10.0.0.1:6379; postgres ledger\n"},
		{"problems", strings.Replace(strings.Replace(baseYAML, "bank-a, bank-b]", "bank-a, bank-z]", 1), "  listen: \":8080\"", "  listne: \":8080\"", 1), 1,
			"server.listne: unknown key\nrouting.rules[0].channels[1]: unknown channel \"bank-z\"\n"},
		{"syntax error", "server:\n  listen: [\n", 1, "line 2: did not find expected node content\n"},
		{"missing file", "", 1, "load config: open {path}: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := fixtureDir(t)
			path := filepath.Join(dir, "config.yaml")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			code := Check(path, &out)
			want := strings.NewReplacer("{path}", path, "{dir}", dir).Replace(tt.wantOut)
			if code != tt.wantCode || out.String() != want {
				t.Errorf("Check = %d, %q; want %d, %q", code, out.String(), tt.wantCode, want)
			}
		})
	}
}
