package logging

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/reqstate"
	"github.com/gingov/gingov/reqinfo"
)

// Recovery turns a panic anywhere below it into the [errcode.Panic] envelope
// (500) and logs the panic value and its stack once, at ERROR, with the
// request's IDs. Put it first, so that it also covers the other middlewares.
//
// A write to a client that has gone (EPIPE, ECONNRESET) is not a server
// error: it is logged at WARN without a stack and recorded as status 499.
// http.ErrAbortHandler is passed on, so net/http aborts the connection as
// it documents. A nil logger means [Default].
func Recovery(logger *slog.Logger) gin.HandlerFunc {
	logger = OrDefault(logger)
	return func(c *gin.Context) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			ctx := c.Request.Context()
			info := reqstate.From(ctx)
			l := withRequestAttrs(logger, ctx, info)
			switch reqinfo.ClassifyPanic(p) {
			case reqinfo.PanicAbort:
				panic(p)
			case reqinfo.PanicBrokenPipe:
				l.LogAttrs(ctx, slog.LevelWarn, "client connection broken",
					slog.String("method", c.Request.Method), slog.String("route", c.FullPath()),
					slog.String("error", fmt.Sprint(p)))
				c.Abort()
				c.Writer.WriteHeader(reqinfo.StatusClientClosedRequest)
				return
			}
			var stack []byte
			if info != nil && info.PanicStack != nil {
				stack = info.PanicStack
			} else {
				stack = debug.Stack()
			}
			l.LogAttrs(ctx, slog.LevelError, "panic recovered",
				slog.String("method", c.Request.Method), slog.String("route", c.FullPath()),
				slog.String("path", c.Request.URL.Path),
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(stack)))
			errcode.Write(c, errcode.Panic.Wrap(PanicError{Value: p}))
		}()
		c.Next()
	}
}

// PanicError carries a recovered panic value as the cause of [errcode.Panic].
type PanicError struct{ Value any }

func (e PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
