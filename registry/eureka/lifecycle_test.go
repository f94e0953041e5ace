package eureka_test

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
)

// TestLifecycle runs a service through the package's Server with
// Eureka as its registry: once it serves it is registered UP, with a
// healthCheckUrl that answers; when its context ends it is gone from
// Eureka before the server stops.
func TestLifecycle(t *testing.T) {
	srv := testenv.StartEureka(t)
	eu, ev := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	app := strings.ToUpper(name)

	srvEvents := &eurekaEvents{} // the Server's own events
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pong")) })
	s, err := registry.NewServer(mux, "127.0.0.1:0", eu,
		registry.ServiceInstance{ID: name + "-1", Name: name, Version: "v1"},
		registry.WithOnEvent(srvEvents.add),
		registry.WithDrainDelay(100*time.Millisecond),
		registry.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	addr := s.Instance().Address
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	var in testenv.EurekaInstance
	eurekaWait(t, 5*time.Second, "the served instance in Eureka", func() bool {
		var ok bool
		in, ok = srv.Instance(t, app, name+"-1")
		return ok
	})
	if in.Status != "UP" || in.IPAddr+":"+strconv.Itoa(in.Port.Port) != addr || in.Metadata["version"] != "v1" {
		t.Fatalf("registered %+v, want UP at %s with version v1", in, addr)
	}
	// The health URL Eureka was given is the server's own liveness probe.
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	req, _ := http.NewRequestWithContext(hctx, http.MethodGet, in.HealthCheckURL, nil)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", in.HealthCheckURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", in.HealthCheckURL, resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, ok := srv.Instance(t, app, name+"-1"); ok {
		t.Fatal("still registered after the server stopped")
	}
	if e, ok := srvEvents.last(registry.Deregistered); !ok || e.Backend != "eureka" {
		t.Errorf("the Server's Deregistered event = %+v, %v; want one from backend eureka", e, ok)
	}
	if ev.count(registry.Registered) < 1 || ev.count(registry.Deregistered) != 1 {
		t.Errorf("events: %d registered, %d deregistered", ev.count(registry.Registered), ev.count(registry.Deregistered))
	}
}
