package store

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

// TestCluster runs the whole suite on a three-master Redis Cluster. Redis
// refuses a script that touches a key outside the slot of its declared keys,
// and a multi-key pipeline step that spans slots, so every script and
// pipeline passing here is proof that the merchant's keys share a slot.
func TestCluster(t *testing.T) {
	t.Parallel()
	addrs := storetest.Cluster(t, 3)

	t.Run("KeySlots", func(t *testing.T) {
		t.Parallel()
		for _, m := range []string{"demo", "merchant-42", "m_x"} {
			keys := merchantKeys(keyspace{prefix: "pg"}, m)
			want, err := storetest.KeySlot(addrs[0], m)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				got, err := storetest.KeySlot(addrs[0], k)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("key %s is in slot %d, merchant %s in %d", k, got, m, want)
				}
				if s := slotOf(k); s != got {
					t.Errorf("slotOf(%s) = %d, CLUSTER KEYSLOT = %d", k, s, got)
				}
			}
		}
	})

	t.Run("DataSpreadOverNodes", func(t *testing.T) {
		t.Parallel()
		// Different merchants land on different masters: the trade-off is
		// per merchant, not for the whole gateway.
		s := openAddrs(t, addrs...)
		cc := s.rdb.(*redis.ClusterClient)
		nodes := map[string]bool{}
		for _, m := range []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"} {
			mustCreate(t, s, newPayment(m, "o1", 1))
			shard, err := cc.MasterForKey(context.Background(), s.k.outbox(m))
			if err != nil {
				t.Fatal(err)
			}
			nodes[shard.Options().Addr] = true
		}
		if len(nodes) < 2 {
			t.Fatalf("8 merchants all on %v", nodes)
		}
	})

	t.Run("Suite", func(t *testing.T) {
		t.Parallel()
		runSuite(t, func(t *testing.T) env {
			return env{s: openAddrs(t, addrs...), other: func(t *testing.T) *Store { return openAddrs(t, addrs...) }}
		})
	})
}

// merchantKeys lists every key the store can create for merchant m,
// including those built inside scripts from a prefix.
func merchantKeys(k keyspace, m string) []string {
	pid := payment.NewPaymentID()
	rid := payment.NewRefundID(pid)
	return []string{
		k.nonce(m, "abcdefghijklmnop"), k.nonce(m, ""),
		k.payment(m, pid), k.paymentPrefix(m) + pid, k.outTradeNo(m, "order-1"),
		k.refund(m, rid), k.refundPrefix(m) + rid, k.outRefundNo(m, "rf-1"),
		k.event(m, "evt_1"), k.eventPrefix(m) + "evt_1", k.event(m, ""),
		k.outbox(m), k.dead(m), k.seq(m), k.sweep(m), k.sweepAttempts(m), k.throttle(m, "query:"+pid),
		k.payments(m), k.paymentsByStatus(m, "succeeded"), k.paymentsByStatus(m, ""), k.refundsOf(m, pid),
	}
}

// TestHashTags checks the key layout without a cluster: every key of a
// merchant hashes like the merchant id alone, one channel's health buckets
// share a slot, and the slot function agrees with the published test vector.
func TestHashTags(t *testing.T) {
	t.Parallel()
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16 test vector = %#x, want 0x31c3", got)
	}
	k := keyspace{prefix: "pg"}
	for _, m := range []string{"demo", "a", "merchant_with-long-id-0123456789"} {
		for _, key := range merchantKeys(k, m) {
			if !strings.Contains(key, "{"+m+"}") {
				t.Errorf("key %s lacks the tag {%s}", key, m)
			}
			if slotOf(key) != slotOf(m) {
				t.Errorf("key %s: slot %d, merchant %s: %d", key, slotOf(key), m, slotOf(m))
			}
		}
	}
	if a, b := slotOf(k.health("wechat-main", 1)), slotOf(k.health("wechat-main", 99999)); a != b {
		t.Errorf("one channel's health buckets in slots %d and %d", a, b)
	}
}

// slotOf is Redis Cluster's key → slot function (CRC16/XMODEM of the hash
// tag, or of the key without one, mod 16384).
func slotOf(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16([]byte(key)) % 16384)
}

func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
