package logging_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
)

// Each benchmark serves GET /ping -> {"message":"pong"} with a fresh
// recorder per iteration; only the middleware differs from BenchmarkBareGin.
func benchServe(b *testing.B, mw ...gin.HandlerFunc) {
	r := gin.New()
	r.Use(mw...)
	r.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) })
	req := httptest.NewRequest(http.MethodGet, "/ping", nil)
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

func BenchmarkBareGin(b *testing.B) { benchServe(b) }

func BenchmarkRequestID(b *testing.B) { benchServe(b, logging.RequestID()) }

func BenchmarkRecovery(b *testing.B) { benchServe(b, logging.Recovery(logging.New(io.Discard, nil))) }

func BenchmarkAccessLogJSON(b *testing.B) {
	benchServe(b, logging.AccessLog(logging.New(io.Discard, nil)))
}

// BenchmarkGinLogger is Gin's own text logger, for comparison.
func BenchmarkGinLogger(b *testing.B) { benchServe(b, gin.LoggerWithWriter(io.Discard)) }

// BenchmarkLoggingChain is Recovery + RequestID + AccessLog + errcode.Middleware.
func BenchmarkLoggingChain(b *testing.B) {
	l := logging.New(io.Discard, nil)
	benchServe(b, logging.Recovery(l), logging.RequestID(), logging.AccessLog(l), errcode.Middleware())
}
