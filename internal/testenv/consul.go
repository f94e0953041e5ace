package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ConsulVersion is the Consul release the tests run: 1.16.3, the last one
// under MPL-2.0 (later releases are BSL and must not be used).
// scripts/build-consul.sh builds exactly this one.
const ConsulVersion = "1.16.3"

// ConsulReadyTimeout bounds how long StartConsul and Restart wait for the
// agent to have a leader and its own node in the catalog.
const ConsulReadyTimeout = 30 * time.Second

// Consul is a `consul agent -dev` (a single server, state in memory)
// started for a test, with every port it listens on bound to 127.0.0.1.
type Consul struct {
	*Process
	Addr     string // host:port of the HTTP API (what consul/api takes)
	HTTPPort int
	SerfLAN  int
	SerfWAN  int
	Server   int    // server RPC port
	Node     string // the agent's node name
	Token    string // ACL token sent by Get and Services ("" without ACLs)
}

// consulHTTP talks to the test agents. Keep-alives are off so that no idle
// connection goroutine outlives a test (goleak).
var consulHTTP = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// consulBuildScript is scripts/build-consul.sh of this repository.
func consulBuildScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "build-consul.sh")
}

// consulChecked caches, per path, whether a binary is Consul ConsulVersion.
var consulChecked sync.Map // path -> error (nil: the right version)

