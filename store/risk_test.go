package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testRisk walks one counter through its outcomes with an injected clock.
func testRisk(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	s := e.s
	count := RiskLimit{ID: "per-ip:count:60000:ip:abc", Max: 2, Add: 1, Window: time.Minute}
	sum := RiskLimit{ID: "big:amount:60000:ip:abc", Max: 1000, Add: 400, Window: time.Minute}
	check := func(otn string, at time.Time, limits ...RiskLimit) RiskResult {
		t.Helper()
		r, err := s.RiskCheck(ctx, nil, m, otn, false, limits, at)
		if err != nil {
			t.Fatalf("risk check %s: %v", otn, err)
		}
		return r
	}
	// Two creates fit the count limit, the third is refused naming it.
	for i, want := range []RiskResult{{RiskCounted, -1}, {RiskCounted, -1}, {RiskRefused, 0}} {
		if got := check(fmt.Sprintf("o-%d", i), t0, count); got != want {
			t.Fatalf("create %d: %+v, want %+v", i, got, want)
		}
	}
	// A refused create consumed nothing: the usage is still 2.
	if u, err := s.RiskUsage(ctx, m, []RiskLimit{count}, t0); err != nil || u[0] != 2 {
		t.Fatalf("usage after a refusal = %v, %v; want [2]", u, err)
	}
	// The window slides: 59 s later both counts are still in it; 61 s later
	// they are out.
	if got := check("o-3", t0.Add(59*time.Second), count); got.Outcome != RiskRefused {
		t.Fatalf("59s later: %+v, want refused", got)
	}
	if got := check("o-3", t0.Add(61*time.Second), count); got.Outcome != RiskCounted {
		t.Fatalf("61s later: %+v, want counted", got)
	}
	// Amount sums: 400 + 400 fit 1000, a third 400 does not; 200 does.
	for i, want := range []RiskOutcome{RiskCounted, RiskCounted, RiskRefused} {
		if got := check(fmt.Sprintf("a-%d", i), t0, sum); got.Outcome != want {
			t.Fatalf("amount create %d: %+v, want %v", i, got, want)
		}
	}
	small := sum
	small.Add = 200
	if got := check("a-3", t0, small); got.Outcome != RiskCounted {
		t.Fatalf("200 more: %+v, want counted", got)
	}
	// Two limits: the second refuses; the first is not counted either.
	fresh := RiskLimit{ID: "fresh:count:60000:m", Max: 10, Add: 1, Window: time.Minute}
	if got := check("b-1", t0, fresh, sum); got != (RiskResult{RiskRefused, 1}) {
		t.Fatalf("two limits: %+v, want refused by limit 1", got)
	}
	if u, err := s.RiskUsage(ctx, m, []RiskLimit{fresh, sum}, t0); err != nil || u[0] != 0 || u[1] != 1000 {
		t.Fatalf("usage = %v, %v; want [0 1000]", u, err)
	}
	// An out_trade_no already indexed is neither judged nor counted.
	rec := mustCreate(t, s, newPayment(m, "paid-before", 100))
	if got := check(rec.OutTradeNo, t0, count, sum); got.Outcome != RiskExists {
		t.Fatalf("existing out_trade_no: %+v, want exists", got)
	}
	// The block flag refuses without counting.
	if r, err := s.RiskCheck(ctx, nil, m, "c-1", true, []RiskLimit{fresh}, t0); err != nil || r != (RiskResult{RiskRefused, -1}) {
		t.Fatalf("block: %+v, %v", r, err)
	}
	// A counter idle for far longer than its window (its key alive only
	// because the test's clock is not Redis') is summed afresh.
	later := t0.Add(10 * time.Minute)
	if got := check("d-1", later, count); got.Outcome != RiskCounted {
		t.Fatalf("10 min later: %+v", got)
	}
	usage := func(at time.Time, l RiskLimit) int64 {
		t.Helper()
		u, err := s.RiskUsage(ctx, m, []RiskLimit{l}, at)
		if err != nil {
			t.Fatal(err)
		}
		return u[0]
	}
	if u := usage(later, count); u != 1 {
		t.Fatalf("usage 10 min later = %d, want 1", u)
	}
	// An instance whose clock is 2 min behind counts in a bucket below the
	// others' window: for its own clock both counts are in the window (a
	// bucket ahead of the clock counts: skew errs towards refusing), and
	// for the others its count has left the window as soon as they look.
	if got := check("d-2", later.Add(-2*time.Minute), count); got.Outcome != RiskCounted {
		t.Fatalf("a clock behind: %+v", got)
	}
	if u := usage(later.Add(-2*time.Minute), count); u != 2 {
		t.Fatalf("usage for the clock behind = %d, want 2", u)
	}
	if u := usage(later, count); u != 1 {
		t.Fatalf("usage 10 min later after a count from a clock behind = %d, want 1", u)
	}
	if got := check("d-3", later, count); got.Outcome != RiskCounted {
		t.Fatalf("second count 10 min later: %+v", got)
	}
	if got := check("d-4", later, count); got.Outcome != RiskRefused {
		t.Fatalf("third count 10 min later: %+v, want refused", got)
	}
	if n := s.rdb.HLen(ctx, s.k.risk(m, count.ID)).Val(); n > riskBuckets+2 {
		t.Fatalf("counter holds %d fields", n)
	}
	// The counter key expires: nothing stays behind.
	if ttl := s.rdb.PTTL(ctx, s.k.risk(m, fresh.ID)).Val(); ttl > 0 {
		t.Fatalf("a never-counted counter exists with ttl %v", ttl)
	}
	if ttl := s.rdb.PTTL(ctx, s.k.risk(m, sum.ID)).Val(); ttl <= 0 || ttl > 61*time.Second {
		t.Fatalf("counter ttl = %v, want about one window", ttl)
	}
}

