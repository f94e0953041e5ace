package nacos_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
)

// Register a service with Nacos, look another one up, and deregister on
// the way out. (It needs a Nacos server, so it is compiled, not run.)
func Example() {
	reg, err := nacos.New([]string{"127.0.0.1:8848"}, // HTTP port; gRPC on 9848
		nacos.WithKratos(), // kind=http for Kratos clients
	)
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	self := &registry.ServiceInstance{Name: "orders", Version: "v1.4.2", Address: "10.0.0.7:8080"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Register(ctx, self); err != nil { // retried until ctx is done
		panic(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = reg.Deregister(ctx, self)
	}()

	users, err := reg.GetService(ctx, "users")
	if err != nil {
		panic(err)
	}
	for _, u := range users {
		fmt.Println(u.Address, u.Version, u.Weight)
	}
}
