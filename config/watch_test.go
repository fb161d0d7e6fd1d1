package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const waitFor = 10 * time.Second // generous: the race detector on 2 shared cores

type reloaded struct {
	cfg *Config
	err error
}

type watchFixture struct {
	dir, path string
	w         *Watcher
	results   chan reloaded
	skipped   chan struct{}
}

// newWatchFixture writes the valid base config to dir/config.yaml and
// returns an unstarted watcher on it.
func newWatchFixture(t *testing.T) *watchFixture {
	t.Helper()
	f := &watchFixture{dir: fixtureDir(t), results: make(chan reloaded, 16), skipped: make(chan struct{}, 16)}
	f.path = filepath.Join(f.dir, "config.yaml")
	f.write(t, baseYAML)
	f.w = NewWatcher(f.path, nil, func(c *Config, err error) { f.results <- reloaded{c, err} })
	f.w.skipped = func() {
		select {
		case f.skipped <- struct{}{}:
		default:
		}
	}
	t.Cleanup(f.w.Stop)
	return f
}

func (f *watchFixture) start(t *testing.T) {
	t.Helper()
	if err := f.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// write replaces the file the way editors and config tools do: write a
// temporary file in the same directory, then rename it over the config.
var tmpSeq atomic.Int64

func (f *watchFixture) write(t *testing.T, content string) {
	t.Helper()
	tmp := filepath.Join(f.dir, fmt.Sprintf(".config.yaml.%d.tmp", tmpSeq.Add(1)))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		t.Fatal(err)
	}
}

func (f *watchFixture) next(t *testing.T) reloaded {
	t.Helper()
	select {
	case r := <-f.results:
		return r
	case <-time.After(waitFor):
		t.Fatal("no reload reported")
		return reloaded{}
	}
}

func withLogLevel(level string) string {
	return "log: {level: " + level + "}\n" + baseYAML
}

func TestWatcherReloadsOnAtomicRename(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	f.start(t)
	f.write(t, withLogLevel("debug"))
	r := f.next(t)
	if r.err != nil || r.cfg == nil || r.cfg.Log.Level != "debug" {
		t.Fatalf("reload = %+v, %v; want log level debug", r.cfg, r.err)
	}
	// Paths in the new config are resolved against the file's directory.
	if got := r.cfg.Channels[0].Credentials.PrivateKeyFile; got != filepath.Join(f.dir, "merchant.pem") {
		t.Errorf("private_key_file = %q", got)
	}
}

