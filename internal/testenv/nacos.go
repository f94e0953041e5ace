package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RnacosVersion is the rnacos release the tests are written against
// (scripts/install-deps.sh installs exactly this one).
const RnacosVersion = "0.8.8"

// nacosGRPCOffset is how far above the HTTP port the gRPC port lies:
// nacos-sdk-go derives the gRPC port as HTTP port + 1000.
const nacosGRPCOffset = 1000

// Nacos is an rnacos server (a Nacos-protocol server: the 2.x gRPC API the
// Go SDK uses and the 1.x HTTP open API) started for a test, listening on
// 127.0.0.1 only.
type Nacos struct {
	*Process
	HTTPAddr    string // host:port of the HTTP API on 127.0.0.1 (an SDK takes 127.0.0.1 and Port)
	Port        int    // HTTP port
	GRPCPort    int    // always Port+1000, as nacos-sdk-go assumes
	ConsolePort int    // web console, on 127.0.0.1 as well
	Dir         string // data dir (RNACOS_DATA_DIR); config and persistent instances survive Restart
}

// nacosHTTP talks to the test servers. Keep-alives are off so that no idle
// connection goroutine outlives a test (goleak).
var nacosHTTP = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// StartNacos starts rnacos on free loopback ports (HTTP, gRPC = HTTP+1000,
// console) with a fresh data dir, and waits until the HTTP API answers
// /nacos/health, its single-node raft group has a leader that has applied
// its log, and the gRPC port speaks HTTP/2. extraEnv entries
// ("RNACOS_NAMING_HEALTH_TIMEOUT_SECOND=5", …) come last and so override the
// defaults set here (RUST_LOG must keep INFO for Restart). The server is
// stopped at test cleanup.
//
// rnacos 0.8.8 has a startup race: in up to one start in six the raft
// state-apply actor gets its first entry before its dependencies are
// injected and panics (raftapply.rs:421), after which the server still
// answers /nacos/health and "true" to config writes but stores nothing.
// StartNacos sees the panic and starts again with a fresh data dir.
func StartNacos(t testing.TB, extraEnv ...string) *Nacos {
	t.Helper()
	home, _ := os.UserHomeDir()
	bin := Require(t, "rnacos", "cargo install --locked rnacos@"+RnacosVersion,
		filepath.Join(home, ".cargo", "bin"))
	checkRnacosVersion(t, bin)

	var lastErr error
	for range nacosStartAttempts {
		httpPort, consolePort, err := nacosPorts()
		if err != nil {
			t.Fatalf("testenv: rnacos ports: %v", err)
		}
		dir, work := t.TempDir(), t.TempDir()
		// rnacos loads .env from its working dir unless -e names a file;
		// an empty file in a dir of our own keeps stray settings out.
		envFile := filepath.Join(work, "rnacos.env")
		if err := os.WriteFile(envFile, nil, 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		grpcPort := httpPort + nacosGRPCOffset
		env := append([]string{
			"RNACOS_SDK_HOST=127.0.0.1", // binds the HTTP API and gRPC
			"RNACOS_CONSOLE_HOST=127.0.0.1",
			"RNACOS_HTTP_PORT=" + strconv.Itoa(httpPort),
			"RNACOS_GRPC_PORT=" + strconv.Itoa(grpcPort),
			"RNACOS_HTTP_CONSOLE_PORT=" + strconv.Itoa(consolePort),
			"RNACOS_DATA_DIR=" + dir,
			// A single-node raft cluster that forms itself (the defaults,
			// stated so that a developer's own RNACOS_* cannot change them).
			"RNACOS_RAFT_NODE_ID=1",
			"RNACOS_RAFT_AUTO_INIT=true",
			"RNACOS_RAFT_NODE_ADDR=127.0.0.1:" + strconv.Itoa(grpcPort),
			"RNACOS_RAFT_JOIN_ADDR=",
			"RNACOS_ENABLE_OPEN_API_AUTH=false", // the helpers use the open API without a token
			"RNACOS_HTTP_WORKERS=2",             // default is one per CPU
			"RUST_LOG=info",                     // Restart waits for an INFO line
		}, extraEnv...)
		p := Start(t, bin, []string{"-e", envFile}, env, work)
		n := &Nacos{
			Process:     p,
			HTTPAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
			Port:        httpPort,
			GRPCPort:    grpcPort,
			ConsolePort: consolePort,
			Dir:         dir,
		}
		if lastErr = n.waitReady(30*time.Second, false); lastErr == nil {
			return n
		}
		p.Kill()
		if !retryableStart(p.Output()) {
			break
		}
		t.Logf("testenv: rnacos failed to start (%v); trying again", lastErr)
	}
	t.Fatalf("testenv: rnacos did not start: %v", lastErr)
	return nil
}

// Restart runs rnacos again with the same ports, data dir and settings, as
// a supervisor would after a crash, and waits until it is ready and has
// loaded its data (rnacos answers /nacos/health before it has replayed its
// raft log, and lists no persistent instances until then). A server
// still running is stopped first (a paused one is resumed so that it can).
// n.Process is the new process from then on, stopped at cleanup as the
// first one was. Configs and persistent instances survive; ephemeral
// instances do not (their clients register them again). Restart must not
// run concurrently with other methods of n.
//
// The ports may be taken by someone else meanwhile; Restart retries for a
// few seconds (and past its startup race, see StartNacos), then fails the
// test.
func (n *Nacos) Restart(t testing.TB) {
	t.Helper()
	n.Resume()
	n.Stop()
	old := n.cmd
	var lastErr error
	deadline := time.Now().Add(5 * time.Second)
	for attempt := 1; ; attempt++ {
		// old.Env is the whole environment the first process got; as the
		// extra env of Start it overrides each variable with the same value.
		p := Start(t, old.Path, old.Args[1:], old.Env, old.Dir)
		n.Process = p
		if lastErr = n.waitReady(30*time.Second, true); lastErr == nil {
			return
		}
		p.Kill()
		if !retryableStart(p.Output()) || (time.Now().After(deadline) && attempt >= nacosStartAttempts) {
			break
		}
		t.Logf("testenv: rnacos failed to restart (%v); trying again", lastErr)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: rnacos did not restart on %s: %v", n.HTTPAddr, lastErr)
}

// nacosStartAttempts bounds the starts StartNacos and Restart try, each
// failing for a taken port or rnacos's startup race.
const nacosStartAttempts = 8

// retryableStart reports whether a start that failed with this output may
// succeed when tried again: a port was taken, or rnacos panicked while
// starting.
func retryableStart(out string) bool {
	return strings.Contains(out, "Address already in use") || strings.Contains(out, "panicked")
}

// nacosPorts finds an HTTP port whose gRPC port (HTTP+1000) is also free,
// and a console port, all held open together while choosing so that they
// differ.
func nacosPorts() (httpPort, consolePort int, err error) {
	lc := &net.ListenConfig{}
	ctx := context.Background()
	listen := func(port int) (net.Listener, error) {
		return lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	for range 50 {
		h, err := listen(0)
		if err != nil {
			return 0, 0, err
		}
		httpPort = h.Addr().(*net.TCPAddr).Port
		if httpPort+nacosGRPCOffset > 65535 {
			h.Close()
			continue
		}
		g, err := listen(httpPort + nacosGRPCOffset)
		if err != nil {
			h.Close()
			continue
		}
		c, err := listen(0)
		h.Close()
		g.Close()
		if err != nil {
			return 0, 0, err
		}
		consolePort = c.Addr().(*net.TCPAddr).Port
		c.Close()
		return httpPort, consolePort, nil
	}
	return 0, 0, errors.New("no free HTTP port with a free port 1000 above it")
}

// waitReady polls until the HTTP API answers /nacos/health with 200, raft
// reports a leader that has applied its whole log, the gRPC port answers an
// HTTP/2 preface with SETTINGS, and the console port accepts connections;
// with loaded, also until rnacos has logged that it replayed its data dir
// (it does on every start but the first). rnacos binds
// gRPC and the console in background tasks: a failed bind there panics the
// task but leaves the process (and its health endpoint) up, so a panic in
// the output counts as a failed start.
func (n *Nacos) waitReady(timeout time.Duration, loaded bool) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if n.Exited() {
			return fmt.Errorf("rnacos exited (%v); its output is logged with the failure", n.err) //nolint:errorlint // n.err may be nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = n.ready(ctx)
		cancel()
		if out := n.Output(); strings.Contains(out, "panicked") {
			return fmt.Errorf("rnacos panicked while starting: %s", panicLine(out))
		}
		if err == nil && loaded && !strings.Contains(n.Output(), rnacosLoaded) {
			err = errors.New("rnacos has not loaded its data dir")
		}
		if err == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return err
}

// panicLine returns the line of out that says where a thread panicked and
// the line after it (the message).
func panicLine(out string) string {
	i := strings.Index(out, "panicked")
	if i < 0 {
		return ""
	}
	out = out[strings.LastIndexByte(out[:i], '\n')+1:]
	lines := strings.SplitN(out, "\n", 3)
	return strings.Join(lines[:min(2, len(lines))], " ")
}

// rnacosLoaded is what rnacos logs (at INFO) once it has replayed the
// snapshot and raft log of an existing data dir into its state.
const rnacosLoaded = "raft data load finished"

func (n *Nacos) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url("/nacos/health", nil), nil)
	if err != nil {
		return err
	}
	resp, err := nacosHTTP.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /nacos/health: %s", resp.Status)
	}
	m, err := n.raftMetrics(ctx)
	if err != nil {
		return err
	}
	if m.State != "Leader" || m.LastLogIndex == 0 || m.LastApplied != m.LastLogIndex {
		return fmt.Errorf("raft not ready: %+v", m)
	}
	if err := h2Settings(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(n.GRPCPort))); err != nil {
		return fmt.Errorf("gRPC port: %w", err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.ConsolePort)))
	if err != nil {
		return fmt.Errorf("console port: %w", err)
	}
	return c.Close()
}

