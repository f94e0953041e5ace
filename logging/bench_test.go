package logging_test

import (
	"io"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/benchping"
	"github.com/gingov/gingov/logging"
)

// benchServe runs the shared /ping loop behind mw.
func benchServe(b *testing.B, mw ...gin.HandlerFunc) { benchping.Run(b, mw...) }

func BenchmarkBareGin(b *testing.B) { benchServe(b) }

func BenchmarkRequestID(b *testing.B) { benchServe(b, requestID()) }

func BenchmarkRecovery(b *testing.B) { benchServe(b, logging.Recovery(logging.New(io.Discard, nil))) }

func BenchmarkAccessLogJSON(b *testing.B) {
	benchServe(b, accessLog(logging.New(io.Discard, nil)))
}

// BenchmarkGinLogger is Gin's own text logger, for comparison.
func BenchmarkGinLogger(b *testing.B) { benchServe(b, gin.LoggerWithWriter(io.Discard)) }

// BenchmarkLoggingChain is Recovery + RequestID + AccessLog + errcode.Middleware.
func BenchmarkLoggingChain(b *testing.B) {
	l := logging.New(io.Discard, nil)
	benchServe(b, logging.Recovery(l), requestID(), accessLog(l), errcode.Middleware())
}

func BenchmarkValidRequestID(b *testing.B) {
	id := logging.GenerateRequestID()
	for i := 0; i < b.N; i++ {
		if !logging.ValidRequestID(id) {
			b.Fatal(id)
		}
	}
}
