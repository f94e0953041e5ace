package metrics_test

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"
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
	if _, err := metrics.NewHTTP(nil); err == nil || !strings.Contains(err.Error(), "nil Registerer") {
		t.Fatalf("nil registerer: %v", err)
	}
	if _, err := metrics.NewHTTP((*prometheus.Registry)(nil)); err == nil || err.Error() != "metrics: nil Registerer" {
		t.Fatalf("nil *Registry: %v", err)
	}
	if _, err := metrics.NewHTTP(prometheus.NewRegistry(), metrics.WithBuckets(1, 0.5)); err == nil {
		t.Fatal("decreasing buckets accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := metrics.NewHTTP(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.NewHTTP(reg); err == nil {
		t.Fatal("second NewHTTP on the same registry accepted")
	}
}

// Handler(nil) serves the default registry, as promhttp.Handler does.
func TestHandlerNilIsDefaultGatherer(t *testing.T) {
	for name, g := range map[string]prometheus.Gatherer{"nil": nil, "nil *Registry": (*prometheus.Registry)(nil)} {
		w := httptest.NewRecorder()
		metrics.Handler(g).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		if w.Code != 200 || !strings.Contains(w.Body.String(), "go_goroutines") {
			t.Errorf("%s: %d %.200s", name, w.Code, w.Body)
		}
	}
}

func TestREDByRouteTemplate(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg, metrics.WithSkipPaths("/metrics"))
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
	m, err := metrics.NewHTTP(reg, metrics.WithNamespace("orders"))
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

func TestOptionsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []metrics.HTTPOption
		want string
	}{
		{"nil option", []metrics.HTTPOption{metrics.WithExemplars(true), nil}, "metrics: option 2 is nil"},
		{"nil common option", []metrics.HTTPOption{metrics.CommonOption(nil)}, "metrics: option 1 is nil"},
		{"empty buckets", []metrics.HTTPOption{metrics.WithBuckets()}, "WithBuckets: no buckets"},
		{"size buckets", []metrics.HTTPOption{metrics.WithSizeBuckets(10, 10)}, "WithSizeBuckets: buckets must be strictly increasing"},
		{"native factor", []metrics.HTTPOption{metrics.WithNativeHistograms(1)}, "WithNativeHistograms: factor must be > 1"},
		{"native factor 0", []metrics.HTTPOption{metrics.WithNativeHistograms(0)}, "WithNativeHistograms: factor must be > 1"},
		{"native factor NaN", []metrics.HTTPOption{metrics.WithNativeHistograms(math.NaN())}, "WithNativeHistograms: factor must be > 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := metrics.NewHTTP(prometheus.NewRegistry(), tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "metrics: ") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSizes checks the request and response size histograms: the request
// by its Content-Length (unknown lengths are not observed), the response
// by the bytes written (0 when nothing was).
func TestSizes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware())
	r.POST("/echo", func(c *gin.Context) {
		b, _ := io.ReadAll(c.Request.Body)
		c.Data(200, "text/plain", append(b, b...))
	})
	r.GET("/empty", func(c *gin.Context) { c.Status(204) })

	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/echo", strings.NewReader(strings.Repeat("x", 100))))
	chunked := httptest.NewRequest("POST", "/echo", strings.NewReader("abc"))
	chunked.ContentLength = -1
	r.ServeHTTP(httptest.NewRecorder(), chunked)
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/empty", nil))

	want := `
# HELP http_server_request_size_bytes Sizes of HTTP request bodies (Content-Length, when known), by method, route template and status code.
# TYPE http_server_request_size_bytes histogram
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="64"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="256"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="1024"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="4096"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="16384"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="65536"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="262144"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="1.048576e+06"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="4.194304e+06"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="1.6777216e+07"} 1
http_server_request_size_bytes_bucket{method="GET",route="/empty",status="204",le="+Inf"} 1
http_server_request_size_bytes_sum{method="GET",route="/empty",status="204"} 0
http_server_request_size_bytes_count{method="GET",route="/empty",status="204"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="64"} 0
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="256"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="1024"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="4096"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="16384"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="65536"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="262144"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="1.048576e+06"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="4.194304e+06"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="1.6777216e+07"} 1
http_server_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="+Inf"} 1
http_server_request_size_bytes_sum{method="POST",route="/echo",status="200"} 100
http_server_request_size_bytes_count{method="POST",route="/echo",status="200"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_server_request_size_bytes"); err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	counts := map[string]uint64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "http_server_response_size_bytes" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			route := ""
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "route" {
					route = lp.GetValue()
				}
			}
			sums[route] = mt.GetHistogram().GetSampleSum()
			counts[route] = mt.GetHistogram().GetSampleCount()
		}
	}
	if sums["/echo"] != 206 || counts["/echo"] != 2 || sums["/empty"] != 0 || counts["/empty"] != 1 {
		t.Fatalf("response sizes: sums %v counts %v, want /echo 200+6 over 2, /empty 0 over 1", sums, counts)
	}
}

// sampled returns a request whose context carries a span context, as the
// tracing middleware leaves it.
func sampled(t *testing.T, target string, sample bool) (*http.Request, string) {
	t.Helper()
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	if !sample {
		tid[0] = 0x11
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}}
	if sample {
		cfg.TraceFlags = trace.FlagsSampled
	}
	req := httptest.NewRequest("GET", target, nil)
	return req.WithContext(trace.ContextWithSpanContext(req.Context(), trace.NewSpanContext(cfg))), tid.String()
}

// TestExemplars checks that a sampled request's trace ID lands on the
// duration histogram as an exemplar, an unsampled one's does not, and that
// Handler serves exemplars to OpenMetrics scrapers.
func TestExemplars(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/traced", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/untraced", func(c *gin.Context) { c.String(200, "ok") })

	req, traceID := sampled(t, "/traced", true)
	r.ServeHTTP(httptest.NewRecorder(), req)
	req, other := sampled(t, "/untraced", false)
	r.ServeHTTP(httptest.NewRecorder(), req)

	exemplars := map[string][]string{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "http_server_request_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var route string
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "route" {
					route = lp.GetValue()
				}
			}
			for _, b := range mt.GetHistogram().GetBucket() {
				if ex := b.GetExemplar(); ex != nil {
					for _, lp := range ex.GetLabel() {
						exemplars[route] = append(exemplars[route], lp.GetName()+"="+lp.GetValue())
					}
				}
			}
		}
	}
	if got := exemplars["/traced"]; len(got) != 1 || got[0] != "trace_id="+traceID {
		t.Fatalf("exemplars of /traced = %v, want trace_id=%s", got, traceID)
	}
	if got := exemplars["/untraced"]; len(got) != 0 {
		t.Fatalf("unsampled request %s left exemplars %v", other, got)
	}

	req = httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	w := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(w, req)
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/openmetrics-text") ||
		!strings.Contains(w.Body.String(), `# {trace_id="`+traceID+`"}`) {
		t.Fatalf("OpenMetrics scrape lacks the exemplar: %s\n%s", w.Header().Get("Content-Type"), w.Body)
	}

	off := prometheus.NewRegistry()
	m, err = metrics.NewHTTP(off, metrics.WithExemplars(false))
	if err != nil {
		t.Fatal(err)
	}
	r = gin.New()
	r.Use(m.Middleware())
	r.GET("/traced", func(c *gin.Context) {})
	req, _ = sampled(t, "/traced", true)
	r.ServeHTTP(httptest.NewRecorder(), req)
	w = httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	metrics.Handler(off).ServeHTTP(w, req)
	if strings.Contains(w.Body.String(), "trace_id") {
		t.Fatalf("WithExemplars(false) still records exemplars:\n%s", w.Body)
	}
}

