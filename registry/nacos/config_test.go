package nacos_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
)

// New rejects each invalid field with an error that names it.
func TestNewValidates(t *testing.T) {
	ok := []string{"127.0.0.1:8848"}
	for _, tc := range []struct {
		cfg  nacos.Config
		want string
	}{
		{nacos.Config{}, "Config.Servers is empty"},
		{nacos.Config{Servers: []string{"127.0.0.1"}}, "Config.Servers"},
		{nacos.Config{Servers: []string{":8848"}}, "Config.Servers"},
		{nacos.Config{Servers: []string{"127.0.0.1:0"}}, "Config.Servers"},
		{nacos.Config{Servers: []string{"127.0.0.1:65000"}}, "port must be 1..64535"},
		{nacos.Config{Servers: []string{"127.0.0.1:http"}}, "Config.Servers"},
		{nacos.Config{Servers: ok, Namespace: "a b"}, "Config.Namespace"},
		{nacos.Config{Servers: ok, Group: "a@@b"}, "Config.Group"},
		{nacos.Config{Servers: ok, Group: "a b"}, "Config.Group"},
		{nacos.Config{Servers: ok, Cluster: "a,b"}, "Config.Cluster"},
		{nacos.Config{Servers: ok, DiscoveryClusters: []string{""}}, "Config.DiscoveryClusters"},
		{nacos.Config{Servers: ok, Timeout: -time.Second}, "Config.Timeout"},
		{nacos.Config{Servers: ok, Timeout: time.Microsecond}, "Config.Timeout"},
		{nacos.Config{Servers: ok, LogLevel: "verbose"}, "Config.LogLevel"},
	} {
		r, err := nacos.New(tc.cfg)
		if err == nil {
			_ = r.Close()
			t.Errorf("New(%+v) accepted it", tc.cfg)
			continue
		}
		if !strings.HasPrefix(err.Error(), "nacos: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %q, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

// Register and Deregister check the instance before any request; one
// Registry holds one instance per service name.
func TestRegisterValidates(t *testing.T) {
	// No server listens on this port; none of these calls reaches it.
	r, err := nacos.New(nacos.Config{Servers: []string{"127.0.0.1:1"}, LogDir: sdkDir + "/log", CacheDir: sdkDir + "/cache"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		ins  *registry.ServiceInstance
		want string
	}{
		{nil, "nil ServiceInstance"},
		{&registry.ServiceInstance{Address: "127.0.0.1:80"}, "Name is empty"},
		{&registry.ServiceInstance{Name: "s", Address: "0.0.0.0:80"}, "no reachable host"},
		{&registry.ServiceInstance{Name: "s", Address: "127.0.0.1:80", Weight: -1}, "Weight"},
		{&registry.ServiceInstance{Name: "s", Address: "127.0.0.1:80", Weight: 1_000_001}, "ServiceInstance.Weight"},
	} {
		if err := r.Register(ctx, tc.ins); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%+v) = %v, want an error about %s", tc.ins, err, tc.want)
		}
	}
	if err := r.Deregister(ctx, &registry.ServiceInstance{Name: "s"}); err == nil {
		t.Error("Deregister accepted an instance without an address")
	}
	if _, err := r.Watch(ctx, ""); err == nil {
		t.Error("Watch accepted an empty name")
	}
}
