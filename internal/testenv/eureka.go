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
	"testing"
	"time"
)

// Eureka is a Spring Cloud Netflix Eureka server (the fixture in
// internal/testenv/eureka-server) started for a test, standalone
// ([StartEureka]) or one of two peers ([StartEurekaPeers]), listening on
// 127.0.0.1 only.
type Eureka struct {
	*Process
	Addr string // host:port on 127.0.0.1
	Port int
	// URL is the server's Eureka base URL, http://127.0.0.1:port/eureka,
	// as a Spring client's defaultZone names it.
	URL string
}

// EurekaReadyTimeout bounds how long StartEureka and Restart wait for the
// JVM to serve /eureka/apps (about 4-20 s on a busy 2-core machine).
const EurekaReadyTimeout = 90 * time.Second

// eurekaBuildTimeout bounds the Maven build of the fixture jar when the
// tests build it themselves (first run without scripts/install-deps.sh).
const eurekaBuildTimeout = 15 * time.Minute

// eurekaHTTP talks to the test servers. Keep-alives are off so that no idle
// connection goroutine outlives a test (goleak).
var eurekaHTTP = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// eurekaServerDir is the Maven fixture next to this file.
func eurekaServerDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "eureka-server")
}

// EurekaJar returns the path of the Eureka server jar, building it with
// Maven when it is not cached yet. The cache key is computed in one place,
// internal/testenv/eureka-server/build.sh, which scripts/install-deps.sh
// runs as well; GINGOV_EUREKA_JAR names a jar to use instead. Without java
// (or, when a build is needed, mvn) the test fails under CI=true and skips
// otherwise.
func EurekaJar(t testing.TB) string {
	t.Helper()
	Require(t, "java", "apt-get install -y openjdk-17-jdk-headless")
	script := filepath.Join(eurekaServerDir(), "build.sh")
	jar := runEurekaBuild(t, script, time.Minute, "--path")
	if fi, err := os.Stat(jar); err == nil && fi.Size() > 0 {
		return jar
	}
	if os.Getenv("GINGOV_EUREKA_JAR") != "" {
		t.Fatalf("testenv: GINGOV_EUREKA_JAR=%s: no such jar", jar)
	}
	Require(t, "mvn", "apt-get install -y maven")
	t.Logf("testenv: building the Eureka server fixture with Maven (once; up to %v)", eurekaBuildTimeout)
	jar = runEurekaBuild(t, script, eurekaBuildTimeout)
	if fi, err := os.Stat(jar); err != nil || fi.Size() == 0 {
		t.Fatalf("testenv: the Eureka fixture build reported %s, which is missing: %v", jar, err)
	}
	return jar
}

// runEurekaBuild runs build.sh with args and returns the path it prints.
func runEurekaBuild(t testing.TB, script string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testenv: %s %s: %v\n%s", script, strings.Join(args, " "), err, stderr.String())
	}
	jar := strings.TrimSpace(stdout.String())
	if jar == "" {
		t.Fatalf("testenv: %s printed no jar path\n%s", script, stderr.String())
	}
	return jar
}

// eurekaJVMFlags start the JVM fast (C1 only, class-data sharing) and
// small; a test server needs neither peak throughput nor a big heap.
var eurekaJVMFlags = []string{
	"-XX:TieredStopAtLevel=1", "-Xshare:auto", "-XX:+UseSerialGC",
	"-Xms64m", "-Xmx256m", "-XX:ActiveProcessorCount=2",
}

// eurekaTestArgs are the server settings every test server runs with:
// self-preservation and the read-only response cache off, expired leases
// evicted every second, so tests see changes at once.
var eurekaTestArgs = []string{
	"--server.address=127.0.0.1",
	"--eureka.server.enable-self-preservation=false",
	"--eureka.server.use-read-only-response-cache=false",
	"--eureka.server.eviction-interval-timer-in-ms=1000",
	"--eureka.server.response-cache-update-interval-ms=1000",
	"--eureka.server.wait-time-in-ms-when-sync-empty=0",
}

// startEurekaJVM starts the fixture jar on port with the test settings,
// then args, then extra (later settings override earlier ones).
func startEurekaJVM(t testing.TB, jar, java string, port int, args, extra []string) *Eureka {
	t.Helper()
	all := append(append([]string{}, eurekaJVMFlags...), "-jar", jar, "--server.port="+strconv.Itoa(port))
	all = append(append(append(all, eurekaTestArgs...), args...), extra...)
	p := Start(t, java, all, nil, t.TempDir())
	return &Eureka{
		Process: p,
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:    port,
		URL:     eurekaURL(port),
	}
}

