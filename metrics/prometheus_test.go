package metrics_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/metrics"
)

// serveLoopback serves h on a free loopback port until the test ends and
// returns its address.
func serveLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// instrumented returns a router with the RED middleware and /metrics, and
// serves it one request on /orders/:id with a sampled span.
func instrumented(t *testing.T, opts ...metrics.HTTPOption) (addr, traceID string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg, append(opts, metrics.WithSkipPaths("/metrics"))...)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/orders/:id", func(c *gin.Context) { c.String(200, "order") })
	r.GET("/metrics", gin.WrapH(metrics.Handler(reg)))
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xab, 0xcd, 15: 1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	req := httptest.NewRequest("GET", "/orders/7", nil)
	r.ServeHTTP(httptest.NewRecorder(), req.WithContext(trace.ContextWithSpanContext(req.Context(), sc)))
	return serveLoopback(t, r), sc.TraceID().String()
}

// TestExemplarsReachPrometheus has a real Prometheus (exemplar storage on)
// scrape the service: it negotiates OpenMetrics, and the trace ID of the
// sampled request is an exemplar of the duration histogram there.
func TestExemplarsReachPrometheus(t *testing.T) {
	addr, traceID := instrumented(t)
	prom := testenv.StartPrometheus(t, []string{addr})
	prom.WaitQuery(t, `sum(http_server_requests_total{route="/orders/:id"})`, 30*time.Second,
		func(s []testenv.PromSample) bool { return len(s) == 1 && s[0].Value == 1 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ex, err := prom.Exemplars(ctx, `http_server_request_duration_seconds_bucket{route="/orders/:id"}`)
		cancel()
		if err == nil && len(ex) == 1 && ex[0].Labels[metrics.ExemplarLabel] == traceID && ex[0].Value > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("exemplars %+v (%v), want one with trace_id %s", ex, err, traceID)
		}
		time.Sleep(testenv.PrometheusScrapeInterval)
	}
}

// TestNativeHistogramsReachPrometheus has a Prometheus with native
// histograms on scrape a service built WithNativeHistograms: it negotiates
// protobuf and stores the duration as a native histogram, which PromQL's
// histogram functions read without the _bucket series.
func TestNativeHistogramsReachPrometheus(t *testing.T) {
	addr, _ := instrumented(t, metrics.WithNativeHistograms(1.1))
	prom := testenv.StartPrometheus(t, []string{addr}, "--enable-feature=native-histograms")
	prom.WaitQuery(t, `histogram_count(sum(http_server_request_duration_seconds{route="/orders/:id"}))`, 30*time.Second,
		func(s []testenv.PromSample) bool { return len(s) == 1 && s[0].Value == 1 })
	prom.WaitQuery(t, `histogram_quantile(0.5, sum(http_server_request_duration_seconds{route="/orders/:id"}))`, 10*time.Second,
		func(s []testenv.PromSample) bool { return len(s) == 1 && s[0].Value > 0 && s[0].Value < 1 })
}
