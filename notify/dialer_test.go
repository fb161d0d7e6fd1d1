package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a table and counts lookups; it never touches
// real DNS.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr // successive answers per host; the last repeats
	lookups map[string]int
}

func newFakeResolver(hosts map[string]string) *fakeResolver {
	r := &fakeResolver{answers: map[string][][]netip.Addr{}, lookups: map[string]int{}}
	for h, list := range hosts {
		r.add(h, list)
	}
	return r
}

// add appends one answer ("a,b,c") for host.
func (r *fakeResolver) add(host, list string) {
	var as []netip.Addr
	for s := range strings.SplitSeq(list, ",") {
		as = append(as, netip.MustParseAddr(s))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[host] = append(r.answers[host], as)
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ans := r.answers[host]
	n := r.lookups[host]
	r.lookups[host]++
	if len(ans) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return ans[min(n, len(ans)-1)], nil
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[host]
}

// canary is a TCP listener on 127.0.0.1 that counts every connection made
// to it: the SSRF tests point refused URLs at it.
type canary struct {
	ln    net.Listener
	conns atomic.Int64
	done  chan struct{}
}

func newCanary(t *testing.T) *canary {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &canary{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-c.done
	})
	return c
}

func (c *canary) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

func mustPrefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		refused bool
	}{
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"2606:4700:4700::1111", false},
		{"64:ff9b::808:808", false}, // NAT64 of a public address
		{"2002:808:808::1", false},  // 6to4 of a public address
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"10.0.0.1", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"100.128.0.1", false},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"255.255.255.255", true},
		{"240.0.0.1", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"192.0.0.170", true},
		{"192.0.2.1", true},
		{"198.51.100.1", true},
		{"203.0.113.1", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"::1", true},
		{"::", true},
		{"::127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.2.3", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:8.8.8.8", false},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"fe80::1", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"2001:db8::1", true},
		{"3fff::1", true},
		{"2001::1", true},
		{"100::1", true},
		{"64:ff9b::7f00:1", true},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::1", true},
		{"2002:7f00:1::1", true}, // 6to4 of 127.0.0.1
		{"2002:a00:1::", true},   // 6to4 of 10.0.0.1
		{"fe80::1%eth0", true},
	}
	d := NewDialer(nil, newFakeResolver(nil))
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			err := d.Check(netip.MustParseAddr(tt.addr))
			if (err != nil) != tt.refused {
				t.Fatalf("Check(%s) = %v, want refused=%v", tt.addr, err, tt.refused)
			}
			if err != nil && !errors.Is(err, ErrBlocked) {
				t.Fatalf("error %v is not ErrBlocked", err)
			}
		})
	}
}

func TestPolicyAllowList(t *testing.T) {
	t.Parallel()
	d := NewDialer(mustPrefixes("127.0.0.0/8", "::1/128", "::ffff:10.0.0.0/104"), nil)
	tests := []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1", false},
		{"127.9.9.9", false},
		{"::ffff:127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false}, // mapped allow prefix means the IPv4 prefix
		{"192.168.0.1", true},
		{"169.254.169.254", true},
		{"::2", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			if err := d.Check(netip.MustParseAddr(tt.addr)); (err != nil) != tt.refused {
				t.Fatalf("Check(%s) = %v, want refused=%v", tt.addr, err, tt.refused)
			}
		})
	}
}

func TestIsNumericHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host    string
		refused bool
	}{
		{"2130706433", true},
		{"0x7f000001", true},
		{"0X7F000001", true},
		{"017700000001", true},
		{"127.1", true},
		{"127.0.0.01", true},
		{"0x7f.0.0.1", true},
		{"127.0.0.1.", true},
		{"1.2.3.4.5", true},
		{"example.0x", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"merchant.example", false},
		{"1password.com", false},
		{"123.example", false},
		{"cafe", false},
		{"0xcafe.example", false},
		{"example.com.", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			err := checkHostForm(tt.host)
			if (err != nil) != tt.refused {
				t.Fatalf("checkHostForm(%q) = %v, want refused=%v", tt.host, err, tt.refused)
			}
		})
	}
}

