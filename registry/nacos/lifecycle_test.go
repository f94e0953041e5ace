package nacos_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
)

// TestLifecycle runs a service through the registry package's Server with
// Nacos as its registry: once it serves, rnacos lists it at the address it
// listens on, under its plain name; when its context ends it is gone from
// rnacos before the server stops.
func TestLifecycle(t *testing.T) {
	n := testenv.StartNacos(t)
	r, rec := newRegistry(t, n)
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pong")) })
	s, err := registry.NewServer(mux, "127.0.0.1:0", r,
		registry.ServiceInstance{ID: "orders-1", Name: "orders", Version: "v1"},
		registry.WithDrainDelay(100*time.Millisecond),
		registry.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	host, portStr, _ := net.SplitHostPort(s.Instance().Address)
	port, _ := strconv.Atoi(portStr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	var got testenv.NacosInstance
	waitFor(t, 5*time.Second, "the server's instance in rnacos", func() bool {
		var ok bool
		got, ok = find(n.Instances(t, "orders", ""), host, port)
		return ok
	})
	// rnacos lists the instance as soon as it has taken the request, a
	// moment before the SDK's Register returns: stopping then would cancel
	// a Register still waiting for its answer (it reports no Registered
	// event, and undoes the registration). Wait until the Server knows it
	// is registered, under the backend's name.
	waitFor(t, 5*time.Second, "readiness to report nacos registered", func() bool {
		return s.Health().Registration("nacos") == registry.RegistrationRegistered
	})
	if got.Metadata["version"] != "v1" || got.Metadata["instance_id"] != "orders-1" || !got.Ephemeral {
		t.Fatalf("registered as %+v", got)
	}
	// The address registered is the one serving.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(got.IP, strconv.Itoa(got.Port))+"/ping", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /ping at the registered address: %v", err)
	}
	resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, ok := find(n.Instances(t, "orders", ""), host, port); ok {
		t.Fatal("still in rnacos after the server stopped")
	}
	if rec.count(registry.Registered) != 1 || rec.count(registry.Deregistered) != 1 {
		t.Fatalf("backend events %+v; want one registered, one deregistered", rec.events)
	}
}
