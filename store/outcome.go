package store

import (
	"errors"
	"fmt"
	"net"

	"github.com/redis/go-redis/v9"
)

// wrapScript is wrap for a script run: a script is a write (every one claims
// a nonce, most change records), so a failure after the command may have
// reached Redis — a read timeout, a connection reset or closed while waiting
// for the reply — is ErrOutcomeUnknown: Redis may have run it (a frozen
// server runs what it buffered once it resumes), and the caller must not
// say that nothing was done. Failures before anything was sent (no
// connection could be made or taken from the pool, the client is closed)
// and error replies (Redis answered, refusing) stay as wrap classifies them.
func wrapScript(op string, err error) error {
	if err != nil && !readOnly[op] && unavailable(err) && maybeSent(err) {
		return fmt.Errorf("store: %s: %w: %w", op, ErrOutcomeUnknown, err)
	}
	return wrap(op, err)
}

// readOnly are the scripts that change nothing but claim the request's
// nonce: whatever became of them, no record was written, so "nothing was
// done" stays true.
var readOnly = map[string]bool{
	"get payment": true, "get refund": true, "list payments": true, "list refunds": true,
	"dead events": true, "risk usage": true,
}

// maybeSent reports whether a failed command may have reached the server.
func maybeSent(err error) bool {
	var re redis.Error
	if errors.As(err, &re) {
		return false // the server answered
	}
	if errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return false
	}
	return true
}
