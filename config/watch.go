package config

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// debounce is how long the watcher waits after the last file system event
// before it reads the file: editors and config tools write in bursts
// (truncate + write, or write temp + rename + chmod).
const debounce = 100 * time.Millisecond

// Watcher reloads the config file when it changes, on Trigger (SIGHUP) and
// on Reload (the admin endpoint). Every reload reads, decodes and validates
// the whole file and then calls onChange with the new config, or with the
// error and a nil config: a bad file changes nothing, and the caller keeps
// the config it has. Calls to onChange never overlap; onChange must not call
// Reload (it would wait for itself).
//
// It watches the file's directory, not the file: editors and config
// management tools replace a file by renaming a new one over it, which a
// watch on the old file would not see. When the path is a symlink, the
// target's directory is watched as well. Events for a file whose content
// has not changed (by SHA-256) are skipped.
type Watcher struct {
	path     string
	logger   *zap.Logger
	onChange func(*Config, error)
	trigger  chan struct{}

	mu       sync.Mutex // serializes reloads; guards last, haveLast
	last     [sha256.Size]byte
	haveLast bool
	skipped  func() // test hook: called when unchanged content is skipped

	life   sync.Mutex // guards cancel, done
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWatcher returns a watcher for the config file at path. Nothing is
// watched until Start. A nil logger logs nothing.
func NewWatcher(path string, logger *zap.Logger, onChange func(*Config, error)) *Watcher {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Watcher{
		path:     path,
		logger:   logger.Named("config"),
		onChange: onChange,
		trigger:  make(chan struct{}, 1),
	}
}

// Start watches the file until ctx is done or Stop is called. The content
// the file has now is taken as the current config's, so the first event
// that does not change it is skipped.
func (w *Watcher) Start(ctx context.Context) error {
	w.life.Lock()
	defer w.life.Unlock()
	if w.done != nil {
		return errors.New("config watcher: already started")
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config watcher: %w", err)
	}
	dir := filepath.Dir(w.path)
	if err := fsw.Add(dir); err != nil {
		fsw.Close()
		return fmt.Errorf("config watcher: watch %s: %w", dir, err)
	}
	if target, err := filepath.EvalSymlinks(w.path); err == nil && filepath.Dir(target) != dir {
		if err := fsw.Add(filepath.Dir(target)); err != nil {
			w.logger.Warn("cannot watch the config symlink's target directory", zap.String("dir", filepath.Dir(target)), zap.Error(err))
		}
	}
	w.mu.Lock()
	if data, err := os.ReadFile(w.path); err == nil {
		w.last, w.haveLast = sha256.Sum256(data), true
	}
	w.mu.Unlock()

	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go w.loop(ctx, fsw, w.done)
	return nil
}

// Stop stops watching and waits for the watcher's goroutine to end. It is
// safe to call more than once, and before Start.
func (w *Watcher) Stop() {
	w.life.Lock()
	defer w.life.Unlock()
	if w.done == nil {
		return
	}
	w.cancel()
	<-w.done
	w.cancel, w.done = nil, nil
}

// Trigger asks the running watcher to reload soon, whether or not the file
// changed (a secret file it names may have). Triggers are coalesced and it
// never blocks; use it from a SIGHUP handler.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Reload reloads now, whether or not the file changed, calls onChange like
// every reload, and returns what it passed to onChange. For the admin
// reload endpoint, which answers the validation errors. It works whether or
// not the watcher is started.
func (w *Watcher) Reload() (*Config, error) {
	return w.reload(true)
}

func (w *Watcher) loop(ctx context.Context, fsw *fsnotify.Watcher, done chan struct{}) {
	defer close(done)
	defer fsw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fsw.Events:
			if !ok {
				return
			}
			if ev.Op != fsnotify.Chmod { // a chmod alone changes no content
				timer.Reset(debounce) // Go 1.23+: Reset drops a pending tick
			}
		case err, ok := <-fsw.Errors:
			if !ok {
				return
			}
			w.logger.Warn("config watch error", zap.Error(err))
		case <-timer.C:
			_, _ = w.reload(false) // the outcome goes to onChange
		case <-w.trigger:
			_, _ = w.reload(true) // the outcome goes to onChange
		}
	}
}

// reload reads and parses the file and reports the result to onChange;
// unless forced, content seen last time is skipped (nil, nil).
func (w *Watcher) reload(force bool) (*Config, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.haveLast = false // whatever appears next is new
		err = fmt.Errorf("reload config: %w", err)
		w.notify(nil, err)
		return nil, err
	}
	sum := sha256.Sum256(data)
	if !force && w.haveLast && sum == w.last {
		if w.skipped != nil {
			w.skipped()
		}
		return nil, nil
	}
	// Remember bad content too: the same bad file is reported once.
	w.last, w.haveLast = sum, true
	cfg, err := Parse(data, filepath.Dir(w.path))
	w.notify(cfg, err)
	return cfg, err
}

// notify calls onChange; a panic in it is logged, not fatal to the watcher.
func (w *Watcher) notify(cfg *Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			w.logger.Error("config reload callback panicked", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	w.onChange(cfg, err)
}
