package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/store"
)

// Start starts the health sync loop: every routing.health.sync_interval it
// pushes this instance's unsynced bucket counts to the store in one call and
// reads back the aggregated buckets every score then uses. Without a
// HealthStore it does nothing. The loop ends when ctx is done or on Stop;
// calling Start again while it runs does nothing.
func (r *Router) Start(ctx context.Context) {
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	if r.hs == nil || r.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	go r.syncLoop(ctx, r.done)
}

// Stop stops the sync loop and waits for it, after a last push of the
// unsynced counts (bounded by one sync interval). Safe to call without
// Start and more than once.
func (r *Router) Stop() {
	r.lifeMu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.lifeMu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (r *Router) syncLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	every := r.Table().sync
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Push what this instance counted since the last tick, so a
			// rolling restart does not lose it. The parent is done: give
			// the push its own short deadline.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every)
			r.safeSync(fctx, false)
			cancel()
			return
		case <-tick.C:
			r.safeSync(ctx, true)
			if s := r.Table().sync; s != every { // a reload changed it
				every = s
				tick.Reset(every)
			}
		}
	}
}

// safeSync runs one sync, logging its failure; a panic is logged with its
// stack and the loop goes on.
func (r *Router) safeSync(ctx context.Context, pull bool) {
	defer func() {
		if p := recover(); p != nil {
			r.logger.Error("health sync panicked", zap.Any("panic", p), zap.StackSkip("stack", 1))
		}
	}()
	if err := r.syncOnce(ctx, pull); err != nil && ctx.Err() == nil {
		r.logger.Warn("health sync failed; scoring on local windows until it recovers", zap.Error(err))
	}
}

// syncOnce pushes every channel's unsynced deltas (of the channel and of
// each of its methods) in one AddHealth call, then (with pull) reads each
// window's aggregated buckets, and commits both per window under its lock.
// A failed push leaves the deltas unsynced, to be pushed next time; a failed
// pull makes that window score on its local counts until a pull succeeds.
func (r *Router) syncOnce(ctx context.Context, pull bool) error {
	if r.hs == nil {
		return nil
	}
	t := r.Table()
	now := r.rt.now()
	type win struct {
		key   string
		h     *health
		marks []delta
	}
	var wins []win
	var batch []store.HealthBucket
	for _, ch := range t.channels {
		for key, h := range ch.windows {
			w := win{key: key, h: h}
			batch, w.marks = h.unsynced(now, key, batch, nil)
			wins = append(wins, w)
		}
	}
	var errs []error
	pushed := true
	if len(batch) > 0 {
		if err := r.hs.AddHealth(ctx, batch, 2*t.window); err != nil {
			pushed = false
			errs = append(errs, fmt.Errorf("push: %w", err))
		}
	}
	for _, w := range wins {
		var m []delta
		if pushed {
			m = w.marks
		}
		if !pull {
			w.h.commit(m, false, nil, now)
			continue
		}
		cur := w.h.index(now)
		bs, err := r.hs.ReadHealth(ctx, w.key, cur-w.h.n+1, cur)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", w.key, err))
		}
		w.h.commit(m, err == nil, bs, now)
	}
	return errors.Join(errs...)
}
