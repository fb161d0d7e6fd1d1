package store

import "github.com/redis/go-redis/v9"

// Lua scripts. Each runs atomically on the node that owns the merchant's
// slot. Conventions:
//
//   - Every script returns a table whose first element is an outcome word
//     ("ok", "created", "exists", "replay", "notfound", "conflict", "state",
//     "exceeds", ...); the Go side maps it to a result or a sentinel error.
//   - A nonce is always KEYS[1] with its TTL in milliseconds in ARGV[1]; an
//     empty ARGV[1] means "no nonce" and KEYS[1] is then never touched. A
//     replayed nonce returns {"replay"} before anything else happens.
//   - Numbers that end up in Redis (versions, scores, amounts) are computed in
//     Go and passed as strings, so no Lua number formatting is involved.
//   - Keys built inside a script (an index's target, event hashes) come from
//     a prefix passed in ARGV that carries the same hash tag as KEYS, so they
//     live in the same slot.
//
// Redis replies a Lua false (a missing key or field) as nil; a table must not
// contain a Lua nil (it would cut the table short), so scripts return the
// false values HMGET gives them.

const luaNonce = `
local function claimed()
  if ARGV[1] == '' then return true end
  return redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) ~= false
end
`

// scCreatePayment: KEYS nonce, out_trade_no index, payment hash, sweep zset,
// list index, list index of the status. ARGV ttl, payment id, rec JSON,
// status, amount, sweep member, sweep at ms (empty: none), payment key
// prefix, created ms. A replay also says whether the payment id is stored (a
// resent call whose first run went through).
//
// The list indexes (for ListPayments) are sorted sets scored by created ms:
// members of equal score sort by payment id, so ZREVRANGEBYSCORE gives the
// order (created, id) descending. The hash keeps cms (created ms) so that a
// status change can move the payment between the per-status indexes.
var scCreatePayment = redis.NewScript(luaNonce + `
if not claimed() then return {'replay', redis.call('EXISTS', KEYS[3])} end
local pid = redis.call('GET', KEYS[2])
if pid then
  local h = redis.call('HMGET', ARGV[8] .. pid, 'rec', 'ver', 'refunded')
  return {'exists', h[1], h[2], h[3]}
end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'dupid'} end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], 'rec', ARGV[3], 'status', ARGV[4], 'ver', '1',
  'amount', ARGV[5], 'refunded', '0', 'reserved', '0', 'cms', ARGV[9])
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6]) end
redis.call('ZADD', KEYS[5], ARGV[9], ARGV[2])
redis.call('ZADD', KEYS[6], ARGV[9], ARGV[2])
return {'created'}
`)

// scGet reads a payment or refund hash. KEYS nonce, object hash. ARGV ttl.
var scGet = redis.NewScript(luaNonce + `
if not claimed() then return {'replay'} end
local h = redis.call('HMGET', KEYS[2], 'rec', 'ver', 'refunded')
if not h[1] then return {'notfound'} end
return {'ok', h[1], h[2], h[3]}
`)

// scGetByIndex reads the object an index key points to. KEYS nonce, index.
// ARGV ttl, object key prefix.
var scGetByIndex = redis.NewScript(luaNonce + `
if not claimed() then return {'replay'} end
local id = redis.call('GET', KEYS[2])
if not id then return {'notfound'} end
local h = redis.call('HMGET', ARGV[2] .. id, 'rec', 'ver', 'refunded')
if not h[1] then return {'notfound'} end
return {'ok', h[1], h[2], h[3]}
`)

// luaChange applies a Change: the event (enqueued once per id, due
// immediately: its score is the merchant's next sequence number, below any
// real time, so fresh events are FIFO and due whatever the caller's clock)
// and the sweep schedule. It uses KEYS[o..o+4] = outbox, event hash, sweep,
// sweep attempts, sequence and ARGV[a..a+5] = event id (empty: none), body, url,
// sweep member, sweep at ms (empty: removes).
const luaChange = `
local function change(o, a)
  local enq = 0
  if ARGV[a] ~= '' and redis.call('EXISTS', KEYS[o+1]) == 0 then
    local seq = redis.call('INCR', KEYS[o+4])
    redis.call('HSET', KEYS[o+1], 'body', ARGV[a+1], 'url', ARGV[a+2], 'att', '0')
    redis.call('ZADD', KEYS[o], tostring(seq), ARGV[a])
    enq = 1
  end
  if ARGV[a+4] == '' then
    redis.call('ZREM', KEYS[o+2], ARGV[a+3])
    redis.call('HDEL', KEYS[o+3], ARGV[a+3])
  else
    redis.call('ZADD', KEYS[o+2], ARGV[a+4], ARGV[a+3])
  end
  return enq
end
`