// TestDialerRefuses sends real requests through NewClient: every refused
// URL points at the canary's port, and the canary must see no connection.
func TestDialerRefuses(t *testing.T) {
	t.Parallel()
	c := newCanary(t)
	p := c.port()
	res := newFakeResolver(map[string]string{
		"loop.test":     "127.0.0.1",
		"private.test":  "10.1.2.3",
		"metadata.test": "169.254.169.254",
		"mixed.test":    "93.184.216.34,127.0.0.1",
		"mapped.test":   "::ffff:127.0.0.1",
		"v6loop.test":   "::1",
	})
	client := NewClient(NewDialer(nil, res), 5*time.Second)
	t.Cleanup(client.CloseIdleConnections)
	urls := []string{
		"http://127.0.0.1:%d/",
		"http://127.0.0.2:%d/",
		"http://10.0.0.1:%d/",
		"http://192.168.0.1:%d/",
		"http://172.16.0.1:%d/",
		"http://100.64.0.1:%d/",
		"http://169.254.169.254:%d/latest/meta-data/",
		"http://[::1]:%d/",
		"http://[::ffff:127.0.0.1]:%d/",
		"http://[::ffff:7f00:1]:%d/",
		"http://[0:0:0:0:0:ffff:127.0.0.1]:%d/",
		"http://[fe80::1]:%d/",
		"http://[fc00::1]:%d/",
		"http://0.0.0.0:%d/",
		"http://2130706433:%d/",
		"http://0x7f000001:%d/",
		"http://017700000001:%d/",
		"http://127.1:%d/",
		"http://127.0.0.1.:%d/",
		"http://loop.test:%d/",
		"http://private.test:%d/",
		"http://metadata.test:%d/",
		"http://mixed.test:%d/",
		"http://mapped.test:%d/",
		"http://v6loop.test:%d/",
		"http://２１３０７０６４３３:%d/", // full-width digits: IDNA maps them to 2130706433
		"http://１２７.０.０.１:%d/",  // and these to 127.0.0.1
	}
	for _, u := range urls {
		u := fmt.Sprintf(u, p)
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			resp, err := client.Post(u, "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("POST %s succeeded (status %d)", u, resp.StatusCode)
			}
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("POST %s: %v, want ErrBlocked", u, err)
			}
		})
	}
	t.Cleanup(func() {
		if n := c.conns.Load(); n != 0 {
			t.Errorf("canary saw %d connections", n)
		}
	})
}

func TestDialerAllowsListedLoopback(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	res := newFakeResolver(map[string]string{"merchant.test": "127.0.0.1"})
	client := NewClient(NewDialer(mustPrefixes("127.0.0.0/8"), res), 5*time.Second)
	t.Cleanup(client.CloseIdleConnections)
	for _, u := range []string{srv.URL, fmt.Sprintf("http://merchant.test:%d/", port), fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port)} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("GET %s = %q", u, b)
		}
	}
	// The allow list is an exception for 127/8 only.
	if _, err := client.Get(fmt.Sprintf("http://10.0.0.1:%d/", port)); !errors.Is(err, ErrBlocked) {
		t.Fatalf("10.0.0.1 with a 127/8 allow list: %v", err)
	}
}

// TestDialerResolvesOnce: the name is resolved once per connection and the
// checked address is dialled, so a second, different answer (DNS rebinding)
// is never used for that connection.
func TestDialerResolvesOnce(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	res := newFakeResolver(nil)
	res.add("rebind.test", "127.0.0.1")
	res.add("rebind.test", "10.0.0.1")
	d := NewDialer(mustPrefixes("127.0.0.0/8"), res)
	conn, err := d.DialContext(t.Context(), "tcp", fmt.Sprintf("rebind.test:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	remote := conn.RemoteAddr().(*net.TCPAddr)
	conn.Close()
	if !remote.IP.Equal(net.IPv4(127, 0, 0, 1)) || res.count("rebind.test") != 1 {
		t.Fatalf("connected to %v after %d lookups", remote, res.count("rebind.test"))
	}
	// The next connection sees the rebinding answer, checks it, and refuses.
	if _, err := d.DialContext(t.Context(), "tcp", fmt.Sprintf("rebind.test:%d", port)); !errors.Is(err, ErrBlocked) {
		t.Fatalf("second dial: %v, want ErrBlocked", err)
	}
}

func TestDialerErrors(t *testing.T) {
	t.Parallel()
	d := NewDialer(nil, newFakeResolver(nil))
	tests := []struct {
		name, network, addr string
	}{
		{"udp", "udp", "8.8.8.8:53"},
		{"no port", "tcp", "8.8.8.8"},
		{"port zero", "tcp", "8.8.8.8:0"},
		{"empty host", "tcp", ":80"},
		{"unknown host", "tcp", "nowhere.test:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if conn, err := d.DialContext(t.Context(), tt.network, tt.addr); err == nil {
				conn.Close()
				t.Fatalf("DialContext(%s, %s) succeeded", tt.network, tt.addr)
			}
		})
	}
}

func TestBlockedErrorMessage(t *testing.T) {
	t.Parallel()
	d := NewDialer(nil, newFakeResolver(map[string]string{"private.test": "10.0.0.7"}))
	_, err := d.DialContext(t.Context(), "tcp", "private.test:443")
	var be *BlockedError
	if !errors.As(err, &be) || be.Host != "private.test" || be.Addr != netip.MustParseAddr("10.0.0.7") || be.Reason != "private" {
		t.Fatalf("err = %#v", err)
	}
	if want := `notify: host "private.test" resolves to 10.0.0.7, refused: private (not in notify_allow_networks)`; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}
