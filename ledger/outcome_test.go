package ledger

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/ledger/pgtest"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/conformance"
	"github.com/paygate/paygate/store/storetest"
)

// cutProxy relays TCP between the ledger and PostgreSQL. Armed with a
// trigger, it cuts the connection at the first client message containing
// the trigger: before forwarding it (the server never sees it) or after
// (the server runs it, the client never hears the answer).
type cutProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	trigger []byte
	after   bool
	fired   atomic.Bool
	conns   []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
	})
	go p.serve()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// arm makes the proxy cut at the next message containing trigger
// (case-insensitive), after forwarding it if after is true.
func (p *cutProxy) arm(trigger string, after bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger, p.after = bytes.ToLower([]byte(trigger)), after
	p.fired.Store(false)
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		muted := &atomic.Bool{}
		go downstream(c, s, muted)
		go p.upstream(c, s, muted)
	}
}

// downstream relays the server's answers until muted.
func downstream(c, s net.Conn, muted *atomic.Bool) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if err != nil || muted.Load() {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *cutProxy) upstream(c, s net.Conn, muted *atomic.Bool) {
	defer c.Close()
	defer s.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		chunk := buf[:n]
		p.mu.Lock()
		trig, after := p.trigger, p.after
		p.mu.Unlock()
		if trig != nil && bytes.Contains(bytes.ToLower(chunk), trig) && p.fired.CompareAndSwap(false, true) {
			muted.Store(true)
			if after {
				_, _ = s.Write(chunk)
				// Let the server run it; then the answer is lost with the
				// connection.
				time.Sleep(300 * time.Millisecond)
			}
			return
		}
		if _, err := s.Write(chunk); err != nil {
			return
		}
	}
}

// TestOutcomeUnknown cuts the connection around the writes of a create: a
// cut before the COMMIT was sent is ErrUnavailable and leaves nothing; a cut
// after it is ErrOutcomeUnknown (which is also ErrUnavailable), the payment
// exists, and a retry with the same out_trade_no answers it.
func TestOutcomeUnknown(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	direct := newPool(t, dsn)
	if _, err := Migrate(context.Background(), direct); err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, "127.0.0.1:"+strconv.Itoa(srv.Port()))
	proxied := newPool(t, strings.Replace(dsn, "127.0.0.1:"+strconv.Itoa(srv.Port()), proxy.addr(), 1))
	l := New(proxied, openRedis(t, storetest.Redis(t).Addr()), zap.NewNop())
	ctx := context.Background()

	t.Run("cut before the insert", func(t *testing.T) {
		proxy.arm("INSERT INTO payments", false)
		_, _, err := l.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "o-before", 10, conformance.T0), time.Time{})
		if !proxy.fired.Load() {
			t.Fatal("the proxy never saw the insert")
		}
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrOutcomeUnknown) {
			t.Fatalf("got %v; want ErrUnavailable and not ErrOutcomeUnknown", err)
		}
		if _, err := New(direct, nil, nil).GetPaymentByOutTradeNo(ctx, nil, "m", "o-before"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a create cut before its insert stored something: %v", err)
		}
	})

	t.Run("cut after COMMIT", func(t *testing.T) {
		proxy.arm("commit", true)
		rec := conformance.NewPayment("m", "o-after", 10, conformance.T0)
		_, _, err := l.CreatePayment(ctx, conformance.Nonce("m"), rec, time.Time{})
		if !proxy.fired.Load() {
			t.Fatal("the proxy never saw the commit")
		}
		if !errors.Is(err, store.ErrOutcomeUnknown) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("got %v; want ErrOutcomeUnknown (wrapping ErrUnavailable)", err)
		}
		got, err := New(direct, nil, nil).GetPaymentByOutTradeNo(ctx, nil, "m", "o-after")
		if err != nil || got.PaymentID != rec.PaymentID {
			t.Fatalf("the committed payment: %v", err)
		}
		// The retry the edge promises is safe: same out_trade_no, the same payment.
		again, created, err := l.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "o-after", 10, conformance.T0), time.Time{})
		if err != nil || created || again.PaymentID != rec.PaymentID {
			t.Fatalf("retry: %v created=%v", err, created)
		}
	})

	t.Run("cut after an autocommitted write", func(t *testing.T) {
		const id = "evt-cut-marker"
		if _, err := l.EnqueueEvent(ctx, store.OutboxEvent{ID: id, Merchant: "m", NotifyURL: "https://x", Body: []byte("{}")}, conformance.T0); err != nil {
			t.Fatal(err)
		}
		// The event id travels in the Bind that executes the statement.
		proxy.arm(id, true)
		err := l.AckEvent(ctx, "m", id)
		if !errors.Is(err, store.ErrOutcomeUnknown) {
			t.Fatalf("got %v; want ErrOutcomeUnknown", err)
		}
		if p, _, err := New(direct, nil, nil).OutboxStats(ctx, "m"); err != nil || p != 0 {
			t.Fatalf("the ack did not take effect: %d pending, %v", p, err)
		}
	})
}
