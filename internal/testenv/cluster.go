package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterSlots is the number of hash slots a Redis Cluster divides keys into.
const clusterSlots = 16384

// RedisCluster is a Redis Cluster of masters without replicas, started for a
// test. Nodes[i] listens on Addrs[i].
type RedisCluster struct {
	Nodes []*Redis
	Addrs []string // host:port on 127.0.0.1, one per master
}

// StartRedisCluster starts masters (at least 3) cluster-enabled
// redis-servers on free loopback ports, joins them with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok with all 16384 slots assigned. The nodes are stopped at
// test cleanup.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testenv: a Redis Cluster needs at least 3 masters, got %d", masters)
	}
	// Check both binaries before starting anything, so a missing redis-cli
	// skips the test cleanly.
	Require(t, "redis-server", "apt-get install -y redis-server")
	cli := Require(t, "redis-cli", "apt-get install -y redis-tools")

	c := &RedisCluster{}
	for range masters {
		r := startRedis(t, func(port int, dir string) []string {
			// The bus port defaults to port+10000, which is neither known
			// to be free nor, for ports above 55535, valid: pick it too.
			bus := FreePort(t)
			for bus == port {
				bus = FreePort(t)
			}
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", fmt.Sprintf("%s/nodes-%d.conf", dir, port),
				"--cluster-node-timeout", "2000",
				"--cluster-port", strconv.Itoa(bus),
			}
		})
		c.Nodes = append(c.Nodes, r)
		c.Addrs = append(c.Addrs, r.Addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil || ctx.Err() != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v (%v)\n%s\n%s", err, ctx.Err(), out, c.nodesOutput())
	}

	c.waitOK(t, 20*time.Second, string(out))
	return c
}

// waitOK polls CLUSTER INFO on every node until each one sees the whole
// cluster healthy, then returns; otherwise it fails the test.
func (c *RedisCluster) waitOK(t testing.TB, timeout time.Duration, createOut string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = c.checkOK(); last == nil {
			return
		}
		for _, n := range c.Nodes {
			if n.Exited() {
				t.Fatalf("testenv: cluster node %s exited: %v\n%s", n.Addr, last, c.nodesOutput())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testenv: redis cluster not ok after %v: %v\nredis-cli --cluster create:\n%s\n%s",
		timeout, last, createOut, c.nodesOutput())
}

// checkOK returns nil when every node reports cluster_state:ok, all slots
// assigned, and every master known and serving slots.
func (c *RedisCluster) checkOK() error {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(len(c.Nodes)),
		"cluster_size":           strconv.Itoa(len(c.Nodes)),
	}
	for _, n := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := Do(ctx, n.Addr, "CLUSTER", "INFO")
		cancel()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr, err)
		}
		got := parseInfo(info)
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("%s: %s:%s, want %s", n.Addr, k, got[k], v)
			}
		}
	}
	return nil
}

// nodesOutput is each node's CLUSTER INFO (or why it has none) and process
// output, for failure messages.
func (c *RedisCluster) nodesOutput() string {
	var b strings.Builder
	for i, n := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := Do(ctx, n.Addr, "CLUSTER", "INFO")
		cancel()
		if err != nil {
			info = "CLUSTER INFO: " + err.Error()
		}
		fmt.Fprintf(&b, "--- node %d %s\n%s\n%s\n", i, n.Addr, strings.TrimSpace(info), n.Output())
	}
	return b.String()
}

// KillNode ends node i at once with SIGKILL, as a crash would. Without
// replicas, the cluster loses that node's slots.
func (c *RedisCluster) KillNode(i int) { c.Nodes[i].Kill() }

// Addr returns a copy of the nodes' addresses, for client seed lists.
func (c *RedisCluster) Addr() []string { return append([]string(nil), c.Addrs...) }

// parseInfo splits INFO-style "key:value" lines.
func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Do sends one command to addr over a fresh connection, without a client
// library, and returns a simple string, integer or bulk string reply as a
// string. An error reply is returned as an error; arrays are not supported.
func Do(ctx context.Context, addr string, args ...string) (string, error) {
	conn, err := dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads one non-array RESP2 reply.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("testenv: empty RESP reply")
	}
	switch body := line[1:]; line[0] {
	case '+', ':':
		return body, nil
	case '-':
		return "", fmt.Errorf("redis: %s", body)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 {
			return "", fmt.Errorf("testenv: bad bulk length %q", body)
		}
		if n == -1 {
			return "", errors.New("testenv: nil reply")
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("testenv: unsupported RESP reply %q", line)
	}
}

// MasterOf returns the index in Nodes of the master that serves key's hash
// slot (CLUSTER KEYSLOT, then each node's own slot ranges in CLUSTER
// NODES), to kill the node that holds a given key.
func (c *RedisCluster) MasterOf(t testing.TB, key string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Do(ctx, c.Addrs[0], "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatalf("testenv: CLUSTER KEYSLOT %s: %v", key, err)
	}
	slot, _ := strconv.Atoi(s)
	for i, n := range c.Nodes {
		nodes, err := Do(ctx, n.Addr, "CLUSTER", "NODES")
		if err != nil {
			t.Fatalf("testenv: CLUSTER NODES on %s: %v", n.Addr, err)
		}
		for _, line := range strings.Split(nodes, "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.Contains(f[2], "myself") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, ok := strings.Cut(r, "-")
				if !ok {
					hi = lo
				}
				l, err1 := strconv.Atoi(lo)
				h, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil && l <= slot && slot <= h {
					return i
				}
			}
		}
	}
	t.Fatalf("testenv: no master serves slot %d of %s", slot, key)
	return -1
}
