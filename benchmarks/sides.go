package benchmarks

// gingov (on Gin), Kratos v2.9.2 and Kratos v3.0.0 (sides_kratos3.go) side
// by side. Every side serves GET /ping -> {"message":"pong"} from the same
// gin.H value encoded by encoding/json, runs its middlewares in the same
// order, traces through the same OpenTelemetry SDK setup (sampler, batch
// span processor, an exporter that counts and drops spans, the same
// propagators) and logs JSON lines through the same log/slog JSON handler
// into the same kind of sink. What differs is the framework and the
// middlewares themselves. These builders are not in test files so that
// cmd/benchserver can serve the same handlers in a process of its own
// (server.go).

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-kratos/aegis/circuitbreaker"
	"github.com/go-kratos/aegis/circuitbreaker/sre"
	"github.com/go-kratos/aegis/ratelimit/bbr"
	kerrors "github.com/go-kratos/kratos/v2/errors"
	klog "github.com/go-kratos/kratos/v2/log"
	"github.com/go-kratos/kratos/v2/middleware"
	klogging "github.com/go-kratos/kratos/v2/middleware/logging"
	kmetrics "github.com/go-kratos/kratos/v2/middleware/metrics"
	kratelimit "github.com/go-kratos/kratos/v2/middleware/ratelimit"
	"github.com/go-kratos/kratos/v2/middleware/recovery"
	ktracing "github.com/go-kratos/kratos/v2/middleware/tracing"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	gcb "github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/ratelimit/sentinel"
	"github.com/gingov/gingov/tracing"
)

// tbLike is the part of testing.TB the builders use: a *testing.T or
// *testing.B in the tests and benchmarks, a process-wide stand-in in
// cmd/benchserver (see NewServer).
type tbLike interface {
	Fatal(args ...any)
	Cleanup(f func())
}

// ping is the Gin side's handler.
func ping(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) }

// stack says which middlewares a case runs. The order is fixed and the
// same on both sides: timeout, recovery, request ID, tracing, metrics,
// logging, rate limit, Sentinel (gingov only), breaker.
type stack struct {
	timeout   bool // a 1 s per-request deadline (Kratos's default; off unless set)
	recovery  bool
	logging   bool // gingov: RequestID + AccessLog; Kratos: logging.Server (it has no request ID middleware)
	tracing   bool
	metrics   bool
	ratelimit bool // gingov: local PerIP limiter; Kratos: BBR
	sentinel  bool // gingov only: a Sentinel flow rule that never blocks
	otelgin   bool // gingov side only: otelgin v0.65.0 alone instead of gingov's tracing
	breaker   bool // SRE breaker on both sides
	errcode   bool // gingov only: errcode.Handle (404/405 and c.Error through the envelope)
}

// kase is one row of the comparison.
type kase struct {
	row  string
	gin  stack
	krat stack
	// ginOnly rows have no Kratos counterpart.
	ginOnly bool
}

var full = stack{recovery: true, logging: true, tracing: true, metrics: true, ratelimit: true, breaker: true}

func withSentinel(s stack) stack { s.sentinel, s.errcode = true, true; return s }
func withErrcode(s stack) stack  { s.errcode = true; return s }

// kases are the rows of the in-process comparison, in table order.
var kases = []kase{
	{row: "bare"},
	{row: "timeout", gin: stack{timeout: true}, krat: stack{timeout: true}},
	{row: "recovery", gin: stack{recovery: true}, krat: stack{recovery: true}},
	{row: "logging", gin: stack{logging: true}, krat: stack{logging: true}},
	{row: "tracing", gin: stack{tracing: true}, krat: stack{tracing: true}},
	{row: "tracing-otelgin", gin: stack{tracing: true, otelgin: true}, ginOnly: true},
	{row: "metrics", gin: stack{metrics: true}, krat: stack{metrics: true}},
	{row: "ratelimit", gin: stack{ratelimit: true}, krat: stack{ratelimit: true}},
	{row: "breaker", gin: stack{breaker: true}, krat: stack{breaker: true}},
	{row: "full", gin: withSentinel(full), krat: full},
	{row: "full-nosentinel", gin: withErrcode(full), ginOnly: true},
}

// samplings are the parent-based ratio samplers the traced rows run at,
// in percent (requests carry no traceparent, so the ratio decides).
var samplings = []int{100, 10}

// sink is where both sides' JSON log lines go: it counts writes and drops
// the bytes. It is not io.Discard, which a logger could recognise and skip.
// keep (tests only) retains the lines.
type sink struct {
	writes atomic.Int64
	keep   bool
	mu     sync.Mutex
	lines  [][]byte
}

