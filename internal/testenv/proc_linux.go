package testenv

import "syscall"

// sysProcAttr puts a server in its own process group (so Stop reaches its
// children) and kills it if the test binary dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
