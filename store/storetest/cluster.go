package storetest

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster starts n (at least 3) redis-server masters with cluster mode on,
// joins them with `redis-cli --cluster create` (slots spread evenly, no
// replicas), waits until every node reports cluster_state:ok, and returns
// their addresses. Each node is killed by t.Cleanup.
func Cluster(t testing.TB, n int) []string {
	t.Helper()
	if n < 3 {
		t.Fatalf("storetest: a cluster needs at least 3 masters, got %d", n)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found on PATH; install it (Debian/Ubuntu: apt-get install redis-server)")
	}
	nodes := make([]*Server, n)
	addrs := make([]string, n)
	for i := range nodes {
		nodes[i] = start(t, func(port int) []string {
			return []string{
				"--cluster-enabled", "yes",
				// relative to the node's own --dir
				"--cluster-config-file", "nodes-" + strconv.Itoa(port) + ".conf",
				"--cluster-node-timeout", "5000",
			}
		})
		addrs[i] = nodes[i].Addr()
	}

	// Generous: on a loaded 2-core machine the nodes' handshakes take long.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("storetest: redis-cli --cluster create: %v\n%s", err, out)
	}

	deadline := time.Now().Add(60 * time.Second)
	for _, a := range addrs {
		for {
			info, err := do(a, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("storetest: cluster node %s not ok: %v %s", a, err, info)
			}
			time.Sleep(20 * time.Millisecond) // polling other processes; there is no clock to inject
		}
	}
	return addrs
}

// KeySlot asks a cluster node which slot key hashes to (CLUSTER KEYSLOT).
func KeySlot(addr, key string) (int, error) {
	r, err := do(addr, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(r)
}