func TestWatcherReloadsOnWriteInPlace(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	f.start(t)
	if err := os.WriteFile(f.path, []byte(withLogLevel("warn")), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := f.next(t); r.err != nil || r.cfg.Log.Level != "warn" {
		t.Fatalf("reload = %v; want log level warn", r.err)
	}
}

func TestWatcherReportsBadFile(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	f.start(t)
	f.write(t, strings.Replace(baseYAML, "bank-a, bank-b]", "bank-a, bank-z]", 1))
	r := f.next(t)
	var pe *ProblemsError
	if r.cfg != nil || !errors.As(r.err, &pe) || pe.Error() != `routing.rules[0].channels[1]: unknown channel "bank-z"` {
		t.Fatalf("bad file: cfg %v, err %v", r.cfg != nil, r.err)
	}
	// Fixing it reloads again.
	f.write(t, withLogLevel("error"))
	if r := f.next(t); r.err != nil || r.cfg.Log.Level != "error" {
		t.Fatalf("fixed file: %v", r.err)
	}
}

func TestWatcherSkipsUnchangedContent(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	f.start(t)
	f.write(t, baseYAML) // same bytes, new inode
	select {
	case <-f.skipped:
	case r := <-f.results:
		t.Fatalf("unchanged content reloaded: %v", r.err)
	case <-time.After(waitFor):
		t.Fatal("the rename was not noticed")
	}
	select {
	case r := <-f.results:
		t.Fatalf("unchanged content reloaded: %v", r.err)
	default:
	}
	f.write(t, withLogLevel("debug"))
	if r := f.next(t); r.err != nil || r.cfg.Log.Level != "debug" {
		t.Fatalf("changed content: %v", r.err)
	}
}

func TestWatcherFileRemovedThenRestored(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	f.start(t)
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if r := f.next(t); r.cfg != nil || !errors.Is(r.err, os.ErrNotExist) {
		t.Fatalf("removed file: %v", r.err)
	}
	// The same content as before counts as new: the file was gone.
	f.write(t, baseYAML)
	if r := f.next(t); r.err != nil || r.cfg == nil {
		t.Fatalf("restored file: %v", r.err)
	}
}

func TestWatcherFollowsSymlinkSwap(t *testing.T) {
	t.Parallel()
	// The Kubernetes ConfigMap layout: config.yaml -> ..data/config.yaml,
	// ..data -> a versioned directory, swapped by renaming a new symlink.
	dir := fixtureDir(t)
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Key paths are relative to the config's directory: the symlink's.
	if err := os.WriteFile(filepath.Join(dir, "v1", "config.yaml"), []byte(baseYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "v2", "config.yaml"), []byte(withLogLevel("debug")), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("v1", filepath.Join(dir, "..data")))
	must(os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml")))
	results := make(chan reloaded, 4)
	w := NewWatcher(filepath.Join(dir, "config.yaml"), nil, func(c *Config, err error) { results <- reloaded{c, err} })
	t.Cleanup(w.Stop)
	must(w.Start(context.Background()))

	must(os.Symlink("v2", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	select {
	case r := <-results:
		if r.err != nil || r.cfg.Log.Level != "debug" {
			t.Fatalf("after swap: %v", r.err)
		}
		if got := r.cfg.Channels[0].Credentials.PrivateKeyFile; got != filepath.Join(dir, "merchant.pem") {
			t.Errorf("private_key_file = %q, want it next to the symlink", got)
		}
	case <-time.After(waitFor):
		t.Fatal("symlink swap not noticed")
	}
}

func TestWatcherTriggerReloadsUnchangedContent(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	f.start(t)
	f.w.Trigger()
	f.w.Trigger() // coalesced or not, each reload reports the same file
	if r := f.next(t); r.err != nil || r.cfg == nil {
		t.Fatalf("trigger: %v", r.err)
	}
}

func TestWatcherReloadIsSynchronous(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t) // not started: Reload works without the goroutine
	cfg, err := f.w.Reload()
	if err != nil || cfg == nil {
		t.Fatalf("Reload: %v", err)
	}
	if r := f.next(t); r.cfg != cfg {
		t.Fatal("onChange did not get the config Reload returned")
	}
	if err := os.WriteFile(f.path, []byte("server: {listen: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = f.w.Reload()
	var pe *ProblemsError
	if cfg != nil || !errors.As(err, &pe) {
		t.Fatalf("Reload of a bad file = %v, %v", cfg, err)
	}
	if r := f.next(t); r.err != err {
		t.Fatal("onChange did not get the error Reload returned")
	}
}

func TestWatcherCallbackPanicIsContained(t *testing.T) {
	t.Parallel()
	dir := fixtureDir(t)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(baseYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	calls := make(chan struct{}, 4)
	w := NewWatcher(path, nil, func(*Config, error) { calls <- struct{}{}; panic("boom") })
	t.Cleanup(w.Stop)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the loop survives the first panic
		w.Trigger()
		select {
		case <-calls:
		case <-time.After(waitFor):
			t.Fatalf("call %d not made", i)
		}
	}
}

// Not parallel: goleak.VerifyNone sees every goroutine of the process.
func TestWatcherStopLeavesNoGoroutine(t *testing.T) {
	f := newWatchFixture(t)
	f.start(t)
	if err := f.w.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	f.write(t, withLogLevel("debug"))
	f.next(t)
	f.w.Stop()
	f.w.Stop() // idempotent
	goleak.VerifyNone(t)

	// A stopped watcher starts again; cancelling its context stops it too.
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	f.w.Stop()
	goleak.VerifyNone(t)
}
