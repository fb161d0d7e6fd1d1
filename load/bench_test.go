package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The generator's own ceiling: signed requests per second on one core
// (GOMAXPROCS=1) against a trivial endpoint in another process (pinned to
// CPU 1 when taskset exists), so the figure is the generator's cost alone.
//
//	taskset -c 0 go test -run XXX -bench . -benchtime 200000x ./load/

// TestTrivialEndpoint is the endpoint's process, not a test: it runs only
// when the benchmark starts this binary with PAYGATE_LOAD_TRIVIAL=1.
func TestTrivialEndpoint(t *testing.T) {
	if os.Getenv("PAYGATE_LOAD_TRIVIAL") != "1" {
		t.Skip("helper process of the benchmarks")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"payment_id":"pay_000000000000000000000001","channel":"wechat-main","status":"pending"}`)
	srv := &fasthttp.Server{Concurrency: 100000, Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set(SandboxHeader, "true")
		if ctx.IsGet() {
			ctx.SetStatusCode(404)
			return
		}
		ctx.SetStatusCode(201)
		ctx.SetBody(body)
	}}
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes our stdin
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startTrivialEndpoint(b *testing.B) string {
	args := []string{os.Args[0], "-test.run=^TestTrivialEndpoint$"}
	if p, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() > 1 {
		args = append([]string{p, "-c", "1"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PAYGATE_LOAD_TRIVIAL=1", "GOMAXPROCS=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return "http://" + addr[:len(addr)-1]
}

// BenchmarkSignedRequest: build, sign (hmac-sha256, fresh nonce), send,
// read and record one create, from 256 concurrent workers on one core.
func BenchmarkSignedRequest(b *testing.B) {
	target := startTrivialEndpoint(b)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	cfg := testConfig(target)
	cfg.MaxInFlight = 1024
	r, err := newRunner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r.start = time.Now()
	var seq atomic.Int64
	b.SetParallelism(256)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := newWorker(r)
		defer w.release()
		for pb.Next() {
			w.do(job{at: time.Now(), seq: seq.Add(1)})
		}
	})
	b.StopTimer()
	// On a shared machine the wall-clock rate depends on what else runs on
	// CPU 0; the CPU time per request (user + system, every thread) is the
	// generator's own cost, and its inverse the one-core ceiling.
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "req/cpu-s")
	if r.total.answered != int64(b.N) {
		b.Fatalf("%d answered of %d (errors %v)", r.total.answered, b.N, r.total.errs)
	}
}

// BenchmarkOpenModel20k runs the whole generator (scheduler, workers,
// histogram) at 20,000 req/s for 3 s on one core and reports what it
// achieved; b.N is ignored.
func BenchmarkOpenModel20k(b *testing.B) {
	target := startTrivialEndpoint(b)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	cfg := testConfig(target)
	cfg.Rate, cfg.Duration = 20000, 3*time.Second
	cpu0 := cpuTime()
	b.ResetTimer()
	s, err := Run(context.Background(), cfg, io.Discard, false)
	if err != nil {
		b.Fatal(err)
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(cpu.Seconds()/s.DurationS, "cpu-cores")
	b.ReportMetric(s.AchievedRate, "achieved-req/s")
	b.ReportMetric(float64(s.Answered), "answered")
	b.ReportMetric(float64(s.NotSent), "not-sent")
	b.ReportMetric(s.Latency.P99, "p99-ms")
}
