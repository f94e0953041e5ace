// Command gateway is the front of a two-service example: it finds the
// "orders" instances through Nacos or Eureka (a watch-fed cache, no
// registry call per request), spreads requests over them by weighted
// round robin, gives each instance its own circuit
// breaker so a failing one stops getting traffic, routes "X-Canary: v2"
// requests to the v2 instances, limits each user (X-User-Id) to 5 requests
// per second, and carries one trace across both services. The governance
// chain and the outbound client come from setup, so that one switch moves
// the gateway into a service mesh:
//
//	cd examples && go run ./orders -addr 127.0.0.1:9001 -nacos 127.0.0.1:8848 &
//	cd examples && go run ./gateway -addr 127.0.0.1:8080 -nacos 127.0.0.1:8848
//	curl -i localhost:8080/api/orders/42 -H 'X-User-Id: alice'
//	curl -i localhost:8080/api/orders/42 -H 'X-User-Id: alice' -H 'X-Canary: v2'
//
// With -sidecar http://127.0.0.1:15001 (setup's mesh: sidecar) it runs
// behind an Envoy sidecar (docs/mesh.md, docs/mesh/envoy.yaml): no
// registry, no balancer, retries or breakers in the app; its calls go to
// http://orders/... through the sidecar's outbound listener, which does
// all of that. The per-user limit stays in the app (enforce: app).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/examples/internal/discover"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/setup"
)

type options struct {
	addr     string
	otlp     string        // OTLP/HTTP collector host:port; "" = no export
	perUser  int           // requests per second per X-User-Id
	sidecar  string        // the sidecar's outbound listener, http://host:port; "" = no mesh
	timeout  time.Duration // per call to orders, retries included
	retries  int           // other instances a failed call is tried on
	registry discover.Flags
}

func main() {
	var o options
	fs := flag.CommandLine
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&o.otlp, "otlp", "", "OTLP/HTTP collector host:port (empty: spans are not exported)")
	fs.IntVar(&o.perUser, "per-user", 5, "requests per second per X-User-Id")
	fs.StringVar(&o.sidecar, "sidecar", "", "mesh mode: send calls to orders through the sidecar listening at this URL (http://127.0.0.1:15001); no registry flag then")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "how long a call to orders may take, retries included")
	fs.IntVar(&o.retries, "retries", registry.DefaultRetries, "how many other instances a call that got no answer is tried on")
	o.registry.Register(fs)
	flag.Parse()
	ctx, stop := registry.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, o, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// config is the gateway's gingov.yaml, in code.
func config(o options) setup.Config {
	cfg := setup.Config{
		Service: setup.Service{Name: "gateway"},
		Tracing: setup.Tracing{SkipPaths: []string{"/metrics", "/healthz", "/readyz"}, ResponseHeader: "Trace-Id"},
		RateLimit: setup.RateLimit{Rules: []setup.LimitRule{{
			Name: "user", By: "header:X-User-Id", Limit: o.perUser, Period: time.Second,
			Routes: []string{"/api/orders/:id"},
		}}},
	}
	if o.otlp != "" {
		cfg.Tracing.Exporter, cfg.Tracing.Endpoint, cfg.Tracing.Insecure = "otlp-http", o.otlp, true
	}
	if o.sidecar != "" {
		cfg.Mesh = setup.MeshSidecar
	}
	return cfg
}

// run serves until ctx ends; ready, when not nil, gets the server once it
// listens.
func run(ctx context.Context, o options, out io.Writer, ready chan<- *registry.Server) error {
	gin.SetMode(gin.ReleaseMode)
	logger := logging.New(out, slog.LevelInfo).With("service", "gateway")
	r := gin.New()
	if err := r.SetTrustedProxies(nil); err != nil {
		return err
	}
	// Recovery, request ID, tracing, metrics (/metrics), access log, the
	// error envelope, the per-user limit.
	chain, err := setup.Use(ctx, r, config(o), setup.WithLogger(logger))
	if err != nil {
		return err
	}
	defer func() { _ = chain.Close(context.Background()) }()

	// Outbound. Out of a mesh: trace span → pick an instance of "orders"
	// (weighted round robin, canary) → that instance's breaker → the
	// network. In a mesh: trace span → the sidecar.
	copts := []setup.ClientOption{
		// Weighted round robin spreads requests evenly by weight; the
		// default, registry.P2C(), sends more to the instances that answer
		// faster.
		setup.WithDiscoveryOptions(registry.WithCanary(registry.Canary{}), registry.WithBalancer(registry.WeightedRoundRobin()),
			registry.WithRetries(o.retries)),
		setup.WithBreakerOptions(circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5, FailureRatio: 0.5, OpenTimeout: 30 * time.Second})),
	}
	if o.sidecar != "" {
		copts = append(copts, setup.WithSidecar(o.sidecar))
	} else {
		// Discovery: the instances of "orders", kept current by a watch.
		backend, err := o.registry.Open(logger)
		if err != nil {
			return err
		}
		defer func() { _ = backend.Close() }()
		// A restarted registry answers no instances until they register
		// again: the resolver keeps the last ones meanwhile
		// (registry.DefaultEmptyProtection), and counts it.
		ropts := []registry.ResolverOption{registry.WithLogger(logger)}
		if gov := chain.Governance(); gov != nil {
			ropts = append(ropts, registry.WithOnEvent(gov.OnRegistryEvent))
		}
		res, err := registry.NewResolver(backend, ropts...)
		if err != nil {
			return err
		}
		defer func() { _ = res.Close() }()
		copts = append(copts, setup.WithResolver(res))
	}
	client, err := chain.NewClient(copts...)
	if err != nil {
		return err
	}
	client.Timeout = o.timeout

	r.GET("/api/orders/:id", errcode.Handler(func(c *gin.Context) error {
		req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, "http://orders/orders/"+c.Param("id"), nil)
		if err != nil {
			return err
		}
		// The client forwards the request ID and the trace; these are the
		// example's own.
		for _, h := range []string{"X-User-Id", registry.DefaultCanaryHeader} {
			if v := c.GetHeader(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return err // no instance, breaker open, timeout: the envelope, never the error text
		}
		defer resp.Body.Close()
		c.DataFromReader(resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Type"), resp.Body, nil)
		return nil
	}))

	srv, err := registry.NewServer(r, o.addr, nil, registry.ServiceInstance{Name: "gateway"},
		registry.WithLogger(logger), registry.WithDrainDelay(0))
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if ready != nil {
		ready <- srv
	}
	return srv.Run(ctx)
}
