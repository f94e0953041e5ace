package metrics_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/internal/benchping"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
)

// withSpan puts a span context in the request's context, as the tracing
// middleware does (its cost is part of both "span" cases).
func withSpan(sampled bool) gin.HandlerFunc {
	cfg := trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}}
	if sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(cfg)
	return func(c *gin.Context) {
		c.Request = c.Request.WithContext(trace.ContextWithSpanContext(c.Request.Context(), sc))
	}
}

func newHTTP(b *testing.B, opts ...metrics.HTTPOption) *metrics.HTTP {
	m, err := metrics.NewHTTP(prometheus.NewRegistry(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkMiddleware serves GET /ping -> {"message":"pong"} bare and
// behind the RED middleware on a fresh registry; the span cases compare a
// request carrying an unsampled span (no exemplar) with a sampled one
// (exemplar with its trace ID).
func BenchmarkMiddleware(b *testing.B) {
	b.Run("bare", func(b *testing.B) { benchping.Run(b) })
	b.Run("metrics", func(b *testing.B) { benchping.Run(b, newHTTP(b).Middleware()) })
	b.Run("metrics-native", func(b *testing.B) {
		benchping.Run(b, newHTTP(b, metrics.WithNativeHistograms(1.1)).Middleware())
	})
	b.Run("span-unsampled", func(b *testing.B) { benchping.Run(b, withSpan(false), newHTTP(b).Middleware()) })
	b.Run("span-sampled-exemplar", func(b *testing.B) { benchping.Run(b, withSpan(true), newHTTP(b).Middleware()) })
}

// BenchmarkOnDecision is the cost the governance metrics add to each
// rate-limit decision.
func BenchmarkOnDecision(b *testing.B) {
	gov, err := metrics.NewGovernance(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := ratelimit.Event{Rule: "ip", Decision: ratelimit.Decision{Allowed: true, Source: ratelimit.SourceRedis}, Latency: time.Millisecond}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		gov.OnDecision(ctx, e)
	}
}

// TestHotPathAllocations checks that, once a label set has been seen, the
// middleware adds no allocation to a request without a sampled span, and
// that OnDecision allocates nothing.
func TestHotPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not exact under -race")
	}
	serve := func(mw ...gin.HandlerFunc) float64 {
		r := gin.New()
		r.Use(mw...)
		r.GET("/ping", func(c *gin.Context) { c.String(200, "pong") })
		req := httptest.NewRequest("GET", "/ping", nil)
		return testing.AllocsPerRun(200, func() { r.ServeHTTP(httptest.NewRecorder(), req) })
	}
	m, err := metrics.NewHTTP(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if bare, with := serve(), serve(m.Middleware()); with != bare {
		t.Errorf("allocations per request: %v bare, %v with metrics", bare, with)
	}
	gov, err := metrics.NewGovernance(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e := ratelimit.Event{Rule: "ip", Decision: ratelimit.Decision{Source: ratelimit.SourceRedis}, Latency: time.Millisecond}
	if n := testing.AllocsPerRun(200, func() { gov.OnDecision(context.Background(), e) }); n != 0 {
		t.Errorf("OnDecision allocates %v times", n)
	}
}
