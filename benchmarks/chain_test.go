// Package benchmarks measures gingov's middlewares side by side with bare
// Gin (and, as the issues land, with Kratos, go-zero and the Gin ecosystem).
//
// Every case serves GET /ping -> {"message":"pong"} through ServeHTTP with a
// fresh httptest recorder per iteration; only the middleware differs. Logs
// are real JSON lines written to io.Discard.
package benchmarks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
)

func init() { gin.SetMode(gin.ReleaseMode) }

func newEngine(b *testing.B, foundation bool) *gin.Engine {
	r := gin.New()
	if foundation {
		l := logging.New(io.Discard, nil)
		m, err := metrics.NewHTTP(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		rid, err := logging.NewRequestID()
		if err != nil {
			b.Fatal(err)
		}
		a, err := logging.NewAccessLog(l)
		if err != nil {
			b.Fatal(err)
		}
		r.Use(logging.Recovery(l), rid.Middleware(), m.Middleware(), a.Middleware())
		errcode.Handle(r)
	}
	r.GET("/ping", ping)
	r.GET("/limited", func(c *gin.Context) { errcode.Write(c, errcode.RateLimited) })
	return r
}

func run(b *testing.B, r http.Handler, target string, want int) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != want {
			b.Fatalf("status %d", w.Code)
		}
	}
}

func runParallel(b *testing.B, r http.Handler) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/ping", nil)
		for pb.Next() {
			r.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
}

func BenchmarkGinBare(b *testing.B)       { run(b, newEngine(b, false), "/ping", 200) }
func BenchmarkFoundation(b *testing.B)    { run(b, newEngine(b, true), "/ping", 200) }
func BenchmarkFoundation429(b *testing.B) { run(b, newEngine(b, true), "/limited", 429) }
func BenchmarkFoundation404(b *testing.B) { run(b, newEngine(b, true), "/nope", 404) }

func BenchmarkGinBareParallel(b *testing.B)    { runParallel(b, newEngine(b, false)) }
func BenchmarkFoundationParallel(b *testing.B) { runParallel(b, newEngine(b, true)) }
