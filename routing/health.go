package routing

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/paygate/paygate/store"
)

// Score parameters (docs/routing.md, "Health score").
const (
	// priorSuccess is the success rate the optimistic prior assumes: a
	// channel with no samples scores priorSuccess, and min_samples real
	// outcomes weigh as much as the prior.
	priorSuccess = 0.98
	// latencyFloor bounds the latency factor from below, so a slow but
	// working channel keeps a fifth of its share instead of vanishing.
	latencyFloor = 0.2
)

// Latency histogram: log-linear, histSub bins per power of two of the
// latency in microseconds (bin width ≤ 1/8 of its lower bound, so a
// percentile read at a bin's midpoint is within ±6%). Fixed size, so an
// observation is one array increment and never allocates.
const (
	histSub    = 8
	histSubLog = 3  // log2(histSub)
	histMaxExp = 35 // 2^35 µs ≈ 9.5 h: larger values land in the last bin
	histBins   = histSub * (histMaxExp - histSubLog + 2)
)

// histBin is the bin of a latency of us microseconds.
func histBin(us int64) int {
	if us < histSub {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	if us >= 1<<(histMaxExp+1) {
		return histBins - 1
	}
	e := bits.Len64(uint64(us)) - 1 // ≥ histSubLog
	sub := int(us>>(e-histSubLog)) & (histSub - 1)
	return histSub*(e-histSubLog+1) + sub
}

// histBounds is the half-open range [lo, hi) of microseconds in bin b.
func histBounds(b int) (lo, hi int64) {
	if b < histSub {
		return int64(b), int64(b) + 1
	}
	e := b/histSub + histSubLog - 1
	sub := int64(b % histSub)
	shift := e - histSubLog
	return (histSub + sub) << shift, (histSub + sub + 1) << shift
}

// hbucket is one time bucket of one channel's outcomes.
type hbucket struct {
	idx       int64 // bucket index (unix nanoseconds / width); identifies the slot's current occupant
	ok, fail  int64
	latUS     int64 // latency sum over ok+fail, microseconds
	failovers int64 // failovers away from this channel
	// What of ok/fail/latency has already been added to the shared store;
	// the rest is this instance's unsynced delta.
	pushedOK, pushedFail, pushedLatMS int64
	hist                              [histBins]uint32
}

// health is one channel instance's sliding window of technical outcomes:
// a ring of time buckets, slot = bucket index mod len(ring). It survives
// reloads as long as the window and bucket count stay the same.
//
// A plain mutex rather than atomics: an observation touches several fields
// of one bucket, and rotating a bucket must reset them together. The lock is
// per channel and held for a few dozen nanoseconds.
type health struct {
	width time.Duration // bucket width = window / buckets
	n     int64         // buckets in the window

	mu     sync.Mutex
	ring   []hbucket
	shared []store.HealthBucket // aggregated counts of all instances, same slots as ring
	// sharedAt is when shared was read; sharedOK says it is usable (the last
	// pull succeeded and was committed together with the pushed marks).
	sharedAt time.Time
	sharedOK bool
}

func newHealth(window time.Duration, n int) *health {
	return &health{
		width:  window / time.Duration(n),
		n:      int64(n),
		ring:   make([]hbucket, n),
		shared: make([]store.HealthBucket, n),
	}
}

// index is the bucket index of t: unix time / bucket width.
func (h *health) index(t time.Time) int64 {
	return floorDiv(t.UnixNano(), int64(h.width))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func (h *health) slotOf(idx int64) int64 {
	s := idx % h.n
	if s < 0 {
		s += h.n
	}
	return s
}

// bucket returns the bucket for idx, recycling its slot if it holds an older
// bucket. It returns nil for an index older than the slot's occupant (a clock
// that went backwards by more than a window): that observation is dropped.
// h.mu must be held.
func (h *health) bucket(idx int64) *hbucket {
	b := &h.ring[h.slotOf(idx)]
	switch {
	case b.idx == idx:
		return b
	case b.idx > idx:
		return nil
	}
	*b = hbucket{idx: idx}
	return b
}

// observe records one technical outcome.
func (h *health) observe(now time.Time, ok bool, lat time.Duration) {
	us := lat.Microseconds()
	if us < 0 {
		us = 0
	}
	idx := h.index(now)
	h.mu.Lock()
	if b := h.bucket(idx); b != nil {
		if ok {
			b.ok++
		} else {
			b.fail++
		}
		b.latUS += us
		b.hist[histBin(us)]++
	}
	h.mu.Unlock()
}

// failover counts one failover away from the channel.
func (h *health) failover(now time.Time) {
	idx := h.index(now)
	h.mu.Lock()
	if b := h.bucket(idx); b != nil {
		b.failovers++
	}
	h.mu.Unlock()
}

// counts are a window's technical outcomes.
type counts struct {
	ok, fail int64
	latMS    float64 // latency sum, milliseconds
	shared   bool    // aggregated over all instances (else this instance only)
}

func (c counts) samples() int64 { return c.ok + c.fail }

// successRate is the raw rate, 1 with no samples.
func (c counts) successRate() float64 {
	if c.samples() == 0 {
		return 1
	}
	return float64(c.ok) / float64(c.samples())
}

// score is the health score in (0, 1]:
//
//	success = (ok + 0.98·min_samples) / (ok + fail + min_samples)
//	latency = 1 if mean ≤ target, else max(0.2, target/mean)
//	score   = success × latency
func (c counts) score(minSamples int, target time.Duration) float64 {
	n0 := float64(minSamples)
	den := float64(c.samples()) + n0
	success := 1.0
	if den > 0 {
		success = (float64(c.ok) + priorSuccess*n0) / den
	}
	lf := 1.0
	if c.samples() > 0 && target > 0 {
		mean := c.latMS / float64(c.samples())
		tms := float64(target) / float64(time.Millisecond)
		if mean > tms {
			lf = math.Max(latencyFloor, tms/mean)
		}
	}
	return success * lf
}

// window sums the buckets of the window ending at now. With useShared and
// a shared snapshot read within fresh of now, it is the shared counts plus
// this instance's unsynced deltas; otherwise the local window.
func (h *health) window(now time.Time, useShared bool, fresh time.Duration) counts {
	cur := h.index(now)
	lo := cur - h.n + 1
	h.mu.Lock()
	defer h.mu.Unlock()
	var c counts
	if useShared && h.sharedOK && now.Sub(h.sharedAt) <= fresh {
		c.shared = true
		var latMS int64
		for i := range h.shared {
			s := &h.shared[i]
			if s.Bucket >= lo && s.Bucket <= cur {
				c.ok += s.OK
				c.fail += s.Fail
				latMS += s.LatencyMS
			}
		}
		for i := range h.ring {
			b := &h.ring[i]
			if b.idx >= lo && b.idx <= cur {
				c.ok += b.ok - b.pushedOK
				c.fail += b.fail - b.pushedFail
				latMS += b.latUS/1000 - b.pushedLatMS
			}
		}
		c.latMS = float64(latMS)
		return c
	}
	var latUS int64
	for i := range h.ring {
		b := &h.ring[i]
		if b.idx >= lo && b.idx <= cur {
			c.ok += b.ok
			c.fail += b.fail
			latUS += b.latUS
		}
	}
	c.latMS = float64(latUS) / 1000
	return c
}

// localStats are the figures only this instance has: latency percentiles
// (the store keeps sums, not histograms) and failovers.
type localStats struct {
	p50MS, p99MS float64
	failovers    int64
}

func (h *health) local(now time.Time) localStats {
	cur := h.index(now)
	lo := cur - h.n + 1
	var hist [histBins]uint64
	var total uint64
	var st localStats
	h.mu.Lock()
	for i := range h.ring {
		b := &h.ring[i]
		if b.idx < lo || b.idx > cur {
			continue
		}
		st.failovers += b.failovers
		for j, v := range b.hist {
			hist[j] += uint64(v)
			total += uint64(v)
		}
	}
	h.mu.Unlock()
	st.p50MS = percentile(&hist, total, 0.50)
	st.p99MS = percentile(&hist, total, 0.99)
	return st
}

// percentile reads quantile q (0..1) of the histogram at its bin's
// midpoint, in milliseconds; 0 with no samples.
func percentile(hist *[histBins]uint64, total uint64, q float64) float64 {
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for b, v := range hist {
		seen += v
		if seen >= rank {
			lo, hi := histBounds(b)
			return float64(lo+hi) / 2 / 1000
		}
	}
	return 0
}

// delta is what one bucket has not yet pushed to the store.
type delta struct {
	idx             int64
	ok, fail, latMS int64
}

// unsynced appends the window's unpushed counts to out, as store buckets of
// channel id, and returns the marks to commit once the push succeeded.
func (h *health) unsynced(now time.Time, id string, out []store.HealthBucket, marks []delta) ([]store.HealthBucket, []delta) {
	cur := h.index(now)
	lo := cur - h.n + 1
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.ring {
		b := &h.ring[i]
		if b.idx < lo || b.idx > cur {
			continue
		}
		d := delta{idx: b.idx, ok: b.ok - b.pushedOK, fail: b.fail - b.pushedFail, latMS: b.latUS/1000 - b.pushedLatMS}
		if d.ok == 0 && d.fail == 0 && d.latMS == 0 {
			continue
		}
		out = append(out, store.HealthBucket{Channel: id, Bucket: d.idx, OK: d.ok, Fail: d.fail, LatencyMS: d.latMS})
		marks = append(marks, d)
	}
	return out, marks
}

// commit records a sync: pushed marks the deltas the store accepted (nil if
// the push failed), and, when pulled is true, shared replaces the snapshot.
// Both change under one lock, so a score never counts a pushed delta twice
// (in the snapshot and as unsynced) nor misses it.
func (h *health) commit(pushed []delta, pulled bool, shared []store.HealthBucket, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range pushed {
		b := &h.ring[h.slotOf(d.idx)]
		if b.idx != d.idx {
			continue // rotated out meanwhile: it left the window anyway
		}
		b.pushedOK += d.ok
		b.pushedFail += d.fail
		b.pushedLatMS += d.latMS
	}
	if !pulled {
		// A snapshot older than the marks just moved would miss these
		// deltas: score on the local window until the next pull.
		if len(pushed) > 0 {
			h.sharedOK = false
		}
		return
	}
	clear(h.shared)
	for _, s := range shared {
		slot := &h.shared[h.slotOf(s.Bucket)]
		if s.Bucket >= slot.Bucket {
			if s.Bucket == slot.Bucket {
				slot.OK += s.OK
				slot.Fail += s.Fail
				slot.LatencyMS += s.LatencyMS
				continue
			}
			*slot = s
		}
	}
	h.sharedAt = at
	h.sharedOK = true
}