func (s *sink) Write(p []byte) (int, error) {
	s.writes.Add(1)
	if s.keep {
		s.mu.Lock()
		s.lines = append(s.lines, append([]byte(nil), p...))
		s.mu.Unlock()
	}
	return len(p), nil
}

// spanSink is the span exporter of both sides: it counts spans and drops them.
type spanSink struct{ spans atomic.Int64 }

func (e *spanSink) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.spans.Add(int64(len(spans)))
	return nil
}
func (e *spanSink) Shutdown(context.Context) error { return nil }

// env is what one side of one case runs with: log sink, tracer provider
// with its exporter, Prometheus registry. Each handler gets its own.
type env struct {
	log   *sink
	spans *spanSink
	prov  *tracing.Provider
	tp    *sdktrace.TracerProvider
	reg   *prometheus.Registry
	prop  propagation.TextMapPropagator
}

// newEnv builds an env whose tracer provider samples samplePercent of the
// requests (0: the row does not trace; 100 then). Both sides' providers
// come from gingov's tracing.New, so their SDK setup is the same by
// construction: the SDK's TracerProvider with ParentBased(TraceIDRatioBased),
// a batch span processor over the counting exporter, gingov's ID
// generator, W3C trace-context + baggage propagators.
func newEnv(tb tbLike, samplePercent int) *env {
	if samplePercent == 0 {
		samplePercent = 100
	}
	e := &env{log: &sink{}, spans: &spanSink{}, reg: prometheus.NewRegistry(),
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	p, err := tracing.New(context.Background(), "ping",
		tracing.WithSampleRatio(float64(samplePercent)/100),
		tracing.WithSpanExporter(e.spans),
		tracing.WithPropagator(e.prop))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	e.prov, e.tp = p, p.TracerProvider()
	return e
}

// newGin builds the gingov side: Gin with gingov's middlewares.
func newGin(tb tbLike, e *env, s stack) *gin.Engine {
	r := gin.New()
	l := logging.New(e.log, nil)
	if s.timeout {
		r.Use(ginTimeout(time.Second))
	}
	if s.recovery {
		r.Use(logging.Recovery(l))
	}
	if s.logging {
		rid, err := logging.NewRequestID()
		if err != nil {
			tb.Fatal(err)
		}
		r.Use(rid.Middleware())
	}
	switch {
	case s.otelgin:
		r.Use(otelgin.Middleware("ping", otelgin.WithTracerProvider(e.tp), otelgin.WithPropagators(e.prop)))
	case s.tracing:
		srv, err := tracing.NewServer("ping", tracing.WithProvider(e.prov))
		if err != nil {
			tb.Fatal(err)
		}
		r.Use(srv.Middleware())
	}
	if s.metrics {
		m, err := metrics.NewHTTP(e.reg)
		if err != nil {
			tb.Fatal(err)
		}
		r.Use(m.Middleware())
	}
	if s.logging {
		a, err := logging.NewAccessLog(l)
		if err != nil {
			tb.Fatal(err)
		}
		r.Use(a.Middleware())
	}
	if s.ratelimit {
		g, err := ratelimit.New(nil, ratelimit.PerIP(1e9, time.Second))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = g.Close() })
		r.Use(g.Middleware())
	}
	if s.sentinel {
		f, err := sentinelFlow()
		if err != nil {
			tb.Fatal(err)
		}
		r.Use(f.Middleware())
	}
	if s.breaker {
		b, err := gcb.New(gcb.WithPolicy(gcb.SRE{}), gcb.WithLogger(l))
		if err != nil {
			tb.Fatal(err)
		}
		r.Use(b.Middleware())
	}
	if s.errcode {
		errcode.Handle(r)
	}
	r.GET("/ping", ping)
	return r
}

// ginTimeout gives each request a deadline, as Kratos's HTTP server does
// by default; only the timeout row uses it.
func ginTimeout(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), d)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

var (
	sentinelOnce sync.Once
	sentinelErr  error
	sentinelDir  string
)

// sentinelFlow initialises Sentinel once per process (logs in a temporary
// directory removed by TestMain) with a flow rule on GET /ping that never
// blocks, so every request takes the full entry and exit path.
func sentinelFlow() (*sentinel.Flow, error) {
	sentinelOnce.Do(func() {
		sentinelDir, sentinelErr = os.MkdirTemp("", "gingov-bench-sentinel")
		if sentinelErr != nil {
			return
		}
		if sentinelErr = sentinel.Init(sentinel.WithLogDir(sentinelDir)); sentinelErr != nil {
			return
		}
		rules, err := sentinel.ParseRules([]byte(`flow: [{resource: "GET:/ping", threshold: 1e12}]`))
		if err != nil {
			sentinelErr = err
			return
		}
		sentinelErr = sentinel.Load(rules)
	})
	if sentinelErr != nil {
		return nil, sentinelErr
	}
	return sentinel.New()
}

