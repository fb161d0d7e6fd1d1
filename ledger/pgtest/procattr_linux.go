package pgtest

import "syscall"

// sysProcAttr kills postgres if the test process dies without running
// its cleanups (a panic, a timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
