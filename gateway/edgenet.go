package gateway

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// The merchant listener's network layers, outermost first:
//
//	TCP → PROXY protocol header (server.proxy_protocol, from trusted proxies only)
//	    → TLS (server.tls)
//	    → per-address connection limit (server.max_conns_per_ip)
//	    → fasthttp
//
// The PROXY header comes before TLS on the wire (the proxy writes it, then
// passes the client's bytes through), so it is read first; the connection
// then reports the client's address as its RemoteAddr, which the limit,
// X-Forwarded-For and the logs use. TLS handshakes happen on the first read
// of a connection, in fasthttp's worker, never in Accept.

// tlsConfig is the merchant listener's TLS configuration: TLS 1.2 minimum,
// HTTP/1.1 only (fasthttp speaks nothing else), and the certificate of the
// current snapshot, so a reload that changes the files serves the new
// certificate to new connections.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := s.snap.Load().cert; c != nil {
				return c, nil
			}
			return nil, errors.New("no certificate")
		},
	}
}

// trusted reports whether ip is one of server.trusted_proxies.
func (snap *snapshot) trustedPeer(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range snap.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientAddr is the address of the client a request came from. The peer is
// the connection's remote address (the PROXY header's source when one was
// read). Only when the peer is a trusted proxy is X-Forwarded-For used: its
// hops are walked from the right (the hop nearest to paygate), skipping
// trusted proxies; the first untrusted hop is the client. A malformed hop
// ends the walk: the last good hop to its right is used, since anything
// left of it was written by someone paygate cannot vouch for.
func (s *Server) clientAddr(ctx *fasthttp.RequestCtx, snap *snapshot) netip.Addr {
	peer, ok := connIP(ctx.RemoteAddr())
	if !ok || !snap.trustedPeer(peer) {
		return peer
	}
	client := peer
	var hops [][]byte
	for _, v := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
		hops = append(hops, bytes.Split(v, []byte(","))...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(string(bytes.TrimSpace(hops[i])))
		if err != nil {
			break
		}
		client = a.Unmap()
		if !snap.trustedPeer(client) {
			break
		}
	}
	return client
}

// proxyListener reads the PROXY protocol header of every connection from a
// trusted proxy before handing it on, in a goroutine per connection, so that
// a slow proxy never stalls Accept. A trusted peer's connection without a
// valid header within readTimeout is closed (and logged with the peer and
// the kind of failure, never the bytes); an untrusted peer's connection is
// handed on untouched, so a PROXY header it sends is just a malformed HTTP
// request.
type proxyListener struct {
	net.Listener
	trusted func(netip.Addr) bool
	timeout time.Duration
	logger  *zap.Logger

	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup // the accept loop and header readers

	mu      sync.Mutex
	reading map[net.Conn]struct{} // connections whose header is being read
}

func newProxyListener(ln net.Listener, trusted func(netip.Addr) bool, timeout time.Duration, logger *zap.Logger) *proxyListener {
	l := &proxyListener{Listener: ln, trusted: trusted, timeout: timeout, logger: logger,
		conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{}), reading: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.loop()
	return l
}

func (l *proxyListener) loop() {
	defer l.wg.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ip, ok := connIP(c.RemoteAddr())
		if !ok || !l.trusted(ip) {
			l.handOn(c)
			continue
		}
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			c.Close()
			return
		default:
		}
		l.reading[c] = struct{}{}
		l.wg.Add(1) // under mu, before Close can close done and Wait
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			pc, err := readProxyHeader(c, l.timeout)
			l.mu.Lock()
			delete(l.reading, c)
			l.mu.Unlock()
			if err != nil {
				select {
				case <-l.done: // closed by Close: shutting down, not refused
					c.Close()
					return
				default:
				}
				l.logger.Warn("PROXY protocol header refused", zap.String("remote", c.RemoteAddr().String()), zap.String("kind", proxyErrorKind(err)))
				c.Close()
				return
			}
			l.handOn(pc)
		}()
	}
}

// handOn gives c to Accept, or closes it once the listener is closed.
func (l *proxyListener) handOn(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the connections whose header is still being
// read (so that shutdown does not wait out their read timeout) and waits for
// its goroutines.
func (l *proxyListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.once.Do(func() { close(l.done) })
	for c := range l.reading {
		c.Close() // unblocks the reader, which then closes c again, harmlessly
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

// proxiedConn is a connection whose PROXY header was read: RemoteAddr is the
// client the header names, reads continue from the header reader's buffer.
type proxiedConn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *proxiedConn) RemoteAddr() net.Addr       { return c.remote }

// CloseWrite half-closes, as the connection limit's refusal does.
func (c *proxiedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// readProxyHeader reads a PROXY protocol v1 or v2 header from c within
// timeout. A LOCAL header (a proxy's own health check) keeps the peer's
// address, as does a header for a non-TCP transport.
func readProxyHeader(c net.Conn, timeout time.Duration) (net.Conn, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	// 232 bytes hold a v1 header (107) and a v2 header with addresses; a v2
	// header with TLVs is read through the reader as it grows.
	br := bufio.NewReaderSize(c, 256)
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Time{})
	pc := &proxiedConn{Conn: c, r: br, remote: c.RemoteAddr()}
	if h.Command.IsProxy() {
		if src, _, ok := h.TCPAddrs(); ok {
			pc.remote = src
		}
	}
	return pc, nil
}

// proxyErrorKind names why a PROXY header was refused.
func proxyErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		return "no PROXY header"
	case errors.As(err, &ne) && ne.Timeout():
		return "read timeout"
	}
	return "malformed PROXY header"
}

// Interface guards
var (
	_ net.Listener = (*proxyListener)(nil)
	_ net.Conn     = (*proxiedConn)(nil)
)
