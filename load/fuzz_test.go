package load

import (
	"bytes"
	"testing"
)

// -mix parses or refuses, never panics; what it accepts prints back to the
// same mix.
func FuzzMixSet(f *testing.F) {
	for _, s := range []string{"create=1", "create=3,get=2,refund=1", "get=1", "create=1,,get=2", "create=-1", "create=1=2", " create = 1", "refund=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var m Mix
		if err := m.Set(s); err != nil {
			return
		}
		if m.Create < 1 || m.Get < 0 || m.Refund < 0 || m.Create+m.Get+m.Refund > 3*maxWeight {
			t.Fatalf("%q accepted as %+v", s, m)
		}
		var back Mix
		if err := back.Set(m.String()); err != nil || back != m {
			t.Fatalf("%q → %+v → %q → %+v (%v)", s, m, m.String(), back, err)
		}
	})
}

// jsonField finds a string value in any bytes without panicking, and the
// value never contains the closing quote.
func FuzzJSONField(f *testing.F) {
	f.Add([]byte(`{"payment_id":"pay_1","channel":"wechat-main"}`), `"channel":"`)
	f.Add([]byte(`{"channel":"`), `"channel":"`)
	f.Add([]byte(``), `"status":"`)
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		if v := jsonField(body, key); bytes.IndexByte(v, '"') >= 0 {
			t.Fatalf("value %q holds a quote", v)
		}
	})
}
