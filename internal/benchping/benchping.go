// Package benchping is the one request loop of gingov's middleware
// benchmarks: GET /ping -> {"message":"pong"} served through ServeHTTP
// with a fresh recorder per iteration, so that cases differ only in their
// middleware and compare with bare Gin.
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
	req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, "/ping", nil)
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
