package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
)

func TestMain(m *testing.M) {
	if fleetChild() { // the test binary started as an instance of the fleet run
		return
	}
	goleak.VerifyTestMain(m, testenv.NacosLeftovers()...)
}

// otlpReceiver counts OTLP/HTTP trace exports (protobuf POSTs to /v1/traces).
type otlpReceiver struct {
	exports atomic.Int64
	srv     *http.Server
	addr    string
}

func startOTLP(t *testing.T) *otlpReceiver {
	t.Helper()
	rcv := &otlpReceiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") == "application/x-protobuf" && len(body) > 0 {
			rcv.exports.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	rcv.addr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	rcv.srv = &http.Server{Addr: rcv.addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = rcv.srv.ListenAndServe() }()
	t.Cleanup(func() { _ = rcv.srv.Close() })
	return rcv
}

// instance runs one instance of the example and returns its base URL and
// a function that stops it (SIGTERM's path: ctx cancel) and waits.
func instance(t *testing.T, cfgPath, nacosAddr string, out io.Writer) (base string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *registry.Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{config: cfgPath, addr: "127.0.0.1:0", nacos: nacosAddr, drain: 100 * time.Millisecond}, out, ready)
	}()
	select {
	case srv := <-ready:
		base = "http://" + srv.Addr()
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return base, stop
}

func get(t *testing.T, url, user string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("X-User-Id", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDistributed runs two instances against a real Redis, a real Nacos
// (rnacos) and a loopback OTLP receiver: both register, share the per-user
// limit through Redis, export spans, and deregister when stopped.
func TestDistributed(t *testing.T) {
	rs := testenv.StartRedis(t)
	n := testenv.StartNacos(t)
	otlp := startOTLP(t)
	cfg, err := os.ReadFile("gingov.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.NewReplacer("127.0.0.1:6379", rs.Addr, "127.0.0.1:4318", otlp.addr, "sample_ratio: 0.1", "sample_ratio: 1").Replace(string(cfg))
	path := filepath.Join(t.TempDir(), "gingov.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	a, stopA := instance(t, path, n.HTTPAddr, logs)
	b, stopB := instance(t, path, n.HTTPAddr, logs)
	defer http.DefaultClient.CloseIdleConnections()

	deadline := time.Now().Add(5 * time.Second)
	for len(n.Instances(t, "orders", "DEFAULT_GROUP")) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("instances in Nacos: %+v", n.Instances(t, "orders", "DEFAULT_GROUP"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// orders-per-user: 10 per second for the fleet, burst 10. Alternating
	// instances, alice gets 10 of 16 (a few may refill within the loop).
	allowed := 0
	for i := range 16 {
		base := a
		if i%2 == 1 {
			base = b
		}
		if get(t, base+"/orders/42", "alice") == http.StatusOK {
			allowed++
		}
	}
	if allowed < 10 || allowed > 12 {
		t.Fatalf("alice got %d of 16 across two instances, want the shared 10 (+ refill)", allowed)
	}
	if get(t, a+"/readyz", "") != http.StatusOK {
		t.Fatal("/readyz is not 200 while registered")
	}

	stopA()
	stopB()
	if got := n.Instances(t, "orders", "DEFAULT_GROUP"); len(got) != 0 {
		t.Fatalf("instances left in Nacos after shutdown: %+v", got)
	}
	if otlp.exports.Load() == 0 {
		t.Fatal("no spans reached the OTLP receiver")
	}
	if !strings.Contains(logs.String(), `"msg":"request"`) {
		t.Fatal("no access log")
	}
}
