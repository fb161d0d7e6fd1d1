package routing

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/config"
)

// Breaker states as Candidate.Breaker and ChannelStatus.Breaker show them
// (gobreaker's own names).
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

// Sentinels fed to gobreaker's done callback: the classification is ours,
// gobreaker only counts.
var (
	errBreakerFailure  = errors.New("technical failure")
	errBreakerExcluded = errors.New("excluded")
)

func (o outcome) breakerErr() error {
	switch o {
	case outcomeTechnical:
		return errBreakerFailure
	case outcomeExcluded:
		return errBreakerExcluded
	default:
		return nil
	}
}

// breaker is one channel instance's circuit breaker. It survives reloads
// while the channel's effective breaker settings stay the same.
//
// gobreaker reads time.Now itself (Settings has no clock), so open_for and
// interval run on the wall clock, not on the router's injected clock.
type breaker struct {
	settings config.Breaker // effective, defaults applied; compared on reload
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	trips    atomic.Int64 // transitions to open, for tests and ops
}

func newBreaker(id string, s config.Breaker, logger *zap.Logger) *breaker {
	b := &breaker{settings: s}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        id,
		MaxRequests: s.HalfOpenRequests,
		Interval:    s.Interval.D(),
		Timeout:     s.OpenFor.D(),
		ReadyToTrip: func(c gobreaker.Counts) bool {
			// Completed, non-excluded calls only: Requests also counts calls
			// in flight and excluded ones.
			done := c.TotalSuccesses + c.TotalFailures
			return done >= s.MinRequests && float64(c.TotalFailures) >= s.FailureRatio*float64(done)
		},
		IsExcluded: func(err error) bool { return err == errBreakerExcluded },
		// Called under gobreaker's lock: log and count only, never call back.
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.trips.Add(1)
			}
			lvl := zap.InfoLevel
			if to == gobreaker.StateOpen {
				lvl = zap.WarnLevel
			}
			logger.Log(lvl, "breaker state change", zap.String("channel", name),
				zap.String("from", from.String()), zap.String("to", to.String()))
		},
	})
	return b
}

// state is the breaker's state now, and for half-open whether a probe slot
// is free. Two locks on gobreaker's mutex; cheap, but not atomic together,
// so "full" is advisory: Call has the final word.
func (b *breaker) state() (st gobreaker.State, full bool) {
	st = b.cb.State()
	if st == gobreaker.StateHalfOpen {
		c := b.cb.Counts()
		valid := c.Requests - min(c.Requests, c.TotalExclusions)
		full = valid >= max(b.settings.HalfOpenRequests, 1)
	}
	return st, full
}

func stateName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateClosed:
		return BreakerClosed
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	default:
		return BreakerOpen
	}
}