// pingRequest stands for the request message protoc-gen-go-http would
// bind; GET /ping has no fields, and (like the Gin side) nothing is bound.
type pingRequest struct{}

// kratosPing is the handler as protoc-gen-go-http generates it, minus the
// query binding: the middleware chain runs around the service method and
// the reply goes through Kratos's response encoder.
func kratosPing(ctx khttp.Context) error {
	h := ctx.Middleware(func(context.Context, any) (any, error) {
		return gin.H{"message": "pong"}, nil
	})
	out, err := h(ctx, &pingRequest{})
	if err != nil {
		return err
	}
	return ctx.Result(http.StatusOK, out)
}

// newKratos builds the Kratos side. Its 1 s default per-request timeout is
// off (Timeout(0); the server then still wraps each request context with
// a cancel) unless the stack asks for it.
func newKratos(tb tbLike, e *env, s stack) *khttp.Server {
	var mws []middleware.Middleware
	if s.recovery {
		mws = append(mws, recovery.Recovery())
	}
	if s.tracing {
		mws = append(mws, ktracing.Server(ktracing.WithTracerProvider(e.tp), ktracing.WithPropagator(e.prop)))
	}
	if s.metrics {
		mws = append(mws, kratosMetrics(tb, e))
	}
	if s.logging {
		mws = append(mws, klogging.Server(kratosLogger(e)))
	}
	if s.ratelimit {
		// BBR with its CPU threshold above the 100% maximum: by default it
		// sheds load once CPU passes 80%, which a saturating parallel
		// benchmark always does, and shed requests would be cheaper ones.
		mws = append(mws, kratelimit.Server(kratelimit.WithLimiter(bbr.NewLimiter(bbr.WithCPUThreshold(1001)))))
	}
	if s.breaker {
		mws = append(mws, kratosBreaker(sre.NewBreaker()))
	}
	opts := []khttp.ServerOption{khttp.Middleware(mws...)}
	if !s.timeout {
		opts = append(opts, khttp.Timeout(0))
	}
	srv := khttp.NewServer(opts...)
	srv.Route("/").GET("/ping", kratosPing)
	return srv
}

// kratosMetrics is Kratos's metrics middleware on the OpenTelemetry SDK
// with the Prometheus exporter (Kratos's metrics are OTel-only), with its
// default instruments.
func kratosMetrics(tb tbLike, e *env) middleware.Middleware {
	exp, err := otelprom.New(otelprom.WithRegisterer(e.reg))
	if err != nil {
		tb.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	tb.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	meter := mp.Meter("ping")
	requests, err := kmetrics.DefaultRequestsCounter(meter, kmetrics.DefaultServerRequestsCounterName)
	if err != nil {
		tb.Fatal(err)
	}
	seconds, err := kmetrics.DefaultSecondsHistogram(meter, kmetrics.DefaultServerSecondsHistogramName)
	if err != nil {
		tb.Fatal(err)
	}
	return kmetrics.Server(kmetrics.WithRequests(requests), kmetrics.WithSeconds(seconds))
}

// slogKratos is a Kratos log.Logger writing through log/slog's JSON
// handler, so that both sides produce JSON lines with the same encoder.
type slogKratos struct{ l *slog.Logger }

func (k slogKratos) Log(level klog.Level, keyvals ...any) error {
	lv := slog.LevelInfo
	switch level {
	case klog.LevelDebug:
		lv = slog.LevelDebug
	case klog.LevelWarn:
		lv = slog.LevelWarn
	case klog.LevelError, klog.LevelFatal:
		lv = slog.LevelError
	}
	k.l.Log(context.Background(), lv, "request", keyvals...)
	return nil
}

// kratosLogger is the logger of Kratos's logging middleware: JSON lines
// into the env's sink, with the trace and span IDs of the request bound
// as Kratos's service templates do.
func kratosLogger(e *env) klog.Logger {
	return klog.With(slogKratos{logging.New(e.log, nil)},
		"trace_id", ktracing.TraceID(), "span_id", ktracing.SpanID())
}

// kratosBreaker puts one aegis SRE breaker in front of the handler.
// Kratos has no server-side breaker (its circuitbreaker middleware is
// client-only), so this small middleware does what that one does, on the
// server: reject with 503 CIRCUITBREAKER while the breaker refuses, count
// 500/503/504 as failures.
func kratosBreaker(b circuitbreaker.CircuitBreaker) middleware.Middleware {
	errOpen := kerrors.ServiceUnavailable("CIRCUITBREAKER", "circuit breaker open")
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, req any) (any, error) {
			if err := b.Allow(); err != nil {
				b.MarkFailed()
				return nil, errOpen
			}
			reply, err := next(ctx, req)
			if err != nil {
				switch kerrors.Code(err) {
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
