package store

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store/storetest"
)

// BenchmarkMemoryPerPayment: Redis memory (INFO memory used_memory) per
// payment, b.N payments of one merchant as a WeChat Pay Native create leaves
// them (QR code action, one attempt) and then once final (succeeded, paid,
// the channel's trade number, off the sweep schedule), every key and index
// included; nonces are measured apart (b.N claims, each with a TTL). The
// figure needs a large b.N:
//
//	go test -run XXX -bench MemoryPerPayment -benchtime 100000x ./store/
func BenchmarkMemoryPerPayment(b *testing.B) {
	s := openAddrs(b, storetest.Redis(b).Addr())
	ctx := context.Background()
	used := func() float64 {
		info, err := s.rdb.Info(ctx, "memory").Result()
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
	const workers = 8
	each := func(f func(i int)) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < b.N; i += workers {
					f(i)
				}
			}()
		}
		wg.Wait()
	}
	recs := make([]*payment.Record, b.N)
	for i := range recs {
		rec := newPayment("merchant-0001", "ld0123456789ab-"+strconv.FormatInt(int64(i), 36), 1500)
		rec.Method, rec.Subject, rec.Metadata = payment.MethodWechatNative, "paygate load", nil
		rec.NotifyURL = "http://127.0.0.1:9/paygate-load"
		rec.Action = &payment.Action{Type: "qr_code", CodeURL: "weixin://wxpay/bizpayurl?pr=" + payment.OrderNo(rec.PaymentID)[:14]}
		rec.Attempts = []payment.Attempt{{Channel: "wechat-main", Outcome: payment.OutcomeCreated, LatencyMS: 4, At: t0}}
		recs[i] = rec
	}
	b.ResetTimer()
	start := used()
	each(func(i int) {
		if _, created, err := s.CreatePayment(ctx, nil, recs[i], t0.Add(15*time.Minute)); err != nil || !created {
			b.Fatalf("create: %v %v", created, err)
		}
	})
	pending := used()
	paid := t0.Add(time.Minute)
	each(func(i int) {
		rec := recs[i]
		rec.Version = 1
		rec.Status, rec.PaidAt, rec.UpdatedAt = payment.StatusSucceeded, &paid, paid
		rec.ChannelTradeNo = "4200002026120600" + strconv.FormatInt(1e12+int64(i), 10)
		if err := s.UpdatePayment(ctx, rec, Change{}); err != nil {
			b.Fatalf("succeed: %v", err)
		}
	})
	final := used()
	each(func(i int) {
		n := Nonce{Merchant: "merchant-0001", Value: "ld0123456789abcdef-" + strconv.FormatInt(int64(i), 36), TTL: 5 * time.Minute}
		if err := s.ClaimNonce(ctx, n); err != nil {
			b.Fatal(err)
		}
	})
	nonces := used()
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric((pending-start)/n, "B/pending")
	b.ReportMetric((final-start)/n, "B/payment")
	b.ReportMetric((nonces-final)/n, "B/nonce")
}
