package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway"
	"github.com/paygate/paygate/ledger"
	"github.com/paygate/paygate/notify"
	"github.com/paygate/paygate/routing"
	"github.com/paygate/paygate/store"
)

// backend is the store every component is given: the edge, engine and
// reconciler (gateway.Store), the notification dispatcher, the admin API
// and the router's health. *store.Store is one (sandbox: records in Redis
// or in the embedded store); *ledger.Ledger is the other (records, outbox
// and sweep in PostgreSQL; nonces, throttles, health and risk counters in
// the Redis store it wraps).
type backend interface {
	gateway.Store
	gateway.AdminStore
	notify.Store
	routing.HealthStore
	Embedded() bool
	Close() error
}

var (
	_ backend = (*store.Store)(nil)
	_ backend = (*ledger.Ledger)(nil)
)

// openBackend opens the store of cfg: with store.postgres configured, the
// ledger (its migrations applied unless store.postgres.migrate is off) over
// the Redis store of store.redis; otherwise that Redis (or embedded) store
// alone, which validation allows in sandbox mode only.
func openBackend(cfg *config.Config, logger *zap.Logger) (backend, *ledger.Ledger, error) {
	rs, err := store.Open(cfg.Store.Redis, logger)
	if err != nil {
		return nil, nil, err // already says "store: ..."
	}
	pg := cfg.Store.Postgres
	if !pg.Configured() {
		return rs, nil, nil
	}
	// Connecting and migrating are bounded: an unreachable server fails
	// within connect_timeout; a migration waits for another instance's lock.
	ctx, cancel := context.WithTimeout(context.Background(), pg.ConnectTimeout.D()+time.Minute)
	defer cancel()
	l, err := ledger.Open(ctx, pg, rs, logger)
	if err != nil {
		_ = rs.Close()
		return nil, nil, fmt.Errorf("store.postgres: %w", err)
	}
	return l, l, nil
}

// purgeEvery is how often delivered notification events are purged.
const purgeEvery = time.Hour

// purgeBatch bounds one purge statement; a purge repeats it until a batch
// comes back short.
const purgeBatch = 1000

// purger deletes the ledger's delivered notification events once they are
// older than store.postgres.purge_delivered_after: the outbox keeps what is
// still to be delivered and dead letters, and a bounded window of history.
type purger struct {
	l      *ledger.Ledger
	after  time.Duration
	every  time.Duration
	now    func() time.Time
	logger *zap.Logger
	stop   chan struct{}
	done   chan struct{}
}

func newPurger(l *ledger.Ledger, after, every time.Duration, now func() time.Time, logger *zap.Logger) *purger {
	if now == nil {
		now = time.Now
	}
	return &purger{l: l, after: after, every: every, now: now, logger: logger,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Start purges once at once and then every p.every, until Stop.
func (p *purger) Start() {
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			p.purge()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (p *purger) purge() {
	before := p.now().Add(-p.after)
	var total int64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := p.l.PurgeAcked(ctx, before, purgeBatch)
		cancel()
		total += n
		if err != nil {
			p.logger.Warn("purging delivered notifications failed; retried at the next run", zap.Error(err))
			return
		}
		if n < purgeBatch {
			break
		}
		select {
		case <-p.stop:
			return
		default:
		}
	}
	if total > 0 {
		p.logger.Info("purged delivered notifications", zap.Int64("events", total), zap.Time("before", before))
	}
}

// Stop ends the loop and waits for a purge in progress.
func (p *purger) Stop() {
	close(p.stop)
	<-p.done
}
