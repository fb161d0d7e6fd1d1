package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/config"
	"github.com/paygate/paygate/gateway/client"
	"github.com/paygate/paygate/notify"
	"github.com/paygate/paygate/store"
	"github.com/paygate/paygate/store/storetest"
)

// These tests run real paygate processes (the binary built from this
// package) against one real redis-server, kill them, and count what the
// merchant receives.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func paygateBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "paygate-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "paygate")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is one paygate process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, cfgPath string) *proc {
	t.Helper()
	cmd := exec.Command(paygateBinary(t), "serve", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitReady polls the admin /readyz of the config's admin listener.
func waitReady(t *testing.T, cfg *config.Config) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + cfg.Server.AdminListen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("paygate never became ready")
}

// countingSite is a merchant endpoint that verifies every delivery and
// counts them by event id; while held, it accepts deliveries and never
// answers (so the sender's events stay leased and unacknowledged).
type countingSite struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    map[string]int
	bad    int
	held   chan struct{}
	inHold int
}

func newCountingSite(t *testing.T) *countingSite {
	s := &countingSite{got: map[string]int{}, held: make(chan struct{})}
	close(s.held) // not held
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		held := s.held
		s.mu.Unlock()
		select {
		case <-held:
		default:
			s.mu.Lock()
			s.inHold++
			s.mu.Unlock()
			select {
			case <-held:
			case <-r.Context().Done():
			}
			return // the sender died or gave up: never acknowledged
		}
		if err := notify.Verify([]byte(demoWebhook), r.Header.Get("X-Paygate-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			s.mu.Lock()
			s.bad++
			s.mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.got[r.Header.Get("X-Paygate-Event-Id")]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *countingSite) hold() {
	s.mu.Lock()
	s.held = make(chan struct{})
	s.mu.Unlock()
}

func (s *countingSite) release() {
	s.mu.Lock()
	close(s.held)
	s.mu.Unlock()
}

func (s *countingSite) holding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inHold
}

// waitAll waits until every id was delivered at least once.
func (s *countingSite) waitAll(t *testing.T, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		missing := 0
		for _, id := range ids {
			if s.got[id] == 0 {
				missing++
			}
		}
		bad := s.bad
		s.mu.Unlock()
		if bad > 0 {
			t.Fatalf("%d deliveries failed signature verification", bad)
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never delivered", missing, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// enqueue puts n events for the demo merchant into the outbox directly.
func enqueue(t *testing.T, redisAddr, prefix, url string, n int) []string {
	t.Helper()
	st, err := store.Open(config.Redis{Addrs: []string{redisAddr}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := make([]string, n)
	for i := range n {
		obj := fmt.Sprintf("pay_%s%018d", prefix, i)
		ev, err := notify.NewEvent("payment.succeeded", obj, "demo", url, map[string]any{"payment_id": obj, "status": "succeeded"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := st.EnqueueEvent(context.Background(), *ev, time.Now()); err != nil || !ok {
			t.Fatalf("enqueue %d: %v %v", i, ok, err)
		}
		ids[i] = ev.ID
	}
	return ids
}

// A gateway killed with SIGKILL while holding leased, unacknowledged events
// loses none of them: a fresh process delivers every one, with the same
// event ids, after the lease.
func TestCrashSafetySIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs paygate processes")
	}
	rs := storetest.Redis(t)
	site := newCountingSite(t)
	path := writeConfig(t, e2eOpts{redisAddr: rs.Addr(), extra: ""})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// Short leases so that the re-claim after the crash is quick.
	rewrite(t, path, "notifications: {schedule: [100ms, 200ms, 400ms], timeout: 2s, lease: 5s}", "notifications: {schedule: [100ms, 200ms, 400ms], timeout: 1s, lease: 2s}")
	ids := enqueue(t, rs.Addr(), "crash0", site.srv.URL+"/notify", 200)

	site.hold()
	a := startProc(t, path)
	waitReady(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for site.holding() < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if site.holding() == 0 {
		t.Fatal("the first process never started delivering")
	}
	a.kill() // with events claimed and in flight
	site.release()

	startProc(t, path)
	site.waitAll(t, ids, 30*time.Second)
	site.mu.Lock()
	defer site.mu.Unlock()
	for _, id := range ids {
		if site.got[id] > 2 {
			t.Errorf("event %s delivered %d times (at-least-once allows a repeat after the crash, not more)", id, site.got[id])
		}
	}
}

// Two gateway processes on one Redis share the outbox: 1,000 events, each
// delivered, none lost.
func TestTwoProcessesDeliverAll(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs paygate processes")
	}
	rs := storetest.Redis(t)
	site := newCountingSite(t)
	pathA := writeConfig(t, e2eOpts{redisAddr: rs.Addr()})
	pathB := writeConfig(t, e2eOpts{redisAddr: rs.Addr()})
	ids := enqueue(t, rs.Addr(), "two000", site.srv.URL+"/notify", 1000)
	for _, p := range []string{pathA, pathB} {
		cfg, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		startProc(t, p)
		waitReady(t, cfg)
	}
	site.waitAll(t, ids, 60*time.Second)
	site.mu.Lock()
	defer site.mu.Unlock()
	dups := 0
	for _, id := range ids {
		dups += site.got[id] - 1
	}
	t.Logf("1000 events delivered by two processes; %d duplicates", dups)
	if dups > 0 {
		t.Errorf("%d duplicate deliveries without any crash or timeout", dups)
	}
}

func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, old) {
		t.Fatalf("config has no %q", old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(s, old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// SIGTERM: the process stops accepting, finishes the request in flight,
// and exits 0.
func TestGracefulShutdownSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs paygate processes")
	}
	rs := storetest.Redis(t)
	path := writeConfig(t, e2eOpts{redisAddr: rs.Addr()})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, path)
	waitReady(t, cfg)
	g := &running{t: t, base: "http://" + cfg.Server.Listen, admin: "http://" + cfg.Server.AdminListen, signer: client.HMAC("demo", []byte(demoSecret))}
	g.faults(`{"channel":"wechat-main","latency":"1s"}`)
	g.faults(`{"channel":"alipay-main","latency":"1s"}`)

	done := make(chan resp, 1)
	go func() { done <- g.create("graceful-1", 100, "wechat_native", "http://127.0.0.1:1/notify") }()
	time.Sleep(300 * time.Millisecond) // the create is waiting on the channel
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Status != 201 {
			t.Fatalf("in-flight request during shutdown: %d %s", r.Status, r.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request never finished")
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if _, err := http.Get(g.base + "/v1/payments"); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}
