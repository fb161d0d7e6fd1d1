// Package sandbox runs simulators of the payment channels (WeChat Pay v3,
// Alipay OpenAPI, a UnionPay-ACP-style bank) that speak the real wire
// protocols: they verify every signature the real channel would, refuse in the
// channel's own error form, sign every answer, keep per-order state and send
// signed asynchronous notifications with the channel's retry schedule.
//
// Each configured channel instance gets its own simulator on its own listener
// (the host:port of the channel's base_url), so that a "down" fault is a real
// connection refusal. A separate control listener offers the payer and fault
// controls that the gateway's /admin/sandbox endpoints call.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Sim is one channel instance's simulator.
type Sim interface {
	// ServeHTTP serves the channel's API as the real channel does.
	http.Handler
	// Pay makes the simulated payer pay the order; the simulator then sends
	// the channel's real signed notification. Unknown order: ErrNoOrder.
	Pay(orderNo string) error
	// Fail makes the payment fail, where the channel has such a state
	// (otherwise ErrUnsupported); it notifies like Pay.
	Fail(orderNo string) error
	// Unavailable writes the channel's "system error, retry with the same
	// parameters" answer; the error_rate fault uses it.
	Unavailable(w http.ResponseWriter)
}

// Errors of the control API.
var (
	ErrNoOrder     = errors.New("no such order at the simulated channel")
	ErrUnsupported = errors.New("not supported by this simulated channel")
	ErrOrderState  = errors.New("order is not in a state that allows this")
)

// Env is what a simulator gets from its host.
type Env struct {
	ChannelID string
	Notifier  *Notifier
	Now       func() time.Time
	// OrderCreated must be called when an order is created, so that auto-pay
	// can schedule it. Never nil.
	OrderCreated func(orderNo string)
	Logger       *zap.Logger
}

// Faults are the faults injected into one channel's simulator (CONTRACT §7).
type Faults struct {
	Channel       string  `json:"channel"`
	Down          bool    `json:"down"`
	ErrorRate     float64 `json:"error_rate"`
	Latency       string  `json:"latency,omitempty"` // Go duration
	DropCallbacks bool    `json:"drop_callbacks"`
}

// faultState is the parsed, concurrency-safe form of Faults.
type faultState struct {
	mu      sync.RWMutex
	f       Faults
	latency time.Duration
}

func (s *faultState) get() (Faults, time.Duration) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.f, s.latency
}

func (s *faultState) set(f Faults) error {
	var lat time.Duration
	if f.Latency != "" {
		d, err := time.ParseDuration(f.Latency)
		if err != nil || d < 0 {
			return fmt.Errorf("latency: not a duration: %q", f.Latency)
		}
		lat = d
	}
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return fmt.Errorf("error_rate: must be between 0 and 1")
	}
	s.mu.Lock()
	s.f, s.latency = f, lat
	s.mu.Unlock()
	return nil
}

func (s *faultState) dropCallbacks() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.f.DropCallbacks
}

// faultHandler applies error_rate and latency around a simulator. Latency is
// added after the simulator has handled the request, so an order is created
// and then its answer is late: the client sees an ambiguous outcome, exactly
// like a real timeout after sending.
type faultHandler struct {
	sim    Sim
	faults *faultState
	mu     sync.Mutex
	rng    *rand.Rand
}

func (h *faultHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, latency := h.faults.get()
	if f.ErrorRate > 0 {
		h.mu.Lock()
		hit := h.rng.Float64() < f.ErrorRate
		h.mu.Unlock()
		if hit {
			h.sim.Unavailable(w)
			return
		}
	}
	if latency <= 0 {
		h.sim.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	h.sim.ServeHTTP(rec, r)
	t := time.NewTimer(latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes())
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if !r.wrote {
		r.status, r.wrote = s, true
	}
}
func (r *recorder) Write(b []byte) (int, error) { r.wrote = true; return r.body.Write(b) }

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
