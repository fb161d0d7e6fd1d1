package main

import (
	"fmt"
	"testing"

	"github.com/paygate/paygate/store/storetest"
)

// BenchmarkCreatePaymentEndToEnd: one signed POST /v1/payments through the
// whole gateway (auth, nonce, store on a real redis-server, routing, the
// WeChat Pay adapter's RSA signing and answer verification) to the
// in-process simulator (which verifies and signs too), and back.
func BenchmarkCreatePaymentEndToEnd(b *testing.B) {
	rs := storetest.Redis(b)
	g := startE2E(b, e2eOpts{redisAddr: rs.Addr()})
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if r := g.create(fmt.Sprintf("bench-%d", i), 100, "wechat_native", "http://127.0.0.1:1/n"); r.Status != 201 {
			b.Fatalf("%d %s", r.Status, r.Body)
		}
	}
}
