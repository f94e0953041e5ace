package testenv_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// TestEnvoyProxies checks what the mesh tests rely on: Envoy 1.40.0 runs
// docs/mesh/envoy.yaml with its placeholders filled in, is ready, and
// proxies its ingress listener to the app; Stop ends it.
func TestEnvoyProxies(t *testing.T) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app saw x-request-id "+strconv.FormatBool(r.Header.Get("X-Request-Id") != ""))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	port := func() string { return strconv.Itoa(testenv.FreePort(t)) }
	admin, ingress := testenv.FreePort(t), port()
	start := time.Now()
	e := testenv.StartEnvoy(t, testenv.ExpandEnvoyConfig(t, "../../docs/mesh/envoy.yaml", map[string]string{
		"ADMIN_PORT": strconv.Itoa(admin), "INGRESS_PORT": ingress, "APP_PORT": strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		"EGRESS_PORT": port(), "UPSTREAM_ADDR": "127.0.0.1", "UPSTREAM_PORT": port(),
		"RATELIMIT_PORT": port(), "RATELIMIT_TIMEOUT": "0.02s", "ZIPKIN_PORT": port(), "TRACE_SAMPLING": "100",
	}), admin)
	t.Logf("envoy ready on %s after %v", e.AdminAddr, time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+ingress+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "app saw x-request-id true" || resp.Header.Get("Server") != "envoy" {
		t.Fatalf("through Envoy: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	e.Stop()
	if !e.Exited() {
		t.Fatal("Envoy still runs after Stop")
	}
}
