package gateway

import (
	"strings"
	"testing"
)

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		id   string
		want bool
	}{
		{"letters digits and punctuation", "Merchant-req_42.a", true},
		{"one character", "a", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"65 characters", strings.Repeat("a", 65), false},
		{"space", "a b", false},
		{"quote", `a"b`, false},
		{"newline", "a\nb", false},
		{"slash", "a/b", false},
		{"non-ASCII", "ä", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := validRequestID([]byte(tc.id)); got != tc.want {
				t.Errorf("validRequestID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestTraceID(t *testing.T) {
	t.Parallel()
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	cases := []struct {
		name, header, want string
	}{
		{"the spec's example", "00-" + tid + "-00f067aa0ba902b7-01", tid},
		{"not sampled", "00-" + tid + "-00f067aa0ba902b7-00", tid},
		{"a future version with more fields", "01-" + tid + "-00f067aa0ba902b7-01-extra", tid},
		{"a future version, exact length", "cc-" + tid + "-00f067aa0ba902b7-01", tid},
		{"version 00 with more fields", "00-" + tid + "-00f067aa0ba902b7-01-extra", ""},
		{"version ff", "ff-" + tid + "-00f067aa0ba902b7-01", ""},
		{"upper-case hex", "00-" + strings.ToUpper(tid) + "-00f067aa0ba902b7-01", ""},
		{"all-zero trace id", "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01", ""},
		{"all-zero parent id", "00-" + tid + "-0000000000000000-01", ""},
		{"short trace id", "00-" + tid[:31] + "-00f067aa0ba902b7-01", ""},
		{"not hex", "00-" + tid[:31] + "g-00f067aa0ba902b7-01", ""},
		{"wrong separator", "00_" + tid + "-00f067aa0ba902b7-01", ""},
		{"future version, no dash after flags", "01-" + tid + "-00f067aa0ba902b7-01x", ""},
		{"empty", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := traceID([]byte(tc.header))
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("traceID(%q) = %q, %v; want %q", tc.header, got, ok, tc.want)
			}
		})
	}
}

// FuzzTraceID: whatever the header, an accepted trace id is 32 lower-case
// hex digits, not all zero, taken from the header itself.
func FuzzTraceID(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Add("ff-00000000000000000000000000000000-0000000000000000-00")
	f.Fuzz(func(t *testing.T, h string) {
		id, ok := traceID([]byte(h))
		if !ok {
			if id != "" {
				t.Fatalf("rejected header with id %q", id)
			}
			return
		}
		if len(id) != 32 || !lowerHex([]byte(id)) || allZero([]byte(id)) || !strings.Contains(h, id) {
			t.Fatalf("traceID(%q) = %q", h, id)
		}
	})
}
