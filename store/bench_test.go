package store

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

// BenchmarkCreatePayment: one CreatePayment with a nonce (the POST
// /v1/payments hot path) against a real redis-server on loopback.
func BenchmarkCreatePayment(b *testing.B) {
	s := openAddrs(b, storetest.Redis(b).Addr())
	benchCreatePayment(b, s)
}

// BenchmarkCreatePaymentEmbedded is the same against the embedded store.
func BenchmarkCreatePaymentEmbedded(b *testing.B) {
	benchCreatePayment(b, openStore(b, config.Redis{}))
}

func benchCreatePayment(b *testing.B, s *Store) {
	ctx := context.Background()
	recs := make([]*payment.Record, b.N)
	for i := range recs {
		recs[i] = newPayment("bench", "order-"+strconv.Itoa(i), 100)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := &Nonce{Merchant: "bench", Value: "nonce-create-" + strconv.Itoa(i), TTL: 10 * time.Minute}
		if _, created, err := s.CreatePayment(ctx, n, recs[i], t0); err != nil || !created {
			b.Fatalf("create: %v %v", created, err)
		}
	}
}

// BenchmarkClaimNonce: one nonce claim (every authenticated request).
func BenchmarkClaimNonce(b *testing.B) {
	s := openAddrs(b, storetest.Redis(b).Addr())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.ClaimNonce(ctx, Nonce{Merchant: "bench", Value: "nonce-" + strconv.Itoa(i), TTL: 10 * time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRiskCheck: the risk check of one create that passes (every
// limit has room, the create is counted), with 1 and 3 limits, against a
// real redis-server on loopback. The merchant-keyed limit's bucket hash holds
// its window (60 buckets) once the run is past its first minute of
// injected time.
func BenchmarkRiskCheck(b *testing.B) {
	s := openAddrs(b, storetest.Redis(b).Addr())
	for _, n := range []int{1, 3} {
		b.Run(strconv.Itoa(n)+"limits", func(b *testing.B) {
			s.rdb.ConfigResetStat(context.Background())
			benchRiskCheck(b, s, n)
			b.ReportMetric(scriptMicros(b, s), "redis-µs/op")
		})
	}
}

// scriptMicros is the Redis CPU per script call (EVALSHA) since the last
// CONFIG RESETSTAT, from INFO commandstats.
func scriptMicros(b *testing.B, s *Store) float64 {
	info, err := s.rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
	}
	b.Fatalf("no evalsha in INFO commandstats:\n%s", info)
	return 0
}

// BenchmarkRiskCheckEmbedded is the same against the embedded store.
func BenchmarkRiskCheckEmbedded(b *testing.B) {
	s := openStore(b, config.Redis{})
	benchRiskCheck(b, s, 3)
}

func benchRiskCheck(b *testing.B, s *Store, n int) {
	ctx := context.Background()
	limits := []RiskLimit{
		{ID: "per-merchant:count:3600000:m", Max: 1 << 40, Add: 1, Window: time.Hour},
		{ID: "per-payer:count:60000:o:0123456789abcdef01234567", Max: 1 << 40, Add: 1, Window: time.Minute},
		{ID: "big:amount:86400000:ip:0123456789abcdef01234567", Max: 1 << 50, Add: 1999, Window: 24 * time.Hour},
	}[:n]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// One create per injected second: the windows fill their buckets.
		now := t0.Add(time.Duration(i) * time.Second)
		nonce := &Nonce{Merchant: "bench", Value: "nonce-risk-" + strconv.Itoa(n) + "-" + strconv.Itoa(i), TTL: 10 * time.Minute}
		r, err := s.RiskCheck(ctx, nonce, "bench", "order-"+strconv.Itoa(i), false, limits, now)
		if err != nil || r.Outcome != RiskCounted {
			b.Fatalf("risk check: %+v %v", r, err)
		}
	}
}
