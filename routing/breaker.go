package routing

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
)

// Breaker states as Candidate.Breaker and ChannelStatus.Breaker show them.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half-open"
	BreakerOpen     = "open"
)

// outcome is how one channel call counts.
type outcome int

const (
	outcomeSuccess   outcome = iota // answered: health ok, breaker success
	outcomeBusiness                 // answered with a business refusal: breaker success, health untouched
	outcomeTechnical                // the channel's fault: health failure, breaker failure
	outcomeExcluded                 // the caller gave up: neither
)

// classify maps a channel call's result (and the caller's context) to an
// outcome. Untyped errors count as technical: fn is meant to wrap one
// channel call, whose adapter returns *adapters.Error; anything else is a
// failure nobody classified, and treating it as the channel's fault errs on
// the side of protecting payments.
func classify(ctx context.Context, err error) outcome {
	if err == nil {
		return outcomeSuccess
	}
	// Canceled means the caller (the merchant's connection, shutdown) gave
	// up, which says nothing about the channel. A deadline is different: the
	// per-call timeout is how a slow channel shows, so it stays technical.
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return outcomeExcluded
	}
	if e, ok := adapters.AsError(err); ok && !e.Technical() {
		return outcomeBusiness
	}
	return outcomeTechnical
}

// breakerState is the state machine's state.
type breakerState int

const (
	stateClosed breakerState = iota
	stateHalfOpen
	stateOpen
)

func stateName(s breakerState) string {
	switch s {
	case stateClosed:
		return BreakerClosed
	case stateHalfOpen:
		return BreakerHalfOpen
	default:
		return BreakerOpen
	}
}

// breakerBuckets is how many buckets the closed-state window has: the
// oldest tenth of breaker.interval leaves the window at a time.
const breakerBuckets = 10

// errBreakerRefused is the cause of a breaker_open error.
var errBreakerRefused = errors.New("circuit breaker open")

// breaker is one channel instance's circuit breaker for creates. It
// survives reloads while the channel's effective breaker settings stay the
// same.
//
// Closed, it counts technical successes and failures over a rolling window
// of breaker.interval (in breakerBuckets time buckets) and opens when at
// least min_requests calls completed in that window and the failure share
// reached failure_ratio — whatever came before the window — or when the
// last consecutive_failures calls all failed (an eliminated channel sees
// too few calls to reach min_requests). Open, it refuses
// for open_for; then half-open, it lets half_open_requests probes through:
// that many successes close it (with an empty window), one failure reopens
// it.
//
// It runs on the router's clock, so the simulation drives it the way it
// drives the health windows. (gobreaker, which paygate used before, reads
// time.Now itself.)
type breaker struct {
	id       string
	settings config.Breaker // effective, defaults applied; compared on reload
	now      func() time.Time
	logger   *zap.Logger
	width    time.Duration // bucket width = interval / breakerBuckets
	trips    atomic.Int64  // transitions to open, for tests and ops

	mu       sync.Mutex
	state    breakerState
	gen      uint64    // changes with every state change; stale results are dropped
	until    time.Time // open: when it turns half-open
	ring     [breakerBuckets]bbucket
	inflight uint32 // half-open: probes in flight
	probesOK uint32 // half-open: successful probes
	streak   uint32 // closed: technical failures in a row
	// recovered is when the probes last closed the breaker: the success
	// estimate forgets what came before (see health.window).
	recovered time.Time
}

// bbucket is one time bucket of the closed-state window.
type bbucket struct {
	idx      int64
	ok, fail uint32
}

func newBreaker(id string, s config.Breaker, now func() time.Time, logger *zap.Logger) *breaker {
	return &breaker{id: id, settings: s, now: now, logger: logger, width: max(s.Interval.D()/breakerBuckets, time.Millisecond)}
}

// ticket is one admitted call; done reports its outcome.
type ticket struct {
	gen   uint64
	probe bool
	count bool // create: the outcome counts
}

