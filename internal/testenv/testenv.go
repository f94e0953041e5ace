// Package testenv starts the real servers that gingov's integration tests
// talk to, each on a free loopback port in its own temp dir, and stops them
// when the test ends: standalone Redis and a Redis Cluster (redis-server,
// redis-cli), rnacos for the Nacos protocol, a Spring Cloud Eureka server
// (a fixture jar built once by Maven and cached), etcd, Prometheus (with
// promtool to check an exposition), and Envoy 1.40.0 with a bootstrap
// template such as docs/mesh/envoy.yaml. A running server can be paused,
// killed or restarted on the same port, to test failures and recovery.
// It also holds the goleak options for goroutines that the Nacos SDK and
// Sentinel leave running, and a TestMain helper for packages that need a
// process-wide directory.
//
// When a server's binary is missing, the test fails under CI=true and
// otherwise skips with a one-line hint naming the install command
// (scripts/install-deps.sh installs everything the tests need).
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstallHint is the command that installs every server the tests use.
const InstallHint = "scripts/install-deps.sh"

// Require returns the path of the named binary, looking in PATH and then in
// the extra dirs. When it is missing the test fails under CI=true and skips
// otherwise, naming how to install it.
func Require(t testing.TB, name, installCmd string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range extraDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found; install it with: %s (or run %s)", name, installCmd, InstallHint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a server started for a test.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *Buffer
	done chan struct{}
	err  error // set before done is closed
	once sync.Once
}

// Start runs a server process, logging its output with the test when the
// test fails, and stops it (SIGTERM, then SIGKILL after 5 s) at cleanup.
func Start(t testing.TB, name string, args []string, env []string, dir string) *Process {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), name, args...) // stopped by Stop/Kill
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	out := &Buffer{Limit: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	p := &Process{Name: filepath.Base(name), cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, p.out.String())
		}
	})
	return p
}

// Stop ends the process: SIGTERM to its process group, SIGKILL after 5 s.
// It is safe to call more than once.
func (p *Process) Stop() {
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
}

// Kill ends the process at once with SIGKILL, as a crash would.
func (p *Process) Kill() {
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// WaitReady polls ready every 50 ms until it returns nil, the process exits,
// or timeout passes; then it fails the test with the process output.
func (p *Process) WaitReady(t testing.TB, timeout time.Duration, ready func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			t.Fatalf("testenv: %s exited before it was ready (%v):\n%s", p.Name, p.err, p.out.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testenv: %s not ready after %v: %v\n%s", p.Name, timeout, last, p.out.String())
}

// Redis is a redis-server started for a test.
type Redis struct {
	*Process
	Addr string // host:port on 127.0.0.1
	Port int
	Dir  string
}

// StartRedis starts a standalone redis-server on a free loopback port with
// persistence off, and waits until it answers PING. Extra args are appended
// to the command line (e.g. "--maxmemory", "10mb").
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	return startRedis(t, func(int, string) []string { return extra })
}

// startRedis starts one redis-server on a free loopback port in its own
// temp dir and waits until it answers PING. extra returns the flags to
// append for the chosen port and dir; it is called again, with a new port,
// when the port was taken before the server could bind it.
func startRedis(t testing.TB, extra func(port int, dir string) []string) *Redis {
	t.Helper()
	bin := Require(t, "redis-server", "apt-get install -y redis-server")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		dir := t.TempDir()
		args := append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
			"--logfile", "",
		}, extra(port, dir)...)
		p := Start(t, bin, args, nil, dir)
		r := &Redis{Process: p, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, Dir: dir}
		if lastErr = r.waitPing(10 * time.Second); lastErr == nil {
			return r
		}
		p.Stop()
		if !strings.Contains(p.Output(), "Address already in use") {
			break
		}
	}
	t.Fatalf("testenv: redis-server did not start: %v", lastErr)
	return nil
}

func (r *Redis) waitPing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if r.Exited() {
			return fmt.Errorf("redis-server exited: %s", r.Output())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = Ping(ctx, r.Addr)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return err
}

// dial connects to addr with ctx's deadline also set on the connection.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, nil
}

// Ping sends a RESP PING to addr and expects +PONG, without a client library.
func Ping(ctx context.Context, addr string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Buffer is an io.Writer safe for concurrent writers and readers: tests
// collect the log lines of the code they run in one. The zero value is
// ready; Limit, when > 0, caps what it keeps (later writes are dropped).
type Buffer struct {
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit <= 0 || b.buf.Len()+len(p) <= b.Limit {
		b.buf.Write(p)
	}
	return len(p), nil
}

// String returns everything kept so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// maxOutput caps a server's kept output so a chatty one cannot fill memory.
const maxOutput = 1 << 20
