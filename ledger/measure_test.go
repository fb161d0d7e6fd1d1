package ledger

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/ledger/pgtest"
	"github.com/paygate/paygate/payment"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/conformance"
	"github.com/paygate/paygate/store/storetest"
)

// BenchmarkCreatePayment: one CreatePayment with a nonce (nonce in Redis,
// then the insert and its commit in PostgreSQL), from one goroutine and in
// parallel (-cpu), against real servers on loopback.
func BenchmarkCreatePayment(b *testing.B) {
	srv := pgtest.Start(b)
	pool, err := NewPool(context.Background(), srv.NewDatabase(b), testCfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := Migrate(context.Background(), pool); err != nil {
		b.Fatal(err)
	}
	rs := openRedisB(b, storetest.Redis(b).Addr())
	l := New(pool, rs, nil)
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := seq.Add(1)
			rec := conformance.NewPayment("bench", "order-"+strconv.FormatInt(i, 10), 100, conformance.T0)
			n := &store.Nonce{Merchant: "bench", Value: "nonce-" + strconv.FormatInt(i, 10), TTL: 10 * time.Minute}
			if _, created, err := l.CreatePayment(ctx, n, rec, conformance.T0.Add(30*time.Second)); err != nil || !created {
				b.Fatalf("create: %v %v", created, err)
			}
		}
	})
}

func openRedisB(b *testing.B, addr string) *store.Store {
	rs, err := store.Open(configRedis(addr), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rs.Close() })
	return rs
}