// allow admits a call or refuses it (open, or half-open with every probe
// slot taken). Only counted calls (creates) take probe slots; the others
// pass a closed or half-open breaker without being counted.
func (b *breaker) allow(count bool) (ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.advance(now)
	switch b.state {
	case stateOpen:
		return ticket{}, false
	case stateHalfOpen:
		if !count {
			return ticket{gen: b.gen}, true
		}
		if b.inflight+b.probesOK >= max(b.settings.HalfOpenRequests, 1) {
			return ticket{}, false
		}
		b.inflight++
		return ticket{gen: b.gen, probe: true, count: true}, true
	}
	return ticket{gen: b.gen, count: count}, true
}

// done records a call's outcome.
func (b *breaker) done(t ticket, o outcome) {
	if !t.count {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.advance(now)
	if t.gen != b.gen {
		return // the state changed meanwhile: this call belongs to another era
	}
	if t.probe {
		b.inflight--
		switch o {
		case outcomeTechnical:
			b.open(now)
		case outcomeSuccess, outcomeBusiness:
			b.probesOK++
			if b.probesOK >= max(b.settings.HalfOpenRequests, 1) {
				b.set(stateClosed, now)
				b.recovered = now
			}
		}
		return
	}
	if o == outcomeExcluded {
		return
	}
	bk := b.bucket(now)
	if o != outcomeTechnical {
		bk.ok++
		b.streak = 0
		return
	}
	bk.fail++
	b.streak++
	okN, failN := b.counts(now)
	done := okN + failN
	if done >= b.settings.MinRequests && float64(failN) >= b.settings.FailureRatio*float64(done) ||
		b.settings.ConsecutiveFailures > 0 && b.streak >= b.settings.ConsecutiveFailures {
		b.open(now)
	}
}

// advance turns an open breaker half-open once open_for has passed.
func (b *breaker) advance(now time.Time) {
	if b.state == stateOpen && !now.Before(b.until) {
		b.set(stateHalfOpen, now)
	}
}

func (b *breaker) open(now time.Time) {
	b.until = now.Add(b.settings.OpenFor.D())
	b.set(stateOpen, now)
}

// set changes the state, starting a new generation with empty counts.
// Called under b.mu: it logs and counts only.
func (b *breaker) set(to breakerState, now time.Time) {
	from := b.state
	b.state = to
	b.gen++
	b.ring = [breakerBuckets]bbucket{}
	b.inflight, b.probesOK, b.streak = 0, 0, 0
	lvl := zap.InfoLevel
	if to == stateOpen {
		b.trips.Add(1)
		lvl = zap.WarnLevel
	}
	b.logger.Log(lvl, "breaker state change", zap.String("channel", b.id),
		zap.String("from", stateName(from)), zap.String("to", stateName(to)))
}

func (b *breaker) index(now time.Time) int64 { return floorDiv(now.UnixNano(), int64(b.width)) }

// bucket is the current bucket, recycled if its slot held an older one.
func (b *breaker) bucket(now time.Time) *bbucket {
	idx := b.index(now)
	s := &b.ring[(idx%breakerBuckets+breakerBuckets)%breakerBuckets]
	if s.idx != idx {
		*s = bbucket{idx: idx}
	}
	return s
}

// counts sums the window ending at now.
func (b *breaker) counts(now time.Time) (ok, fail uint32) {
	cur := b.index(now)
	for i := range b.ring {
		if bk := &b.ring[i]; bk.idx > cur-breakerBuckets && bk.idx <= cur {
			ok += bk.ok
			fail += bk.fail
		}
	}
	return ok, fail
}

// status is the state now, for half-open whether every probe slot is taken
// (then Decide excludes the channel), and when probes last closed it.
func (b *breaker) status() (st breakerState, full bool, recovered time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(b.now())
	full = b.state == stateHalfOpen && b.inflight+b.probesOK >= max(b.settings.HalfOpenRequests, 1)
	return b.state, full, b.recovered
}
