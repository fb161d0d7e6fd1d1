package gateway

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Per-IP connection limiting (server.max_conns_per_ip).
//
// fasthttp's own MaxConnsPerIP answers an excess connection with a plain-text
// 429 that has no X-Request-Id, no JSON error and no Retry-After (CONTRACT §3
// wants all three), and it only counts IPv4 peers. paygate therefore enforces
// the limit itself, in a net.Listener wrapper between the socket and fasthttp:
// a connection over the limit never reaches fasthttp; the listener answers it
// with the contract's JSON 429 and closes it.

const (
	// rejectWriteTimeout bounds writing the 429 to a refused connection. The
	// response is a few hundred bytes into a fresh socket's empty send buffer,
	// so it only takes this long for a peer that does not read at all.
	rejectWriteTimeout = time.Second
	// rejectLinger bounds how long a refused connection is drained after the
	// 429 was written and our side half-closed. Closing a socket with unread
	// request bytes makes the kernel send RST, and a client that receives the
	// RST before reading may lose the 429 (net/http lingers for the same
	// reason); the drain ends early when the client closes.
	rejectLinger = time.Second
	// rejectDrainBytes caps what a refused connection may make us read.
	rejectDrainBytes = 64 << 10
	// maxRejecting caps refused connections being answered at once. Past it a
	// refused connection is closed without an answer: under a connection
	// flood from one address the limit matters more than the error body.
	maxRejecting = 256
)

// connLimitListener limits open connections per remote IP address. IPv4 and
// IPv6 peers are counted alike; an IPv4-mapped IPv6 address (::ffff:a.b.c.d,
// what a dual-stack socket reports for an IPv4 peer) counts as the IPv4
// address. A peer whose address is not an IP (a unix socket, an in-memory
// pipe) is not limited.
//
// Accept never blocks on a refused connection: the 429 is written by a
// goroutine the listener owns, bounded in time by rejectWriteTimeout and
// rejectLinger; Close closes those connections and waits for the goroutines.
//
// The count lives in the listener: two listeners (two Serve calls) count
// separately.
type connLimitListener struct {
	net.Listener
	max    int           // 0 means no limit
	newID  func() string // request id of a refused connection's 429
	linger time.Duration // rejectLinger; a field so tests can lengthen it
	// exempt, when set, names addresses that are not limited (trusted
	// proxies that name their clients by X-Forwarded-For).
	exempt func(netip.Addr) bool

	mu        sync.Mutex
	open      map[netip.Addr]int // open accepted connections per peer; no zero entries
	rejecting map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup // reject goroutines
}

// newConnLimitListener wraps ln so that at most max connections per remote IP
// are open at once; 0 (or less) means no limit. newID gives the X-Request-Id
// (and the body's request_id) of each 429.
func newConnLimitListener(ln net.Listener, max int, newID func() string) *connLimitListener {
	return &connLimitListener{
		Listener:  ln,
		max:       max,
		newID:     newID,
		linger:    rejectLinger,
		open:      map[netip.Addr]int{},
		rejecting: map[net.Conn]struct{}{},
	}
}

// Accept returns the next connection within its address's limit; a
// connection over the limit is answered with a 429 and closed in the
// background, and Accept goes on to the next one.
func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.max <= 0 {
			return c, err
		}
		ip, ok := connIP(c.RemoteAddr())
		if !ok || l.exempt != nil && l.exempt(ip) {
			return c, nil
		}
		if l.acquire(ip) {
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		l.reject(c)
	}
}

// Close closes the listener, then the refused connections still being
// answered, and waits until their goroutines have ended. Connections already
// returned by Accept are their owner's to close.
func (l *connLimitListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.rejecting {
		c.Close() // unblocks the goroutine's write or drain; it closes c again, harmlessly
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

func (l *connLimitListener) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] >= l.max {
		return false
	}
	l.open[ip]++
	return true
}

func (l *connLimitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open[ip]; n > 1 {
		l.open[ip] = n - 1
	} else {
		delete(l.open, ip)
	}
}

// reject answers c with the JSON 429 and closes it, from a goroutine the
// listener tracks, so that a peer that does not read cannot stall Accept.
func (l *connLimitListener) reject(c net.Conn) {
	l.mu.Lock()
	if l.closed || len(l.rejecting) >= maxRejecting {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.rejecting[c] = struct{}{}
	l.wg.Add(1) // under mu, before Close can set closed and Wait
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		defer func() {
			l.mu.Lock()
			delete(l.rejecting, c)
			l.mu.Unlock()
			c.Close()
		}()
		c.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
		if _, err := c.Write(tooManyConnsResponse(l.newID())); err != nil {
			return
		}
		// Half-close, then drain what the client sent (its request) until it
		// closes: see rejectLinger.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(l.linger))
		io.CopyN(io.Discard, c, rejectDrainBytes)
	}()
}

// openConns is the number of connections counted against the limit, summed
// over every address (tests).
func (l *connLimitListener) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.open {
		n += c
	}
	return n
}

// tooManyConnsResponse is the complete HTTP/1.1 response to a connection over
// the limit: the contract's error body (CONTRACT §3) with X-Request-Id equal
// to its request_id, Retry-After, and Connection: close.
func tooManyConnsResponse(reqID string) []byte {
	body := make([]byte, 0, 128+len(reqID))
	body = append(body, `{"error":{"code":`...)
	body = strconv.AppendQuote(body, codeRateLimited)
	body = append(body, `,"message":"too many connections from this address","request_id":`...)
	body = strconv.AppendQuote(body, reqID)
	body = append(body, "}}"...)

	b := make([]byte, 0, 192+len(reqID)+len(body))
	b = append(b, "HTTP/1.1 429 Too Many Requests\r\n"+
		"Content-Type: application/json\r\n"+
		"Retry-After: 1\r\n"+
		"X-Request-Id: "...)
	b = append(b, reqID...)
	b = append(b, "\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// limitedConn is an accepted connection counted against its address's limit;
// closing it (the first time) releases the count.
type limitedConn struct {
	net.Conn
	l    *connLimitListener
	ip   netip.Addr
	once sync.Once
	err  error
}

// Close releases the connection's count, then closes it. Releasing first
// means that a peer which sees our FIN may reconnect at once. Close is
// idempotent: later calls return the first call's result.
func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.release(c.ip)
		c.err = c.Conn.Close()
	})
	return c.err
}

// connIP is the IP address a connection's remote address counts under:
// IPv4-mapped IPv6 addresses are unmapped, an IPv6 zone is kept (the same
// link-local address on two links is two peers). ok is false when a is not
// an IP address.
func connIP(a net.Addr) (ip netip.Addr, ok bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case nil:
		return netip.Addr{}, false
	case *net.TCPAddr:
		if a == nil {
			return netip.Addr{}, false
		}
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Addr{}, false
		}
	}
	if !ap.Addr().IsValid() {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// Interface guards
var (
	_ net.Listener = (*connLimitListener)(nil)
	_ net.Conn     = (*limitedConn)(nil)
)
