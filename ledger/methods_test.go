package ledger

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/storetest"
)

// TestSameMethodsAsStore: a *Ledger can replace a *store.Store wholesale:
// every exported method of the Redis store exists on the ledger with the
// same signature.
func TestSameMethodsAsStore(t *testing.T) {
	st, lt := reflect.TypeOf(&store.Store{}), reflect.TypeOf(&Ledger{})
	var names []string
	for i := 0; i < st.NumMethod(); i++ {
		m := st.Method(i)
		names = append(names, m.Name)
		lm, ok := lt.MethodByName(m.Name)
		if !ok {
			t.Errorf("ledger lacks %s%s", m.Name, m.Type)
			continue
		}
		// Compare without the receiver.
		if sig(m.Type) != sig(lm.Type) {
			t.Errorf("%s: store %s, ledger %s", m.Name, sig(m.Type), sig(lm.Type))
		}
	}
	sort.Strings(names)
	t.Logf("%d methods: %v", len(names), names)
}

func sig(f reflect.Type) string {
	s := "("
	for i := 1; i < f.NumIn(); i++ {
		s += f.In(i).String() + ","
	}
	s += ")("
	for i := 0; i < f.NumOut(); i++ {
		s += f.Out(i).String() + ","
	}
	return s + ")"
}

// TestDelegatesToRedis: nonces, throttles and health live in the shared
// Redis, visible to a plain store on the same server.
func TestDelegatesToRedis(t *testing.T) {
	t.Parallel()
	addr := storetest.Redis(t).Addr()
	l := New(nil, openRedis(t, addr), nil)
	other := openRedis(t, addr)
	ctx := context.Background()
	n := store.Nonce{Merchant: "m", Value: "nonce-delegated-01", TTL: time.Minute}
	if err := l.ClaimNonce(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := other.ClaimNonce(ctx, n); !errors.Is(err, store.ErrNonceReplayed) {
		t.Fatalf("the nonce is not in Redis: %v", err)
	}
	if ok, err := l.Throttle(ctx, "m", "query:x", time.Minute); err != nil || !ok {
		t.Fatalf("throttle: %v %v", ok, err)
	}
	if ok, _ := other.Throttle(ctx, "m", "query:x", time.Minute); ok {
		t.Fatal("the throttle is not in Redis")
	}
	if err := l.AddHealth(ctx, []store.HealthBucket{{Channel: "c", Bucket: 7, OK: 3, Fail: 1, LatencyMS: 40}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	hb, err := other.ReadHealth(ctx, "c", 7, 7)
	if err != nil || len(hb) != 1 || hb[0].OK != 3 {
		t.Fatalf("health: %+v %v", hb, err)
	}
	if hb2, err := l.ReadHealth(ctx, "c", 7, 7); err != nil || len(hb2) != 1 || hb2[0] != hb[0] {
		t.Fatalf("ledger's health read: %+v %v", hb2, err)
	}
}
