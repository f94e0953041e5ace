package interop_test

import (
	"context"
	"slices"
	"testing"
	"time"

	kconsul "github.com/go-kratos/kratos/contrib/registry/consul/v2"
	kregistry "github.com/go-kratos/kratos/v2/registry"
	"github.com/hashicorp/consul/api"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// consulAPI is a Consul API client of the Kratos side, its idle
// connections closed when the test ends.
func consulAPI(t *testing.T, c *testenv.Consul) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = c.Addr
	cfg.Token = ""
	cli, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	return cli
}

// gingovConsul is a registry/consul Registry on c, with a 1 s HTTP check.
func gingovConsul(t *testing.T, c *testenv.Consul) *consul.Registry {
	t.Helper()
	r, err := consul.New(c.Addr, consul.WithLogger(quiet),
		consul.WithHTTPCheck(registry.DefaultReadinessPath, time.Second, 500*time.Millisecond))
	if err != nil {
		t.Fatalf("consul.New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// TestKratosClientCallsGingovThroughConsul: a gingov service registered
// by registry/consul is found by Kratos's own Consul discovery (contrib
// registry/consul) with its version (from the "version=" tag) and an
// http:// endpoint (Kratos builds it from the service address and port
// when there are no tagged addresses), and a Kratos HTTP client on
// discovery:///orders gets its answer, JSON decoded, and its error
// envelope as a Kratos error.
func TestKratosClientCallsGingovThroughConsul(t *testing.T) {
	c := testenv.StartConsul(t)
	s := serveGingov(t, gingovConsul(t, c), registry.ServiceInstance{ID: "orders-1", Name: "orders", Version: "v1"}, fastDrain)
	disc := kconsul.New(consulAPI(t, c))

	kratosCallsGingov(t, "Consul", disc, "orders", s)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := disc.GetService(ctx, "orders")
	if err != nil || len(got) != 1 {
		t.Fatalf("Kratos GetService(orders) = %v, %v; want the gingov instance", got, err)
	}
	want := kregistry.ServiceInstance{ID: "orders-1", Name: "orders", Version: "v1", Endpoints: []string{"http://" + s.Instance().Address}}
	if g := got[0]; g.ID != want.ID || g.Name != want.Name || g.Version != want.Version || !slices.Equal(g.Endpoints, want.Endpoints) ||
		g.Metadata["version"] != "v1" {
		t.Fatalf("Kratos sees %+v; want %+v with metadata version=v1", g, want)
	}
}

// TestGingovClientCallsKratosThroughConsul: a Kratos HTTP service
// registered by Kratos's own Consul registrar (TCP and TTL checks, the
// endpoint as a tagged address, the version as a tag) is found by
// registry/consul's discovery with its address and version, and a gingov
// client (registry.Resolver and Transport) gets its answer.
func TestGingovClientCallsKratosThroughConsul(t *testing.T) {
	c := testenv.StartConsul(t)
	ks, ins := serveKratos(t, "hello", kconsul.New(consulAPI(t, c), kconsul.WithHealthCheckInterval(1)))
	gingovCallsKratos(t, gingovConsul(t, c), "hello", ks, ins)
}

// TestKratosClientFollowsGingovDeregistrationThroughConsul: see
// kratosFollowsDeregistration.
func TestKratosClientFollowsGingovDeregistrationThroughConsul(t *testing.T) {
	c := testenv.StartConsul(t)
	kratosFollowsDeregistration(t, kconsul.New(consulAPI(t, c)), gingovConsul(t, c), "orders")
}
