package testenv

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// Pid returns the process id of the server.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Pause freezes the server with SIGSTOP, as a hung host would: the kernel
// still accepts connections and buffers requests, but nothing answers. A
// cleanup resumes it (so that Stop can end it at once), and Resume may be
// called earlier. Pause must not be called on a process that has exited.
func (p *Process) Pause(t testing.TB) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("testenv: pause %s: the process has exited", p.Name)
	}
	if err := syscall.Kill(-p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatalf("testenv: pause %s: %v", p.Name, err)
	}
	t.Cleanup(p.Resume)
}

// Resume continues a server frozen by Pause (SIGCONT). It is safe to call
// more than once, and after the process has exited.
func (p *Process) Resume() {
	if !p.Exited() {
		_ = syscall.Kill(-p.Pid(), syscall.SIGCONT)
	}
}

// Restart runs redis-server again with the same command line, so on the
// same port and in the same directory, as a supervisor would after a crash,
// and waits until it answers PING. A server still running is stopped first
// (Stop; a paused one is resumed so that it can). r.Process is the new process from then on, stopped at cleanup as
// the first one was. Restart must not run concurrently with other methods
// of r.
//
// The port may be taken by someone else meanwhile; Restart retries the
// bind for a few seconds, then fails the test.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Resume()
	r.Stop()
	old := r.cmd
	var lastErr error
	deadline := time.Now().Add(5 * time.Second)
	for {
		// old.Env is the whole environment the first process got; as the
		// extra env of Start it overrides each variable with the same value.
		p := Start(t, old.Path, old.Args[1:], old.Env, old.Dir)
		r.Process = p
		if lastErr = r.waitPing(10 * time.Second); lastErr == nil {
			return
		}
		p.Stop()
		if !strings.Contains(p.Output(), "Address already in use") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: redis-server did not restart on %s: %v", r.Addr, lastErr)
}
