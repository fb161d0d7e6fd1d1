// Command perf measures paygate's performance targets end to end, with the
// server processes pinned to one core and the load to the other:
//
//	go run ./bench/perf readpath   [flags]   # signed GET vs a bare fasthttp proxy hop
//	go run ./bench/perf createpath [flags]   # gateway CPU per WeChat Pay create vs its crypto
//
// Each builds paygate, starts a redis-server on a free loopback port and a
// sandbox gateway using it, drives it with `paygate load`, and reads the
// processes' CPU time from /proc. docs/performance.md has the figures.
// PAYGATE_BENCH_KEEP=1 keeps the binaries, config and logs.
package main

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	merchant   = "bench"
	secret     = "bench-perf-secret-0123456789abcdef01"
	adminToken = "bench-admin-token-0123456789"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: perf readpath|createpath [flags]")
		os.Exit(2)
	}
	log.SetPrefix(os.Args[1] + ": ")
	switch os.Args[1] {
	case "readpath":
		readpath(os.Args[2:])
	case "createpath":
		createpath(os.Args[2:])
	case "crypto": // createpath's yardstick, run pinned by createpath
		mandatoryCrypto(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: perf readpath|createpath [flags]")
		os.Exit(2)
	}
}

// bench is one run: its processes, and a directory for binaries, config
// and logs (kept when PAYGATE_BENCH_KEEP is set).
type bench struct {
	dir   string
	root  string // the module's root
	procs []*exec.Cmd
	names []string
}

func newBench(name string) *bench {
	dir, err := os.MkdirTemp("", "paygate-"+name+"-")
	check(err)
	return &bench{dir: dir, root: repoRoot()}
}

// build builds the command in pkg (relative to the module root) into the
// bench's directory.
func (b *bench) build(pkg string) string {
	out := filepath.Join(b.dir, filepath.Base(pkg))
	run(b.root, "go", "build", "-o", out, pkg)
	return out
}

// start starts argv pinned to cpu (taskset), its output in the bench's
// directory.
func (b *bench) start(name, cpu string, argv ...string) *exec.Cmd {
	// Logs go to a directory of their own: paygate watches its config's
	// directory, and a log written next to the config would wake it up on
	// every line.
	check(os.MkdirAll(filepath.Join(b.dir, "logs"), 0o755))
	out, err := os.Create(filepath.Join(b.dir, "logs", name+".log"))
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
		_ = p.Process.Signal(os.Interrupt) // it may have exited already
	}
	for _, p := range b.procs {
		_ = p.Wait() // the exit status of a stopped helper process says nothing
	}
	if os.Getenv("PAYGATE_BENCH_KEEP") == "" {
		os.RemoveAll(b.dir)
	} else {
		log.Printf("logs and config kept in %s", b.dir)
	}
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

// gatewayConfig is a sandbox gateway's configuration: store on the redis-server at
// redisPort, one merchant, the WeChat Pay channel (its simulator in process,
// or in a separate `paygate sim` when external) paying every order 200 ms
// after its create when autoPay.
func gatewayConfig(root, level string, external, autoPay bool, redisPort, gw, admin, sim, ctl string) string {
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
  external: ` + strconv.FormatBool(external) + `
  auto_pay: {after: ` + map[bool]string{true: "200ms", false: "0s"}[autoPay] + `, ratio: 1}
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
