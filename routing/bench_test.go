package routing

import (
	"context"
	"testing"

	"github.com/paygate/paygate/payment"
)

// BenchmarkDecide: six rules, the fifth matches (two candidates), with
// metadata on the request; health windows hold some samples.
func BenchmarkDecide(b *testing.B) {
	r, _ := newRouter(b, baseConfig(), nil)
	callN(b, r, "wx", 5, errTech)
	callN(b, r, "ali", 50, nil)
	tab := r.Table()
	req := Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY", Metadata: map[string]string{"region": "north"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = tab.Decide(req)
	}
}

func BenchmarkDecideParallel(b *testing.B) {
	r, _ := newRouter(b, baseConfig(), nil)
	tab := r.Table()
	req := Request{Merchant: "demo", Method: payment.MethodQR, Amount: 100, Currency: "CNY"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = tab.Decide(req)
		}
	})
}

// BenchmarkCall: a successful call through the breaker and health window;
// the caller's context has a deadline, as the gateway's does.
func BenchmarkCall(b *testing.B) {
	r, _ := newRouter(b, baseConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1<<40)
	defer cancel()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Call(ctx, "wx", "create", fn)
	}
}