func eurekaURL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) + "/eureka" }

// StartEureka starts the fixture Eureka server on a free loopback port and
// waits (up to EurekaReadyTimeout) until GET /eureka/apps answers JSON.
// The server is standalone in Spring's standard way: it neither registers
// itself nor fetches a registry, and its defaultZone names itself (so that
// it replicates to itself, as such a server does). It has self-preservation
// and the read-only response cache off, and evicts expired leases every
// second, so tests see changes at once. Extra args
// ("--eureka.server.x=y") come last and so override these. The server is
// stopped at test cleanup.
func StartEureka(t testing.TB, extra ...string) *Eureka {
	t.Helper()
	jar := EurekaJar(t)
	java := Require(t, "java", "apt-get install -y openjdk-17-jdk-headless")
	var lastErr error
	for range 3 {
		port := FreePort(t)
		e := startEurekaJVM(t, jar, java, port, []string{
			"--eureka.client.register-with-eureka=false",
			"--eureka.client.fetch-registry=false",
			"--eureka.client.service-url.defaultZone=" + eurekaURL(port) + "/",
		}, extra)
		if lastErr = e.waitReady(EurekaReadyTimeout); lastErr == nil {
			return e
		}
		e.Kill()
		if !eurekaPortTaken(e.Output()) {
			break
		}
	}
	t.Fatalf("testenv: Eureka did not start: %v", lastErr)
	return nil
}

// StartEurekaPeers starts two fixture Eureka servers on free loopback
// ports, peered with each other as a Spring Eureka cluster runs: each one's
// defaultZone lists the other, then itself (the one list a cluster's
// configuration shares), each registers itself with its peer and fetches
// the peer's registry, and each replicates registrations, heartbeats,
// status changes and cancellations to the other. A server recognises its
// own URL in the list only by its hostname, which on loopback is not
// 127.0.0.1, so each one also replicates to itself, as the standalone
// server of [StartEureka] does. Both have the test settings of
// [StartEureka] (no self-preservation, no read-only response cache,
// eviction every second); extra args go to both. It returns once both
// serve /eureka/apps (up to EurekaReadyTimeout); both are stopped at test
// cleanup.
func StartEurekaPeers(t testing.TB, extra ...string) [2]*Eureka {
	t.Helper()
	jar := EurekaJar(t)
	java := Require(t, "java", "apt-get install -y openjdk-17-jdk-headless")
	var lastErr error
	for range 3 {
		ports := [2]int{FreePort(t), FreePort(t)}
		for ports[1] == ports[0] {
			ports[1] = FreePort(t)
		}
		var peers [2]*Eureka
		for i, port := range ports {
			other := ports[1-i]
			peers[i] = startEurekaJVM(t, jar, java, port, []string{
				"--spring.application.name=eureka-peer",
				"--eureka.client.register-with-eureka=true",
				"--eureka.client.fetch-registry=true",
				"--eureka.client.registry-fetch-interval-seconds=5",
				"--eureka.client.service-url.defaultZone=" + eurekaURL(other) + "/," + eurekaURL(port) + "/",
				"--eureka.instance.instance-id=eureka-peer-" + strconv.Itoa(port),
				"--eureka.instance.non-secure-port=" + strconv.Itoa(port),
				"--eureka.server.peer-node-read-timeout-ms=1000",
				"--eureka.server.registry-sync-retries=0",
			}, extra)
		}
		lastErr = nil
		for _, e := range peers {
			if err := e.waitReady(EurekaReadyTimeout); err != nil {
				lastErr = fmt.Errorf("peer on %s: %w", e.Addr, err)
				break
			}
		}
		if lastErr == nil {
			return peers
		}
		taken := false
		for _, e := range peers {
			e.Kill()
			taken = taken || eurekaPortTaken(e.Output())
		}
		if !taken {
			break
		}
	}
	t.Fatalf("testenv: the Eureka peers did not start: %v", lastErr)
	return [2]*Eureka{}
}

// eurekaPortTaken reports whether Spring Boot failed to bind its port.
func eurekaPortTaken(out string) bool {
	return strings.Contains(out, "was already in use") || strings.Contains(out, "Address already in use")
}