// scUpdatePayment: KEYS payment hash, then the change keys (2..6).
// ARGV expected ver, new ver, rec JSON, status, then the change args (5..9),
// then the per-status list index prefix (10) and the payment id (11).
var scUpdatePayment = redis.NewScript(luaChange + `
local h = redis.call('HMGET', KEYS[1], 'ver', 'status', 'cms')
local v = h[1]
if not v then return {'notfound'} end
if v ~= ARGV[1] then return {'conflict'} end
if h[2] ~= ARGV[4] and h[3] then
  redis.call('ZREM', ARGV[10] .. h[2], ARGV[11])
  redis.call('ZADD', ARGV[10] .. ARGV[4], h[3], ARGV[11])
end
redis.call('HSET', KEYS[1], 'rec', ARGV[3], 'status', ARGV[4], 'ver', ARGV[2])
return {'ok', change(2, 5)}
`)

// scCreateRefund: KEYS nonce, out_refund_no index, payment hash, refund hash,
// sweep zset, the payment's refund list. ARGV ttl, refund id, rec JSON,
// status, amount, sweep member, sweep at ms (empty: none), refund key
// prefix, payment id, created ms.
//
// The payment hash keeps two counters: refunded (succeeded refunds) and
// reserved (pending refunds). A new refund must fit in what is left of the
// amount after both, so concurrent refunds can never over-refund.
var scCreateRefund = redis.NewScript(luaNonce + `
if not claimed() then return {'replay'} end
local rid = redis.call('GET', KEYS[2])
if rid then
  local h = redis.call('HMGET', ARGV[8] .. rid, 'rec', 'ver')
  return {'exists', h[1], h[2]}
end
local p = redis.call('HMGET', KEYS[3], 'status', 'amount', 'refunded', 'reserved')
if not p[1] then return {'notfound'} end
if p[1] ~= 'succeeded' then return {'state'} end
local amt = tonumber(ARGV[5])
if tonumber(p[3]) + tonumber(p[4]) + amt > tonumber(p[2]) then return {'exceeds'} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {'dupid'} end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[4], 'rec', ARGV[3], 'status', ARGV[4], 'ver', '1',
  'amount', ARGV[5], 'pid', ARGV[9])
if ARGV[4] == 'pending' then
  redis.call('HINCRBY', KEYS[3], 'reserved', ARGV[5])
elseif ARGV[4] == 'succeeded' then
  redis.call('HINCRBY', KEYS[3], 'refunded', ARGV[5])
end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[5], ARGV[7], ARGV[6]) end
redis.call('ZADD', KEYS[6], ARGV[10], ARGV[2])
return {'created'}
`)

// scUpdateRefund: KEYS refund hash, payment hash, then the change keys
// (3..7). ARGV expected ver, new ver, rec JSON, status, payment id, then the
// change args (6..10).
//
// The refund accounting happens exactly once because it is keyed on the
// stored status: only a pending → final transition moves money, and a final
// refund cannot change status again.
var scUpdateRefund = redis.NewScript(luaChange + `
local r = redis.call('HMGET', KEYS[1], 'ver', 'status', 'amount', 'pid')
if not r[1] then return {'notfound'} end
if r[1] ~= ARGV[1] then return {'conflict'} end
if r[4] ~= ARGV[5] then return {'mismatch'} end
local old, new = r[2], ARGV[4]
if old ~= 'pending' and new ~= old then return {'state'} end
if old == 'pending' and new == 'succeeded' then
  redis.call('HINCRBY', KEYS[2], 'refunded', r[3])
  redis.call('HINCRBY', KEYS[2], 'reserved', '-' .. r[3])
elseif old == 'pending' and new == 'failed' then
  redis.call('HINCRBY', KEYS[2], 'reserved', '-' .. r[3])
end
redis.call('HSET', KEYS[1], 'rec', ARGV[3], 'status', new, 'ver', ARGV[2])
return {'ok', change(3, 6)}
`)

