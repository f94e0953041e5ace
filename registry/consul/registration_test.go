package consul_test

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// TestRegistration reads back, through the agent's HTTP API, what Register
// stored: the ID, name, address and port; the "version=" tag Kratos reads
// and the extra tags; the metadata with version and weight; Consul's
// weights; the HTTP check with its URL, interval and timeout. (The
// deregister-critical delay is not readable back from Consul.)
func TestRegistration(t *testing.T) {
	c := testenv.StartConsul(t)
	srv := readyServer(t)
	r := newRegistry(t, c,
		consul.WithHTTPCheck("/readyz", 2*time.Second, 700*time.Millisecond),
		consul.WithDeregisterCriticalAfter(90*time.Second),
		consul.WithTags("http", "edge"),
		consul.WithDatacenter("dc1"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ins := &registry.ServiceInstance{ID: "orders-7", Name: "orders", Version: "v2.0.1", Address: srv.Listener.Addr().String(),
		Metadata: map[string]string{"zone": "eu-1", "canary": "true"}, Weight: 30}
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(ins.Address, ":")

	var svc struct {
		ID, Service, Address string
		Port                 int
		Tags                 []string
		Meta                 map[string]string
		Weights              struct{ Passing, Warning int }
	}
	if err := c.Get(ctx, "/v1/agent/service/orders-7", &svc); err != nil {
		t.Fatal(err)
	}
	if svc.ID != "orders-7" || svc.Service != "orders" || svc.Address != host || port != strconv.Itoa(svc.Port) ||
		!slices.Equal(svc.Tags, []string{"version=v2.0.1", "http", "edge"}) ||
		len(svc.Meta) != 4 || svc.Meta["version"] != "v2.0.1" || svc.Meta["weight"] != "30" ||
		svc.Meta["zone"] != "eu-1" || svc.Meta["canary"] != "true" || svc.Weights.Passing != 30 || svc.Weights.Warning != 1 {
		t.Fatalf("agent service %+v", svc)
	}
	// The check as the agent has it; its output names the URL Consul
	// polls once it has run (after a random part of its interval).
	type check struct {
		CheckID, Status, Type, ServiceID string
		Interval, Timeout, Output        string
	}
	want := "HTTP GET http://" + ins.Address + "/readyz: 200 OK"
	var checks []check
	for deadline := time.Now().Add(5 * time.Second); ; {
		var byID map[string]check
		if err := c.Get(ctx, "/v1/agent/checks", &byID); err != nil {
			t.Fatal(err)
		}
		checks = slices.Collect(maps.Values(byID))
		if len(checks) != 1 || strings.HasPrefix(checks[0].Output, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(checks) != 1 || checks[0].CheckID != "service:orders-7" || checks[0].Type != "http" || checks[0].ServiceID != "orders-7" ||
		checks[0].Status != "passing" || checks[0].Interval != "2s" || checks[0].Timeout != "700ms" ||
		!strings.HasPrefix(checks[0].Output, want) {
		t.Fatalf("checks %+v; want one HTTP check every 2s, timeout 700ms, passing, output %q", checks, want)
	}

	// Discovery in the named datacenter reads it all back; another
	// datacenter is an error, not an empty set.
	got, err := r.GetService(ctx, "orders")
	if err != nil || len(got) != 1 {
		t.Fatalf("GetService = %v, %v", got, err)
	}
	if g := got[0]; g.ID != "orders-7" || g.Address != ins.Address || g.Version != "v2.0.1" || g.Weight != 30 ||
		len(g.Metadata) != 2 || g.Metadata["zone"] != "eu-1" || g.Metadata["canary"] != "true" {
		t.Fatalf("GetService = %+v", g)
	}
	other := newRegistry(t, c, consul.WithDatacenter("elsewhere"))
	if got, err := other.GetService(ctx, "orders"); err == nil {
		t.Fatalf("GetService in an unknown datacenter = %v, nil error", got)
	}
}

// TestACL runs against an agent whose ACLs deny by default: without a
// token registration and discovery are refused; with WithToken they work.
func TestACL(t *testing.T) {
	const token = "2b778dd9-f5f1-6f29-b4b4-9a5fa948757a"
	c := testenv.StartConsulACL(t, token)
	srv := readyServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ins := &registry.ServiceInstance{ID: "orders-1", Name: "orders", Address: srv.Listener.Addr().String()}

	anon := newRegistry(t, c)
	if err := anon.Register(ctx, ins); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Register without a token = %v; want a 403", err)
	}

	r := newRegistry(t, c, consul.WithToken(token))
	if err := r.Register(ctx, ins); err != nil {
		t.Fatalf("Register with the token: %v", err)
	}
	waitListed(t, c, "orders", "orders-1", true, time.Second)
	got, err := r.GetService(ctx, "orders")
	if err != nil || len(got) != 1 {
		t.Fatalf("GetService with the token = %v, %v", got, err)
	}
	// Anonymous discovery sees nothing under default deny.
	if got, err := anon.GetService(ctx, "orders"); err == nil && len(got) != 0 {
		t.Fatalf("GetService without a token = %v", got)
	}
	if err := r.Deregister(ctx, ins); err != nil {
		t.Fatalf("Deregister with the token: %v", err)
	}
	waitListed(t, c, "orders", "orders-1", false, time.Second)
}
