package circuitbreaker_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
)

// BenchmarkMiddleware serves GET /ping -> {"message":"pong"} with a fresh
// recorder per iteration, bare and behind a closed breaker of each policy.
func BenchmarkMiddleware(b *testing.B) {
	for _, tc := range []struct {
		name   string
		policy circuitbreaker.Policy
	}{{"bare", nil}, {"classic", circuitbreaker.Classic{}}, {"sre", circuitbreaker.SRE{}}} {
		b.Run(tc.name, func(b *testing.B) {
			r := gin.New()
			if tc.policy != nil {
				s, err := circuitbreaker.New(quiet, circuitbreaker.WithPolicy(tc.policy))
				if err != nil {
					b.Fatal(err)
				}
				r.Use(s.Middleware())
			}
			r.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) })
			req := httptest.NewRequest(http.MethodGet, "/ping", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
