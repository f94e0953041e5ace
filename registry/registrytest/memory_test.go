package registrytest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The in-memory registry passes the conformance suite it offers backends.
func TestConformance(t *testing.T) {
	r := registrytest.New()
	registrytest.Run(t, r, r, registrytest.Options{Timeout: 2 * time.Second})
	for _, c := range r.Calls() {
		if c.Err != nil {
			t.Errorf("%s %s failed: %v", c.Op, c.Instance.InstanceID(), c.Err)
		}
	}
}

func TestHooksAndFailures(t *testing.T) {
	r := registrytest.New()
	ins := &registry.ServiceInstance{Name: "orders", Address: "127.0.0.1:1"}
	down := errors.New("down")
	r.SetRegisterHook(func(context.Context, *registry.ServiceInstance) error { return down })
	if err := r.Register(t.Context(), ins); !errors.Is(err, down) {
		t.Fatalf("Register with a failing hook = %v", err)
	}
	r.SetRegisterHook(nil)
	if err := r.Register(t.Context(), ins); err != nil {
		t.Fatal(err)
	}
	// A blocking hook ends with the call's context.
	r.SetDeregisterHook(func(ctx context.Context, _ *registry.ServiceInstance) error { <-ctx.Done(); return ctx.Err() })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := r.Deregister(ctx, ins); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deregister with a blocking hook = %v", err)
	}
	if set, _ := r.GetService(t.Context(), "orders"); len(set) != 1 {
		t.Fatalf("failed Deregister removed the instance: %v", set)
	}
	calls := r.Calls()
	if len(calls) != 3 || calls[0].Op != "register" || calls[0].Err == nil || calls[2].Op != "deregister" {
		t.Fatalf("calls = %+v", calls)
	}
	if err := r.Register(t.Context(), &registry.ServiceInstance{Name: "orders"}); err == nil {
		t.Fatal("Register of an invalid instance succeeded")
	}

	r.SetWatchError(down)
	if _, err := r.Watch(t.Context(), "orders"); !errors.Is(err, down) {
		t.Fatalf("Watch while down = %v", err)
	}
	if _, err := r.GetService(t.Context(), "orders"); !errors.Is(err, down) {
		t.Fatalf("GetService while down = %v", err)
	}
	r.SetWatchError(nil)
	w, err := r.Watch(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if set, err := w.Next(); err != nil || len(set) != 1 {
		t.Fatalf("first Next = %v, %v", set, err)
	}
	r.BreakWatchers()
	if _, err := w.Next(); err == nil {
		t.Fatal("Next after BreakWatchers returned no error")
	}
	// Set replaces the service's instances and wakes new watchers.
	w2, err := r.Watch(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if _, err := w2.Next(); err != nil {
		t.Fatal(err)
	}
	r.Set("orders", &registry.ServiceInstance{Address: "127.0.0.1:2"}, &registry.ServiceInstance{Address: "127.0.0.1:3"})
	if set, err := w2.Next(); err != nil || len(set) != 2 || set[0].Name != "orders" {
		t.Fatalf("Next after Set = %v, %v", set, err)
	}
}