// TestNativeHistograms checks that WithNativeHistograms adds native buckets
// and keeps the classic ones.
func TestNativeHistograms(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg, metrics.WithNativeHistograms(1.1))
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/x", func(c *gin.Context) { c.String(200, "hello") })
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			h := mt.GetHistogram()
			if h == nil {
				continue
			}
			seen++
			if h.Schema == nil || len(h.GetBucket()) == 0 {
				t.Errorf("%s: schema %v, %d classic buckets; want both native and classic", mf.GetName(), h.Schema, len(h.GetBucket()))
			}
		}
	}
	if seen != 3 {
		t.Fatalf("%d histogram series, want 3 (duration, request size, response size)", seen)
	}
}

// TestConcurrentRoutes serves many label sets from many goroutines (-race
// checks the series cache).
func TestConcurrentRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware())
	r.GET("/s/:code", func(c *gin.Context) {
		code, _ := strconv.Atoi(c.Param("code"))
		c.Status(code)
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				code := 200 + (g*200+i)%50
				r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/s/"+strconv.Itoa(code), nil))
			}
		}()
	}
	wg.Wait()
	if n := testutil.CollectAndCount(reg, "http_server_requests_total"); n != 50 {
		t.Fatalf("series = %d, want 50", n)
	}
	total := 0.0
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "http_server_requests_total" {
			for _, mt := range mf.GetMetric() {
				total += mt.GetCounter().GetValue()
			}
		}
	}
	if total != 1600 {
		t.Fatalf("requests counted = %v, want 1600", total)
	}
}

// TestExemplarPerBucketInterval checks that an exemplar is kept per bucket
// for ExemplarInterval: a second sampled request in the same bucket right
// after the first leaves the first's trace ID, one in another bucket
// records its own. It runs on synctest's clock, so the durations (0 and
// 80 ms) are exact.
func TestExemplarPerBucketInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m, err := metrics.NewHTTP(reg, metrics.WithBuckets(0.05, 100))
		if err != nil {
			t.Fatal(err)
		}
		r := gin.New()
		r.Use(m.Middleware())
		r.GET("/x", func(c *gin.Context) {
			if c.Query("slow") != "" {
				time.Sleep(80 * time.Millisecond)
			}
		})
		serve := func(target string, id byte) string {
			req := httptest.NewRequest("GET", target, nil)
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{id}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
			r.ServeHTTP(httptest.NewRecorder(), req.WithContext(trace.ContextWithSpanContext(req.Context(), sc)))
			return sc.TraceID().String()
		}
		first := serve("/x", 1)
		serve("/x", 2)
		slow := serve("/x?slow=1", 3)

		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[float64]string{}
		for _, mf := range mfs {
			if mf.GetName() != "http_server_request_duration_seconds" {
				continue
			}
			for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
				if ex := b.GetExemplar(); ex != nil {
					got[b.GetUpperBound()] = ex.GetLabel()[0].GetValue()
				}
			}
		}
		if got[0.05] != first || got[100] != slow || len(got) != 2 {
			t.Fatalf("exemplars by bucket %v, want 0.05: %s (the first), 100: %s", got, first, slow)
		}
	})
}
