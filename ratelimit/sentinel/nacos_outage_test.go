package sentinel_test

// The Nacos server goes down under a watcher here. nacos-sdk-go v2.3.5 has
// data races of its own on that path (RpcClient.reconnect writes its
// connection while requests read it), which the race detector reports
// whatever the caller does; so the watcher runs in a child process,
// testdata/watchclient, built without -race, and the test reads what it
// prints.

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

type watchClient struct {
	mu    sync.Mutex
	lines []string
}

func (c *watchClient) count(substr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func (c *watchClient) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

func (c *watchClient) waitFor(t *testing.T, substr string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for c.count(substr) == 0 {
		if time.Since(start) > limit {
			t.Fatalf("no %q from watchclient within %v:\n%s", substr, limit, c.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func startWatchClient(t *testing.T, n *testenv.Nacos, dataID string) *watchClient {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "watchclient")
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, gobin, "build", "-race=false", "-buildvcs=false", "-o", bin, "./testdata/watchclient")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build watchclient: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-server", n.HTTPAddr, "-data-id", dataID, "-dir", dir, "-interval", "200ms")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &watchClient{}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the client cancels its watcher and exits
		exited := make(chan error, 1)
		go func() { <-readDone; exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("watchclient: %v\n%s", err, c.output())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("watchclient did not exit within 15 s of its input ending")
		}
	})
	return c
}

// A bad document in Nacos is logged at ERROR once however many pushes and
// polls see it; with the server down the document in force stays and the
// outage is one WARN; once the server is back its changes apply again.
func TestWatchNacosOutageAndBadDocument(t *testing.T) {
	n := testenv.StartNacos(t)
	const dataID = "outage-rules"
	n.PublishConfig(t, dataID, "", "v1")
	c := startWatchClient(t, n, dataID)
	c.waitFor(t, "applied v1", 30*time.Second)

	n.PublishConfig(t, dataID, "", "bad 1")
	c.waitFor(t, `"level":"ERROR"`, 15*time.Second)
	time.Sleep(2 * time.Second) // 10 polls
	if got := c.count(`"level":"ERROR"`); got != 1 {
		t.Fatalf("%d ERROR lines for one bad document over 10 polls, want 1:\n%s", got, c.output())
	}
	n.PublishConfig(t, dataID, "", "v2")
	c.waitFor(t, "applied v2", 15*time.Second)
	c.waitFor(t, `"after_rejected":true`, 5*time.Second)

	n.Stop()
	c.waitFor(t, "document source unreachable", 15*time.Second)
	time.Sleep(3 * time.Second)
	if got := c.count("document source unreachable"); got != 1 {
		t.Fatalf("%d unreachable WARN lines for one outage, want 1:\n%s", got, c.output())
	}
	applied := c.count("applied ")
	n.Restart(t)
	n.PublishConfig(t, dataID, "", "v3")
	d := c.waitFor(t, "applied v3", 60*time.Second)
	t.Logf("after the restart, the new document applied %v after it was published", d.Round(time.Millisecond))
	if got := c.count("applied "); got != applied+1 {
		t.Fatalf("%d documents applied across the outage, want 1 (v3):\n%s", got-applied, c.output())
	}
	c.waitFor(t, "document source reachable again", 10*time.Second)
}
