// Package benchping is the one request loop of gingov's middleware
// benchmarks: GET /ping -> {"message":"pong"} served through ServeHTTP
// with a fresh recorder per iteration, so that cases differ only in their
// middleware and compare with bare Gin (and, in the benchmarks module,
// with other frameworks' handlers serving the same route).
package benchping

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// Run benchmarks GET /ping behind mw (none: bare Gin), reporting allocations.
func Run(b *testing.B, mw ...gin.HandlerFunc) {
	b.Helper()
	r := gin.New()
	r.Use(mw...)
	r.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) })
	Serve(b, r)
}

// Request returns the request every loop sends: GET /ping with a
// User-Agent, from httptest's default remote address.
func Request(b testing.TB) *http.Request {
	req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, "/ping", nil)
	req.Header.Set("User-Agent", "bench")
	return req
}

// Serve benchmarks GET /ping served by h, one goroutine, reporting
// allocations and CPU time (see [ReportCPU]); any status but 200 fails
// the benchmark.
func Serve(b *testing.B, h http.Handler) {
	b.Helper()
	req := Request(b)
	b.ReportAllocs()
	var cpu0 int64
	started := false
	for b.Loop() {
		if !started {
			cpu0, started = processCPU(), true
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	ReportCPU(b, cpu0)
}

// CPUStart returns the process's CPU time now, for [ReportCPU].
func CPUStart() int64 { return processCPU() }

// ReportCPU reports cpu-ns/op: the CPU time the whole process used since
// cpu0 (from [CPUStart]), divided by b.N. Unlike ns/op it counts work off
// the benchmark's goroutine (the garbage collector, a batch span
// processor) and not time spent waiting for a core, which on a shared
// machine makes it the steadier figure. Not reported where the process's
// CPU time is unknown.
func ReportCPU(b *testing.B, cpu0 int64) {
	if cpu1 := processCPU(); cpu0 > 0 && cpu1 > cpu0 && b.N > 0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// ServeParallel is Serve from GOMAXPROCS goroutines (b.RunParallel), each
// with its own request, reporting allocations and CPU time; any status
// but 200 fails the benchmark.
func ServeParallel(b *testing.B, h http.Handler) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	defer ReportCPU(b, cpu0)
	b.RunParallel(func(pb *testing.PB) {
		req := Request(b)
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
}
