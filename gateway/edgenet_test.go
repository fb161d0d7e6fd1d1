package gateway_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway"
)

// writeCert writes a fresh self-signed certificate for 127.0.0.1 with the
// given serial to dir/cert.pem and dir/key.pem, and returns it.
func writeCert(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "paygate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written to temporary names, then renamed: a reload never reads half a file.
	for name, b := range map[string][]byte{
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name+".tmp"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// The merchant listener over real TLS: signed requests work, TLS 1.1 is
// refused, plain HTTP gets no API answer, and a reload that changes the
// certificate files serves the new certificate to new connections.
func TestMerchantListenerTLS(t *testing.T) {
	dir := t.TempDir()
	first := writeCert(t, dir, 1)
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	in := startInstance(t, cfg, "")
	base := "https://" + strings.TrimPrefix(in.url, "http://")
	addr := strings.TrimPrefix(in.url, "http://")

	clientFor := func(c *x509.Certificate) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(c)
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	sg := hmacSigner("m-hmac", hmacSecret)
	const uri = "/v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA"
	r := sg.do(t, base, http.MethodGet, uri, nil, reqOpts{client: clientFor(first)})
	if r.status != 404 || r.errCode(t) != "not_found" || r.tls == nil || r.tls.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("over TLS: %d %s", r.status, r.body)
	}
	if r.tls.Version < tls.VersionTLS12 {
		t.Fatalf("negotiated %x", r.tls.Version)
	}

	// TLS 1.1 is refused at the handshake.
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	// Plain HTTP on the TLS port never reaches the API.
	if got := rawExchange(t, addr, "GET "+uri+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); strings.Contains(got, "not_found") || strings.Contains(got, "missing_auth") {
		t.Fatalf("plain HTTP was served: %q", got)
	}

	// New files, then a reload: new connections get the new certificate.
	second := writeCert(t, dir, 2)
	if err := in.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	r = sg.do(t, base, http.MethodGet, uri, nil, reqOpts{client: clientFor(second)})
	if r.status != 404 || r.tls.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("after reload: %d, serial %v", r.status, r.tls.PeerCertificates[0].SerialNumber)
	}
	// A reload that turns TLS off is refused (the listener cannot change).
	off := *cfg
	off.Server.TLS.CertFile, off.Server.TLS.KeyFile = "", ""
	if err := in.srv.Reload(&off); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("turning TLS off by reload: %v", err)
	}
}

// A reload that turns TLS on for a listener started without it is refused:
// the listener cannot change, and accepting it would report TLS while the
// merchant API stays plain HTTP.
func TestReloadCannotTurnTLSOn(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, 1)
	cfg := testConfig(t, "http://127.0.0.1:1")
	in := startInstance(t, cfg, "")
	on := *cfg
	on.Server.TLS.CertFile, on.Server.TLS.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := in.srv.Reload(&on); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("turning TLS on by reload: %v, want a refusal that says it needs a restart", err)
	}
	// The listener still speaks plain HTTP, as the refusal says.
	addr := strings.TrimPrefix(in.url, "http://")
	if got := rawExchange(t, addr, probe); !strings.Contains(got, "missing_auth") {
		t.Fatalf("plain HTTP after the refused reload: %q", got)
	}
}

// requestClients returns the client field of every request log line.
func requestClients(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.FilterMessage("request").All() {
		c, _ := e.ContextMap()["client"].(string)
		out = append(out, c)
	}
	return out
}

