package circuitbreaker

import (
	"fmt"
	"log/slog"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/reqstate"
)

// Fallback serves a request that governance rejected (an open breaker, a
// flow-control block): a cached or reduced answer instead of the error
// envelope. cause says why the request was rejected. A fallback that
// returns an error, panics, or writes nothing leaves the answer to the
// envelope.
type Fallback func(c *gin.Context, cause error) error

// RunFallback runs fb for a rejected request and reports whether it
// answered it. Its failure is logged and answered by the caller.
func RunFallback(c *gin.Context, fb Fallback, cause error, logger *slog.Logger) (answered bool) {
	if logger == nil {
		logger = slog.Default()
	}
	defer func() {
		if p := recover(); p != nil {
			if reqstate.ClassifyPanic(p) == reqstate.PanicAbort {
				panic(p)
			}
			logger.ErrorContext(c.Request.Context(), "fallback panicked", "route", c.FullPath(), "panic", fmt.Sprint(p))
			answered = c.Writer.Written()
		}
	}()
	if err := fb(c, cause); err != nil {
		logger.WarnContext(c.Request.Context(), "fallback failed", "route", c.FullPath(), "error", err.Error())
		return c.Writer.Written()
	}
	if !c.Writer.Written() {
		return false
	}
	c.Abort()
	return true
}
