package benchmarks

// Kratos v3.0.0, the third side (side=kratos3), built as a Kratos v3 user
// builds it: its HTTP server with its default options except the per-request
// timeout (as on the v2.9.2 side), its own recovery, logging (log/slog) and
// ratelimit middlewares, tracing and metrics from contrib/otel/v3, over the
// same env (SDK setup, log sink, Prometheus registry) as the other sides.
//
// Two pieces are aegis v0.2.0's code rather than Kratos v3's copy of it,
// because v3 keeps that copy in internal/ with no way to configure it:
//   - BBR: v3's ratelimit.Server defaults to its internal BBR with a fixed
//     80% CPU threshold, under which a saturating run sheds requests (and
//     shed requests are cheaper). It gets aegis's BBR with the threshold
//     above 100% through v3's exported Limiter interface, as on the v2 side.
//   - the SRE breaker: v3's circuitbreaker middleware is client-only (it
//     reads the client transport from the context), so a server-side
//     breaker is the same small middleware as on the v2 side, on aegis's
//     sre breaker.

import (
	"context"
	"log/slog"
	"net/http"
	"unsafe"

	"github.com/gin-gonic/gin"
	otelmetrics3 "github.com/go-kratos/kratos/contrib/otel/v3/metrics"
	oteltracing3 "github.com/go-kratos/kratos/contrib/otel/v3/tracing"
	kerrors3 "github.com/go-kratos/kratos/v3/errors"
	klog3 "github.com/go-kratos/kratos/v3/log"
	middleware3 "github.com/go-kratos/kratos/v3/middleware"
	klogging3 "github.com/go-kratos/kratos/v3/middleware/logging"
	kratelimit3 "github.com/go-kratos/kratos/v3/middleware/ratelimit"
	recovery3 "github.com/go-kratos/kratos/v3/middleware/recovery"
	khttp3 "github.com/go-kratos/kratos/v3/transport/http"

	"github.com/go-kratos/aegis/circuitbreaker"
	"github.com/go-kratos/aegis/circuitbreaker/sre"
	aegisrl "github.com/go-kratos/aegis/ratelimit"
	"github.com/go-kratos/aegis/ratelimit/bbr"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gingov/gingov/logging"

	// Kratos v2 and v3 register the same protobuf file; see the package.
	_ "github.com/gingov/gingov/benchmarks/internal/protoconflict"
)

// kratos3Ping is kratosPing on Kratos v3 (the handler protoc-gen-go-http
// generates, minus the query binding).
func kratos3Ping(ctx khttp3.Context) error {
	h := ctx.Middleware(func(context.Context, any) (any, error) {
		return gin.H{"message": "pong"}, nil
	})
	out, err := h(ctx, &pingRequest{})
	if err != nil {
		return err
	}
	return ctx.Result(http.StatusOK, out)
}

// newKratos3 builds the Kratos v3.0.0 side. Its 1 s default per-request
// timeout is off unless the stack asks for it, as on the v2 side.
func newKratos3(tb tbLike, e *env, s stack) *khttp3.Server {
	var mws []middleware3.Middleware
	if s.recovery {
		mws = append(mws, recovery3.Recovery())
	}
	if s.tracing {
		mws = append(mws, oteltracing3.Server(oteltracing3.WithTracerProvider(e.tp), oteltracing3.WithPropagator(e.prop)))
	}
	if s.metrics {
		mws = append(mws, kratos3Metrics(tb, e))
	}
	if s.logging {
		mws = append(mws, klogging3.Server(kratos3Logger(e)))
	}
	if s.ratelimit {
		mws = append(mws, kratelimit3.Server(kratelimit3.WithLimiter(bbrV3{bbr.NewLimiter(bbr.WithCPUThreshold(1001))})))
	}
	if s.breaker {
		mws = append(mws, kratos3Breaker(sre.NewBreaker()))
	}
	opts := []khttp3.ServerOption{khttp3.Middleware(mws...)}
	if !s.timeout {
		opts = append(opts, khttp3.Timeout(0))
	}
	srv := khttp3.NewServer(opts...)
	srv.Route("/").GET("/ping", kratos3Ping)
	return srv
}

// kratos3Metrics is contrib/otel/v3's metrics middleware with its default
// instruments on the OTel SDK and the Prometheus exporter, as on the v2 side.
func kratos3Metrics(tb tbLike, e *env) middleware3.Middleware {
	exp, err := otelprom.New(otelprom.WithRegisterer(e.reg))
	if err != nil {
		tb.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	tb.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	meter := mp.Meter("ping")
	requests, err := otelmetrics3.DefaultRequestsCounter(meter, otelmetrics3.DefaultServerRequestsCounterName)
	if err != nil {
		tb.Fatal(err)
	}
	seconds, err := otelmetrics3.DefaultSecondsHistogram(meter, otelmetrics3.DefaultServerSecondsHistogramName)
	if err != nil {
		tb.Fatal(err)
	}
	return otelmetrics3.Server(otelmetrics3.WithRequests(requests), otelmetrics3.WithSeconds(seconds))
}

// kratos3Logger is the *slog.Logger of Kratos v3's logging middleware, as
// its log package builds one: log.NewLogger over a JSON handler (the same
// handler as the other sides, into the env's sink) with the trace and span
// IDs extracted from each call's context by contrib/otel/v3's TraceAttrs.
func kratos3Logger(e *env) *slog.Logger {
	return klog3.NewLogger(logging.New(e.log, nil).Handler(), klog3.WithExtractor(oteltracing3.TraceAttrs))
}

// bbrV3 hands aegis's BBR to Kratos v3's ratelimit.Server.
type bbrV3 struct{ l *bbr.BBR }

// Allow is aegis's Allow. Both DoneFuncs take a struct{ Err error }
// (TestBBRV3Layout checks it), so the function value is reinterpreted
// instead of wrapped in a closure that would cost the v3 side an
// allocation per request its own limiter does not.
func (b bbrV3) Allow() (kratelimit3.DoneFunc, error) {
	done, err := b.l.Allow()
	if err != nil {
		return nil, err
	}
	return *(*kratelimit3.DoneFunc)(unsafe.Pointer(&done)), nil
}

var _ aegisrl.Limiter = (*bbr.BBR)(nil)

// kratos3Breaker is kratosBreaker on Kratos v3's middleware and errors.
func kratos3Breaker(b circuitbreaker.CircuitBreaker) middleware3.Middleware {
	errOpen := kerrors3.ServiceUnavailable("CIRCUITBREAKER", "circuit breaker open")
	return func(next middleware3.Handler) middleware3.Handler {
		return func(ctx context.Context, req any) (any, error) {
			if err := b.Allow(); err != nil {
				b.MarkFailed()
				return nil, errOpen
			}
			reply, err := next(ctx, req)
			if err != nil {
				switch kerrors3.Code(err) {
				case http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
					b.MarkFailed()
					return reply, err
				}
			}
			b.MarkSuccess()
			return reply, err
		}
	}
}
