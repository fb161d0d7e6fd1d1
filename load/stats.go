package load

import (
	"math"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3
// significant digits (a relative error under 0.1%).
const (
	histMin     = 1
	histMax     = int64(10 * time.Minute / time.Microsecond)
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	h.RecordValue(us) // in range by the clamps above
}

// errKind classifies a request that got no answer.
type errKind int

const (
	errTimeout errKind = iota // no answer within -timeout
	errConnect                // could not connect, or the connection broke
	errOther
	nErrKinds
)

// tally is what one slice of the run (the whole run, a phase, the last
// second) saw. Guarded by the recorder's mutex.
type tally struct {
	sent, answered int64
	status         [600]int64
	errs           [nErrKinds]int64
	channels       map[string]*int64
	hist           *hdrhistogram.Histogram
}

func newTally() *tally { return &tally{channels: map[string]*int64{}, hist: newHist()} }

func (t *tally) answer(status int, channel []byte, d time.Duration) {
	t.answered++
	if status >= 0 && status < len(t.status) {
		t.status[status]++
	}
	if len(channel) > 0 {
		if p, ok := t.channels[string(channel)]; ok { // no allocation for a known channel
			*p++
		} else {
			n := int64(1)
			t.channels[string(channel)] = &n
		}
	}
	record(t.hist, d)
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Errors counts requests that got no answer.
type Errors struct {
	Timeout int64 `json:"timeout"`
	Connect int64 `json:"connect"`
	Other   int64 `json:"other"`
}

// Phase is one third of a scenario run: before, during and after the fault.
// A request belongs to the phase its scheduled start falls in.
type Phase struct {
	Name     string           `json:"name"`
	Sent     int64            `json:"sent"`
	Answered int64            `json:"answered"`
	Latency  Latency          `json:"latency_ms"`
	Status   map[string]int64 `json:"status"`
	Errors   Errors           `json:"errors"`
	Channels map[string]int64 `json:"channels"`
}

// Summary is the result of a run; with -json it is printed as is.
type Summary struct {
	TargetRate   float64 `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"` // sent / duration_s
	DurationS    float64 `json:"duration_s"`    // -duration, or until an interrupt
	Sent         int64   `json:"sent"`
	Answered     int64   `json:"answered"`
	// NotSent counts scheduled starts dropped because -max-inflight
	// requests were already waiting for answers.
	NotSent int64            `json:"not_sent"`
	Status  map[string]int64 `json:"status"`
	Errors  Errors           `json:"errors"`
	Latency Latency          `json:"latency_ms"`
	// StartLag is how late requests went out after their scheduled start:
	// near zero unless the generator's own machine is short of CPU.
	StartLag     Latency          `json:"start_lag_ms"`
	Channels     map[string]int64 `json:"channels"`
	Ops          map[string]int64 `json:"ops"` // requests sent by operation
	Scenario     string           `json:"scenario,omitempty"`
	FaultChannel string           `json:"fault_channel,omitempty"`
	Phases       []Phase          `json:"phases,omitempty"`
}

func ms(us int64) float64 { return math.Round(float64(us)/10) / 100 }

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
}

func (t *tally) statusMap() map[string]int64 {
	m := map[string]int64{}
	for code, n := range t.status {
		if n > 0 {
			m[strconv.Itoa(code)] = n
		}
	}
	return m
}

func (t *tally) channelMap() map[string]int64 {
	m := map[string]int64{}
	for ch, n := range t.channels {
		m[ch] = *n
	}
	return m
}

func (t *tally) errors() Errors {
	return Errors{Timeout: t.errs[errTimeout], Connect: t.errs[errConnect], Other: t.errs[errOther]}
}

func (t *tally) phase(name string) Phase {
	return Phase{Name: name, Sent: t.sent, Answered: t.answered, Latency: latencyOf(t.hist), Status: t.statusMap(), Errors: t.errors(), Channels: t.channelMap()}
}
