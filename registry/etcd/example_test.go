package etcd_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/etcd"
)

// Register an instance of "orders", follow the instances of "payments",
// and deregister at shutdown. (Compiled, not run: it needs an etcd.)
func Example() {
	reg, err := etcd.New([]string{"127.0.0.1:2379"},
		etcd.WithTTL(10*time.Second),
		etcd.WithOnEvent(func(_ context.Context, e registry.Event) {
			slog.Info("registration", "kind", e.Kind.String(), "instance_id", e.Instance.InstanceID())
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	self := &registry.ServiceInstance{Name: "orders", Version: "v1.4.2", Address: "10.0.0.7:8080"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Register(ctx, self); err != nil { // kept alive until Deregister
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = reg.Deregister(ctx, self)
	}()

	w, err := reg.Watch(context.Background(), "payments")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	for {
		instances, err := w.Next() // the current set first, then every change
		if err != nil {
			return
		}
		slog.Info("payments changed", "instances", len(instances))
	}
}
