//go:build unix

package storetest

import "syscall"

// Freeze stops the server process (SIGSTOP) without closing anything: the
// kernel still accepts connections and buffers what clients send, but
// nothing is answered, as with a server stuck in a long command, swapping,
// or a network that drops replies. Commands sent meanwhile run after Thaw.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw lets a frozen server run again (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.tb.Fatalf("storetest: signal %v: the server is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("storetest: signal %v: %v", sig, err)
	}
}
