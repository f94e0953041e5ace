package consul_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// TestNewValidates checks that every bad option is an error from New that
// names it, and that the defaults are accepted.
func TestNewValidates(t *testing.T) {
	hook := func(context.Context, registry.Event) {}
	for _, tc := range []struct {
		name string
		addr string
		opts []consul.Option
		want string // "" for no error
	}{
		{name: "defaults", addr: "127.0.0.1:8500"},
		{name: "all options", addr: "http://127.0.0.1:8500", opts: []consul.Option{
			consul.WithLogger(nil), consul.WithOnEvent(hook), consul.WithToken("t"), consul.WithDatacenter("dc1"),
			consul.WithHTTPCheck("/ready", 2*time.Second, time.Second), consul.WithDeregisterCriticalAfter(0),
			consul.WithTags("a", "b"), consul.WithTimeout(time.Second), consul.WithWatchWait(time.Minute),
		}},
		{name: "ttl", addr: "127.0.0.1:8500", opts: []consul.Option{consul.WithTTLCheck(time.Second)}},
		{name: "empty address", addr: " ", want: "empty agent address"},
		{name: "bad scheme", addr: "ftp://127.0.0.1:8500", want: "consul: client"},
		{name: "nil option", addr: "a:1", opts: []consul.Option{consul.WithTags("x"), nil}, want: "option 2 is nil"},
		{name: "nil hook", addr: "a:1", opts: []consul.Option{consul.WithOnEvent(nil)}, want: "WithOnEvent"},
		{name: "empty token", addr: "a:1", opts: []consul.Option{consul.WithToken("")}, want: "WithToken"},
		{name: "empty datacenter", addr: "a:1", opts: []consul.Option{consul.WithDatacenter("")}, want: "WithDatacenter"},
		{name: "two checks", addr: "a:1", opts: []consul.Option{consul.WithTTLCheck(time.Second), consul.WithHTTPCheck("/r", time.Second, time.Second)}, want: "choose one"},
		{name: "relative path", addr: "a:1", opts: []consul.Option{consul.WithHTTPCheck("readyz", time.Second, time.Second)}, want: "WithHTTPCheck"},
		{name: "short interval", addr: "a:1", opts: []consul.Option{consul.WithHTTPCheck("/r", 500*time.Millisecond, 100*time.Millisecond)}, want: "WithHTTPCheck"},
		{name: "timeout over interval", addr: "a:1", opts: []consul.Option{consul.WithHTTPCheck("/r", time.Second, 2*time.Second)}, want: "WithHTTPCheck"},
		{name: "zero check timeout", addr: "a:1", opts: []consul.Option{consul.WithHTTPCheck("/r", time.Second, 0)}, want: "WithHTTPCheck"},
		{name: "short ttl", addr: "a:1", opts: []consul.Option{consul.WithTTLCheck(500 * time.Millisecond)}, want: "WithTTLCheck"},
		{name: "short reap", addr: "a:1", opts: []consul.Option{consul.WithDeregisterCriticalAfter(30 * time.Second)}, want: "WithDeregisterCriticalAfter"},
		{name: "empty tag", addr: "a:1", opts: []consul.Option{consul.WithTags("a", "")}, want: "WithTags"},
		{name: "zero timeout", addr: "a:1", opts: []consul.Option{consul.WithTimeout(0)}, want: "WithTimeout"},
		{name: "long wait", addr: "a:1", opts: []consul.Option{consul.WithWatchWait(11 * time.Minute)}, want: "WithWatchWait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := consul.New(tc.addr, tc.opts...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if r.Backend() != "consul" {
					t.Fatalf("Backend() = %q", r.Backend())
				}
				if err := r.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "consul: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v; want an error with %q", err, tc.want)
			}
		})
	}
}

// TestRegisterValidates checks the errors of Register that need no agent:
// an invalid instance, metadata Consul would refuse, a closed registry.
func TestRegisterValidates(t *testing.T) {
	r, err := consul.New("127.0.0.1:1", consul.WithLogger(quiet), consul.WithTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, md := range []map[string]string{
		{"zone.name": "a"},
		{"consul-x": "a"},
		{strings.Repeat("k", 129): "a"},
		{"k": strings.Repeat("v", 513)},
	} {
		ins := &registry.ServiceInstance{Name: "orders", Address: "127.0.0.1:9000", Metadata: md}
		if err := r.Register(ctx, ins); err == nil || !strings.Contains(err.Error(), "Metadata") {
			t.Errorf("Register with metadata %.40v = %v; want a metadata error", md, err)
		}
	}
	if err := r.Register(ctx, &registry.ServiceInstance{Name: "orders"}); err == nil {
		t.Error("Register without an address succeeded")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ins := &registry.ServiceInstance{Name: "orders", Address: "127.0.0.1:9000"}
	if err := r.Register(ctx, ins); !errors.Is(err, consul.ErrClosed) {
		t.Errorf("Register after Close = %v", err)
	}
	if err := r.Deregister(ctx, ins); !errors.Is(err, consul.ErrClosed) {
		t.Errorf("Deregister after Close = %v", err)
	}
	if _, err := r.GetService(ctx, "orders"); !errors.Is(err, consul.ErrClosed) {
		t.Errorf("GetService after Close = %v", err)
	}
	if _, err := r.Watch(ctx, "orders"); !errors.Is(err, consul.ErrClosed) {
		t.Errorf("Watch after Close = %v", err)
	}
}
