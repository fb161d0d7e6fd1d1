// readpath compares paygate's read path with a bare reverse-proxy hop on
// the same cores, in the same run:
//
//	go run ./bench/perf readpath [-duration 10s] [-rounds 3]
//
// It builds paygate and bench/proxyhop, starts a redis-server on a free
// loopback port and a sandbox gateway whose store is that redis-server, and
// the proxy and its upstream; the server processes run on -server-cpu
// (taskset), the load on -load-cpu. It seeds one payment and waits until it
// is paid (final), then alternates `paygate load -get-id` runs against the
// gateway and the proxy (signed GETs with a fresh nonce each; the proxy
// forwards them to an upstream answering a 300-byte JSON), and prints each
// side's requests per second, the server processes' CPU per request
// (/proc/PID/stat) and the ratio gateway / proxy.

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/paygate/paygate/gateway/client"
)

func readpath(args []string) {
	fs := flag.NewFlagSet("readpath", flag.ExitOnError)
	duration := fs.Duration("duration", 10*time.Second, "length of each load run")
	rounds := fs.Int("rounds", 3, "gateway and proxy runs, alternated")
	rate := fs.Int("rate", 40000, "offered requests per second (above what either side serves)")
	inflight := fs.Int("max-inflight", 256, "requests in flight at most")
	serverCPU := fs.String("server-cpu", "0", "taskset CPU list of the server processes")
	loadCPU := fs.String("load-cpu", "1", "taskset CPU list of the load generator")
	logLevel := fs.String("log-level", "info", "the gateway's log.level")
	profile := fs.String("profile", "", "write a CPU profile of the gateway during its first run to this file (pprof on the admin listener)")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}

	b := newBench("readpath")
	defer b.stop()
	paygate, proxyhop := b.build("./cmd/paygate"), b.build("./bench/proxyhop")

	redisPort, gw, admin, sim, ctl, proxy, upstream := freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()
	redis := b.start("redis", *serverCPU, "redis-server", "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	waitTCP(redisPort)
	cfg := filepath.Join(b.dir, "config.yaml")
	check(os.WriteFile(cfg, []byte(gatewayConfig(b.root, *logLevel, false, true, redisPort, gw, admin, sim, ctl)), 0o600))
	gateway := b.start("gateway", *serverCPU, paygate, "serve", "-config", cfg)
	b.start("upstream", *serverCPU, proxyhop, "-upstream", "127.0.0.1:"+upstream)
	waitTCP(upstream)
	proxyP := b.start("proxy", *serverCPU, proxyhop, "-listen", "127.0.0.1:"+proxy, "-to", "127.0.0.1:"+upstream)
	waitTCP(proxy)
	waitTCP(gw)

	id := seed("http://127.0.0.1:" + gw)
	log.Printf("payment %s is final; %s runs of %s each side, servers on CPU %s, load on CPU %s",
		id, strconv.Itoa(*rounds), *duration, *serverCPU, *loadCPU)

	var ratios []float64
	for i := 0; i < *rounds; i++ {
		var res [2]result
		for k, t := range []struct {
			name, port string
			procs      []*exec.Cmd
			parts      [2]string
		}{{"gateway", gw, []*exec.Cmd{gateway, redis}, [2]string{"gateway", "redis"}},
			{"proxy", proxy, []*exec.Cmd{proxyP, b.byName("upstream")}, [2]string{"proxy", "upstream"}}} {
			if *profile != "" && i == 0 && t.name == "gateway" {
				go fetchProfile("http://127.0.0.1:"+admin, *duration, *profile)
			}
			res[k] = b.load(paygate, *loadCPU, t.port, id, *rate, *inflight, *duration, t.procs)
			fmt.Printf("round %d %-8s %8.0f req/s  server CPU per request %5.1f µs (%s %.1f + %s %.1f)  p50 %.2f ms  p99 %.2f ms  not sent %d  non-200 %d\n",
				i+1, t.name, res[k].rps, res[k].cpuPerReq, t.parts[0], res[k].cpu1, t.parts[1], res[k].cpu2, res[k].p50, res[k].p99, res[k].notSent, res[k].bad)
		}
		ratios = append(ratios, res[0].rps/res[1].rps)
		fmt.Printf("round %d ratio gateway/proxy %.2f\n", i+1, ratios[i])
	}
	sort.Float64s(ratios)
	fmt.Printf("median ratio gateway/proxy over %d rounds: %.2f (min %.2f, max %.2f)\n", len(ratios), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
}

type result struct {
	rps, cpuPerReq, p50, p99 float64
	cpu1, cpu2               float64 // the two server processes apart (gateway, redis; proxy, upstream)
	notSent, bad             int64
}

// load runs paygate load against 127.0.0.1:port and measures the CPU the
// server processes used meanwhile.
func (b *bench) load(paygate, cpu, port, id string, rate, inflight int, d time.Duration, procs []*exec.Cmd) result {
	before := []time.Duration{cpuOf(procs[:1]), cpuOf(procs[1:])}
	var out bytes.Buffer
	cmd := exec.Command("taskset", "-c", cpu, paygate, "load", "-target", "http://127.0.0.1:"+port,
		"-merchant", merchant, "-secret", secret, "-get-id", id, "-rate", strconv.Itoa(rate),
		"-duration", d.String(), "-max-inflight", strconv.Itoa(inflight), "-json")
	var progress bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &progress
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) { // a non-zero exit still has its summary
		log.Fatal(err)
	}
	used := []time.Duration{cpuOf(procs[:1]) - before[0], cpuOf(procs[1:]) - before[1]}
	var s struct {
		DurationS float64          `json:"duration_s"`
		NotSent   int64            `json:"not_sent"`
		Status    map[string]int64 `json:"status"`
		Latency   struct {
			P50 float64 `json:"p50"`
			P99 float64 `json:"p99"`
		} `json:"latency_ms"`
	}
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		log.Fatalf("paygate load: %v: %s%s", err, out.String(), progress.String())
	}
	ok := s.Status["200"]
	var bad int64
	for k, n := range s.Status {
		if k != "200" {
			bad += n
		}
	}
	perReq := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(max(ok, 1)) }
	return result{rps: float64(ok) / s.DurationS, cpuPerReq: perReq(used[0] + used[1]), cpu1: perReq(used[0]), cpu2: perReq(used[1]),
		p50: s.Latency.P50, p99: s.Latency.P99, notSent: s.NotSent, bad: bad}
}

