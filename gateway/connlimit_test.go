package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
)

type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// httpGet sends one GET on c and reads the response and its body.
func httpGet(t *testing.T, c net.Conn, br *bufio.Reader, path string, closeConn bool) (*http.Response, []byte) {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: paygate.test\r\n"
	if closeConn {
		req += "Connection: close\r\n"
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// dial opens a connection to addr from the local IP from ("" for any).
func dial(t *testing.T, addr, from string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %q: %v", addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// check429 asserts resp is the contract's 429 for a connection over the limit
// and returns its request id.
func check429(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429; body %s", resp.StatusCode, body)
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "Retry-After": "1"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if !resp.Close {
		t.Error("429 does not say Connection: close")
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" || eb.Error.RequestID != id {
		t.Errorf("X-Request-Id %q, body request_id %q: want equal and non-empty", id, eb.Error.RequestID)
	}
	if eb.Error.Code != "rate_limited" || eb.Error.Message != "too many connections from this address" {
		t.Errorf("error %+v", eb.Error)
	}
	return id
}

// checkServed sends GET /nope on c and asserts the gateway's handler
// answered it (an unknown path: 404 not_found).
func checkServed(t *testing.T, c net.Conn, br *bufio.Reader, closeConn bool) {
	t.Helper()
	resp, body := httpGet(t, c, br, "/nope", closeConn)
	var eb errorBody
	if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &eb) != nil || eb.Error.Code != "not_found" {
		t.Fatalf("status %d body %s: want the handler's 404 not_found", resp.StatusCode, body)
	}
	if id := resp.Header.Get("X-Request-Id"); id == "" || id != eb.Error.RequestID {
		t.Errorf("X-Request-Id %q, request_id %q", id, eb.Error.RequestID)
	}
}

// checkClosed asserts the server closed c (after a complete response).
func checkClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("read after the response: %q, %v; want EOF", b, err)
	}
}

