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

// TestOutcomeUnknown cuts the connection around writes. A create is one
// autocommitted statement: cut after it was sent, the answer is
// ErrOutcomeUnknown (which is also ErrUnavailable), the payment exists, and
// a retry with the same out_trade_no answers it. A refund is a transaction:
// cut before its insert, the transaction rolls back, the answer is
// ErrUnavailable and nothing is reserved; cut after its COMMIT was sent, the
// answer is ErrOutcomeUnknown and the refund exists.
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
	truth := New(direct, nil, nil) // reads past the proxy
	ctx := context.Background()

	t.Run("create cut after it was sent", func(t *testing.T) {
		rec := conformance.NewPayment("m", "o-cut-after", 1000, conformance.T0)
		// The out_trade_no travels in the Bind that executes the insert.
		proxy.arm("o-cut-after", true)
		_, _, err := l.CreatePayment(ctx, conformance.Nonce("m"), rec, time.Time{})
		if !proxy.fired.Load() {
			t.Fatal("the proxy never saw the insert")
		}
		if !errors.Is(err, store.ErrOutcomeUnknown) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("got %v; want ErrOutcomeUnknown (wrapping ErrUnavailable)", err)
		}
		got, err := truth.GetPaymentByOutTradeNo(ctx, nil, "m", "o-cut-after")
		if err != nil || got.PaymentID != rec.PaymentID {
			t.Fatalf("the payment that was sent: %v", err)
		}
		// The retry the edge promises is safe: same out_trade_no, the same payment.
		again, created, err := l.CreatePayment(ctx, conformance.Nonce("m"), conformance.NewPayment("m", "o-cut-after", 1000, conformance.T0), time.Time{})
		if err != nil || created || again.PaymentID != rec.PaymentID {
			t.Fatalf("retry: %v created=%v", err, created)
		}
		got.Status = "succeeded"
		if err := l.UpdatePayment(ctx, got, store.Change{}); err != nil {
			t.Fatal(err)
		}
	})

	p, err := truth.GetPaymentByOutTradeNo(ctx, nil, "m", "o-cut-after")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("refund cut before its insert", func(t *testing.T) {
		proxy.arm("INSERT INTO refunds", false)
		rf := conformance.NewRefund(p, "rf-before", 1000, conformance.T0)
		_, _, err := l.CreateRefund(ctx, conformance.Nonce("m"), rf, time.Time{})
		if !proxy.fired.Load() {
			t.Fatal("the proxy never saw the insert")
		}
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrOutcomeUnknown) {
			t.Fatalf("got %v; want ErrUnavailable and not ErrOutcomeUnknown", err)
		}
		if _, err := truth.GetRefund(ctx, nil, "m", rf.RefundID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refund cut before its insert was stored: %v", err)
		}
	})

	t.Run("refund cut after COMMIT", func(t *testing.T) {
		proxy.arm("commit", true)
		rf := conformance.NewRefund(p, "rf-after", 1000, conformance.T0)
		_, _, err := l.CreateRefund(ctx, conformance.Nonce("m"), rf, time.Time{})
		if !proxy.fired.Load() {
			t.Fatal("the proxy never saw the commit")
		}
		if !errors.Is(err, store.ErrOutcomeUnknown) {
			t.Fatalf("got %v; want ErrOutcomeUnknown", err)
		}
		// The whole amount was free: the refund cut before its insert
		// reserved nothing. This one committed.
		if got, err := truth.GetRefund(ctx, nil, "m", rf.RefundID); err != nil || got.Amount != 1000 {
			t.Fatalf("the committed refund: %v", err)
		}
		again, created, err := l.CreateRefund(ctx, conformance.Nonce("m"), conformance.NewRefund(p, "rf-after", 1000, conformance.T0), time.Time{})
		if err != nil || created || again.RefundID != rf.RefundID {
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
		if p, _, err := truth.OutboxStats(ctx, "m"); err != nil || p != 0 {
			t.Fatalf("the ack did not take effect: %d pending, %v", p, err)
		}
	})
}
