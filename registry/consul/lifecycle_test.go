package consul_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// checkInterval is the HTTP check interval of the tests (Consul's minimum).
const checkInterval = time.Second

// TestLifecycle runs a service through the registry package's Server with
// Consul as its registry and the default kind of check, an HTTP check on
// the Server's readiness route: once it serves it is listed, with the
// address it listens on, at once (no wait for Consul's first check run);
// when its readiness fails Consul marks it critical and it is no longer
// listed, and listed again when readiness recovers; when its context ends
// it is gone from Consul before the server stops.
func TestLifecycle(t *testing.T) {
	c := testenv.StartConsul(t)
	var evs events
	r := newRegistry(t, c, consul.WithHTTPCheck(registry.DefaultReadinessPath, checkInterval, 500*time.Millisecond),
		consul.WithOnEvent(evs.hook))
	var failing atomic.Bool
	h, err := registry.NewHealth(registry.WithCheck("dependency", func(context.Context) error {
		if failing.Load() {
			return errors.New("dependency down")
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pong")) })
	s, err := registry.NewServer(mux, "127.0.0.1:0", r,
		registry.ServiceInstance{ID: "orders-1", Name: "orders", Version: "v1"},
		registry.WithDrainDelay(100*time.Millisecond),
		registry.WithHealth(h),
		registry.WithLogger(quiet))
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
	start := time.Now()
	go func() { done <- s.Run(ctx) }()

	// Listed well within one check interval: Consul's first run of a new
	// check comes after a random part of the interval, the registry's own
	// probe does not wait.
	waitListed(t, c, "orders", "orders-1", true, checkInterval/2)
	t.Logf("register → visible (Server start to listed as passing): %v", time.Since(start).Round(time.Millisecond))
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
	got, err := c.Services(qctx, "orders", true)
	qcancel()
	if err != nil || len(got) != 1 || net.JoinHostPort(got[0].Address, strconv.Itoa(got[0].Port)) != addr || got[0].Meta["version"] != "v1" ||
		!slices.Contains(got[0].Tags, "version=v1") {
		t.Fatalf("listed %+v (%v); want orders-1 at %s with version v1 (tag and meta)", got, err, addr)
	}
	var checks map[string]struct{ Status, Type string }
	if err := c.Get(ctx, "/v1/agent/checks", &checks); err != nil {
		t.Fatal(err)
	}
	if ch := checks["service:orders-1"]; ch.Type != "http" {
		t.Fatalf("agent checks %+v; want an HTTP check service:orders-1", checks)
	}
	// The address registered is the one serving.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ping", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /ping at the registered address: %v", err)
	}
	resp.Body.Close()

	// A Resolver fed by the registry's watch has it. res takes every set
	// as it comes (no empty-set protection); held has the default
	// protection, which keeps the last instances when the service's set
	// goes empty.
	res, err := registry.NewResolver(r, registry.WithEmptyProtection(0))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	held, err := registry.NewResolver(r)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitResolved(t, res, addr, true)
	waitResolved(t, held, addr, true)

	// Readiness fails: critical within about one interval (and the
	// check's timeout), so no longer listed nor resolved; back when it
	// recovers.
	failing.Store(true)
	took := waitListed(t, c, "orders", "orders-1", false, 4*checkInterval)
	t.Logf("readiness failing → unlisted after %v", took.Round(time.Millisecond))
	if gs, err := r.GetService(ctx, "orders"); err != nil || len(gs) != 0 {
		t.Fatalf("GetService while critical = %v, %v; want none", gs, err)
	}
	waitResolved(t, res, addr, false)
	// The only instance is not ready: the protected resolver still has it
	// (registry.DefaultEmptyProtection), rather than no instance at all.
	if set, err := held.Instances(ctx, "orders"); err != nil || !slices.ContainsFunc(set, func(ins *registry.ServiceInstance) bool { return ins.Address == addr }) {
		t.Fatalf("protected resolver while the only instance is critical: %v, %v; want it kept", set, err)
	}
	failing.Store(false)
	took = waitListed(t, c, "orders", "orders-1", true, 4*checkInterval)
	t.Logf("readiness back → listed after %v", took.Round(time.Millisecond))
	waitResolved(t, res, addr, true)

	cancel()
	stop := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if listed(t, c, "orders", "orders-1") {
		t.Fatal("still listed after the server stopped")
	}
	var all []testenv.ConsulService
	if all, err = c.Services(context.Background(), "orders", false); err != nil || len(all) != 0 {
		t.Fatalf("in Consul after the server stopped: %+v, %v; want deregistered", all, err)
	}
	t.Logf("stop → deregistered and server stopped in %v", time.Since(stop).Round(time.Millisecond))
	if evs.count(registry.Registered) != 1 || evs.count(registry.Deregistered) != 1 {
		t.Fatalf("backend events %v; want one registered, one deregistered", evs.kinds())
	}
	evs.check(t)
}

// waitResolved waits until the resolver has (or lacks) an orders instance
// at addr, failing the test after 5 s.
func waitResolved(t *testing.T, res *registry.Resolver, addr string, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		set, err := res.Instances(ctx, "orders")
		cancel()
		has := err == nil && slices.ContainsFunc(set, func(ins *registry.ServiceInstance) bool { return ins.Address == addr })
		if has == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("resolver: instance at %s present=%v not reached within 5s (last %v, %v)", addr, want, set, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
