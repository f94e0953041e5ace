package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testenv.NacosLeftovers()...)
}

// ordersBinary builds the orders example once per test run.
var ordersBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "gingov-orders")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "orders")
	cmd := exec.Command("go", "build", "-o", bin, "../orders")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// startOrders runs one orders instance registered with the registry flags.
func startOrders(t *testing.T, version string, fail bool, regFlags ...string) string {
	t.Helper()
	bin, err := ordersBinary()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	args := append([]string{"-addr", addr, "-version", version, "-drain", "100ms", "-fail=" + strconv.FormatBool(fail)}, regFlags...)
	p := testenv.Start(t, bin, args, nil, "")
	p.WaitReady(t, 20*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errStatus(resp.StatusCode)
		}
		return nil
	})
	return addr
}

type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }

func startGateway(t *testing.T, regFlags discoverFlags) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *registry.Server, 1)
	done := make(chan error, 1)
	o := options{addr: "127.0.0.1:0", perUser: 5, timeout: 5 * time.Second, retries: registry.DefaultRetries}
	o.registry.Nacos, o.registry.Eureka, o.registry.Poll = regFlags.nacos, regFlags.eureka, 200*time.Millisecond
	o.sidecar = regFlags.sidecar
	go func() { done <- run(ctx, o, io.Discard, ready) }()
	var base string
	select {
	case srv := <-ready:
		base = "http://" + srv.Addr()
	case err := <-done:
		cancel()
		t.Fatalf("gateway: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
	return base
}

// discoverFlags say how the gateway finds orders: a registry, or a
// sidecar (mesh mode).
type discoverFlags struct{ nacos, eureka, sidecar string }

type answer struct {
	status   int
	traceHdr string
	ServedBy string `json:"served_by"`
	Version  string `json:"version"`
	TraceID  string `json:"trace_id"`
	Reason   string `json:"reason"`
}

func call(t *testing.T, base, user, canary string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/orders/7", nil)
	req.Header.Set("X-User-Id", user)
	if canary != "" {
		req.Header.Set("X-Canary", canary)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &a)
	a.status, a.traceHdr = resp.StatusCode, resp.Header.Get("Trace-Id")
	return a
}

// waitBoth calls until both instances have answered (discovery caught up).
func waitBoth(t *testing.T, base string, a, b string) {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; !seen[a] || !seen[b]; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not reach both instances within 15 s: %v", seen)
		}
		if ans := call(t, base, "warmup-"+strconv.Itoa(i), ""); ans.status == http.StatusOK {
			seen[ans.ServedBy] = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkGateway drives the example through a registry: load spread over
// two instances, one trace across both services, per-user limits, and
// canary routing.
func checkGateway(t *testing.T, base, v1, v2 string) {
	waitBoth(t, base, v1, v2)

	served := map[string]int{}
	for i := range 40 {
		ans := call(t, base, "user-"+strconv.Itoa(i), "")
		if ans.status != http.StatusOK {
			t.Fatalf("request %d: %d", i, ans.status)
		}
		if ans.TraceID == "" || ans.TraceID != ans.traceHdr {
			t.Fatalf("orders saw trace %q, the gateway answered with trace %q", ans.TraceID, ans.traceHdr)
		}
		served[ans.ServedBy]++
	}
	if served[v1] < 8 || served[v2] < 8 {
		t.Fatalf("load not spread over both instances: %v", served)
	}

	for range 10 {
		if ans := call(t, base, "canary-user", "v2"); ans.status == http.StatusOK && ans.ServedBy != v2 {
			t.Fatalf("X-Canary: v2 served by %s (%s)", ans.ServedBy, ans.Version)
		}
	}

	limited := 0
	for range 8 {
		if ans := call(t, base, "bob", ""); ans.status == http.StatusTooManyRequests && ans.Reason == "RATE_LIMITED" {
			limited++
		}
	}
	if limited < 2 {
		t.Fatalf("bob sent 8 at once with 5 per second allowed, %d limited", limited)
	}
}

func TestGatewayThroughNacos(t *testing.T) {
	n := testenv.StartNacos(t)
	v1 := startOrders(t, "v1", false, "-nacos", n.HTTPAddr)
	v2 := startOrders(t, "v2", false, "-nacos", n.HTTPAddr)
	base := startGateway(t, discoverFlags{nacos: n.HTTPAddr})
	checkGateway(t, base, v1, v2)

	// A third instance that fails every request: its breaker opens after
	// a few failures and the balancer stops sending to it.
	bad := startOrders(t, "v1", true, "-nacos", n.HTTPAddr)
	failures := 0
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; failures < 5; i++ { // the breaker opens after 5 requests, half failed
		if time.Now().After(deadline) {
			t.Fatalf("the failing instance %s got %d failed requests in 15 s: discovery missed it", bad, failures)
		}
		if ans := call(t, base, "load-"+strconv.Itoa(i), ""); ans.status != http.StatusOK {
			if ans.status != http.StatusInternalServerError || ans.Reason != "INTERNAL" {
				t.Fatalf("the failing instance answered %d %q", ans.status, ans.Reason)
			}
			failures++
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 40 {
		if ans := call(t, base, "after-"+strconv.Itoa(i), ""); ans.status != http.StatusOK || ans.ServedBy == bad {
			t.Fatalf("request %d after the breaker opened: %d from %s", i, ans.status, ans.ServedBy)
		}
	}
}

func TestGatewayThroughEureka(t *testing.T) {
	e := testenv.StartEureka(t)
	v1 := startOrders(t, "v1", false, "-eureka", e.URL)
	v2 := startOrders(t, "v2", false, "-eureka", e.URL)
	base := startGateway(t, discoverFlags{eureka: e.URL})
	checkGateway(t, base, v1, v2)
	if !strings.HasPrefix(v1, "127.0.0.1:") {
		t.Fatal(v1)
	}
}
