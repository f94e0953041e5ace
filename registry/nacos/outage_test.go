package nacos_test

// The tests here take the Nacos server down while an SDK client is
// connected or connecting. nacos-sdk-go v2.3.5 has data races of its own
// on that path (RpcClient.reconnect writes currentConnection and
// rpcClientStatus while its event goroutine and waiting requests read them
// without synchronisation), which the race detector reports whatever the
// caller does. So the client side of these tests runs in a child process,
// testdata/regclient, built without -race, and the test checks what it
// reports and what the server's own HTTP API lists.

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

var (
	buildOnce sync.Once
	clientBin string
	buildErr  error
)

// buildClient builds testdata/regclient once per test binary.
func buildClient(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		clientBin = filepath.Join(sdkDir, "regclient")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, gobin, "build", "-race=false", "-buildvcs=false", "-o", clientBin, "./testdata/regclient")
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			t.Logf("go build ./testdata/regclient: %s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build regclient: %v", buildErr)
	}
	return clientBin
}

// client is a running testdata/regclient.
type client struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	mu     sync.Mutex
	events map[string]int
	log    []string
}

func startClient(t *testing.T, n *testenv.Nacos) *client {
	t.Helper()
	bin := buildClient(t)
	cmd := exec.Command(bin, "-server", n.HTTPAddr, "-dir", sdkDir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 1000), events: map[string]int{}}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.log = append(c.log, line)
			if k, ok := strings.CutPrefix(line, "event "); ok {
				c.events[k]++
				c.mu.Unlock()
				continue
			}
			c.mu.Unlock()
			c.lines <- line
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the client closes its Registry and exits
		exited := make(chan error, 1)
		go func() { <-readDone; exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("regclient: %v (output %q)", err, c.output())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("regclient did not exit within 15 s of its input ending")
		}
	})
	return c
}

func (c *client) output() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

func (c *client) count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[kind]
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// expect waits for a line that starts with prefix, skipping others; a
// line starting with "err" when prefix does not fails the test.
func (c *client) expect(prefix string, limit time.Duration) string {
	c.t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("regclient exited; output %q", c.output())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
			if strings.HasPrefix(line, "err") {
				c.t.Fatalf("regclient: %s (waiting for %q)", line, prefix)
			}
		case <-timeout:
			c.t.Fatalf("no %q from regclient within %v; output %q", prefix, limit, c.output())
		}
	}
}

// With the server down, Register reports a RegisterFailed event per
// attempt and keeps trying; once the server is up it succeeds.
func TestOutageRegisterRetriesUntilServerUp(t *testing.T) {
	n := testenv.StartNacos(t)
	n.Stop()
	c := startClient(t, n)
	c.send("register late 127.0.0.1:18081 60s")
	waitFor(t, 15*time.Second, "RegisterFailed events", func() bool { return c.count("register_failed") >= 2 })
	n.Restart(t)
	up := time.Now()
	c.expect("ok register", 30*time.Second)
	t.Logf("Register succeeded %v after the server came up, after %d failed attempts",
		time.Since(up).Round(time.Millisecond), c.count("register_failed"))
	if c.count("registered") != 1 {
		t.Fatalf("%d Registered events", c.count("registered"))
	}
	waitFor(t, 2*time.Second, "instance visible", func() bool {
		_, ok := find(n.Instances(t, "late", ""), "127.0.0.1", 18081)
		return ok
	})
}

// A Register that gives up leaves nothing behind: the SDK, which keeps
// each registration to redo it after a reconnect, does not register the
// instance when the server comes back.
func TestOutageGivenUpLeavesNothing(t *testing.T) {
	n := testenv.StartNacos(t)
	n.Stop()
	c := startClient(t, n)
	c.send("register abandoned 127.0.0.1:18082 1500ms")
	if line := c.expect("err register", 10*time.Second); !strings.Contains(line, "nacos: register abandoned at 127.0.0.1:18082") ||
		!strings.Contains(line, "context deadline exceeded") {
		t.Fatalf("Register with the server down: %s", line)
	}
	if c.count("register_failed") == 0 || c.count("registered") != 0 {
		t.Fatalf("events %v", c.output())
	}
	n.Restart(t)
	c.send("register kept 127.0.0.1:18083 30s")
	c.expect("ok register", 30*time.Second)
	waitFor(t, 2*time.Second, "kept instance visible", func() bool {
		_, ok := find(n.Instances(t, "kept", ""), "127.0.0.1", 18083)
		return ok
	})
	// The SDK redoes its registrations as soon as it has connected, before
	// "kept" went through; a second more leaves room for a late one.
	time.Sleep(time.Second)
	if l := n.Instances(t, "abandoned", ""); len(l) != 0 {
		t.Fatalf("a registration Register gave up on appeared: %+v", l)
	}
}

// rnacos crashes and comes back with its data dir, where ephemeral
// instances are not kept: the SDK connects again, registers the instance
// again and renews its subscriptions by itself.
func TestOutageReRegisteredAfterServerRestart(t *testing.T) {
	n := testenv.StartNacos(t)
	c := startClient(t, n)
	// Two instances of one service: the SDK redoes them as a batch.
	c.send("register survivor 127.0.0.1:18084 10s")
	c.expect("ok register", 15*time.Second)
	c.send("register survivor 127.0.0.1:18085 10s")
	c.expect("ok register", 15*time.Second)
	both := func() bool {
		l := n.Instances(t, "survivor", "")
		_, ok1 := find(l, "127.0.0.1", 18084)
		_, ok2 := find(l, "127.0.0.1", 18085)
		return ok1 && ok2
	}
	waitFor(t, 2*time.Second, "instances visible", both)
	c.send("watch peers")
	c.expect("watch peers ", 5*time.Second)

	n.Kill()
	n.Restart(t)
	took := waitFor(t, 10*time.Second, "instances registered again after the restart", both)
	t.Logf("re-registered by the SDK %v after rnacos was back", took.Round(time.Millisecond))
	// One heartbeat period (the SDK checks its connection every 5 s) plus
	// a second for the reconnection itself.
	if took > 6*time.Second {
		t.Fatalf("re-registration took %v", took)
	}
	if c.count("registered") != 2 {
		t.Fatalf("%d Registered events; the redo is the SDK's own", c.count("registered"))
	}

	// The watch's subscription was renewed too: a new peer is pushed.
	start := time.Now()
	n.RegisterInstance(t, "peers", "", testenv.NacosInstance{IP: "127.0.0.1", Port: 19100, Ephemeral: true})
	c.expect("watch peers 127.0.0.1:19100", 10*time.Second)
	t.Logf("a peer registered after the restart was pushed to the watch after %v", time.Since(start).Round(time.Millisecond))
}
