package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Risk velocity counters (package risk decides what to count; the store
// counts it atomically, shared by every instance).
//
// One counter is a hash "<prefix>:{M}:rk:<id>" under the merchant's hash
// tag, so that one script can check and count every limit of a create, with
// its nonce and out_trade_no index, on one Cluster slot. Its fields are
// time buckets (bucket index = unix ms / (window / riskBuckets)) holding the
// sum added in that bucket, plus the running total and a low-water mark
// (luaRiskUsage); the window is the last riskBuckets buckets, the current
// one included. A hash therefore holds at most riskBuckets+2 fields (stale
// ones are deleted when it is next checked) and expires one window after its
// last count: nothing grows without bound.

// riskBuckets is how many buckets a window is cut into: a count leaves the
// window between window − window/riskBuckets and window after it was made.
const riskBuckets = 60

// RiskLimit is one velocity limit a create is checked against.
type RiskLimit struct {
	// ID names the counter under the merchant's tag (the rule, what it
	// counts and the value counted). It must not be empty.
	ID     string
	Max    int64         // most the window may hold (creates, or fen)
	Add    int64         // what this create adds (1, or its amount); ≥ 1
	Window time.Duration // ≥ riskBuckets milliseconds
}

// RiskOutcome is what RiskCheck did.
type RiskOutcome int

const (
	// RiskCounted: every limit had room; the create was added to all of them.
	RiskCounted RiskOutcome = iota
	// RiskRefused: the block flag was set or a limit had no room; nothing
	// was counted. The nonce is left for the caller to claim with its answer.
	RiskRefused
	// RiskExists: the out_trade_no is already indexed (a replay or a
	// conflict, answered by CreatePayment); nothing was checked or counted.
	RiskExists
)

// RiskResult is RiskCheck's answer.
type RiskResult struct {
	Outcome RiskOutcome
	// Limit is the index in limits of the limit that refused; -1 when the
	// block flag refused, or when nothing was refused.
	Limit int
}

// luaRiskUsage reads a counter's window. Besides its bucket fields a
// counter keeps two: "sum", the total of its buckets, and "lo", at or below
// its lowest bucket. A check therefore costs O(1) however full the window
// is: it reads sum and lo, and only subtracts the buckets from lo up to the
// window's lowest one, which have just left the window (usually none or
// one). With prune, those are deleted and lo is moved up; a counter idle for
// much longer than its window (its buckets far behind) is summed afresh.
const luaRiskUsage = `
local function usage(key, lo, prune)
  local h = redis.call('HMGET', key, 'sum', 'lo')
  local sum, from, low = tonumber(h[1]) or 0, tonumber(h[2]), tonumber(lo)
  if not from or from >= low then return sum end
  local stale, gone = {}, 0
  if low - from <= 256 then
    for f = from, low - 1 do stale[#stale + 1] = tostring(f) end
    local v = redis.call('HMGET', key, unpack(stale))
    for i = 1, #v do gone = gone + (tonumber(v[i]) or 0) end
  else
    local all, fresh = redis.call('HGETALL', key), 0
    for j = 1, #all, 2 do
      local f = tonumber(all[j])
      if f and f < low then stale[#stale + 1] = all[j] elseif f then fresh = fresh + tonumber(all[j + 1]) end
    end
    gone = sum - fresh
  end
  if prune then
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    if gone ~= 0 then redis.call('HINCRBY', key, 'sum', -gone) end
    redis.call('HSET', key, 'lo', lo)
  end
  return sum - gone
end
`

// scRiskCheck: KEYS nonce, out_trade_no index, the nonce's "counted" mark,
// then one counter per limit. ARGV ttl (empty: no nonce; otherwise the
// mark's TTL in ms), block ("1": refuse), then per limit: max, add, bucket,
// lowest bucket of the window, ttl ms. Every limit is checked before any is
// counted, so a refused create consumes no window. A count marks the nonce:
// a second copy of the same signed request arriving before the create
// claimed the nonce is the same create, so it passes uncounted (one of the
// two then fails its nonce claim).
var scRiskCheck = redis.NewScript(luaRiskUsage + `
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then return {'replay'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then return {'exists'} end
if ARGV[2] == '1' then return {'refused', 0} end
for i = 4, #KEYS do
  local a = 3 + (i - 4) * 5
  if usage(KEYS[i], ARGV[a + 3], true) + tonumber(ARGV[a + 1]) > tonumber(ARGV[a]) then return {'refused', i - 3} end
end
if ARGV[1] ~= '' then redis.call('SET', KEYS[3], '1', 'PX', ARGV[1]) end
for i = 4, #KEYS do
  local a = 3 + (i - 4) * 5
  redis.call('HINCRBY', KEYS[i], ARGV[a + 2], ARGV[a + 1])
  redis.call('HINCRBY', KEYS[i], 'sum', ARGV[a + 1])
  local cur = tonumber(redis.call('HGET', KEYS[i], 'lo'))
  if not cur then
    redis.call('HSET', KEYS[i], 'lo', ARGV[a + 3])
  elseif tonumber(ARGV[a + 2]) < cur then
    redis.call('HSET', KEYS[i], 'lo', ARGV[a + 2]) -- a clock behind the others'
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[a + 4])
end
return {'ok'}
`)

// scRiskUsage: KEYS counters; ARGV the lowest bucket of each window.
// Read-only: returns each counter's sum.
var scRiskUsage = redis.NewScript(luaRiskUsage + `
local out = {'ok'}
for i = 1, #KEYS do out[#out + 1] = usage(KEYS[i], ARGV[i], false) end
return out
`)

// riskArgs is a limit's counter key and its bucket arguments at now.
func (s *Store) riskArgs(merchant string, l RiskLimit, now time.Time) (key string, bucket, lo, ttl string, err error) {
	if l.ID == "" || l.Add < 1 || l.Max < 1 || l.Window < riskBuckets*time.Millisecond {
		return "", "", "", "", fmt.Errorf("store: bad risk limit %+v", l)
	}
	width := l.Window.Milliseconds() / riskBuckets
	b := now.UnixMilli() / width
	return s.k.risk(merchant, l.ID), strconv.FormatInt(b, 10), strconv.FormatInt(b-riskBuckets+1, 10),
		strconv.FormatInt(l.Window.Milliseconds()+width, 10), nil
}

// RiskCheck checks one create against its risk limits and counts it, in one
// atomic script (one round trip), in this order:
//
//   - n (if not nil) already claimed: ErrNonceReplayed; nothing done.
//   - the merchant's outTradeNo already indexed, or n already counted by
//     an earlier check (a copy of the same signed request racing it):
//     RiskExists; nothing done (one create is not judged or counted twice).
//   - block set: RiskRefused (Limit -1), nothing counted.
//   - any limit without room for its Add: RiskRefused naming the first
//     one, nothing counted.
//   - else RiskCounted: Add is added to every limit.
//
// n is only read, never claimed: the create claims it after a count, and
// the caller claims it with a refusal (as it does for any refused create).
// A claimed n is checked here so that a replayed request is never counted.
func (s *Store) RiskCheck(ctx context.Context, n *Nonce, merchant, outTradeNo string, block bool, limits []RiskLimit, now time.Time) (RiskResult, error) {
	if merchant == "" {
		return RiskResult{}, errEmptyMerchant
	}
	if outTradeNo == "" {
		return RiskResult{}, errors.New("store: empty out_trade_no")
	}
	nk, ttl, err := s.nonceArgs(n, merchant)
	if err != nil {
		return RiskResult{}, err
	}
	flag := ""
	if block {
		flag = "1"
	}
	mark := s.k.riskNonce(merchant, "")
	if n != nil {
		mark = s.k.riskNonce(merchant, n.Value)
	}
	keys := []string{nk, s.k.outTradeNo(merchant, outTradeNo), mark}
	args := []any{ttl, flag}
	for _, l := range limits {
		key, b, lo, kttl, err := s.riskArgs(merchant, l, now)
		if err != nil {
			return RiskResult{}, err
		}
		keys = append(keys, key)
		args = append(args, strconv.FormatInt(l.Max, 10), strconv.FormatInt(l.Add, 10), b, lo, kttl)
	}
	res, err := s.run(ctx, "risk check", scRiskCheck, keys, args...)
	if err != nil {
		return RiskResult{}, err
	}
	switch o := outcome(res); o {
	case "ok":
		return RiskResult{Outcome: RiskCounted, Limit: -1}, nil
	case "exists":
		return RiskResult{Outcome: RiskExists, Limit: -1}, nil
	case "refused":
		if len(res) < 2 {
			return RiskResult{}, errors.New("store: risk check: refusal without its limit")
		}
		return RiskResult{Outcome: RiskRefused, Limit: int(num(res[1])) - 1}, nil
	case "replay":
		return RiskResult{}, ErrNonceReplayed
	default:
		return RiskResult{}, fmt.Errorf("store: risk check: unexpected outcome %q", o)
	}
}

// RiskUsage reads what each limit's window holds at now, without counting
// anything (for /admin/risk/explain). The limits' Add is not used.
func (s *Store) RiskUsage(ctx context.Context, merchant string, limits []RiskLimit, now time.Time) ([]int64, error) {
	if merchant == "" {
		return nil, errEmptyMerchant
	}
	if len(limits) == 0 {
		return nil, nil
	}
	keys := make([]string, len(limits))
	args := make([]any, len(limits))
	for i, l := range limits {
		l.Add = 1
		key, _, lo, _, err := s.riskArgs(merchant, l, now)
		if err != nil {
			return nil, err
		}
		keys[i], args[i] = key, lo
	}
	res, err := s.run(ctx, "risk usage", scRiskUsage, keys, args...)
	if err != nil {
		return nil, err
	}
	if len(res) != len(limits)+1 {
		return nil, fmt.Errorf("store: risk usage: %d values for %d limits", len(res)-1, len(limits))
	}
	out := make([]int64, len(limits))
	for i := range out {
		out[i] = num(res[i+1])
	}
	return out, nil
}
