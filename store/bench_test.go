package store

import (
	"context"
	"strconv"
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
