package storetest

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRedisStopStart(t *testing.T) {
	t.Parallel()
	s := Redis(t)
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("fresh server: %v", err)
	}
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := ping(s.Addr()); err == nil {
		t.Fatal("stopped server still answers PING")
	}
	s.Stop() // idempotent
	s.Start()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	// Nothing is persisted across a restart.
	if v, err := s.Do("GET", "k"); err == nil && v != "" {
		t.Fatalf("value survived the restart: %q", v)
	}
}

func TestClusterSlots(t *testing.T) {
	t.Parallel()
	addrs := Cluster(t, 3)
	if len(addrs) != 3 {
		t.Fatalf("got %d addrs", len(addrs))
	}
	for _, a := range addrs {
		info, err := do(a, "CLUSTER", "INFO")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:3"} {
			if !strings.Contains(info, want) {
				t.Errorf("node %s: CLUSTER INFO lacks %q", a, want)
			}
		}
	}
	a, err := KeySlot(addrs[0], "x{tag}y")
	if err != nil {
		t.Fatal(err)
	}
	b, err := KeySlot(addrs[1], "tag")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("hash tag ignored: %d != %d", a, b)
	}
}
