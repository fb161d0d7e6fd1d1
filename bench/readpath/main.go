// Command readpath compares paygate's read path with a bare reverse-proxy
// hop on the same cores, in the same run:
//
//	go run ./bench/readpath [-duration 10s] [-rounds 3]
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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/paygate/paygate/gateway/client"
)

const (
	merchant = "bench"
	secret   = "bench-readpath-secret-0123456789abcdef"

	adminToken = "bench-admin-token-0123456789"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each load run")
	rounds := flag.Int("rounds", 3, "gateway and proxy runs, alternated")
	rate := flag.Int("rate", 40000, "offered requests per second (above what either side serves)")
	inflight := flag.Int("max-inflight", 256, "requests in flight at most")
	serverCPU := flag.String("server-cpu", "0", "taskset CPU list of the server processes")
	loadCPU := flag.String("load-cpu", "1", "taskset CPU list of the load generator")
	logLevel := flag.String("log-level", "info", "the gateway's log.level")
	profile := flag.String("profile", "", "write a CPU profile of the gateway during its first run to this file (pprof on the admin listener)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("readpath: ")

	dir, err := os.MkdirTemp("", "paygate-readpath-")
	check(err)
	b := &bench{dir: dir}
	defer b.stop()
	root := repoRoot()
	paygate, proxyhop := filepath.Join(dir, "paygate"), filepath.Join(dir, "proxyhop")
	run(root, "go", "build", "-o", paygate, "./cmd/paygate")
	run(root, "go", "build", "-o", proxyhop, "./bench/proxyhop")

	redisPort, gw, admin, sim, ctl, proxy, upstream := freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()
	redis := b.start("redis", *serverCPU, "redis-server", "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	waitTCP(redisPort)
	cfg := filepath.Join(dir, "config.yaml")
	check(os.WriteFile(cfg, []byte(config(root, *logLevel, redisPort, gw, admin, sim, ctl)), 0o600))
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

type bench struct {
	dir   string
	procs []*exec.Cmd
	names []string
}

func (b *bench) start(name, cpu string, argv ...string) *exec.Cmd {
	out, err := os.Create(filepath.Join(b.dir, name+".log"))
	check(err)
	cmd := exec.Command("taskset", append([]string{"-c", cpu}, argv...)...)
	cmd.Stdout, cmd.Stderr = out, out
	check(cmd.Start())
	b.procs, b.names = append(b.procs, cmd), append(b.names, name)
	return cmd
}

func (b *bench) byName(name string) *exec.Cmd {
	for i, n := range b.names {
		if n == name {
			return b.procs[i]
		}
	}
	return nil
}

func (b *bench) stop() {
	for _, p := range b.procs {
		p.Process.Signal(os.Interrupt)
	}
	for _, p := range b.procs {
		p.Wait()
	}
	if os.Getenv("READPATH_KEEP") == "" {
		os.RemoveAll(b.dir)
	} else {
		log.Printf("logs and config kept in %s", b.dir)
	}
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

// cpuOf sums user and system CPU of the processes (/proc/PID/stat fields
// 14 and 15, in clock ticks of 1/100 s).
func cpuOf(procs []*exec.Cmd) time.Duration {
	var ticks int64
	for _, p := range procs {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
		check(err)
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
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
		json.Unmarshal(raw, &v)
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

func config(root, level, redisPort, gw, admin, sim, ctl string) string {
	keys := filepath.Join(root, "sandbox", "keys")
	return `server:
  listen: "127.0.0.1:` + gw + `"
  admin_listen: "127.0.0.1:` + admin + `"
  admin_token: "` + adminToken + `"
store:
  redis:
    addrs: ["127.0.0.1:` + redisPort + `"]
sandbox:
  enabled: true
  control_listen: "127.0.0.1:` + ctl + `"
  keys_dir: ` + keys + `
  auto_pay: {after: 200ms, ratio: 1}
log:
  level: ` + level + `
  format: json
merchants:
  - id: ` + merchant + `
    key: {algorithm: hmac-sha256, secret: "` + secret + `"}
    webhook_secret: "bench-readpath-webhook-secret-0123456789"
    notify_allow_networks: ["127.0.0.0/8"]
    methods: [wechat_native]
    limits: {max_amount: 5000000, requests_per_second: 1000000}
channels:
  - id: wechat-main
    type: wechat
    base_url: http://127.0.0.1:` + sim + `
    methods: [wechat_native]
    timeout: 3s
    credentials:
      mchid: "1900000001"
      appid: "wxd678efh567hg6787"
      serial_no: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
      private_key_file: ` + keys + `/wechat-merchant.pem
      apiv3_key: "sandboxAPIv3key0123456789abcdef0"
      platform_public_key_file: ` + keys + `/wechat-platform.pub.pem
      platform_serial: "PUB_KEY_ID_0114232134912410000000000000"
`
}

func repoRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	check(err)
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func run(dir string, argv ...string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
	check(cmd.Run())
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func waitTCP(port string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return
		}
	}
	log.Fatalf("nothing listens on 127.0.0.1:%s after 30s", port)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
