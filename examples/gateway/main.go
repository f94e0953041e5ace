// Command gateway is the front of a two-service example: it finds the
// "orders" instances through Nacos or Eureka (a watch-fed cache, no
// registry call per request), spreads requests over them by weighted
// round robin, gives each instance its own circuit
// breaker so a failing one stops getting traffic, routes "X-Canary: v2"
// requests to the v2 instances, limits each user (X-User-Id) to 5 requests
// per second, and carries one trace across both services.
//
//	cd examples && go run ./orders -addr 127.0.0.1:9001 -nacos 127.0.0.1:8848 &
//	cd examples && go run ./gateway -addr 127.0.0.1:8080 -nacos 127.0.0.1:8848
//	curl -i localhost:8080/api/orders/42 -H 'X-User-Id: alice'
//	curl -i localhost:8080/api/orders/42 -H 'X-User-Id: alice' -H 'X-Canary: v2'
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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/examples/internal/discover"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/otlphttp"
)

type options struct {
	addr     string
	otlp     string // OTLP/HTTP collector host:port; "" = no export
	perUser  int    // requests per second per X-User-Id
	registry discover.Flags
}

func main() {
	var o options
	fs := flag.CommandLine
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&o.otlp, "otlp", "", "OTLP/HTTP collector host:port (empty: spans are not exported)")
	fs.IntVar(&o.perUser, "per-user", 5, "requests per second per X-User-Id")
	o.registry.Register(fs)
	flag.Parse()
	ctx, stop := registry.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, o, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, when not nil, gets the server once it
// listens.
func run(ctx context.Context, o options, out io.Writer, ready chan<- *registry.Server) error {
	gin.SetMode(gin.ReleaseMode)
	logger := logging.New(out, slog.LevelInfo).With("service", "gateway")
	topts := []tracing.Option{}
	if o.otlp != "" {
		exp, err := otlphttp.New(ctx, otlphttp.WithEndpoint(o.otlp), otlphttp.WithInsecure())
		if err != nil {
			return err
		}
		topts = append(topts, tracing.WithSpanExporter(exp))
	}
	tp, err := tracing.New(ctx, "gateway", topts...)
	if err != nil {
		return err
	}
	defer func() { _ = tp.Shutdown(context.Background()) }()
	traced, err := tracing.NewServer("", tracing.WithProvider(tp),
		tracing.WithSkipPaths("/metrics", "/healthz", "/readyz"), tracing.WithResponseHeader("Trace-Id"))
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg, metrics.WithSkipPaths("/metrics"))
	if err != nil {
		return err
	}
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		return err
	}

	// Discovery: the instances of "orders", kept current by a watch.
	backend, err := o.registry.Open(logger)
	if err != nil {
		return err
	}
	defer func() { _ = backend.Close() }()
	res, err := registry.NewResolver(backend, registry.WithLogger(logger))
	if err != nil {
		return err
	}
	defer func() { _ = res.Close() }()

	// Outbound: trace span → pick an instance (P2C, canary) → that
	// instance's breaker → the network.
	breakers, err := circuitbreaker.NewTransport(nil,
		circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5, FailureRatio: 0.5, OpenTimeout: 30 * time.Second}),
		circuitbreaker.WithOnStateChange(gov.OnBreakerChange), circuitbreaker.WithLogger(logger))
	if err != nil {
		return err
	}
	defer func() { _ = breakers.Close() }()
	// Weighted round robin spreads requests evenly by weight; the default,
	// registry.P2C(), sends more to the instances that answer faster.
	lb, err := registry.NewTransport(res, breakers, registry.WithCanary(registry.Canary{}),
		registry.WithBalancer(registry.WeightedRoundRobin()))
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tp.Transport(lb), Timeout: 5 * time.Second}

	perUser, err := ratelimit.New(nil,
		ratelimit.PerHeader("X-User-Id", o.perUser, time.Second).WithName("user"),
		ratelimit.WithOnDecision(gov.OnDecision))
	if err != nil {
		return err
	}
	defer func() { _ = perUser.Close() }()

	requestID, err := logging.NewRequestID()
	if err != nil {
		return err
	}
	accessLog, err := logging.NewAccessLog(logger, logging.WithSkipPaths("/metrics"))
	if err != nil {
		return err
	}

	r := gin.New()
	if err := r.SetTrustedProxies(nil); err != nil {
		return err
	}
	r.Use(
		logging.Recovery(logger),
		requestID.Middleware(),
		traced.Middleware(),
		m.Middleware(),
		accessLog.Middleware(),
	)
	errcode.Handle(r)
	r.GET("/metrics", gin.WrapH(metrics.Handler(reg)))
	r.GET("/api/orders/:id", perUser.Middleware(), errcode.Handler(func(c *gin.Context) error {
		req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, "http://orders/orders/"+c.Param("id"), nil)
		if err != nil {
			return err
		}
		for _, h := range []string{"X-User-Id", registry.DefaultCanaryHeader, "X-Request-ID"} {
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