// A request sent on its own connection; the answer's status line.
func rawStatus(t *testing.T, c net.Conn, req string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func proxyV1(src string) string {
	return "PROXY TCP4 " + src + " 127.0.0.1 40000 8080\r\n"
}

func proxyV2(t *testing.T, src string) string {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 40001}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const probe = "GET /v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\n\r\n"

// Behind a trusted proxy speaking the PROXY protocol (v1 and v2): the
// header's source is the client in the logs and for max_conns_per_ip; a
// trusted peer's connection without a header is closed; the connection
// limit counts clients, not the proxy.
func TestProxyProtocol(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.TrustedProxies = []string{"127.0.0.1"}
	cfg.Server.ProxyProtocol = true
	cfg.Server.MaxConnsPerIP = 2
	in := startLogged(t, cfg, "", zap.New(core))
	addr := strings.TrimPrefix(in.url, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Two connections of client 203.0.113.7 (v1 and v2 headers) stay open.
	if got := rawStatus(t, dial(), proxyV1("203.0.113.7")+probe); !strings.Contains(got, "401") {
		t.Fatalf("v1: %q", got)
	}
	if got := rawStatus(t, dial(), proxyV2(t, "203.0.113.7")+probe); !strings.Contains(got, "401") {
		t.Fatalf("v2: %q", got)
	}
	// A third one of that client is over its limit; another client is not.
	if got := rawStatus(t, dial(), proxyV1("203.0.113.7")+probe); !strings.Contains(got, "429") {
		t.Fatalf("third connection of one client: %q", got)
	}
	if got := rawStatus(t, dial(), proxyV1("198.51.100.4")+probe); !strings.Contains(got, "401") {
		t.Fatalf("another client: %q", got)
	}
	// The trusted proxy must send the header: without it, no answer.
	if got := rawStatus(t, dial(), probe); strings.HasPrefix(got, "HTTP/") {
		t.Fatalf("a trusted peer without a PROXY header was served: %q", got)
	}
	clients := strings.Join(requestClients(logs), " ")
	if clients != "203.0.113.7 203.0.113.7 198.51.100.4" {
		t.Errorf("request lines name clients %q", clients)
	}
	if logs.FilterMessage("PROXY protocol header refused").Len() != 1 {
		t.Errorf("the refused header was not logged once: %q", logText(logs))
	}
}

// A peer outside trusted_proxies may not name a client: its PROXY header is
// a malformed request, its X-Forwarded-For is ignored.
func TestUntrustedPeerCannotNameTheClient(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.Server.ProxyProtocol = true
	in := startLogged(t, cfg, "", zap.New(core))
	addr := strings.TrimPrefix(in.url, "http://")
	if got := rawExchange(t, addr, proxyV1("203.0.113.7")+probe); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Fatalf("untrusted PROXY header: %q", got)
	}
	if got := rawExchange(t, addr, "GET /v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 401") {
		t.Fatalf("untrusted XFF request: %q", got)
	}
	if clients := strings.Join(requestClients(logs), " "); !strings.HasPrefix(clients, "127.0.0.1:") || !strings.HasSuffix(clients, " 127.0.0.1") {
		t.Errorf("request lines name clients %q, want the peer", clients)
	}
}

// Behind a trusted proxy that names clients by X-Forwarded-For: the
// rightmost hop that is not a trusted proxy is the client; hops left of it
// (which the client itself may have written) are not believed; the proxy's
// own connections are not limited per address.
func TestXForwardedFor(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.TrustedProxies = []string{"127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"}
	cfg.Server.MaxConnsPerIP = 1
	in := startLogged(t, cfg, "", zap.New(core))
	addr := strings.TrimPrefix(in.url, "http://")
	cases := []struct {
		name string
		xff  []string
		want string
	}{
		{"one hop", []string{"203.0.113.5"}, "203.0.113.5"},
		{"spoofed hops left of the client", []string{"1.1.1.1, 203.0.113.5"}, "203.0.113.5"},
		{"inner trusted proxies skipped", []string{"198.51.100.9, 203.0.113.5, 10.1.2.3"}, "203.0.113.5"},
		{"several header lines", []string{"1.1.1.1", "203.0.113.5, 10.9.9.9"}, "203.0.113.5"},
		{"IPv6 client behind an IPv6 proxy", []string{"2001:db9::1, 2001:db8::7"}, "2001:db9::1"},
		{"a malformed hop ends the walk", []string{"203.0.113.5, bogus, 10.1.2.3"}, "10.1.2.3"},
		{"no header", nil, "127.0.0.1"},
	}
	// One connection per case, all kept open: with max_conns_per_ip 1 the
	// trusted proxy's connections must still all be served.
	for _, tc := range cases {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		req := "GET /v1/payments/pay_AAAAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\n"
		for _, v := range tc.xff {
			req += "X-Forwarded-For: " + v + "\r\n"
		}
		if got := rawStatus(t, c, req+"\r\n"); !strings.Contains(got, "401") {
			t.Fatalf("%s: %q", tc.name, got)
		}
	}
	got := requestClients(logs)
	if len(got) != len(cases) {
		t.Fatalf("%d request lines for %d requests", len(got), len(cases))
	}
	for i, tc := range cases {
		if got[i] != tc.want {
			t.Errorf("%s: client %q, want %q", tc.name, got[i], tc.want)
		}
	}
}

// Shutdown does not wait for a trusted peer that never sends its PROXY
// header (read_timeout is an hour here): the header read is cut short.
func TestProxyHeaderReadEndsOnShutdown(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.TrustedProxies = []string{"127.0.0.1"}
	cfg.Server.ProxyProtocol = true
	cfg.Server.ReadTimeout = config.Duration(time.Hour)
	in := startInstance(t, cfg, "")
	c, err := net.Dial("tcp", strings.TrimPrefix(in.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PROXY TCP4 203.0.113.7") // and nothing more
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- in.srv.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown waits for a PROXY header that never comes")
	}
}

// PROXY header, then TLS, on one connection (a TCP proxy in front of a
// listener that terminates TLS): the header's client is logged.
func TestProxyProtocolThenTLS(t *testing.T) {
	dir := t.TempDir()
	cert := writeCert(t, dir, 7)
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cfg.Server.TrustedProxies = []string{"127.0.0.1"}
	cfg.Server.ProxyProtocol = true
	in := startLogged(t, cfg, "", zap.New(core))
	raw, err := net.Dial("tcp", strings.TrimPrefix(in.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := io.WriteString(raw, proxyV2(t, "192.0.2.44")); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if got := rawStatus(t, c, probe); !strings.Contains(got, "401") {
		t.Fatalf("over PROXY + TLS: %q", got)
	}
	if clients := strings.Join(requestClients(logs), " "); clients != "192.0.2.44" {
		t.Errorf("request lines name clients %q", clients)
	}
}

// A Shutdown that comes before Serve (a stop right after start) makes Serve
// return at once instead of accepting forever: fasthttp's own Shutdown only
// closes the listeners its Serve has already registered.
func TestShutdownBeforeServe(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1")
	in := startInstance(t, cfg, "")
	rawExchange(t, strings.TrimPrefix(in.url, "http://"), probe) // the harness's own Serve is running
	srv, err := gateway.New(cfg, in.st, in.router, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		ln.Close()
		<-done
		t.Fatal("Serve after Shutdown kept accepting")
	}
}
