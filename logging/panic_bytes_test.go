package logging_test

import (
	"log/slog"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
)

// The access line of a request that panics counts the envelope Recovery
// sends, with status 500, whether Recovery is above the access log (the
// README's and setup's order) or below it; a panic that another recovery
// swallows between them is logged with that answer.
func TestPanicAccessLineCountsTheEnvelope(t *testing.T) {
	swallow := func(c *gin.Context) {
		defer func() {
			if recover() != nil {
				c.AbortWithStatusJSON(503, gin.H{"swallowed": true})
			}
		}()
		c.Next()
	}
	for _, tc := range []struct {
		name   string
		status float64
		chain  func(rec, access gin.HandlerFunc) []gin.HandlerFunc
	}{
		{"recovery first", 500, func(rec, access gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{rec, requestID(), access}
		}},
		{"recovery below the access log", 500, func(rec, access gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{requestID(), access, rec}
		}},
		{"panic swallowed on the way", 503, func(rec, access gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{rec, requestID(), swallow, access}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &logSink{}
			logger := logging.New(sink, slog.LevelDebug)
			r := gin.New()
			r.Use(tc.chain(logging.Recovery(logger), accessLog(logger))...)
			errcode.Handle(r)
			r.GET("/boom", func(c *gin.Context) { panic("kaboom") })
			w := serve(r, "GET", "/boom")
			acc := sink.byMsg(t, "request")
			if len(acc) != 1 {
				t.Fatalf("%d access lines", len(acc))
			}
			if w.Body.Len() == 0 || acc[0]["bytes"] != float64(w.Body.Len()) || acc[0]["status"] != tc.status || float64(w.Code) != tc.status {
				t.Fatalf("access line %v for the answer %d %s", acc[0], w.Code, w.Body)
			}
			if acc[0]["error"] != "panic: kaboom" || acc[0]["reason"] != errcode.Panic.Reason() {
				t.Errorf("access line %v", acc[0])
			}
		})
	}
}