// Restart runs the server again with the same command line, so on the same
// port, as a supervisor would after a crash, and waits until it is ready.
// Eureka keeps its registry in memory: the new server starts empty, and
// clients register again when their next heartbeat gets 404. A server still
// running is stopped first (a paused one is resumed so that it can).
// e.Process is the new process from then on, stopped at cleanup as the
// first one was. Restart must not run concurrently with other methods of e.
func (e *Eureka) Restart(t testing.TB) {
	t.Helper()
	e.Resume()
	e.Stop()
	old := e.cmd
	var lastErr error
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := Start(t, old.Path, old.Args[1:], old.Env, old.Dir)
		e.Process = p
		if lastErr = e.waitReady(EurekaReadyTimeout); lastErr == nil {
			return
		}
		p.Kill()
		if !eurekaPortTaken(p.Output()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("testenv: Eureka did not restart on %s: %v", e.Addr, lastErr)
}

func (e *Eureka) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if e.Exited() {
			return fmt.Errorf("the JVM exited (%v); its output is logged with the failure", e.err) //nolint:errorlint // e.err may be nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var status int
		status, _, err = e.get(ctx, "/apps")
		cancel()
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("GET /eureka/apps: %d", status)
		}
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %w", timeout, err)
}

// get sends GET {URL}{path} with Accept: application/json.
func (e *Eureka) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := eurekaHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// EurekaInstance is an instance as the server's own HTTP API reports it
// (the fields the tests look at).
type EurekaInstance struct {
	InstanceID       string            `json:"instanceId"`
	App              string            `json:"app"`
	HostName         string            `json:"hostName"`
	IPAddr           string            `json:"ipAddr"`
	VIPAddress       string            `json:"vipAddress"`
	SecureVIPAddress string            `json:"secureVipAddress"`
	Status           string            `json:"status"`
	OverriddenStatus string            `json:"overriddenStatus"`
	Port             EurekaPort        `json:"port"`
	HomePageURL      string            `json:"homePageUrl"`
	StatusPageURL    string            `json:"statusPageUrl"`
	HealthCheckURL   string            `json:"healthCheckUrl"`
	Metadata         map[string]string `json:"-"`
	RawMetadata      map[string]any    `json:"metadata"`
	DataCenterInfo   struct {
		Class string `json:"@class"`
		Name  string `json:"name"`
	} `json:"dataCenterInfo"`
	LeaseInfo struct {
		RenewalIntervalInSecs int   `json:"renewalIntervalInSecs"`
		DurationInSecs        int   `json:"durationInSecs"`
		RegistrationTimestamp int64 `json:"registrationTimestamp"`
		LastRenewalTimestamp  int64 `json:"lastRenewalTimestamp"`
	} `json:"leaseInfo"`
}

// EurekaPort is a port as Eureka's JSON writes it: {"$":8080,"@enabled":"true"}.
type EurekaPort struct {
	Port    int    `json:"$"`
	Enabled string `json:"@enabled"`
}

// Instances returns every instance of app (any status) through GET
// /eureka/apps/{APP}; an unknown app has none. app is sent as given.
func (e *Eureka) Instances(t testing.TB, app string) []EurekaInstance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := e.get(ctx, "/apps/"+app)
	if err != nil {
		t.Fatalf("testenv: GET /eureka/apps/%s: %v", app, err)
	}
	switch status {
	case http.StatusNotFound:
		return nil
	case http.StatusOK:
	default:
		t.Fatalf("testenv: GET /eureka/apps/%s: %d %s", app, status, body)
	}
	var doc struct {
		Application struct {
			Instance json.RawMessage `json:"instance"`
		} `json:"application"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("testenv: GET /eureka/apps/%s: %v in %s", app, err, body)
	}
	var list []EurekaInstance
	raw := bytes.TrimSpace(doc.Application.Instance)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '[':
		err = json.Unmarshal(raw, &list)
	default:
		var one EurekaInstance
		err = json.Unmarshal(raw, &one)
		list = []EurekaInstance{one}
	}
	if err != nil {
		t.Fatalf("testenv: GET /eureka/apps/%s: %v in %s", app, err, body)
	}
	for i := range list {
		md := map[string]string{}
		for k, v := range list[i].RawMetadata {
			if s, ok := v.(string); ok && k != "@class" {
				md[k] = s
			}
		}
		list[i].Metadata = md
	}
	return list
}

// Instance returns the instance id of app, and whether it is registered.
func (e *Eureka) Instance(t testing.TB, app, id string) (EurekaInstance, bool) {
	t.Helper()
	for _, in := range e.Instances(t, app) {
		if in.InstanceID == id {
			return in, true
		}
	}
	return EurekaInstance{}, false
}
