package store

import (
	"errors"
	"strconv"
	"strings"
)

// keyspace builds every Redis key the store uses. All keys of merchant M
// start with "<prefix>:{M}:", so they share the Cluster hash tag {M} and hash
// to one slot: that is what lets a single Lua script touch a payment, its
// indexes, the merchant's nonces, outbox and sweep schedule atomically on a
// Cluster. Scripts that build further key names inside Lua (event hashes,
// the payment an index points to) only ever build names under the same tag.
//
// The two exceptions: the payment → merchant index (no tag: one key per
// payment, read by channel callbacks before the merchant is known) and the
// channel health buckets (tag {h:<channel>} per channel).
type keyspace struct {
	prefix string
}

var errEmptyMerchant = errors.New("store: empty merchant id")

// base is "<prefix>:{M}:". An empty M would give the empty tag "{}", which
// Redis ignores (the whole key is hashed), so callers reject it first.
func (k keyspace) base(m string) string { return k.prefix + ":{" + m + "}:" }

func (k keyspace) nonce(m, v string) string      { return k.base(m) + "n:" + v }
func (k keyspace) payment(m, id string) string   { return k.base(m) + "p:" + id }
func (k keyspace) paymentPrefix(m string) string { return k.base(m) + "p:" }
func (k keyspace) outTradeNo(m, no string) string {
	return k.base(m) + "otn:" + no
}
func (k keyspace) refund(m, id string) string   { return k.base(m) + "r:" + id }
func (k keyspace) refundPrefix(m string) string { return k.base(m) + "r:" }
func (k keyspace) outRefundNo(m, no string) string {
	return k.base(m) + "orn:" + no
}
func (k keyspace) event(m, id string) string   { return k.base(m) + "ev:" + id }
func (k keyspace) eventPrefix(m string) string { return k.base(m) + "ev:" }
func (k keyspace) outbox(m string) string      { return k.base(m) + "outbox" }
func (k keyspace) dead(m string) string        { return k.base(m) + "dead" }
func (k keyspace) seq(m string) string         { return k.base(m) + "seq" }
func (k keyspace) payments(m string) string    { return k.base(m) + "pl" }
func (k keyspace) paymentsByStatus(m, st string) string {
	return k.base(m) + "pl:" + st
}
func (k keyspace) refundsOf(m, pid string) string   { return k.base(m) + "rl:" + pid }
func (k keyspace) sweep(m string) string            { return k.base(m) + "sweep" }
func (k keyspace) sweepAttempts(m string) string    { return k.base(m) + "sweep:att" }
func (k keyspace) throttle(m, key string) string    { return k.base(m) + "th:" + key }
func (k keyspace) risk(m, id string) string         { return k.base(m) + "rk:" + id }
func (k keyspace) riskNonce(m, v string) string     { return k.base(m) + "rkn:" + v }
func (k keyspace) paymentMerchant(id string) string { return k.prefix + ":pm:" + id }
func (k keyspace) healthBase(channel string) string { return k.prefix + ":{h:" + channel + "}:" }
func (k keyspace) health(channel string, b int64) string {
	return k.healthBase(channel) + strconv.FormatInt(b, 10)
}

// sweepMember is the sweep schedule's member for one object.
func sweepMember(kind, id string) string { return kind + ":" + id }

func parseSweepMember(m string) (kind, id string) {
	kind, id, _ = strings.Cut(m, ":")
	return kind, id
}

func validPrefix(p string) bool {
	return p != "" && !strings.ContainsAny(p, "{}")
}
