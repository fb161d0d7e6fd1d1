package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/zap"
)

// embeddedTick is how often the embedded Redis advances its TTLs. miniredis
// only expires keys when told time has passed; doing it on every command
// (ClockTTL) would walk and sort every key per command, so a ticker does it
// once per tick instead. TTLs (nonces, throttles, acknowledged event bodies)
// are therefore up to one tick late in embedded mode.
const embeddedTick = time.Second

// embedded is the in-process Redis used when no address is configured: one
// process, nothing persisted. It owns the goroutine that advances its TTLs.
type embedded struct {
	m        *miniredis.Miniredis
	password string
	log      *zap.Logger
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// startEmbedded starts the in-process Redis on a loopback port, protected
// by a random password (other local processes must not be able to mark
// payments paid); it returns the password for the client.
func startEmbedded(log *zap.Logger) (*embedded, string, error) {
	m := miniredis.NewMiniRedis()
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, "", fmt.Errorf("store: embedded redis password: %w", err)
	}
	password := hex.EncodeToString(pw[:])
	m.RequireAuth(password)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, "", fmt.Errorf("store: start embedded redis: %w", err)
	}
	e := &embedded{m: m, log: log, password: password, stop: make(chan struct{}), done: make(chan struct{})}
	go e.tick(time.NewTicker(embeddedTick), time.Now())
	return e, password, nil
}

func (e *embedded) addr() string { return e.m.Addr() }

func (e *embedded) tick(t *time.Ticker, last time.Time) {
	defer close(e.done)
	defer t.Stop()
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("embedded store: ttl ticker panicked; keys no longer expire", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.m.FastForward(now.Sub(last))
			last = now
		}
	}
}

// close stops the ticker, waits for it, and stops the server.
func (e *embedded) close() {
	e.once.Do(func() {
		close(e.stop)
		<-e.done
		e.m.Close()
	})
}
