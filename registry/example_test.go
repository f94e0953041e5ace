package registry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/registrytest"
)

// A Gin service runs as a registered instance until SIGTERM (here: until
// the context is cancelled): it registers once listening, answers
// /healthz and /readyz, and on shutdown deregisters before draining.
func ExampleServe() {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.GET("/ping", func(c *gin.Context) { c.String(200, "pong") })

	reg := registrytest.New() // a Nacos, etcd or Eureka registrar in a real service
	ctx, cancel := context.WithCancel(context.Background())
	// ctx, stop := registry.SignalContext(context.Background()) in a real main

	err := registry.Serve(ctx, r, "127.0.0.1:0", reg,
		registry.ServiceInstance{Name: "orders", Version: "v1", Metadata: map[string]string{"zone": "eu-1"}},
		registry.WithDrainDelay(0), // default 3 s: time for clients to drop the instance
		registry.WithLogger(logging.New(io.Discard, nil)),
		registry.WithOnEvent(func(_ context.Context, e registry.Event) {
			fmt.Println(e.Backend, e.Kind, e.Instance.Name, e.Instance.Version)
			if e.Kind == registry.Registered {
				cancel() // stop at once, for the example
			}
		}),
	)
	fmt.Println("Serve returned", err)
	// Output:
	// memory registered orders v1
	// memory deregistered orders v1
	// Serve returned <nil>
}

// A client calls http://orders/... and the Transport picks an instance of
// orders, avoiding those whose breaker is open; X-Canary: v2 selects the
// v2 instances.
func ExampleNewTransport() {
	v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "v1") }))
	defer v1.Close()
	v2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "v2") }))
	defer v2.Close()
	disc := registrytest.New() // a Nacos, etcd or Eureka discovery in a real service
	disc.Set("orders",
		&registry.ServiceInstance{Address: strings.TrimPrefix(v1.URL, "http://"), Version: "v1"},
		&registry.ServiceInstance{Address: strings.TrimPrefix(v2.URL, "http://"), Version: "v2"})

	res, err := registry.NewResolver(disc)
	if err != nil {
		panic(err)
	}
	defer res.Close()
	breakers, err := circuitbreaker.NewTransport(nil) // one breaker per instance
	if err != nil {
		panic(err)
	}
	defer breakers.Close()
	tr, err := registry.NewTransport(res, breakers, registry.WithCanary(registry.Canary{Stable: "v1"}))
	if err != nil {
		panic(err)
	}
	client := tr.Client()
	defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	for _, canary := range []string{"", "v2"} {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://orders/hello", nil)
		if canary != "" {
			req.Header.Set("X-Canary", canary)
		}
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("X-Canary %q -> %s\n", canary, body)
	}
	// Output:
	// X-Canary "" -> v1
	// X-Canary "v2" -> v2
}

// The live instance count of the service shares a rate limit across the
// fleet while Redis is down: each instance then admits limit/N.
func ExampleResolver_Counter() {
	disc := registrytest.New()
	disc.Set("orders", &registry.ServiceInstance{Address: "10.0.0.1:8080"}, &registry.ServiceInstance{Address: "10.0.0.2:8080"})
	res, err := registry.NewResolver(disc)
	if err != nil {
		panic(err)
	}
	defer res.Close()
	count := res.Counter("orders")
	policy := ratelimit.FailLocalFunc(count) // ratelimit.PerIP(100, time.Second).WithFailurePolicy(policy)
	_ = policy

	for count() != 2 { // the watch delivers the first set in the background
		time.Sleep(time.Millisecond)
	}
	fmt.Println(count())
	// Output: 2
}

// Readiness with a dependency check, mounted on a Gin engine.
func ExampleHealth() {
	h, err := registry.NewHealth(registry.WithCheck("redis", func(ctx context.Context) error {
		return nil // rdb.Ping(ctx).Err()
	}))
	if err != nil {
		panic(err)
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	h.MountGin(r)

	for _, draining := range []bool{false, true} {
		if draining {
			h.SetDraining() // what Server does when shutdown starts
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// 200 {"status":"ready","checks":{"redis":"ok"}}
	// 503 {"status":"draining","checks":{"redis":"skipped"}}
}
