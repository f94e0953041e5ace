package nacos_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
)

// New rejects each invalid input with an error that names its option.
func TestNewValidates(t *testing.T) {
	ok := []string{"127.0.0.1:8848"}
	for _, tc := range []struct {
		servers []string
		opts    []nacos.Option
		want    string
	}{
		{nil, nil, "no servers"},
		{[]string{"127.0.0.1"}, nil, "server"},
		{[]string{":8848"}, nil, "has no host"},
		{[]string{"127.0.0.1:0"}, nil, "port must be"},
		{[]string{"127.0.0.1:65000"}, nil, "port must be 1..64535"},
		{[]string{"127.0.0.1:http"}, nil, "port must be"},
		{ok, []nacos.Option{nacos.WithNamespace("a b")}, "WithNamespace"},
		{ok, []nacos.Option{nacos.WithGroup("a@@b")}, "WithGroup"},
		{ok, []nacos.Option{nacos.WithGroup("a b")}, "WithGroup"},
		{ok, []nacos.Option{nacos.WithGroup("")}, "WithGroup"},
		{ok, []nacos.Option{nacos.WithCluster("a,b")}, "WithCluster"},
		{ok, []nacos.Option{nacos.WithDiscoveryClusters("")}, "WithDiscoveryClusters"},
		{ok, []nacos.Option{nacos.WithTimeout(-time.Second)}, "WithTimeout"},
		{ok, []nacos.Option{nacos.WithTimeout(time.Microsecond)}, "WithTimeout"},
		{ok, []nacos.Option{nacos.WithLogLevel("verbose")}, "WithLogLevel"},
		{ok, []nacos.Option{nacos.WithLogDir("")}, "WithLogDir"},
		{ok, []nacos.Option{nacos.WithCacheDir("")}, "WithCacheDir"},
		{ok, []nacos.Option{nacos.WithOnEvent(nil)}, "WithOnEvent: nil function"},
		{ok, []nacos.Option{nacos.WithKratos(), nil}, "option 2 is nil"},
	} {
		r, err := nacos.New(tc.servers, tc.opts...)
		if err == nil {
			_ = r.Close()
			t.Errorf("New(%v, %d options) accepted it; want an error naming %s", tc.servers, len(tc.opts), tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "nacos: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v, %d options) = %q, want an error naming %s", tc.servers, len(tc.opts), err, tc.want)
		}
	}
}

// The registry names itself "nacos" (for the Server's readiness and
// metric labels), and a nil logger is accepted (the kit's default).
func TestBackend(t *testing.T) {
	r, err := nacos.New([]string{"127.0.0.1:1"}, nacos.WithLogger(nil),
		nacos.WithLogDir(sdkDir+"/log"), nacos.WithCacheDir(sdkDir+"/cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.Backend(); got != "nacos" {
		t.Fatalf("Backend() = %q, want nacos", got)
	}
}

// Register and Deregister check the instance before any request; one
// Registry holds one instance per service name.
func TestRegisterValidates(t *testing.T) {
	// No server listens on this port; none of these calls reaches it.
	r, err := nacos.New([]string{"127.0.0.1:1"}, nacos.WithLogDir(sdkDir+"/log"), nacos.WithCacheDir(sdkDir+"/cache"))
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