// raftMetrics is the part of GET /nacos/v1/raft/metrics the harness reads.
type raftMetrics struct {
	State        string `json:"state"` // "Leader" once the single node has elected itself
	LastLogIndex uint64 `json:"last_log_index"`
	LastApplied  uint64 `json:"last_applied"`
}

func (n *Nacos) raftMetrics(ctx context.Context) (raftMetrics, error) {
	var m raftMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url("/nacos/v1/raft/metrics", nil), nil)
	if err != nil {
		return m, err
	}
	resp, err := nacosHTTP.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /nacos/v1/raft/metrics: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return m, fmt.Errorf("GET /nacos/v1/raft/metrics: %w", err)
	}
	return m, nil
}

// waitRaftApplied waits until rnacos has applied a raft log entry past
// index.
func (n *Nacos) waitRaftApplied(t testing.TB, index uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := n.raftMetrics(ctx)
		cancel()
		if err == nil && m.LastApplied > index {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: rnacos applied no raft entry past %d: %+v, %v", index, m, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// h2Settings sends the HTTP/2 client preface and an empty SETTINGS frame to
// addr and expects a SETTINGS frame back, as any gRPC server sends first.
func h2Settings(ctx context.Context, addr string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Preface, then a frame header: length 0, type 0x4 SETTINGS, flags 0, stream 0.
	if _, err := conn.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)); err != nil {
		return err
	}
	var hdr [9]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return err
	}
	if hdr[3] != 4 {
		return fmt.Errorf("answered an HTTP/2 frame of type %d, not SETTINGS", hdr[3])
	}
	return nil
}

