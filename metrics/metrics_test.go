package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

func TestNewValidates(t *testing.T) {
	if _, err := metrics.New(nil); err == nil || !strings.Contains(err.Error(), "nil Registerer") {
		t.Fatalf("nil registerer: %v", err)
	}
	if _, err := metrics.New(prometheus.NewRegistry(), metrics.WithBuckets(1, 0.5)); err == nil {
		t.Fatal("decreasing buckets accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("second New on the same registry accepted")
	}
}

func TestREDByRouteTemplate(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithSkipPaths("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(logging.Recovery(logging.New(io.Discard, nil)), m.Middleware())
	errcode.Handle(r)
	r.GET("/users/:id", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/boom", func(c *gin.Context) { panic("x") })
	r.GET("/metrics", gin.WrapH(metrics.Handler(reg)))

	for _, target := range []string{"/users/1", "/users/2", "/users/3", "/nope/a", "/nope/b", "/boom", "/metrics"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	req := httptest.NewRequest("BREW", "/users/1", nil)
	r.ServeHTTP(httptest.NewRecorder(), req)

	want := `
# HELP http_server_requests_total HTTP requests served, by method, route template and status code.
# TYPE http_server_requests_total counter
http_server_requests_total{method="GET",route="/boom",status="500"} 1
http_server_requests_total{method="GET",route="/users/:id",status="200"} 3
http_server_requests_total{method="GET",route="unmatched",status="404"} 2
http_server_requests_total{method="OTHER",route="unmatched",status="405"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_server_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "http_server_request_duration_seconds"); n != 4 {
		t.Fatalf("duration series = %d, want 4", n)
	}
	inFlight := `
# HELP http_server_requests_in_flight HTTP requests being served.
# TYPE http_server_requests_in_flight gauge
http_server_requests_in_flight 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(inFlight), "http_server_requests_in_flight"); err != nil {
		t.Fatal(err)
	}

	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `http_server_requests_total{method="GET",route="/users/:id",status="200"} 3`) {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
}

func TestNamespace(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithNamespace("orders"))
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/x", func(c *gin.Context) {})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if n := testutil.CollectAndCount(reg, "orders_http_server_requests_total"); n != 1 {
		t.Fatalf("namespaced series = %d", n)
	}
}

func BenchmarkMetricsMiddleware(b *testing.B) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) })
	req := httptest.NewRequest(http.MethodGet, "/ping", nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
}
