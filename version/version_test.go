package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	withVCS := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Path: "github.com/paygate/paygate", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "false"}}}
	dirty := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}}
	bare := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}}
	cases := []struct {
		name   string
		bi     *debug.BuildInfo
		ok     bool
		lv, lr string
		want   Info
	}{
		{"module version and revision", withVCS, true, "", "", Info{"v1.4.0", "0123abcd", "go1.26.1"}},
		{"source tree with changes", dirty, true, "", "", Info{"devel", "0123abcd+dirty", "go1.26.1"}},
		{"no VCS information", bare, true, "", "", Info{"devel", "unknown", "go1.26.1"}},
		{"no build information", nil, false, "", "", Info{"devel", "unknown", runtime.Version()}},
		{"link-time values win", bare, true, "v2.0.0", "feedbeef", Info{"v2.0.0", "feedbeef", "go1.26.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fromBuildInfo(c.bi, c.ok, c.lv, c.lr); got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// A binary linked with -X carries those values, read back through Get.
func TestLinkedValues(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	main := filepath.Join(dir, "main.go")
	if err := os.WriteFile(main, []byte("package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/paygate/paygate/version\"\n)\n\nfunc main() { fmt.Print(version.Get()) }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "run", "-ldflags",
		"-X github.com/paygate/paygate/version.version=v9.9.9 -X github.com/paygate/paygate/version.revision=abc123", main).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := "paygate v9.9.9 (revision abc123, go"; !strings.HasPrefix(string(out), want) {
		t.Fatalf("got %q, want prefix %q", out, want)
	}
}