// checkRnacosVersion logs (it does not fail) when the binary found is not
// the pinned release.
func checkRnacosVersion(t testing.TB, bin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "rnacos "+RnacosVersion {
		t.Logf("testenv: %s --version = %q (%v); the tests expect rnacos %s (%s)",
			bin, got, err, RnacosVersion, InstallHint)
	}
}

// NacosInstance is a service instance as the 1.x open API reports it.
type NacosInstance struct {
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	Metadata    map[string]string `json:"metadata"`
}

// PublishConfig creates or replaces a config in the public namespace via
// the 1.x open API (POST /nacos/v1/cs/configs). An empty group means
// DEFAULT_GROUP.
func (n *Nacos) PublishConfig(t testing.TB, dataID, group, content string) {
	t.Helper()
	form := url.Values{"dataId": {dataID}, "content": {content}}
	setGroup(form, "group", group)
	status, body := n.do(t, http.MethodPost, "/nacos/v1/cs/configs", form)
	if status != http.StatusOK || strings.TrimSpace(body) != "true" {
		t.Fatalf("testenv: publish config %s/%s: %d %s", group, dataID, status, body)
	}
}

// PublishConfigIn is PublishConfig in the namespace whose ID is namespace
// (the 1.x open API's tenant; "" is the public namespace).
func (n *Nacos) PublishConfigIn(t testing.TB, namespace, dataID, group, content string) {
	t.Helper()
	form := url.Values{"dataId": {dataID}, "content": {content}, "tenant": {namespace}}
	setGroup(form, "group", group)
	status, body := n.do(t, http.MethodPost, "/nacos/v1/cs/configs", form)
	if status != http.StatusOK || strings.TrimSpace(body) != "true" {
		t.Fatalf("testenv: publish config %s/%s/%s: %d %s", namespace, group, dataID, status, body)
	}
}

