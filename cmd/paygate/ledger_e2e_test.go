package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/paygate/paygate/store/storetest"
)

// redisKeys returns every key in the Redis at addr with its TTL (-1: none).
func redisKeys(t testing.TB, addr string) map[string]time.Duration {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	out := map[string]time.Duration{}
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		ttl, err := c.PTTL(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl != -2 { // expired between SCAN and PTTL
			out[iter.Val()] = ttl
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLedgerKeepsRedisShortLived: with the ledger, Redis holds only shared,
// short-lived state. After a full flow (payments created, paid, refunded,
// closed, notified, reconciled, listed, risk-counted) every key in Redis
// expires by itself: nothing per payment stays there.
func TestLedgerKeepsRedisShortLived(t *testing.T) {
	rs := storetest.Redis(t)
	g := startE2E(t, e2eOpts{redisAddr: rs.Addr(), pgDSN: newPG(t).NewDatabase(t), extra: `
risk:
  rules:
    - name: velocity
      limit: {count: 1000, per: 1m, by: payer.openid}`})
	site := newMerchantSite(t)
	var ids []string
	for i := range 6 {
		p := g.mustCreate(fmt.Sprintf("ttl-%d", i), 1000, "wechat_native", site.url())
		ids = append(ids, p["payment_id"].(string))
	}
	g.pay(ids[0])
	g.pay(ids[1])
	for _, id := range ids[:2] {
		g.waitFor("/v1/payments/"+id, "succeeded", statusIs("succeeded"))
		site.waitEvent("payment.succeeded", id)
	}
	r := g.call(http.MethodPost, "/v1/payments/"+ids[0]+"/refunds", map[string]any{"out_refund_no": "ttl-rf", "amount": 100})
	if r.Status != 201 {
		t.Fatalf("refund: %d %s", r.Status, r.Body)
	}
	if r := g.call(http.MethodPost, "/v1/payments/"+ids[2]+"/close", nil); r.Status != 200 {
		t.Fatalf("close: %d %s", r.Status, r.Body)
	}
	site.waitEvent("payment.closed", ids[2])
	g.waitFor("/v1/refunds?out_refund_no=ttl-rf", "succeeded", statusIs("succeeded"))
	g.get("/v1/payments?limit=100")
	g.get("/v1/payments/" + ids[0] + "/refunds")
	if r := g.create("ttl-0", 1000, "wechat_native", site.url()); r.Status != 200 { // a replay
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	g.drainOutbox()

	keys := redisKeys(t, rs.Addr())
	if len(keys) == 0 {
		t.Fatal("no keys in Redis at all: the flow did not use it (nonces, throttles, health)")
	}
	for k, ttl := range keys {
		if ttl < 0 {
			t.Errorf("key %s has no TTL: it would stay in Redis for ever", k)
		}
	}
	t.Logf("%d keys in Redis after the flow, all expiring", len(keys))
}

// TestPurgeDeliveredEvents: the ledger's delivered notifications are purged
// once older than store.postgres.purge_delivered_after; queued ones stay.
func TestPurgeDeliveredEvents(t *testing.T) {
	dsn := newPG(t).NewDatabase(t)
	var clock shiftClock
	g := startE2EWith(t, e2eOpts{redisAddr: storetest.Redis(t).Addr(), pgDSN: dsn}, options{now: clock.now, purgeEvery: 50 * time.Millisecond})
	site := newMerchantSite(t)
	id := g.mustCreate("purge-1", 100, "wechat_native", site.url())["payment_id"].(string)
	g.pay(id)
	site.waitEvent("payment.succeeded", id)
	g.drainOutbox()
	count := func() int {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM outbox_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	time.Sleep(200 * time.Millisecond) // several purges run: the event is too young
	if n := count(); n != 1 {
		t.Fatalf("%d events in the outbox before the retention passed, want the delivered one", n)
	}
	clock.advance(169 * time.Hour) // past the default 168h
	deadline := time.Now().Add(10 * time.Second)
	for count() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the delivered event was never purged")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
