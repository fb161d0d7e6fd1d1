// createpath measures the gateway's CPU per POST /v1/payments on WeChat Pay
// Native against the protocol's mandatory crypto:
//
//	go run ./bench/perf createpath [-rate 200] [-duration 10s] [-rounds 3]
//
// The gateway runs alone on -server-cpu; redis-server, the simulators (a
// separate `paygate sim`) and the load share -load-cpu. Each round runs
// `paygate load -mix create=1 -method wechat_native` and divides the
// gateway's CPU time (/proc/PID/stat) by the creates answered 201. The
// yardstick is one RSA-2048 PKCS#1 v1.5 SHA-256 signature plus one
// verification with crypto/rsa (what the adapter must do per create: sign
// the request, verify the answer), timed in this process by CPU time.

package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/paygate/paygate/config"
)

func createpath(args []string) {
	fs := flag.NewFlagSet("createpath", flag.ExitOnError)
	duration := fs.Duration("duration", 10*time.Second, "length of each load run")
	rounds := fs.Int("rounds", 3, "load runs")
	rate := fs.Int("rate", 200, "creates per second (below what the gateway's core serves)")
	serverCPU := fs.String("server-cpu", "0", "taskset CPU list of the gateway")
	otherCPU := fs.String("load-cpu", "1", "taskset CPU list of redis-server, the simulators and the load")
	logLevel := fs.String("log-level", "info", "the gateway's log.level")
	profile := fs.String("profile", "", "write a CPU profile of the gateway during the first round to this file")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}

	b := newBench("createpath")
	defer b.stop()
	paygate := b.build("./cmd/paygate")
	redisPort, gw, admin, sim, ctl := freePort(), freePort(), freePort(), freePort(), freePort()
	b.start("redis", *otherCPU, "redis-server", "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	waitTCP(redisPort)
	cfg := filepath.Join(b.dir, "config.yaml")
	check(os.WriteFile(cfg, []byte(gatewayConfig(b.root, *logLevel, true, false, redisPort, gw, admin, sim, ctl)), 0o600))
	b.start("sim", *otherCPU, paygate, "sim", "-config", cfg)
	waitTCP(sim)
	gateway := b.start("gateway", *serverCPU, paygate, "serve", "-config", cfg)
	waitTCP(gw)

	self, err := os.Executable()
	check(err)
	// What the gateway spends with no request at all (timers, the sweeper,
	// health and metrics), to tell it from the creates' own cost.
	idleFrom := cpuOf([]*exec.Cmd{gateway})
	time.Sleep(5 * time.Second)
	idle := (cpuOf([]*exec.Cmd{gateway}) - idleFrom) / 5
	fmt.Printf("gateway idle: %.1f ms CPU per second\n", idle.Seconds()*1e3)
	var ratios []float64
	for i := 0; i < *rounds; i++ {
		// The yardstick runs on the gateway's core just before the round,
		// so that both see the same machine (shared cores, SMT siblings).
		out, err := exec.Command("taskset", "-c", *serverCPU, self, "crypto", b.root).Output()
		check(err)
		crypto, err := strconv.ParseFloat(string(bytes.TrimSpace(out)), 64)
		check(err)
		if *profile != "" && i == 0 {
			go fetchProfile("http://127.0.0.1:"+admin, *duration, *profile)
		}
		before := cpuOf([]*exec.Cmd{gateway})
		out, err = exec.Command("taskset", "-c", *otherCPU, paygate, "load", "-target", "http://127.0.0.1:"+gw,
			"-merchant", merchant, "-secret", secret, "-mix", "create=1", "-method", "wechat_native",
			"-rate", strconv.Itoa(*rate), "-duration", duration.String(), "-json").Output()
		if ee := (*exec.ExitError)(nil); err != nil && !errors.As(err, &ee) {
			log.Fatal(err)
		}
		used := cpuOf([]*exec.Cmd{gateway}) - before
		var s struct {
			Status  map[string]int64 `json:"status"`
			Latency struct {
				P50 float64 `json:"p50"`
				P99 float64 `json:"p99"`
			} `json:"latency_ms"`
		}
		if err := json.Unmarshal(out, &s); err != nil {
			log.Fatalf("paygate load: %v: %s", err, out)
		}
		created := s.Status["201"]
		perCreate := used.Seconds() * 1e6 / float64(max(created, 1))
		ratios = append(ratios, perCreate/crypto)
		fmt.Printf("round %d: %d created (statuses %v), gateway CPU %.0f µs per create; mandatory crypto (RSA-2048 sign + verify, crypto/rsa) %.0f µs; ratio %.2f  (p50 %.1f ms, p99 %.1f ms)\n",
			i+1, created, s.Status, perCreate, crypto, ratios[i], s.Latency.P50, s.Latency.P99)
	}
	sort.Float64s(ratios)
	fmt.Printf("median gateway CPU per create / mandatory crypto over %d rounds: %.2f (min %.2f, max %.2f)\n",
		len(ratios), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
}

// mandatoryCrypto prints the CPU time, in µs, of one RSA-2048 PKCS#1 v1.5
// SHA-256 signature with the sandbox's WeChat Pay merchant key and one
// verification: the median of 5 batches of 100 on one locked OS thread
// (`perf crypto ROOT`, which createpath runs pinned to the gateway's core).
func mandatoryCrypto(args []string) {
	root := args[0]
	pem, err := os.ReadFile(filepath.Join(root, "sandbox", "keys", "wechat-merchant.pem"))
	check(err)
	key, err := config.ParseRSAPrivateKey(pem)
	check(err)
	msg := []byte("POST\n/v3/pay/transactions/native\n1765000000\n0123456789abcdef0123456789abcdef\n{\"appid\":\"wxd678efh567hg6787\",\"mchid\":\"1900000001\",\"description\":\"paygate load\",\"out_trade_no\":\"PG0123456789\",\"amount\":{\"total\":1500,\"currency\":\"CNY\"}}\n")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var batches []time.Duration
	const n = 100
	for range 5 {
		start := threadCPU()
		for range n {
			d := sha256.Sum256(msg)
			sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
			check(err)
			d = sha256.Sum256(msg)
			check(rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, d[:], sig))
		}
		batches = append(batches, threadCPU()-start)
	}
	sort.Slice(batches, func(i, j int) bool { return batches[i] < batches[j] })
	fmt.Printf("%.1f\n", batches[2].Seconds()*1e6/n)
}

// threadCPU is the calling thread's user + system CPU time.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	check(syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