// GetConfig reads a config in the public namespace via the 1.x open API
// (GET /nacos/v1/cs/configs); ok is false when it does not exist. An empty
// group means DEFAULT_GROUP.
func (n *Nacos) GetConfig(t testing.TB, dataID, group string) (content string, ok bool) {
	t.Helper()
	q := url.Values{"dataId": {dataID}}
	setGroup(q, "group", group)
	status, body := n.do(t, http.MethodGet, "/nacos/v1/cs/configs", q)
	switch status {
	case http.StatusOK:
		return body, true
	case http.StatusNotFound:
		return "", false
	}
	t.Fatalf("testenv: get config %s/%s: %d %s", group, dataID, status, body)
	return "", false
}

// RegisterInstance registers in under service in the public namespace via
// the 1.x open API (POST /nacos/v1/ns/instance). An ephemeral instance
// registered this way gets no heartbeats and is dropped after rnacos's
// health timeout (15 s unhealthy, 30 s gone, by default). A persistent one
// stays and survives restarts. rnacos answers before it has written a
// persistent instance to its raft log, so RegisterInstance waits until the
// entry is applied; even then rnacos records the applied index lazily, and
// a Kill within milliseconds can still lose the instance (rnacos replays
// the entry at restart but does not restore it), so crash tests should
// register well before the crash. Healthy and Enabled are not sent: the
// server marks a new instance healthy and enabled. An empty group means
// DEFAULT_GROUP.
func (n *Nacos) RegisterInstance(t testing.TB, service, group string, in NacosInstance) {
	t.Helper()
	form := url.Values{
		"serviceName": {service},
		"ip":          {in.IP},
		"port":        {strconv.Itoa(in.Port)},
		"ephemeral":   {strconv.FormatBool(in.Ephemeral)},
	}
	setGroup(form, "groupName", group)
	if in.Weight > 0 {
		form.Set("weight", strconv.FormatFloat(in.Weight, 'g', -1, 64))
	}
	if in.ClusterName != "" {
		form.Set("clusterName", in.ClusterName)
	}
	if len(in.Metadata) > 0 {
		md, err := json.Marshal(in.Metadata)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		form.Set("metadata", string(md))
	}
	var before raftMetrics
	if !in.Ephemeral {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		before, err = n.raftMetrics(ctx)
		cancel()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	status, body := n.do(t, http.MethodPost, "/nacos/v1/ns/instance", form)
	if status != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("testenv: register %s:%d in %s: %d %s", in.IP, in.Port, service, status, body)
	}
	if !in.Ephemeral {
		n.waitRaftApplied(t, before.LastApplied)
	}
}

// Instances lists every instance of service in the public namespace,
// healthy or not, via the 1.x open API (GET /nacos/v1/ns/instance/list). An
// empty group means DEFAULT_GROUP; an unknown service has no instances.
func (n *Nacos) Instances(t testing.TB, service, group string) []NacosInstance {
	t.Helper()
	q := url.Values{"serviceName": {service}, "healthyOnly": {"false"}}
	setGroup(q, "groupName", group)
	status, body := n.do(t, http.MethodGet, "/nacos/v1/ns/instance/list", q)
	if status != http.StatusOK {
		t.Fatalf("testenv: list instances of %s: %d %s", service, status, body)
	}
	var list struct {
		Hosts []NacosInstance `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("testenv: list instances of %s: %v in %s", service, err, body)
	}
	return list.Hosts
}

// DefaultNacosGroup is the group the helpers use when given none. Nacos
// defaults to it, but rnacos's config API rejects a missing group
// ("invalid group"), so it is always sent.
const DefaultNacosGroup = "DEFAULT_GROUP"

// setGroup sets the group parameter, named key ("group" in the config API,
// "groupName" in the naming API), to group or DefaultNacosGroup.
func setGroup(v url.Values, key, group string) {
	if group == "" {
		group = DefaultNacosGroup
	}
	v.Set(key, group)
}

func (n *Nacos) url(path string, q url.Values) string {
	u := url.URL{Scheme: "http", Host: n.HTTPAddr, Path: path}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends a GET with v as the query or a POST with v as the form, and
// returns the status and body.
func (n *Nacos) do(t testing.TB, method, path string, v url.Values) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var req *http.Request
	var err error
	if method == http.MethodGet {
		req, err = http.NewRequestWithContext(ctx, method, n.url(path, v), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, n.url(path, nil), strings.NewReader(v.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	resp, err := nacosHTTP.Do(req)
	if err != nil {
		t.Fatalf("testenv: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("testenv: %s %s: %v", method, path, err)
	}
	return resp.StatusCode, string(body)
}
