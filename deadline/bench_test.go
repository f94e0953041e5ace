package deadline_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/internal/benchping"
)

// BenchmarkDeadline serves GET /ping -> {"message":"pong"} bare and behind
// the deadline middleware (with routes configured, and with a caller's
// budget in the request), so the difference is the middleware's cost.
func BenchmarkDeadline(b *testing.B) {
	b.Run("bare", func(b *testing.B) { benchping.Run(b) })
	b.Run("deadline", func(b *testing.B) {
		benchping.Run(b, mustNew(b, deadline.DefaultTimeout).Middleware())
	})
	b.Run("deadline-routes", func(b *testing.B) {
		d := mustNew(b, deadline.DefaultTimeout, deadline.WithRoute("GET /reports/:id", 10*time.Second), deadline.WithExempt("GET /events"))
		benchping.Run(b, d.Middleware())
	})
	b.Run("deadline-caller-budget", func(b *testing.B) {
		r := gin.New()
		r.Use(mustNew(b, deadline.DefaultTimeout).Middleware())
		r.GET("/ping", func(c *gin.Context) { c.JSON(200, gin.H{"message": "pong"}) })
		req := benchping.Request(b)
		req.Header.Set(deadline.GRPCHeader, "500m")
		b.ReportAllocs()
		cpu0 := benchping.CPUStart()
		for b.Loop() {
			w := newRecorder()
			r.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
		benchping.ReportCPU(b, cpu0)
	})
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// BenchmarkDeadlineParallel is BenchmarkDeadline from GOMAXPROCS
// goroutines: the middleware's cost under contention (its timer, the
// guarded writer) against bare Gin.
func BenchmarkDeadlineParallel(b *testing.B) {
	engine := func(mw ...gin.HandlerFunc) *gin.Engine {
		r := gin.New()
		r.Use(mw...)
		r.GET("/ping", func(c *gin.Context) { c.JSON(200, gin.H{"message": "pong"}) })
		return r
	}
	b.Run("bare", func(b *testing.B) { benchping.ServeParallel(b, engine()) })
	b.Run("deadline", func(b *testing.B) {
		benchping.ServeParallel(b, engine(mustNew(b, deadline.DefaultTimeout).Middleware()))
	})
	b.Run("deadline-routes", func(b *testing.B) {
		d := mustNew(b, deadline.DefaultTimeout, deadline.WithRoute("GET /reports/:id", 10*time.Second), deadline.WithExempt("GET /events"))
		benchping.ServeParallel(b, engine(d.Middleware()))
	})
}
