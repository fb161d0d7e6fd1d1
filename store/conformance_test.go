package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/conformance"
	"github.com/paygate/paygate/store/storetest"
)

func openForConformance(t *testing.T, cfg config.Redis) *store.Store {
	s, err := store.Open(cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformanceRedis runs the suite the PostgreSQL ledger runs too, on a
// real redis-server (a fresh one per case).
func TestConformanceRedis(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) conformance.Ledger {
		return openForConformance(t, config.Redis{Addrs: []string{storetest.Redis(t).Addr()}})
	})
}

// TestConformanceEmbedded runs it on the embedded store, the sandbox ledger.
func TestConformanceEmbedded(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) conformance.Ledger {
		return openForConformance(t, config.Redis{})
	})
}

// TestConformanceCluster runs it on a three-master Redis Cluster, each case
// under its own key prefix: every script must keep to one slot.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	addrs := storetest.Cluster(t, 3)
	var n atomic.Int32
	conformance.Run(t, func(t *testing.T) conformance.Ledger {
		return openForConformance(t, config.Redis{Addrs: addrs, KeyPrefix: fmt.Sprint("c", n.Add(1))})
	})
}
