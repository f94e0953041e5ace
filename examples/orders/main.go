// Command orders is the backend of the gateway example: a governed Gin
// service that registers itself in Nacos or Eureka under the plain name
// "orders", with its version as metadata, traces its requests (continuing
// the gateway's trace) and drains gracefully on SIGTERM.
//
//	cd examples && go run ./orders -addr 127.0.0.1:9001 -nacos 127.0.0.1:8848 -version v1
//	cd examples && go run ./orders -addr 127.0.0.1:9002 -nacos 127.0.0.1:8848 -version v2
//
// -mesh runs it behind a sidecar (docs/mesh.md): it registers nowhere
// (the mesh's control plane knows its instances) and reads and writes B3
// trace headers besides W3C's, as Envoy's Zipkin tracer does.
//
// -fail makes every answer a 500, and -delay holds every answer back, to
// watch the gateway's breaker open and its load balancer route around the
// instance.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/examples/internal/discover"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/otlphttp"
)

type options struct {
	addr     string
	version  string
	fail     bool
	delay    time.Duration // before every answer
	otlp     string        // OTLP/HTTP collector host:port; "" = no export
	drain    time.Duration
	mesh     bool
	registry discover.Flags
}

func main() {
	var o options
	fs := flag.CommandLine
	fs.StringVar(&o.addr, "addr", "127.0.0.1:9001", "listen address")
	fs.StringVar(&o.version, "version", "v1", "version registered as metadata (canary routing selects by it)")
	fs.BoolVar(&o.fail, "fail", false, "answer every request with 500")
	fs.DurationVar(&o.delay, "delay", 0, "wait this long before answering each request (a slow instance)")
	fs.StringVar(&o.otlp, "otlp", "", "OTLP/HTTP collector host:port (empty: spans are not exported)")
	fs.DurationVar(&o.drain, "drain", time.Second, "how long to keep serving after deregistering")
	fs.BoolVar(&o.mesh, "mesh", false, "run behind a sidecar: register nowhere, read and write B3 trace headers too")
	o.registry.Register(fs)
	flag.Parse()
	ctx, stop := registry.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	gin.SetMode(gin.ReleaseMode)
	logger := logging.New(out, slog.LevelInfo).With("service", "orders", "version", o.version)
	topts := []tracing.Option{tracing.WithServiceVersion(o.version)}
	if o.mesh { // setup.DefaultMeshPropagators
		topts = append(topts, tracing.WithPropagators(tracing.PropagatorTraceContext, tracing.PropagatorBaggage, tracing.PropagatorB3Multi))
	}
	if o.otlp != "" {
		exp, err := otlphttp.New(ctx, otlphttp.WithEndpoint(o.otlp), otlphttp.WithInsecure())
		if err != nil {
			return err
		}
		topts = append(topts, tracing.WithSpanExporter(exp))
	}
	tp, err := tracing.New(ctx, "orders", topts...)
	if err != nil {
		return err
	}
	defer func() { _ = tp.Shutdown(context.Background()) }()
	traced, err := tracing.NewServer("", tracing.WithProvider(tp), tracing.WithSkipPaths("/healthz", "/readyz"))
	if err != nil {
		return err
	}

	var reg registry.Registrar // none in a mesh
	if !o.mesh {
		backend, err := o.registry.Open(logger)
		if err != nil {
			return err
		}
		defer func() { _ = backend.Close() }()
		reg = backend
	}

	requestID, err := logging.NewRequestID()
	if err != nil {
		return err
	}
	accessLog, err := logging.NewAccessLog(logger)
	if err != nil {
		return err
	}
	r := gin.New()
	r.Use(logging.Recovery(logger), requestID.Middleware(), traced.Middleware(),
		accessLog.Middleware())
	errcode.Handle(r)
	srv, err := registry.NewServer(r, o.addr, reg, registry.ServiceInstance{Name: "orders", Version: o.version},
		registry.WithLogger(logger), registry.WithDrainDelay(o.drain))
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	self := srv.Addr()
	r.GET("/orders/:id", errcode.Handler(func(c *gin.Context) error {
		if o.delay > 0 {
			select {
			case <-time.After(o.delay):
			case <-c.Request.Context().Done():
				return c.Request.Context().Err()
			}
		}
		if o.fail {
			return errors.New("orders: the database is on fire") // logged; the client sees a generic 500
		}
		c.JSON(http.StatusOK, gin.H{
			"id": c.Param("id"), "served_by": self, "version": o.version,
			"trace_id": trace.SpanContextFromContext(c.Request.Context()).TraceID().String(),
		})
		return nil
	}))
	return srv.Run(ctx)
}
