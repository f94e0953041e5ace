package errcode_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
)

func benchServe(b *testing.B, handler gin.HandlerFunc, wantStatus int) {
	b.Helper()
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.GET("/ping", handler)
	req := httptest.NewRequest(http.MethodGet, "/ping", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != wantStatus {
			b.Fatalf("status %d; want %d", rec.Code, wantStatus)
		}
	}
}

func BenchmarkBareGin(b *testing.B) {
	benchServe(b, func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) }, http.StatusOK)
}

func BenchmarkErrcodeWrite(b *testing.B) {
	benchServe(b, func(c *gin.Context) { errcode.Write(c, errcode.RateLimited) }, http.StatusTooManyRequests)
}

func BenchmarkGinAbortWithStatusJSON(b *testing.B) {
	benchServe(b, func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{
			"code":       errcode.RateLimited.Code(),
			"reason":     errcode.RateLimited.Reason(),
			"message":    errcode.RateLimited.Message(),
			"request_id": "",
		})
	}, http.StatusTooManyRequests)
}

func BenchmarkAppendJSON(b *testing.B) {
	env := errcode.Envelope{
		Code:      errcode.RateLimited.Code(),
		Reason:    errcode.RateLimited.Reason(),
		Message:   errcode.RateLimited.Message(),
		Solution:  errcode.RateLimited.Solution(),
		RequestID: "01JQ8M2V6X4Y7Z9A0B1C2D3E4F",
		TraceID:   "0102030405060708090a0b0c0d0e0f10",
		Metadata:  map[string]string{"limit": "100", "window": "1s", "key": "ip:10.0.0.1"},
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = env.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkFromWrapped(b *testing.B) {
	err := fmt.Errorf("load order 7: %w", errcode.NotFound)
	b.ReportAllocs()
	for b.Loop() {
		if e := errcode.From(err); e.Code() != errcode.NotFound {
			b.Fatal("lost the code")
		}
	}
}
