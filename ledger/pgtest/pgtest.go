// Package pgtest runs a real PostgreSQL server for tests: initdb into a
// temporary directory, then postgres on a free 127.0.0.1 port (no Unix
// socket, fsync off), killed by t.Cleanup. A test can Stop and Start it to
// see the ledger lose and regain its database.
//
// The binaries come from the Debian package (apt-get install postgresql):
// they are looked up on PATH and then under /usr/lib/postgresql/<version>/bin.
// initdb refuses to run as root, so when the test runs as root (CI) the
// server runs as the unprivileged "postgres" system user (the package
// creates it), owning its temporary directory.
//
// The machine's own PostgreSQL service (port 5432) is never used.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	installHint  = "PostgreSQL binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql)"
	startTimeout = 30 * time.Second
)

// Server is one postgres process owned by a test.
type Server struct {
	tb   testing.TB
	bin  string // directory of initdb and postgres
	dir  string // data directory
	port int
	cred *syscall.Credential // non-nil when running as root
	dbs  int

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// Start initialises a database cluster in a temporary directory, starts
// postgres on a free 127.0.0.1 port and waits until it accepts connections.
// It fails the test (with an install hint) if the binaries are missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binDir()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{tb: tb, bin: bin}
	root, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(root) })
	tb.Cleanup(s.Stop)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("pgtest: running as root needs the unprivileged \"postgres\" user (created by the postgresql package): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(root, uid, gid); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	s.dir = filepath.Join(root, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dir, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = s.procAttr()
	initdb.Dir = root
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		if s.port, err = freePort(); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	tb.Fatalf("pgtest: %v", lastErr)
	return nil
}

// binDir finds the directory holding initdb and postgres.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("pgtest: %s", installHint)
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func (s *Server) procAttr() *syscall.SysProcAttr {
	a := sysProcAttr()
	if s.cred != nil {
		if a == nil {
			a = &syscall.SysProcAttr{}
		}
		a.Credential = s.cred
	}
	return a
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// DSN is a connection string for database db (as user postgres, trusted).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Stop kills the server (SIGKILL, as a crash or a cut cable looks to
// clients) and waits for it to exit. Its data stays; Start recovers it.
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

// Start starts a stopped server again on the same port and data directory
// and waits until it accepts connections; it fails the test otherwise.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("pgtest: restart: %v", err)
	}
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	_ = os.Remove(filepath.Join(s.dir, "postmaster.pid")) // left by a killed server
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dir,
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning",
	)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = s.procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	deadline := time.Now().Add(startTimeout)
	for {
		if ready(s.port) {
			s.cmd, s.out, s.done = cmd, out, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres on port %d exited: %s", s.port, strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond): // polling a child process; there is no clock to inject
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres on port %d not ready within %s: %s", s.port, startTimeout, out.String())
		}
	}
}

// ready reports whether postgres answers a startup message on port with
// something other than "the database system is starting up".
func ready(port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	// StartupMessage, protocol 3.0, user postgres, database postgres.
	params := "user\x00postgres\x00database\x00postgres\x00\x00"
	msg := make([]byte, 8, 8+len(params))
	msg = append(msg, params...)
	n := len(msg)
	msg[0], msg[1], msg[2], msg[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	msg[4], msg[5], msg[6], msg[7] = 0, 3, 0, 0
	if _, err := c.Write(msg); err != nil {
		return false
	}
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		return false
	}
	return buf[0] == 'R' // authentication request (trust: AuthenticationOk); 'E' while starting up
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NewDatabase creates an empty database with a fresh name on the server and
// returns its DSN, so that subtests sharing one server do not see each
// other's rows.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	s.mu.Lock()
	s.dbs++
	name := "t" + strconv.Itoa(s.dbs)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return s.DSN(name)
}
