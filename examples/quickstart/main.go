// Command quickstart is a complete Gin service governed by gingov with no
// external services: JSON access logs, request IDs, panic recovery,
// OpenTelemetry tracing (spans as JSON lines on stdout, or none), an
// in-process rate limiter, a circuit breaker per route, one error envelope
// for every failure, and Prometheus metrics on /metrics (RED per route, and
// the limiter's decisions and the breakers' states). One request's trace id
// is in its span, its access-log line, its Trace-Id response header and,
// when it fails, its error envelope.
//
//	make run        # or: cd examples && go run ./quickstart -addr 127.0.0.1:8080 [-traces none]
//	curl -i localhost:8080/ping
//	curl -i localhost:8080/orders/42     # an application error code
//	curl -i localhost:8080/panic         # a panic becomes the 500 envelope
//	curl -i localhost:8080/limited       # 2 per minute per client: the 3rd is 429
//	curl -i localhost:8080/flaky         # always 503: after 5 its breaker opens (CIRCUIT_OPEN)
//	curl -i localhost:8080/slow          # 504 DEADLINE_EXCEEDED at its 200 ms deadline
//	curl -s localhost:8080/metrics | grep -E 'http_server|gingov_'
//
// dashboards/gingov.json is a Grafana dashboard for these metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/stdout"
)

// ErrOrderNotFound is an application code: service 1, module 001 (orders), error 001.
var ErrOrderNotFound = errcode.MustNew(1001001, http.StatusNotFound, "ORDER_NOT_FOUND",
	"order not found", errcode.WithSolution("check the order id"))

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address (use :8080 to listen on every interface)")
	traces := flag.String("traces", "stdout", "where spans go: stdout (JSON lines, with the logs) or none")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *traces, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// newRouter builds the governed Gin engine.
func newRouter(logger *slog.Logger, reg *prometheus.Registry, tp *tracing.Provider) (*gin.Engine, error) {
	traced, err := tracing.NewServer("", tracing.WithProvider(tp),
		tracing.WithSkipPaths("/metrics", "/healthz"), tracing.WithResponseHeader(tracing.DefaultResponseHeader))
	if err != nil {
		return nil, err
	}
	m, err := metrics.NewHTTP(reg, metrics.WithSkipPaths("/metrics"))
	if err != nil {
		return nil, err
	}
	// The governance metrics: the middlewares report to it through their hooks.
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		return nil, err
	}
	// Every client: 50 requests per second, bursts of 100. The /limited
	// route adds a stricter rule of its own: 2 per minute.
	perIP, err := ratelimit.New(nil, ratelimit.PerIP(50, time.Second).WithBurst(100),
		ratelimit.WithOnDecision(gov.OnDecision))
	if err != nil {
		return nil, err
	}
	strict, err := ratelimit.New(nil, ratelimit.PerIP(2, time.Minute).WithName("limited"),
		ratelimit.WithOnDecision(gov.OnDecision))
	if err != nil {
		return nil, err
	}
	// One breaker per route: it opens when half of at least 5 requests in
	// 10 s failed (5xx or panic), and lets probes through after 10 s.
	breakers, err := circuitbreaker.New(
		circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5, OpenTimeout: 10 * time.Second}),
		circuitbreaker.WithOnStateChange(gov.OnBreakerChange),
		circuitbreaker.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	// Every request: 1 s (deadline.DefaultTimeout), or less when the caller
	// sends a shorter Request-Timeout or grpc-timeout; /slow: 200 ms.
	deadlines, err := deadline.New(deadline.DefaultTimeout,
		deadline.WithRoute("GET /slow", 200*time.Millisecond),
		deadline.WithOnTimeout(gov.OnDeadline))
	if err != nil {
		return nil, err
	}
	requestID, err := logging.NewRequestID()
	if err != nil {
		return nil, err
	}
	accessLog, err := logging.NewAccessLog(logger, logging.WithSkipPaths("/metrics", "/healthz"))
	if err != nil {
		return nil, err
	}
	r := gin.New()
	if err := r.SetTrustedProxies(nil); err != nil { // no proxy in front: client_ip is the peer
		return nil, err
	}
	r.Use(
		logging.Recovery(logger), // outermost: every panic becomes the 500 envelope
		requestID.Middleware(),
		// Every request gets a trace id (sampled or not) for the logs,
		// the envelopes and the Trace-Id header.
		traced.Middleware(),
		m.Middleware(),
		accessLog.Middleware(),
		deadlines.Middleware(), // 504 DEADLINE_EXCEEDED once a request's deadline passed
	)
	errcode.Handle(r) // 404/405 and handler errors through the one envelope
	r.Use(perIP.Middleware(), breakers.Middleware())

	r.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) })
	r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })
	r.GET("/orders/:id", errcode.Handler(func(c *gin.Context) error {
		logging.FromContext(c.Request.Context()).Info("looking up order", "id", c.Param("id"))
		return ErrOrderNotFound.WithMetadata("order_id", c.Param("id"))
	}))
	r.GET("/panic", func(c *gin.Context) { panic("something went very wrong") })
	r.GET("/limited", strict.Middleware(), func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "ok"}) })
	r.GET("/slow", func(c *gin.Context) { // honours its context: answered 504 at its deadline
		select {
		case <-c.Request.Context().Done():
		case <-time.After(10 * time.Second):
			c.JSON(http.StatusOK, gin.H{"message": "done"})
		}
	})
	r.GET("/flaky", errcode.Handler(func(c *gin.Context) error { return errcode.Unavailable }))
	r.GET("/metrics", gin.WrapH(metrics.Handler(reg)))
	return r, nil
}

// run serves until ctx is done, then shuts down gracefully. When ready is
// not nil it receives the bound address once the service accepts requests.
// Spans go to out as well when traces is "stdout" ("none": nowhere).
func run(ctx context.Context, addr, traces string, out io.Writer, ready chan<- string) error {
	gin.SetMode(gin.ReleaseMode)
	logger := logging.New(out, slog.LevelInfo)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var topts []tracing.Option
	switch traces {
	case "stdout":
		exp, err := stdout.New(stdout.WithWriter(out))
		if err != nil {
			return err
		}
		topts = append(topts, tracing.WithSpanExporter(exp))
	case "none":
	default:
		return fmt.Errorf("-traces %q is not stdout or none", traces)
	}
	tp, err := tracing.New(ctx, "quickstart", topts...)
	if err != nil {
		return err
	}
	defer func() { _ = tp.Shutdown(context.Background()) }() // flushes the last spans
	r, err := newRouter(logger, reg, tp)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("quickstart listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	logger.Info("quickstart stopped")
	return err
}
