package config

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and either returns a config or a
// *ProblemsError with at least one problem, never both or neither.
func FuzzParse(f *testing.F) {
	f.Add([]byte(baseYAML))
	f.Add([]byte(""))
	f.Add([]byte("server:\n  listen: [\n"))
	f.Add([]byte("server: {listne: x}\nmerchants: [{id: m, key: {algorithm: ed25519}}]\n"))
	f.Add([]byte("a: &a {level: x}\nlog: {<<: [*a, *a]}\nrouting: {rules: [{name: r, channels: [x, {id: y, weight: 0}]}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// File paths are resolved against a directory that does not exist:
		// the fuzzer must not read the test's own files.
		cfg, err := Parse(data, "/nonexistent-paygate-fuzz")
		switch {
		case cfg != nil && err != nil:
			t.Fatalf("both a config and an error: %v", err)
		case cfg == nil && err == nil:
			t.Fatal("neither a config nor an error")
		case err != nil:
			pe, ok := err.(*ProblemsError)
			if !ok || len(pe.Problems) == 0 {
				t.Fatalf("error %T %v", err, err)
			}
			if strings.TrimSpace(pe.Error()) == "" {
				t.Fatal("empty problem text")
			}
		}
	})
}
