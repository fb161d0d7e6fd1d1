package routing

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/paygate/paygate/store"
)

// priorSuccess is the success rate the optimistic prior assumes
// (docs/routing.md, "Success estimate"): a channel with no samples is
// estimated at priorSuccess, and min_samples recent outcomes weigh as much
// as the prior.
const priorSuccess = 0.98

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
	latUS     int64          // latency sum over ok+fail, microseconds
	failovers int64          // failovers away from this channel
	lat       [latBins]int64 // calls per latency bin (latBounds), shared
	// What of ok/fail/latency has already been added to the shared store;
	// the rest is this instance's unsynced delta.
	pushedOK, pushedFail, pushedLatMS int64
	pushedLat                         [latBins]int64
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
		b.lat[latBin(lat)]++
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
	// wok and wfail are ok and fail with every bucket weighted by
	// 2^(-age/half_life): what the success estimate is made of.
	wok, wfail float64
	lat        [latBins]int64 // calls per latency bin over the whole window
}

func (c counts) samples() int64 { return c.ok + c.fail }

// successRate is the raw rate, 1 with no samples.
func (c counts) successRate() float64 {
	if c.samples() == 0 {
		return 1
	}
	return float64(c.ok) / float64(c.samples())
}

// estimate is a channel's estimated chance that a create succeeds now, in
// (0, 1], with its parts (docs/routing.md, "Success estimate"):
//
//	success = (wok + 0.98·min_samples) / (wok + wfail + min_samples)
//	latency = 1 if the percentile pq ≤ target, else target / pq
//	value   = success × latency
//
// The latency percentile is read over the window's calls plus min_samples
// fast ones, so that one slow call of an idle channel does not condemn it.
type estimate struct {
	value, success, latency float64
	pqMS                    float64 // the latency percentile, ms; 0 with no samples
}

type scoring struct {
	minSamples int
	pct        float64 // latency percentile, e.g. 0.9
}

func (c *counts) estimate(sc scoring, target time.Duration) estimate {
	n0 := float64(sc.minSamples)
	e := estimate{success: 1, latency: 1}
	if den := c.wok + c.wfail + n0; den > 0 {
		e.success = (c.wok + priorSuccess*n0) / den
	}
	if c.samples() > 0 {
		e.pqMS = latPercentile(&c.lat, int64(sc.minSamples), sc.pct)
		if tms := float64(target) / float64(time.Millisecond); target > 0 && e.pqMS > tms {
			e.latency = tms / e.pqMS
		}
	}
	e.value = e.success * e.latency
	return e
}

// Latency bins of the shared histogram: upper bounds in milliseconds, the
// last bin open-ended. Coarse on purpose (a dozen counters per bucket in the
// store); a percentile is interpolated linearly within its bin.
var latBounds = [latBins - 1]float64{50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000}

const latBins = store.HealthLatencyBins

func latBin(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	for i, b := range latBounds {
		if ms < b {
			return i
		}
	}
	return latBins - 1
}

// latPercentile reads quantile q of the histogram h plus prior calls in
// the first bin, in milliseconds, interpolating within the bin; the open
// last bin counts as [5s, 10s).
func latPercentile(h *[latBins]int64, prior int64, q float64) float64 {
	total := prior
	for _, v := range h {
		total += v
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	seen := 0.0
	for i := range h {
		v := float64(h[i])
		if i == 0 {
			v += float64(prior)
		}
		if v > 0 && seen+v >= rank {
			lo, hi := 0.0, 2*latBounds[len(latBounds)-1]
			if i > 0 {
				lo = latBounds[i-1]
			}
			if i < len(latBounds) {
				hi = latBounds[i]
			}
			return lo + (hi-lo)*(rank-seen)/v
		}
		seen += v
	}
	return 2 * latBounds[len(latBounds)-1]
}

// decay is the weight of bucket idx at now: 2^(-age/halfLife), the age
// taken from the bucket's middle (0 for the bucket now fills).
func (h *health) decay(idx int64, now time.Time, halfLife time.Duration) float64 {
	if halfLife <= 0 {
		return 1
	}
	mid := time.Unix(0, idx*int64(h.width)+int64(h.width)/2)
	age := now.Sub(mid)
	if age <= 0 {
		return 1
	}
	return math.Exp2(-float64(age) / float64(halfLife))
}

// add adds one bucket's counts with decay weight w.
func (c *counts) add(ok, fail int64, lat *[latBins]int64, w float64) {
	c.ok += ok
	c.fail += fail
	c.wok += w * float64(ok)
	c.wfail += w * float64(fail)
	for i := range lat {
		c.lat[i] += lat[i]
	}
}

// window sums the buckets of the window ending at now. With useShared and
// a shared snapshot read within fresh of now, it is the shared counts plus
// this instance's unsynced deltas; otherwise the local window. Buckets
// before the one holding since are left out: since is when the channel's
// breaker last closed after its probes succeeded, and what came before
// that recovery no longer describes the channel. (The bucket holding it
// stays, so that what follows the recovery counts at once; while the
// breaker was open it saw little besides the probes.)
func (h *health) window(now time.Time, useShared bool, fresh, halfLife time.Duration, since time.Time) counts {
	cur := h.index(now)
	lo := cur - h.n + 1
	if !since.IsZero() {
		lo = max(lo, h.index(since))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var c counts
	if useShared && h.sharedOK && now.Sub(h.sharedAt) <= fresh {
		c.shared = true
		var latMS int64
		for i := range h.shared {
			s := &h.shared[i]
			if s.Bucket >= lo && s.Bucket <= cur {
				c.add(s.OK, s.Fail, &s.Lat, h.decay(s.Bucket, now, halfLife))
				latMS += s.LatencyMS
			}
		}
		for i := range h.ring {
			b := &h.ring[i]
			if b.idx >= lo && b.idx <= cur {
				var dl [latBins]int64
				for j := range dl {
					dl[j] = b.lat[j] - b.pushedLat[j]
				}
				c.add(b.ok-b.pushedOK, b.fail-b.pushedFail, &dl, h.decay(b.idx, now, halfLife))
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
			c.add(b.ok, b.fail, &b.lat, h.decay(b.idx, now, halfLife))
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
	lat             [latBins]int64
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
		for j := range d.lat {
			d.lat[j] = b.lat[j] - b.pushedLat[j]
		}
		if d.ok == 0 && d.fail == 0 && d.latMS == 0 {
			continue
		}
		out = append(out, store.HealthBucket{Channel: id, Bucket: d.idx, OK: d.ok, Fail: d.fail, LatencyMS: d.latMS, Lat: d.lat})
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
		for j := range d.lat {
			b.pushedLat[j] += d.lat[j]
		}
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
				for j := range s.Lat {
					slot.Lat[j] += s.Lat[j]
				}
				continue
			}
			*slot = s
		}
	}
	h.sharedAt = at
	h.sharedOK = true
}