// fetchProfile saves a CPU profile of most of a load run (it starts as the
// run does and stops a second before its end).
func fetchProfile(admin string, d time.Duration, path string) {
	secs := max(int(d.Seconds())-1, 1)
	req, _ := http.NewRequest("GET", admin+"/admin/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		log.Printf("profile: %d %s", resp.StatusCode, raw)
		return
	}
	check(os.WriteFile(path, raw, 0o644))
	log.Printf("CPU profile of the gateway written to %s", path)
}

// seed creates a payment and waits until the simulator's auto-pay made it
// final (succeeded), reading it as a merchant would.
func seed(base string) string {
	signer := client.HMAC(merchant, []byte(secret))
	do := func(method, path string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		check(signer.SetHeaders(req, body))
		resp, err := http.DefaultClient.Do(req)
		check(err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var v map[string]any
		_ = json.Unmarshal(raw, &v) // a non-JSON answer shows as a nil map and its status
		return resp.StatusCode, v
	}
	otn := "readpath" + strconv.FormatInt(time.Now().UnixNano()%1e12, 10)
	status, p := do("POST", "/v1/payments", []byte(`{"out_trade_no":"`+otn+`","amount":1500,"currency":"CNY","method":"wechat_native","subject":"readpath bench","notify_url":"http://127.0.0.1:9/readpath"}`))
	if status != http.StatusCreated {
		log.Fatalf("seed: create answered %d %v", status, p)
	}
	id, _ := p["payment_id"].(string)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if _, p = do("GET", "/v1/payments/"+id, nil); p["status"] == "succeeded" {
			return id
		}
	}
	log.Fatalf("seed: payment %s not final after 30s: %v", id, p)
	return ""
}