// consulIsPinned reports why the binary at path is not Consul
// ConsulVersion (nil when it is).
func consulIsPinned(path string) error {
	if v, ok := consulChecked.Load(path); ok {
		err, _ := v.(error)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	if err == nil {
		first, _, _ := strings.Cut(string(out), "\n")
		if strings.TrimSpace(first) != "Consul v"+ConsulVersion {
			err = fmt.Errorf("%s is %q, not Consul v%s", path, strings.TrimSpace(first), ConsulVersion)
		}
	}
	consulChecked.Store(path, err)
	return err
}

// ConsulBinary returns the path of the Consul ConsulVersion binary: the one
// named by $GINGOV_CONSUL, else the one scripts/build-consul.sh builds and
// caches (its --path), else `consul` on PATH. A binary of another version
// is never used. When none is found the test fails under CI=true and
// skips otherwise, naming the build command.
func ConsulBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GINGOV_CONSUL"); p != "" {
		if err := consulIsPinned(p); err != nil {
			t.Fatalf("testenv: GINGOV_CONSUL: %v", err)
		}
		return p
	}
	var tried []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "bash", consulBuildScript(), "--path").Output(); err == nil {
		p := strings.TrimSpace(string(out))
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			err := consulIsPinned(p)
			if err == nil {
				return p
			}
			tried = append(tried, err.Error())
		} else {
			tried = append(tried, p+": not built")
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		err := consulIsPinned(p)
		if err == nil {
			return p
		}
		tried = append(tried, err.Error())
	}
	msg := fmt.Sprintf("consul v%s not found (%s); build it with: scripts/build-consul.sh (about 10 minutes, cached; or run %s), or set GINGOV_CONSUL",
		ConsulVersion, strings.Join(tried, "; "), InstallHint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// StartConsul starts `consul agent -dev` on free loopback ports (HTTP, Serf
// LAN and WAN, server RPC; DNS, gRPC and gRPC-TLS off; no update check)
// and waits until it has elected itself leader and its node is in the
// catalog. Extra args are appended to the command line. The agent is
// stopped at test cleanup.
func StartConsul(t testing.TB, extra ...string) *Consul {
	t.Helper()
	return startConsul(t, "", extra)
}

// StartConsulACL is StartConsul with ACLs enabled and denying by default:
// only requests with token (the initial management token, also the
// agent's own) are allowed. c.Token is token; Get and Services send it.
func StartConsulACL(t testing.TB, token string, extra ...string) *Consul {
	t.Helper()
	hcl := fmt.Sprintf(`acl { enabled = true, default_policy = "deny", enable_token_persistence = false, tokens { initial_management = %q, agent = %q } }`, token, token)
	return startConsul(t, token, append([]string{"-hcl", hcl}, extra...))
}

func startConsul(t testing.TB, token string, extra []string) *Consul {
	t.Helper()
	bin := ConsulBinary(t)
	var lastErr error
	for range 3 {
		ports := make([]int, 4)
		seen := map[int]bool{}
		for i := range ports {
			for {
				p := FreePort(t)
				if !seen[p] {
					seen[p] = true
					ports[i] = p
					break
				}
			}
		}
		c := &Consul{
			HTTPPort: ports[0], SerfLAN: ports[1], SerfWAN: ports[2], Server: ports[3],
			Addr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
			Node:  "gingov-test-" + strconv.Itoa(ports[0]),
			Token: token,
		}
		work := t.TempDir()
		args := append([]string{
			"agent", "-dev",
			"-node", c.Node,
			"-bind", "127.0.0.1",
			"-client", "127.0.0.1",
			"-advertise", "127.0.0.1",
			"-http-port", strconv.Itoa(c.HTTPPort),
			"-serf-lan-port", strconv.Itoa(c.SerfLAN),
			"-serf-wan-port", strconv.Itoa(c.SerfWAN),
			"-server-port", strconv.Itoa(c.Server),
			"-dns-port", "-1",
			"-grpc-port", "-1",
			"-grpc-tls-port", "-1",
			"-hcl", "disable_update_check = true",
			"-log-level", "warn",
		}, extra...)
		c.Process = Start(t, bin, args, nil, work)
		if lastErr = c.waitReady(ConsulReadyTimeout); lastErr == nil {
			return c
		}
		c.Stop()
		if !addrInUse(c.Output()) {
			break
		}
	}
	t.Fatalf("testenv: consul did not start: %v", lastErr)
	return nil
}

// Restart runs the agent again with the same command line, so on the same
// ports, as a supervisor would after a crash, and waits until it is ready.
// A -dev agent keeps its state in memory: it comes back without any
// service, and with a raft index that starts over. A running agent is
// stopped first (a paused one is resumed so that it can). c.Process is the
// new process from then on, stopped at cleanup as the first one was.
// Restart must not run concurrently with other methods of c.
//
// The ports may be taken by someone else meanwhile; Restart retries the
// bind for a few seconds, then fails the test.
func (c *Consul) Restart(t testing.TB) {
	t.Helper()
	c.Resume()
	c.Stop()
	old := c.cmd
	var lastErr error
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.Process = Start(t, old.Path, old.Args[1:], old.Env, old.Dir)
		if lastErr = c.waitReady(ConsulReadyTimeout); lastErr == nil {
			return
		}
		c.Stop()
		if !addrInUse(c.Output()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: consul did not restart on %s: %v", c.Addr, lastErr)
}

func (c *Consul) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if c.Exited() {
			return fmt.Errorf("consul exited: %s", c.Output())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = c.Ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return err
}

// Ready reports nil when the agent answers GET /v1/status/leader with a
// leader and has synced its own node into the catalog (so that services
// registered with it are listed at once).
func (c *Consul) Ready(ctx context.Context) error {
	var leader string
	if err := c.Get(ctx, "/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return fmt.Errorf("no leader yet")
	}
	var node *struct{ Node struct{ Node string } }
	if err := c.Get(ctx, "/v1/catalog/node/"+c.Node, &node); err != nil {
		return err
	}
	if node == nil || node.Node.Node != c.Node {
		return fmt.Errorf("node %s not in the catalog yet", c.Node)
	}
	return nil
}

// ConsulService is a service as GET /v1/health/service/<name> lists it.
type ConsulService struct {
	ID      string
	Service string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	Weights struct{ Passing, Warning int }
	Status  string // the aggregate of its checks: passing, warning or critical
}

// Services lists the instances of a service through the HTTP API (no
// client library), with the aggregate status of their checks. With
// passingOnly, only instances whose checks all pass are listed, as
// discovery sees them.
func (c *Consul) Services(ctx context.Context, name string, passingOnly bool) ([]ConsulService, error) {
	path := "/v1/health/service/" + name
	if passingOnly {
		path += "?passing=true"
	}
	var entries []struct {
		Service ConsulService
		Checks  []struct{ Status string }
	}
	if err := c.Get(ctx, path, &entries); err != nil {
		return nil, err
	}
	out := make([]ConsulService, 0, len(entries))
	for _, e := range entries {
		s := e.Service
		s.Status = "passing"
		for _, ch := range e.Checks {
			switch {
			case ch.Status == "critical":
				s.Status = "critical"
			case ch.Status == "warning" && s.Status == "passing":
				s.Status = "warning"
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Get sends GET path to the agent's HTTP API and decodes the JSON answer
// into out; a status other than 200 is an error.
func (c *Consul) Get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+path, nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("X-Consul-Token", c.Token)
	}
	resp, err := consulHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, bytes.TrimSpace(data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
