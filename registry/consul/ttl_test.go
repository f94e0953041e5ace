package consul_test

import (
	"context"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// TestTTLCheck registers an instance that Consul cannot reach (nothing
// listens at its address) with a TTL check: it is listed at once and stays
// listed over several TTLs because the registry passes the check; once the
// registry is closed without deregistering, the check is no longer passed
// and the instance turns critical (unlisted) about one TTL later, while
// the agent still has it.
func TestTTLCheck(t *testing.T) {
	const ttl = 2 * time.Second
	c := testenv.StartConsul(t)
	r, err := consul.New(c.Addr, consul.WithLogger(quiet), consul.WithTTLCheck(ttl))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ins := &registry.ServiceInstance{ID: "batch-1", Name: "batch", Version: "v3", Address: "127.0.0.1:1"}
	start := time.Now()
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	waitListed(t, c, "batch", "batch-1", true, 500*time.Millisecond)
	t.Logf("TTL check: register → visible %v", time.Since(start).Round(time.Millisecond))
	var checks map[string]struct{ Type string }
	if err := c.Get(ctx, "/v1/agent/checks", &checks); err != nil || checks["service:batch-1"].Type != "ttl" {
		t.Fatalf("agent checks %+v, %v; want a TTL check service:batch-1", checks, err)
	}
	for range 3 {
		time.Sleep(ttl)
		if !listed(t, c, "batch", "batch-1") {
			t.Fatal("unlisted while the registry passes its TTL check")
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	took := waitListed(t, c, "batch", "batch-1", false, ttl+2*time.Second)
	t.Logf("TTL check: registry closed → critical after %v (TTL %v)", time.Since(closed).Round(time.Millisecond), ttl)
	if took < ttl/3 {
		t.Fatalf("unlisted %v after Close; want about one TTL (%v)", took, ttl)
	}
	all, err := c.Services(ctx, "batch", false)
	if err != nil || len(all) != 1 || all[0].Status != "critical" {
		t.Fatalf("agent has %+v, %v; want batch-1, critical", all, err)
	}
}
