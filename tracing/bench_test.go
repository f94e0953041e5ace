package tracing_test

import (
	"context"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gingov/gingov/internal/benchping"
	"github.com/gingov/gingov/tracing"
)

// discard is an exporter that drops every batch, so benchmarks measure the
// request path and the batch processor, not an export.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

var ratios = []struct {
	name  string
	ratio float64
}{{"sample=100%", 1}, {"sample=10%", 0.1}}

func BenchmarkBareGin(b *testing.B) { benchping.Run(b) }

// BenchmarkOtelgin is otelgin v0.65.0 alone on the same SDK setup (batch
// processor, discarding exporter, parent-based ratio sampler), for the ratio.
func BenchmarkOtelgin(b *testing.B) {
	for _, r := range ratios {
		b.Run(r.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(
				sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r.ratio))),
				sdktrace.WithBatcher(discard{}))
			defer tp.Shutdown(context.Background())
			prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
			benchping.Run(b, otelgin.Middleware("ping", otelgin.WithTracerProvider(tp), otelgin.WithPropagators(prop)))
		})
	}
}

func benchProvider(b *testing.B, ratio float64) *tracing.Provider {
	b.Helper()
	p, err := tracing.New(b.Context(), "ping", tracing.WithSpanExporter(discard{}), tracing.WithSampleRatio(ratio))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// BenchmarkTracing is the kit's middleware on the same SDK setup.
func BenchmarkTracing(b *testing.B) {
	for _, r := range ratios {
		b.Run(r.name, func(b *testing.B) { benchping.Run(b, benchProvider(b, r.ratio).Middleware()) })
	}
}

// BenchmarkTracingWithOtelgin is the kit's middleware through otelgin
// (WithOtelgin), the path before the kit's own span path, for the ratio.
func BenchmarkTracingWithOtelgin(b *testing.B) {
	for _, r := range ratios {
		b.Run(r.name, func(b *testing.B) {
			benchping.Run(b, middleware(b, "", tracing.WithProvider(benchProvider(b, r.ratio)), tracing.WithOtelgin()))
		})
	}
}

// BenchmarkTracingSkipped is a skipped path (/ping here).
func BenchmarkTracingSkipped(b *testing.B) {
	benchping.Run(b, middleware(b, "", tracing.WithProvider(benchProvider(b, 1)), tracing.WithSkipPaths("/ping")))
}

// BenchmarkTracingParallel is BenchmarkTracing from GOMAXPROCS goroutines.
func BenchmarkTracingParallel(b *testing.B) {
	for _, r := range ratios {
		b.Run(r.name, func(b *testing.B) {
			r2 := gin.New()
			r2.Use(benchProvider(b, r.ratio).Middleware())
			r2.GET("/ping", func(c *gin.Context) { c.JSON(200, gin.H{"message": "pong"}) })
			benchping.ServeParallel(b, r2)
		})
	}
}
