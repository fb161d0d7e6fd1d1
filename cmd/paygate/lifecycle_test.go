package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paygate/paygate/version"
)

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	v := version.Get()
	if out.String() != v.String()+"\n" || !strings.Contains(out.String(), v.Revision) || !strings.Contains(out.String(), runtime.Version()) {
		t.Fatalf("version printed %q; build %+v", out.String(), v)
	}
}

// /metrics carries paygate_build_info with the running build's identity.
func TestBuildInfoMetric(t *testing.T) {
	g := startE2E(t, e2eOpts{})
	m := do(t, mustReq(t, http.MethodGet, g.admin+"/metrics", ""))
	v := version.Get()
	want := fmt.Sprintf(`paygate_build_info{goversion=%q,revision=%q,version=%q} 1`, v.GoVersion, v.Revision, v.Version)
	if !strings.Contains(string(m.Body), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
}

// Shutdown turns /readyz to 503 first, while both listeners still serve,
// and only then stops accepting.
func TestReadyzDuringShutdown(t *testing.T) {
	g := startE2E(t, e2eOpts{})
	if r := do(t, mustReq(t, http.MethodGet, g.admin+"/readyz", "")); r.Status != http.StatusOK {
		t.Fatalf("readyz before shutdown: %d %s", r.Status, r.Body)
	}
	hurry := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The delay is long; the test ends it (as a second signal would)
		// once it has seen what happens during it.
		done <- g.app.shutdown(ctx, time.Minute, hurrySignal(hurry))
	}()
	for {
		r := do(t, mustReq(t, http.MethodGet, g.admin+"/readyz", ""))
		if r.Status == http.StatusServiceUnavailable {
			if !strings.Contains(string(r.Body), "shutting_down") {
				t.Fatalf("readyz 503 body %s", r.Body)
			}
			break
		}
		if r.Status != http.StatusOK {
			t.Fatalf("readyz %d %s", r.Status, r.Body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Still serving merchants and the admin API during the delay.
	if r := g.call(http.MethodGet, "/v1/payments/pay_doesnotexist", nil); r.Status != http.StatusNotFound {
		t.Fatalf("merchant request while draining: %d %s", r.Status, r.Body)
	}
	if r := g.adminCall(http.MethodGet, "/admin/channels", ""); r.Status != http.StatusOK {
		t.Fatalf("admin request while draining: %d %s", r.Status, r.Body)
	}
	close(hurry)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, addr := range []string{g.app.addr, g.app.adminAddr} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after shutdown", addr)
		}
	}
}

// hurrySignal turns a closed channel into the "second signal" shutdown
// listens for.
func hurrySignal(c <-chan struct{}) <-chan os.Signal {
	out := make(chan os.Signal, 1)
	go func() { <-c; out <- syscall.SIGTERM }()
	return out
}

// The whole shutdown is bounded by its context: a client that holds a
// request open cannot keep the process alive past server.shutdown_timeout.
func TestShutdownBounded(t *testing.T) {
	g := startE2E(t, e2eOpts{})
	c, err := net.Dial("tcp", g.app.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A request whose body never finishes arriving.
	fmt.Fprintf(c, "POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = g.app.shutdown(ctx, 0, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown with a request held open: %v, want the deadline", err)
	}
}

// `paygate healthcheck` is the container's probe: exit 0 on a 200 from the
// admin listener, 1 on anything else, including nothing listening.
func TestHealthcheckCommand(t *testing.T) {
	g := startE2E(t, e2eOpts{})
	check := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"healthcheck", "-addr", g.app.adminAddr}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, msg := check(); code != 0 || !strings.Contains(msg, "/readyz: HTTP 200") {
		t.Fatalf("ready: exit %d %q", code, msg)
	}
	g.app.adminHandler.Drain()
	if code, msg := check(); code != 1 || !strings.Contains(msg, "HTTP 503") {
		t.Fatalf("draining: exit %d %q", code, msg)
	}
	if code, msg := check("-path", "/healthz"); code != 0 {
		t.Fatalf("alive while draining: exit %d %q", code, msg)
	}
	if code, _ := check("-path", "/admin/channels"); code != 2 {
		t.Fatalf("other path: exit %d, want 2", code)
	}
	if err := g.app.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, msg := check(); code != 1 || !strings.Contains(msg, "connection refused") {
		t.Fatalf("stopped: exit %d %q", code, msg)
	}
}
