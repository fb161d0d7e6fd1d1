package risk

import (
	"net/netip"
	"strings"
)

// MaskOpenID keeps enough of an openid to tell payers apart in a log line
// without writing the identifier: the first 3 and last 2 characters of a
// long one, nothing of a short one.
func MaskOpenID(s string) string {
	r := []rune(s)
	switch {
	case len(r) == 0:
		return ""
	case len(r) < 10:
		return "***"
	}
	return string(r[:3]) + "***" + string(r[len(r)-2:])
}

// MaskIP keeps the network of a client address (/16 of IPv4, /32 of IPv6)
// and drops the rest.
func MaskIP(s string) string {
	if s == "" {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "***"
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		p := netip.AddrFrom4([4]byte{b[0], b[1], 0, 0}).String()
		return strings.TrimSuffix(p, "0.0") + "x.x"
	}
	p, _ := a.Prefix(32)
	return p.String()
}
