package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by every refusal of the SSRF policy (*BlockedError).
var ErrBlocked = errors.New("notify: address refused")

// BlockedError says why the Dialer refused a notify URL's host.
type BlockedError struct {
	Host   string     // the host as dialled (after the HTTP client's IDNA mapping)
	Addr   netip.Addr // the refused address; invalid when the host form itself was refused
	Reason string     // "loopback", "private", "non-canonical numeric IP address form", …
}

func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return fmt.Sprintf("notify: host %q refused: %s", e.Host, e.Reason)
	}
	if e.Host == e.Addr.String() {
		return fmt.Sprintf("notify: address %s refused: %s (not in notify_allow_networks)", e.Addr, e.Reason)
	}
	return fmt.Sprintf("notify: host %q resolves to %s, refused: %s (not in notify_allow_networks)", e.Host, e.Addr, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

// Resolver looks up a host's IP addresses. *net.Resolver implements it;
// tests inject a fake so that no test depends on real DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer dials notify URLs without letting them reach the gateway's own
// network (SSRF). It resolves the host once, checks every resolved address
// against the policy (refusing all of them if any is refused), and then
// dials a checked address literally, so a DNS answer that changes between
// check and connect (DNS rebinding) cannot slip past. Addresses inside one
// of the allow prefixes (the merchant's notify_allow_networks) are accepted
// whatever the policy says.
//
// Refused: loopback, RFC 1918 private, link-local (169.254.0.0/16 with the
// cloud metadata address, fe80::/10), CGNAT 100.64.0.0/10, unique-local
// fc00::/7, site-local fec0::/10, unspecified, 0.0.0.0/8, multicast,
// 240.0.0.0/4 with the broadcast address, IETF protocol assignments
// 192.0.0.0/24, documentation and benchmarking ranges, the 6to4 relay
// anycast, discard-only 100::/64, IPv4-compatible ::/96, Teredo 2001::/32,
// local-use NAT64 64:ff9b:1::/48; and IPv4-mapped (::ffff:a.b.c.d), NAT64
// (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::) forms of any refused IPv4
// address. A host whose last label is numeric but which is not a canonical
// dotted-quad (2130706433, 0x7f000001, 017700000001, 127.1, "127.0.0.1.") is
// refused outright: some resolvers read those as IP addresses, others as
// names, and either way they are not a merchant's real notify URL.
//
// A Dialer is immutable and safe for concurrent use.
type Dialer struct {
	allow    []netip.Prefix
	resolver Resolver
	net      net.Dialer
}

// NewDialer returns a Dialer that accepts, in addition to what the policy
// allows, the addresses inside allow. A nil resolver means
// net.DefaultResolver.
func NewDialer(allow []netip.Prefix, resolver Resolver) *Dialer {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	d := &Dialer{resolver: resolver}
	for _, p := range allow {
		if !p.IsValid() {
			continue
		}
		// An allow prefix written in IPv4-mapped form (::ffff:10.0.0.0/104)
		// means the IPv4 prefix: addresses are unmapped before the check.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		d.allow = append(d.allow, p.Masked())
	}
	d.net = net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		// Defence in depth: whatever reaches the socket is checked again.
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("notify: unexpected dial address %q", address)
			}
			return d.Check(ap.Addr())
		},
	}
	return d
}

// Check reports whether the Dialer may connect to addr: nil, or a
// *BlockedError naming the policy that refuses it.
func (d *Dialer) Check(addr netip.Addr) error {
	if !addr.IsValid() {
		return &BlockedError{Host: addr.String(), Reason: "invalid address"}
	}
	if addr.Zone() != "" {
		return &BlockedError{Host: addr.String(), Addr: addr, Reason: "zoned address"}
	}
	a := addr.Unmap()
	for _, p := range d.allow {
		if p.Contains(a) {
			return nil
		}
	}
	if why := refusedReason(a); why != "" {
		return &BlockedError{Host: addr.String(), Addr: addr, Reason: why}
	}
	return nil
}

// DialContext is an http.Transport DialContext: it dials address
// ("host:port") under the policy.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ipNet := "ip"
	switch network {
	case "tcp":
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	default:
		return nil, fmt.Errorf("notify: network %q not supported", network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("notify: dial %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("notify: dial %q: bad port", address)
	}
	if host == "" {
		return nil, &BlockedError{Host: host, Reason: "empty host"}
	}

	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if err := checkHostForm(host); err != nil {
			return nil, err
		}
		addrs, err = d.resolver.LookupNetIP(ctx, ipNet, host)
		if err != nil {
			return nil, fmt.Errorf("notify: resolve %q: %w", host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("notify: resolve %q: no addresses", host)
		}
	}
	// Every address must pass: a name that resolves to a public and a
	// private address is refused as a whole rather than dialled in part.
	for _, a := range addrs {
		if err := d.Check(a); err != nil {
			be := err.(*BlockedError)
			be.Host = host
			return nil, be
		}
	}
	var first error
	for _, a := range addrs {
		// Dial the checked literal, never the name again.
		conn, err := d.net.DialContext(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// NewClient returns the HTTP client used for deliveries through d: no proxy
// (the dialer must see the real destination), no redirects (a 3xx answer is
// returned as is, and the Dispatcher counts it as a failed attempt), and
// timeout bounding each request (0: none beyond the caller's context).
func NewClient(d *Dialer, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            d.DialContext,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           64,
			MaxIdleConnsPerHost:    8,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    10 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checkHostForm refuses host names that end in a number (the WHATWG URL
// "ends in a number" rule) unless they are a canonical IP literal. Real TLDs
// are never numeric, so this only catches inet_aton forms: 2130706433,
// 0x7f000001, 017700000001, 127.1, 0x7f.0.0.1, "127.0.0.1.".
func checkHostForm(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	h := strings.TrimSuffix(host, ".")
	last := h[strings.LastIndexByte(h, '.')+1:]
	if isNumericLabel(last) {
		return &BlockedError{Host: host, Reason: "non-canonical numeric IP address form (write the address as a.b.c.d)"}
	}
	return nil
}

func isNumericLabel(s string) bool {
	if s == "" {
		return false
	}
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		for i := 2; i < len(s); i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true // "0x" alone counts too, as in the WHATWG parser
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// refusedRanges is the policy, most common first. IANA IPv4 and IPv6
// special-purpose address registries (RFC 6890 and updates).
var refusedRanges = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this network / unspecified"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved / broadcast"},

	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("fc00::/7"), "unique local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// refusedReason is the policy without allow lists; a is already unmapped.
func refusedReason(a netip.Addr) string {
	for _, r := range refusedRanges {
		if r.prefix.Contains(a) {
			return r.reason
		}
	}
	if a.Is6() {
		b := a.As16()
		if nat64.Contains(a) {
			if why := refusedReason(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
				return "NAT64 form of " + why
			}
		}
		if sixToFour.Contains(a) {
			if why := refusedReason(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
				return "6to4 form of " + why
			}
		}
	}
	return ""
}

// Interface guards.
var (
	_ Resolver = (*net.Resolver)(nil)
	_ error    = (*BlockedError)(nil)
)