// TestServeLimitsConnsPerIP runs the gateway's own Serve (fasthttp behind the
// wrapper) with server.max_conns_per_ip = 2 on a real loopback listener.
func TestServeLimitsConnsPerIP(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	cfg := config.Default()
	cfg.Server.MaxConnsPerIP = 2
	s, err := New(cfg, nil, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	// Two keep-alive connections, each served, both held open.
	c1, br1 := dial(t, addr, "127.0.0.1")
	checkServed(t, c1, br1, false)
	c2, br2 := dial(t, addr, "127.0.0.1")
	checkServed(t, c2, br2, false)

	// The third gets the contract's 429 and is closed.
	c3, br3 := dial(t, addr, "127.0.0.1")
	resp, body := httpGet(t, c3, br3, "/nope", false)
	id := check429(t, resp, body)
	if !strings.HasPrefix(id, s.reqPrefix) {
		t.Errorf("request id %q does not come from the server's requestID (prefix %q)", id, s.reqPrefix)
	}
	checkClosed(t, c3, br3)

	// Another address (all of 127/8 is loopback on Linux) has its own count.
	if c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("tcp", addr); err == nil {
		br := bufio.NewReader(c)
		checkServed(t, c, br, true)
		checkClosed(t, c, br)
		c.Close()
	} else {
		t.Logf("no second loopback address (%v): skipping that part", err)
	}

	// The server closes c1 (Connection: close); once the client sees the
	// close, its count is released and a new connection is served.
	checkServed(t, c1, br1, true)
	checkClosed(t, c1, br1)
	c4, br4 := dial(t, addr, "127.0.0.1")
	checkServed(t, c4, br4, false)
	checkServed(t, c2, br2, false) // c2 was never disturbed

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	for _, c := range []net.Conn{c2, c4} {
		c.Close()
	}
	goleak.VerifyNone(t, ignore,
		// fasthttp's own: its process-wide Date updater, and the pool's
		// idle-worker cleaner, which sees Stop only after sleeping
		// MaxIdleWorkerDuration (10 s).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// limitedServer accepts from a connLimitListener in a goroutine and hands the
// accepted connections to the test.
type limitedServer struct {
	l     *connLimitListener
	conns chan net.Conn
	done  chan struct{}
}

func listenLimited(t *testing.T, network, addr string, max int, opts ...func(*connLimitListener)) *limitedServer {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	var seq atomic.Int64
	ls := &limitedServer{
		l:     newConnLimitListener(ln, max, func() string { return fmt.Sprintf("req_test_%d", seq.Add(1)) }),
		conns: make(chan net.Conn, 1024),
		done:  make(chan struct{}),
	}
	for _, o := range opts {
		o(ls.l)
	}
	go func() {
		defer close(ls.done)
		for {
			c, err := ls.l.Accept()
			if err != nil {
				return
			}
			ls.conns <- c
		}
	}()
	return ls
}

// stop closes the listener, waits for the accept loop and closes what it
// accepted but nobody took.
func (ls *limitedServer) stop(t *testing.T) {
	t.Helper()
	if err := ls.l.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	<-ls.done
	close(ls.conns)
	for c := range ls.conns {
		c.Close()
	}
}

func (ls *limitedServer) accepted(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-ls.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// TestConnLimitListener: per address family, with a limit of 2, the
// connection over the limit gets the 429 without reaching Accept's caller,
// and closing an accepted connection (twice) frees exactly one place.
func TestConnLimitListener(t *testing.T) {
	tests := []struct {
		name string
		addr string
	}{
		{name: "ipv4", addr: "127.0.0.1:0"},
		{name: "ipv6", addr: "[::1]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ls := listenLimited(t, "tcp", tt.addr, 2)
			defer ls.stop(t)
			addr := ls.l.Addr().String()
			refuse := func(wantID string) {
				t.Helper()
				c, br := dial(t, addr, "")
				resp, body := httpGet(t, c, br, "/", false)
				if id := check429(t, resp, body); id != wantID {
					t.Errorf("request id %q, want %q", id, wantID)
				}
				checkClosed(t, c, br)
			}

			dial(t, addr, "")
			s0 := ls.accepted(t)
			defer s0.Close()
			dial(t, addr, "")
			s1 := ls.accepted(t)
			refuse("req_test_1")
			if n := ls.l.openConns(); n != 2 {
				t.Errorf("open %d, want 2", n)
			}

			for range 2 {
				if err := s1.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}
			if n := ls.l.openConns(); n != 1 {
				t.Errorf("open %d after closing one connection twice, want 1", n)
			}
			dial(t, addr, "")
			s2 := ls.accepted(t)
			defer s2.Close()
			refuse("req_test_2") // the place was freed once, not twice
		})
	}
}

// TestConnLimitListenerNoLimit: 0 means no limit; connections pass through
// unwrapped.
func TestConnLimitListenerNoLimit(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ls := listenLimited(t, "tcp", "127.0.0.1:0", 0)
	defer ls.stop(t)
	for i := range 5 {
		dial(t, ls.l.Addr().String(), "")
		c := ls.accepted(t)
		if _, wrapped := c.(*limitedConn); wrapped {
			t.Errorf("conn %d wrapped with no limit", i)
		}
		defer c.Close()
	}
}

// TestConnLimitListenerChurn: many clients connecting and closing at once
// never exceed the limit, and once everything is closed nothing is counted.
func TestConnLimitListenerChurn(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const limit, clients, rounds = 3, 16, 20
	ls := listenLimited(t, "tcp", "127.0.0.1:0", limit)
	addr := ls.l.Addr().String()

	// active counts the accepted connections not yet closed, by the test's
	// own bookkeeping: decremented before Close (which releases the place),
	// so it can never exceed the limit unless the listener miscounts.
	var active, over atomic.Int64
	var handlers sync.WaitGroup
	handlersDone := make(chan struct{})
	go func() { // one handler per accepted connection: greet, wait for EOF, close twice
		defer close(handlersDone)
		for c := range ls.conns {
			if active.Add(1) > limit || ls.l.openConns() > limit {
				over.Add(1)
			}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "hello\n")
				io.Copy(io.Discard, c)
				active.Add(-1)
				c.Close()
				c.Close()
			}()
		}
		handlers.Wait()
	}()

	var served, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if (i+r)%4 == 0 { // some close at once, without reading
					c.Close()
					continue
				}
				line, err := bufio.NewReader(c).ReadString('\n')
				switch {
				case line == "hello\n":
					served.Add(1)
				case strings.HasPrefix(line, "HTTP/1.1 429 "):
					refused.Add(1)
				default:
					c.Close()
					errs <- fmt.Errorf("first line %q: %v", line, err)
					return
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Stop accepting, then wait for every handler to have closed its conn.
	if err := ls.l.Close(); err != nil {
		t.Error(err)
	}
	<-ls.done
	close(ls.conns)
	<-handlersDone

	t.Logf("served %d, refused %d", served.Load(), refused.Load())
	if served.Load() == 0 {
		t.Error("no connection served")
	}
	if n := over.Load(); n > 0 {
		t.Errorf("%d connections accepted over the limit", n)
	}
	if n := ls.l.openConns(); n != 0 {
		t.Errorf("open %d after every connection closed, want 0", n)
	}
}

// TestConnLimitListenerCloseWaits: Close ends the goroutines answering
// refused connections, even for a client that neither reads nor closes.
func TestConnLimitListenerCloseWaits(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ls := listenLimited(t, "tcp", "127.0.0.1:0", 1, func(l *connLimitListener) {
		l.linger = time.Hour // only Close can end the drain
	})
	addr := ls.l.Addr().String()
	dial(t, addr, "")
	held := ls.accepted(t)
	defer held.Close()

	// A refused client that sends nothing and never closes: the listener's
	// goroutine writes the 429 and then waits in its drain.
	c, br := dial(t, addr, "")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	check429(t, resp, body)
	ls.l.mu.Lock()
	rejecting := len(ls.l.rejecting)
	ls.l.mu.Unlock()
	if rejecting != 1 {
		t.Fatalf("%d refused connections in flight, want 1", rejecting)
	}

	stopped := make(chan struct{})
	go func() { ls.stop(t); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the refused connection's goroutine")
	}
	// The refused connection was half-closed after the 429: EOF.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("read: %v, want EOF", err)
	}
}

func TestConnIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr net.Addr
		want string // "" for not an IP
	}{
		{name: "ipv4", addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1).To4(), Port: 1}, want: "192.0.2.1"},
		{name: "ipv4 16-byte form", addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}, want: "192.0.2.1"},
		{name: "ipv4-mapped ipv6", addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:192.0.2.1]:1")), want: "192.0.2.1"},
		{name: "ipv6", addr: &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, want: "2001:db8::1"},
		{name: "ipv6 zone kept", addr: &net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0", Port: 1}, want: "fe80::1%eth0"},
		{name: "other addr type, mapped", addr: stringAddr("[::ffff:10.0.0.1]:80"), want: "10.0.0.1"},
		{name: "unix socket", addr: &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, want: ""},
		{name: "tcp addr without ip", addr: &net.TCPAddr{Port: 1}, want: ""},
		{name: "nil tcp addr", addr: (*net.TCPAddr)(nil), want: ""},
		{name: "nil", addr: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := connIP(tt.addr)
			gotS := ""
			if ok {
				gotS = got.String()
			}
			if gotS != tt.want {
				t.Errorf("connIP(%v) = %q, %v; want %q", tt.addr, got, ok, tt.want)
			}
		})
	}
}

type stringAddr string

func (a stringAddr) Network() string { return "test" }
func (a stringAddr) String() string  { return string(a) }

func TestTooManyConnsResponse(t *testing.T) {
	t.Parallel()
	raw := tooManyConnsResponse(`req_a"b`)
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.ContentLength != int64(len(body)) {
		t.Fatalf("body %q (%v), Content-Length %d", body, err, resp.ContentLength)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Status != "429 Too Many Requests" {
		t.Errorf("status %q", resp.Status)
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.RequestID != `req_a"b` || eb.Error.Code != "rate_limited" {
		t.Errorf("body %s: %v", body, err)
	}
	if got := resp.Header.Get("X-Request-Id"); got != `req_a"b` {
		t.Errorf("X-Request-Id %q", got)
	}
}
