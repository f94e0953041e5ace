package errcode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/reqstate"
)

// Fallback serves a request that governance rejected (an open breaker, a
// flow-control block): a cached or reduced answer instead of the error
// envelope. cause says why the request was rejected. A fallback that
// returns an error, panics, or writes nothing leaves the answer to the
// envelope.
type Fallback func(c *gin.Context, cause error) error

// ErrFallbackPanicked is wrapped by the error of [RunFallback] when the
// fallback panicked.
var ErrFallbackPanicked = errors.New("errcode: fallback panicked")

// RunFallback runs fb for a rejected request and reports whether it
// answered it; when it did, the rest of the chain is aborted. A fallback
// that fails, returning an error or panicking (err wraps
// [ErrFallbackPanicked]), is reported in err for the caller to log (with
// [LogFallbackError]); it
// answered only if it wrote a response before failing. A panic with
// http.ErrAbortHandler goes on up, as net/http expects.
func RunFallback(c *gin.Context, fb Fallback, cause error) (answered bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			if reqstate.ClassifyPanic(p) == reqstate.PanicAbort {
				panic(p)
			}
			err = fmt.Errorf("%w: %v", ErrFallbackPanicked, p)
			answered = c.Writer.Written()
		}
		if answered {
			c.Abort()
		}
	}()
	err = fb(c, cause)
	return c.Writer.Written(), err
}

// LogFallbackError logs err, the failure of a fallback that [RunFallback]
// reported, through logger: msg with attrs and then "error", at WARN, or at
// ERROR when the fallback panicked (err wraps [ErrFallbackPanicked]). A nil
// err logs nothing. The line's source is LogFallbackError's caller. The
// kit's middlewares pass their own logger (the kit's JSON logger unless
// given one); a nil logger is slog.Default().
func LogFallbackError(ctx context.Context, logger *slog.Logger, err error, msg string, attrs ...slog.Attr) {
	if err == nil {
		return
	}
	if logger == nil {
		logger = slog.Default()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	level := slog.LevelWarn
	if errors.Is(err, ErrFallbackPanicked) {
		level = slog.LevelError
	}
	if !logger.Enabled(ctx, level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // skip runtime.Callers and LogFallbackError
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	r.AddAttrs(attrs...)
	r.AddAttrs(slog.String("error", err.Error()))
	_ = logger.Handler().Handle(ctx, r)
}