// testRiskNonce: the check never claims the nonce (the create, or the
// caller's refusal, does); a claimed nonce is a replay before anything else
// and counts nothing.
func testRiskNonce(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	s := e.s
	one := RiskLimit{ID: "one:count:60000:m", Max: 1, Add: 1, Window: time.Minute}
	n1 := newNonce(m)
	if r, err := s.RiskCheck(ctx, n1, m, "o-1", false, []RiskLimit{one}, t0); err != nil || r.Outcome != RiskCounted {
		t.Fatalf("first: %+v, %v", r, err)
	}
	if err := s.ClaimNonce(ctx, *n1); err != nil {
		t.Fatalf("a counted check claimed the nonce: %v", err)
	}
	n2 := newNonce(m)
	if r, err := s.RiskCheck(ctx, n2, m, "o-2", false, []RiskLimit{one}, t0); err != nil || r.Outcome != RiskRefused {
		t.Fatalf("second: %+v, %v", r, err)
	}
	if err := s.ClaimNonce(ctx, *n2); err != nil {
		t.Fatalf("a refusal claimed the nonce: %v", err)
	}
	fresh := RiskLimit{ID: "fresh:count:60000:m", Max: 5, Add: 1, Window: time.Minute}
	if _, err := s.RiskCheck(ctx, n2, m, "o-3", false, []RiskLimit{fresh}, t0); !errors.Is(err, ErrNonceReplayed) {
		t.Fatalf("claimed nonce: %v, want ErrNonceReplayed", err)
	}
	if u, err := s.RiskUsage(ctx, m, []RiskLimit{fresh}, t0); err != nil || u[0] != 0 {
		t.Fatalf("a replayed nonce was counted: %v %v", u, err)
	}
	// A copy of a counted request whose nonce is not claimed yet (the two
	// raced; the create claims the nonce after the check) is the same
	// create: it passes without being counted again.
	n3 := newNonce(m)
	for i, want := range []RiskOutcome{RiskCounted, RiskExists} {
		if r, err := s.RiskCheck(ctx, n3, m, "o-4", false, []RiskLimit{fresh}, t0); err != nil || r.Outcome != want {
			t.Fatalf("copy %d of one request: %+v, %v; want %v", i, r, err, want)
		}
	}
	if u, err := s.RiskUsage(ctx, m, []RiskLimit{fresh}, t0); err != nil || u[0] != 1 {
		t.Fatalf("one request counted %v times (%v), want 1", u, err)
	}
}

// testRiskConcurrent: twenty creates at once, from two stores (two gateway
// instances), against a limit of 5: exactly 5 are counted.
func testRiskConcurrent(t *testing.T, e env) {
	ctx := context.Background()
	m := merchantOf(t)
	stores := []*Store{e.s, e.other(t)}
	lim := []RiskLimit{{ID: "per-ip:count:60000:ip:x", Max: 5, Add: 1, Window: time.Minute}}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		counted int
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := stores[i%2].RiskCheck(ctx, newNonce(m), m, fmt.Sprintf("o-%d", i), false, lim, t0)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if r.Outcome == RiskCounted {
				counted++
			}
		}()
	}
	wg.Wait()
	if counted != 5 {
		t.Fatalf("%d of 20 concurrent creates counted, want 5", counted)
	}
	if u, err := e.s.RiskUsage(ctx, m, lim, t0); err != nil || u[0] != 5 {
		t.Fatalf("usage = %v, %v; want [5]", u, err)
	}
}
