package consul_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// Serve "orders" registered with the local Consul agent: Consul polls the
// Server's /readyz every 10 s, so the instance leaves every client's list
// when readiness fails or the server drains; SIGTERM deregisters it, waits
// for the drain delay and shuts down. (It needs a Consul agent, so it is
// compiled, not run.)
func Example() {
	reg, err := consul.New("127.0.0.1:8500",
		consul.WithHTTPCheck(registry.DefaultReadinessPath, 10*time.Second, 5*time.Second),
		consul.WithTags("http"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"id":"` + r.PathValue("id") + `"}`))
	})

	ctx, stop := registry.SignalContext(context.Background())
	defer stop()
	// The registered address is the listener's, on this host's first
	// non-loopback IP unless the instance names one.
	err = registry.Serve(ctx, mux, ":8080", reg, registry.ServiceInstance{Name: "orders", Version: "v1.4.2"})
	if err != nil {
		log.Fatal(err)
	}
}

// Follow the healthy instances of "payments" with blocking queries.
func ExampleRegistry_Watch() {
	reg, err := consul.New("127.0.0.1:8500")
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
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
		log.Printf("payments: %d healthy instances", len(instances))
	}
}
