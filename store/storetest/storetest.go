// Package storetest runs real redis-server processes for tests: a single
// node (Redis) that a test can stop and start again to simulate the store
// going down, and a small Redis Cluster (Cluster).
//
// redis-server (and, for Cluster, redis-cli) must be on PATH; on Debian or
// Ubuntu: apt-get install redis-server. Servers listen on 127.0.0.1 only,
// keep nothing on disk (--save "" --appendonly no) and are killed by
// t.Cleanup.
package storetest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	installHint  = "redis-server not found on PATH; install it (Debian/Ubuntu: apt-get install redis-server)"
	startTimeout = 10 * time.Second
)

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	args []string // extra arguments

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{} // closed when cmd has exited
}

// Redis starts a redis-server on a free 127.0.0.1 port, waits until it
// answers PING and registers its killing with t.Cleanup. It fails the test
// (with an install hint) if redis-server is not on PATH.
func Redis(t testing.TB) *Server {
	t.Helper()
	return start(t, nil)
}

func start(t testing.TB, extra func(port int) []string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(installHint)
	}
	s := &Server{tb: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	// A port found free can be taken before redis-server binds it; try a few.
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort(extra != nil)
		if err != nil {
			t.Fatalf("storetest: %v", err)
		}
		s.port = port
		if extra != nil {
			s.args = extra(port)
		}
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("storetest: %v", lastErr)
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Stop kills the server (SIGKILL, no shutdown save), as a crash or a network
// cut would look to clients, and waits for it to exit. Its data is lost.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Start starts the server again on the same port (empty) and waits until it
// answers PING. It fails the test if that does not happen.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("storetest: restart: %v", err)
	}
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: out}, &lockedWriter{w: out}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	deadline := time.Now().Add(startTimeout)
	for {
		if err := ping(s.Addr()); err == nil {
			s.cmd, s.out, s.done = cmd, out, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, strings.TrimSpace(out.String()))
		case <-time.After(10 * time.Millisecond): // polling a child process; there is no clock to inject
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %s", s.port, startTimeout)
		}
	}
}

// Do sends one command to the server and returns its reply as text (a
// simple string, an integer or a bulk string; an error reply is an error).
func (s *Server) Do(args ...string) (string, error) { return do(s.Addr(), args...) }

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// freePort finds a free 127.0.0.1 port. For a cluster node the cluster bus
// port (port+10000) must be free as well.
func freePort(withBus bool) (int, error) {
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !withBus {
			_ = l.Close()
			return port, nil
		}
		if port+10000 <= 65535 {
			if b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
				_ = b.Close()
				_ = l.Close()
				return port, nil
			}
		}
		_ = l.Close()
	}
	return 0, fmt.Errorf("no free port pair for a cluster node")
}

func ping(addr string) error {
	r, err := do(addr, "PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("PING answered %q", r)
	}
	return nil
}

// do speaks just enough RESP for PING, CLUSTER INFO and CLUSTER KEYSLOT.
func do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unsupported reply %q", line)
}