// TestMeasure fills a ledger and prints its size per payment and the query
// plans of the list and queue queries (the figures in docs/store.md). It
// runs only with PAYGATE_LEDGER_MEASURE=<rows> (e.g. 2000000): it takes
// minutes.
func TestMeasure(t *testing.T) {
	rows, _ := strconv.Atoi(os.Getenv("PAYGATE_LEDGER_MEASURE"))
	if rows < 100000 {
		t.Skip("set PAYGATE_LEDGER_MEASURE=<rows ≥ 100000> to measure")
	}
	srv := pgtest.Start(t)
	ctx := context.Background()
	cfg := testCfg
	cfg.StatementTimeout = 0 // filling takes minutes
	pool, err := NewPool(ctx, srv.NewDatabase(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// A typical record: a QR payment with its action, one metadata key, one
	// attempt, a channel trade number, paid.
	rec := conformance.NewPayment("big", "order-x", 1999, conformance.T0)
	rec.Action = &payment.Action{Type: "qr_code", CodeURL: "weixin://wxpay/bizpayurl?pr=Xz9bA1cD2"}
	rec.ChannelTradeNo = "4200001234202603011234567890"
	rec.Status = payment.StatusSucceeded
	paid := conformance.T0.Add(time.Minute)
	rec.PaidAt = &paid
	body, err := encodePayment(rec)
	if err != nil {
		t.Fatal(err)
	}
	event := `{"id":"evt_pay_x_payment_succeeded","type":"payment.succeeded","created_at":"2026-03-01T10:01:00Z","data":` + string(body) + `}`

	fill := func(from, to int) {
		t.Helper()
		start := time.Now()
		// Payment i belongs to merchant "big" when i is even, else to one
		// of 1000 others; one every 5 s; every tenth pending; one acked
		// event per payment, and a refund for every twentieth.
		_, err := pool.Exec(ctx, `
		INSERT INTO payments (payment_id, merchant_id, out_trade_no, status, amount, refunded, version, created_at, rec)
		SELECT 'pay_' || lpad(i::text, 24, '0'),
		       CASE WHEN i % 2 = 0 THEN 'big' ELSE 'm' || (i % 1000) END,
		       'order-' || i,
		       CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'succeeded' END,
		       1999, CASE WHEN i % 20 = 1 THEN 500 ELSE 0 END, 3,
		       timestamptz '2025-01-01' + i * interval '5 seconds',
		       jsonb_set($1::jsonb, '{payment_id}', to_jsonb('pay_' || lpad(i::text, 24, '0')))
		FROM generate_series($2::int, $3::int - 1) AS i`, body, from, to)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pool.Exec(ctx, `
		INSERT INTO outbox_events (merchant_id, event_id, state, due_ms, notify_url, body, attempts, acked_at)
		SELECT CASE WHEN i % 2 = 0 THEN 'big' ELSE 'm' || (i % 1000) END,
		       'evt_pay_' || lpad(i::text, 24, '0') || '_payment_succeeded', 'acked', 0,
		       'https://merchant.example/paygate/notify', convert_to($1::text, 'UTF8'), 1, now()
		FROM generate_series($2::int, $3::int - 1) AS i`, event, from, to)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pool.Exec(ctx, `
		INSERT INTO refunds (refund_id, payment_id, merchant_id, out_refund_no, status, amount, version, created_at, rec)
		SELECT 'rfd_' || lpad(i::text, 24, '0') || '000001', 'pay_' || lpad(i::text, 24, '0'),
		       'm' || (i % 1000), 'rf-' || i, 'succeeded', 500, 2,
		       timestamptz '2025-01-01' + i * interval '5 seconds' + interval '1 hour',
		       '{"refund_id":"x","payment_id":"y","out_refund_no":"rf","amount":500,"status":"succeeded","channel_refund_no":"50300001234202603011234567890","reason":"damaged","created_at":"2026-03-01T11:00:00Z","updated_at":"2026-03-01T11:00:05Z","merchant_id":"m1","channel":"wechat-main","notify_url":"https://merchant.example/paygate/notify","channel_order_no":"cCvtq7zHjC0yrTSTwpWcOU1Q","refund_order_no":"cCvtq7zHjC0yrTSTwpWcOU1Q000001"}'::jsonb
		FROM generate_series($1::int, $2::int - 1) AS i WHERE i % 20 = 1`, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range []string{"payments", "outbox_events", "refunds"} {
			if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+tbl); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("filled %d..%d in %s", from, to, time.Since(start).Round(time.Second))
	}
	sizes := func(n int) {
		t.Helper()
		for _, tbl := range []string{"payments", "refunds", "outbox_events"} {
			var heap, idx, total int64
			if err := pool.QueryRow(ctx, `SELECT pg_table_size($1), pg_indexes_size($1), pg_total_relation_size($1)`, tbl).
				Scan(&heap, &idx, &total); err != nil {
				t.Fatal(err)
			}
			fmt.Printf("%-14s %9d rows-of-payments: table %6.0f B, indexes %5.0f B, total %6.0f B per payment\n",
				tbl, n, float64(heap)/float64(n), float64(idx)/float64(n), float64(total)/float64(n))
		}
	}
	fill(0, 100000)
	sizes(100000)
	if rows > 100000 {
		for from := 100000; from < rows; from += 500000 {
			fill(from, min(from+500000, rows))
		}
		sizes(rows)
	}

	mid := fmt.Sprintf("pay_%024d", rows/2)
	plans := []struct{ name, sql string }{
		{"first page", `SELECT version, refunded, rec FROM payments WHERE merchant_id = 'big'
			ORDER BY created_at DESC, payment_id DESC LIMIT 21`},
		{"a page deep in the list (starting_after)", `SELECT version, refunded, rec FROM payments WHERE merchant_id = 'big'
			AND (created_at, payment_id) < ((SELECT created_at FROM payments WHERE payment_id = '` + mid + `'), '` + mid + `')
			ORDER BY created_at DESC, payment_id DESC LIMIT 21`},
		{"status filter", `SELECT version, refunded, rec FROM payments WHERE merchant_id = 'big' AND status = 'pending'
			ORDER BY created_at DESC, payment_id DESC LIMIT 21`},
		{"created range", `SELECT version, refunded, rec FROM payments WHERE merchant_id = 'big'
			AND created_at >= '2025-02-01' AND created_at < '2025-02-02'
			ORDER BY created_at DESC, payment_id DESC LIMIT 21`},
		{"refunds of a payment", `SELECT version, rec FROM refunds WHERE payment_id = 'pay_000000000000000000000021' AND merchant_id = 'm21'
			ORDER BY created_at DESC, refund_id DESC LIMIT 1000`},
		{"by out_trade_no", `SELECT version, refunded, rec FROM payments WHERE merchant_id = 'big' AND out_trade_no = 'order-1000'`},
		{"outbox claim (nothing due among millions of delivered events)", `SELECT event_id, due_ms, seq FROM outbox_events
			WHERE merchant_id = 'big' AND state = 'pending' AND due_ms <= 1772359200000
			ORDER BY due_ms, seq LIMIT 100 FOR UPDATE SKIP LOCKED`},
	}
	for _, p := range plans {
		r, err := pool.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+p.sql)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("\n-- %s\n", p.name)
		for r.Next() {
			var line string
			if err := r.Scan(&line); err != nil {
				t.Fatal(err)
			}
			fmt.Println(line)
		}
		r.Close()
	}
}

func configRedis(addr string) config.Redis { return config.Redis{Addrs: []string{addr}} }
