package engine

import (
	"context"
	"time"

	"github.com/paygate/paygate/store"
)

// Store is what the engine keeps in the shared store: the payment and
// refund records (store.Records, implemented by the Redis store and the
// PostgreSQL ledger alike) and a throttle for channel queries.
type Store interface {
	store.Records
	Throttle(ctx context.Context, merchant, key string, ttl time.Duration) (bool, error)
}

var _ Store = (*store.Store)(nil)
