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
// The kit's middlewares below it that record the request (the access log,
// metrics.HTTP) record a panicking request once it has answered, so that
// they count the envelope's bytes. The request's strings and the panic
// value are bounded in its line as in the access log ([WithMaxFieldBytes]);
// the stack is logged whole.
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
				// A panic that a middleware below expected this one to
				// answer was answered (or swallowed) on the way.
				reqstate.RunAfterRecovery(c, c.Writer.Status())
				return
			}
			ctx := c.Request.Context()
			info := reqstate.From(ctx)
			l := withRequestAttrs(logger, ctx, info)
			limit := fieldLimit(info)
			attrs := make([]slog.Attr, 0, 10)
			attrs = boundedString(attrs, "method", c.Request.Method, limit)
			attrs = boundedString(attrs, "route", c.FullPath(), limit)
			switch reqinfo.ClassifyPanic(p) {
			case reqinfo.PanicAbort:
				reqstate.RunAfterRecovery(c, reqinfo.StatusClientClosedRequest)
				panic(p)
			case reqinfo.PanicBrokenPipe:
				attrs = boundedString(attrs, "error", fmt.Sprint(p), limit)
				l.LogAttrs(ctx, slog.LevelWarn, "client connection broken", attrs...)
				c.Abort()
				c.Writer.WriteHeader(reqinfo.StatusClientClosedRequest)
				reqstate.RunAfterRecovery(c, reqinfo.StatusClientClosedRequest)
				return
			}
			var stack []byte
			if info != nil && info.PanicStack != nil {
				stack = info.PanicStack
			} else {
				stack = debug.Stack()
			}
			attrs = boundedString(attrs, "path", c.Request.URL.Path, limit)
			attrs = boundedString(attrs, "panic", fmt.Sprint(p), limit)
			attrs = append(attrs, slog.String("stack", string(stack)))
			l.LogAttrs(ctx, slog.LevelError, "panic recovered", attrs...)
			errcode.Write(c, errcode.Panic.Wrap(PanicError{Value: p}))
			reqstate.RunAfterRecovery(c, c.Writer.Status())
		}()
		reqstate.NextRecovering(c)
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