// scClaim takes up to max members of a due-time sorted set that are due at or
// before now, pushes each one's score to now+lease and counts the claim.
// KEYS zset, attempts hash (for events unused: the attempts are field att of each event hash).
// ARGV now ms, lease-until ms, max, event key prefix (empty for the sweep).
//
// For events the script also returns the body and URL, and drops an outbox
// entry whose event hash is gone (it can only be gone by manual deletion).
var scClaim = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  if ARGV[4] == '' then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out+1] = id
    out[#out+1] = redis.call('HINCRBY', KEYS[2], id, '1')
  else
    local k = ARGV[4] .. id
    local h = redis.call('HMGET', k, 'body', 'url')
    if not h[1] then
      redis.call('ZREM', KEYS[1], id)
    else
      redis.call('ZADD', KEYS[1], ARGV[2], id)
      out[#out+1] = id
      out[#out+1] = redis.call('HINCRBY', k, 'att', '1')
      out[#out+1] = h[2]
      out[#out+1] = h[1]
    end
  end
end
return out
`)

// scEnqueue: KEYS outbox, event hash. ARGV due ms, id, body, url.
var scEnqueue = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[2], 'body', ARGV[3], 'url', ARGV[4], 'att', '0')
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return {'ok'}
`)

// scAck: KEYS outbox, dead set, event hash. ARGV id, body retention ms.
// Idempotent: acknowledging an event that is already gone does nothing.
var scAck = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return {'ok'}
`)

// scRetry: KEYS outbox, event hash. ARGV at ms, id, last error. Only an
// event still in the outbox is rescheduled, so a retry racing an ack or a
// dead-lettering by another instance (whose lease came after ours) cannot
// resurrect the event; it then does nothing.
var scRetry = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return {'gone'} end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'err', ARGV[3])
return {'ok'}
`)

// scDeadLetter: KEYS outbox, dead set, event hash. ARGV now ms, id, last
// error. Like scRetry, only an event still in the outbox moves.
var scDeadLetter = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return {'gone'} end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], 'err', ARGV[3], 'dead', ARGV[1])
return {'ok'}
`)

// scDeadEvents: KEYS dead set. ARGV last index (limit-1), event key prefix.
// Newest first.
var scDeadEvents = redis.NewScript(`
local ids = redis.call('ZREVRANGE', KEYS[1], '0', ARGV[1])
local out = {}
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[2] .. id, 'body', 'url', 'att', 'err', 'dead')
  if h[1] then
    out[#out+1] = id
    for i = 1, 5 do out[#out+1] = h[i] end
  end
end
return out
`)

// scReplay: KEYS dead set, outbox, event hash. ARGV now ms, id.
var scReplay = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return {'notfound'} end
redis.call('HSET', KEYS[3], 'att', '0')
redis.call('HDEL', KEYS[3], 'dead')
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return {'ok'}
`)

// scUnschedule: KEYS sweep zset, sweep attempts. ARGV member.
var scUnschedule = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return {'ok'}
`)

// scListPayments reads one page of a merchant's list index, newest first.
// KEYS nonce, list index (all, or one status). ARGV ttl, highest score
// (inclusive; '+inf'), lowest score (inclusive; '-inf'), cursor payment id
// (empty: from the top), how many, payment key prefix.
//
// After a cursor (score c, id x) the page takes the entries of score c whose
// id sorts below x, then those of lower scores: (created, id) < (c, x).
// Work is O(log n + ties at c + how many).
var scListPayments = redis.NewScript(luaNonce + `
-- Byte order, as the sorted set orders members (Lua's < on strings follows
-- the server's locale).
local function below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
if not claimed() then return {'replay'} end
local hi, lo, need = ARGV[2], ARGV[3], tonumber(ARGV[5])
local ids = {}
if ARGV[4] ~= '' then
  local c = redis.call('HGET', ARGV[6] .. ARGV[4], 'cms')
  if not c then return {'notfound'} end
  local cn = tonumber(c)
  local inHi = hi == '+inf' or cn <= tonumber(hi)
  local inLo = lo == '-inf' or cn >= tonumber(lo)
  if inHi then
    if inLo then
      for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[2], c, c)) do
        if #ids >= need then break end
        if below(id, ARGV[4]) then ids[#ids+1] = id end
      end
    end
    hi = '(' .. c
  end
end
if #ids < need then
  for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[2], hi, lo, 'LIMIT', '0', tostring(need - #ids))) do
    ids[#ids+1] = id
  end
end
local out = {'ok'}
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[6] .. id, 'rec', 'ver', 'refunded')
  if h[1] then
    out[#out+1] = h[1]; out[#out+1] = h[2]; out[#out+1] = h[3]
  end
end
return out
`)

// scListRefunds: KEYS nonce, payment hash, the payment's refund list. ARGV
// ttl, how many, refund key prefix. Newest first.
var scListRefunds = redis.NewScript(luaNonce + `
if not claimed() then return {'replay'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'notfound'} end
local out = {'ok'}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], '0', tostring(tonumber(ARGV[2]) - 1))) do
  local h = redis.call('HMGET', ARGV[3] .. id, 'rec', 'ver')
  if h[1] then out[#out+1] = h[1]; out[#out+1] = h[2] end
end
return out
`)
