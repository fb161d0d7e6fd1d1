package ledger

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/paygate/paygate/ledger/pgtest"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/conformance"
	"github.com/paygate/paygate/store/storetest"
)

// BenchmarkRedisMemoryPerPayment: what a payment costs in Redis when the
// ledger keeps the records (the production layout): INFO memory used_memory
// over b.N payments created and then made final through the ledger, with
// nonces measured apart (they expire by themselves). The record, its
// indexes, outbox event and sweep entry are all in PostgreSQL, so the
// figure should be about zero:
//
//	go test -run XXX -bench RedisMemoryPerPayment -benchtime 20000x ./ledger/
func BenchmarkRedisMemoryPerPayment(b *testing.B) {
	srv := pgtest.Start(b)
	ctx := context.Background()
	pool, err := NewPool(ctx, srv.NewDatabase(b), testCfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	addr := storetest.Redis(b).Addr()
	l := New(pool, openRedisB(b, addr), nil)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	used := func() float64 {
		info, err := rdb.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return n
			}
		}
		b.Fatal("no used_memory in INFO memory")
		return 0
	}
	recs := make([]*payment.Record, b.N)
	for i := range recs {
		recs[i] = conformance.NewPayment("bench", "mem-"+strconv.Itoa(i), 1500, conformance.T0)
	}
	b.ResetTimer()
	start := used()
	for _, rec := range recs {
		if _, created, err := l.CreatePayment(ctx, nil, rec, conformance.T0.Add(15*time.Minute)); err != nil || !created {
			b.Fatalf("create: %v %v", created, err)
		}
	}
	paid := conformance.T0.Add(time.Minute)
	for i, rec := range recs {
		rec.Status, rec.PaidAt, rec.UpdatedAt = payment.StatusSucceeded, &paid, paid
		rec.ChannelTradeNo = "42000020261206" + strconv.Itoa(1e9+i)
		if err := l.UpdatePayment(ctx, rec, store.Change{}); err != nil {
			b.Fatalf("succeed: %v", err)
		}
	}
	final := used()
	for i := range recs {
		n := store.Nonce{Merchant: "bench", Value: "mem-nonce-0123456789-" + strconv.Itoa(i), TTL: 10 * time.Minute}
		if err := l.ClaimNonce(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	nonces := used()
	b.StopTimer()
	keys, err := rdb.DBSize(ctx).Result()
	if err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	b.ReportMetric((final-start)/n, "B/payment")
	b.ReportMetric((nonces-final)/n, "B/nonce")
	b.ReportMetric(float64(keys), "keys")
}
