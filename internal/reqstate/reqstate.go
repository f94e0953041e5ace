// Package reqstate holds the per-request state that gingov's middlewares share
// (request ID, the logger handlers log with, and the error rendered for the
// request), so that each request needs at most one context value for all of it.
package reqstate

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"syscall"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"
)

// Info is the shared state of one request. It is written by the goroutine
// serving the request only; readers on other goroutines must not use it.
type Info struct {
	RequestID string
	// IDHeader backs the response header value of the request ID.
	IDHeader [1]string
	// IDHeaderName is the (canonical) header the request ID was read from,
	// which outbound requests forward it in.
	IDHeaderName string
	// Logger is the base logger set by the access log; nil when there is none.
	Logger *slog.Logger

	// Set by errcode when it renders an error for the request.
	Code   int
	Reason string
	Cause  error

	// PanicStack is the stack at the panic site, captured by the first
	// middleware that sees a panic pass, so that Recovery logs the real one.
	PanicStack []byte

	// clientIP is c.ClientIP(), once computed (see ClientIP).
	clientIP    string
	clientIPSet bool
}

type key struct{}

// node is both the context value and the context carrying it, so a request
// pays one allocation for its shared state. It only answers Value for its
// own key; deadlines and cancellation are its parent's.
type node struct {
	context.Context
	info Info
}

func (n *node) Value(k any) any {
	if k == (key{}) {
		return &n.info
	}
	return n.Context.Value(k)
}

// From returns the request's Info, or nil.
func From(ctx context.Context) *Info {
	i, _ := ctx.Value(key{}).(*Info)
	return i
}

// Ensure returns the request's Info, attaching a new one to c.Request's
// context when there is none yet.
func Ensure(c *gin.Context) *Info {
	ctx := c.Request.Context()
	if i := From(ctx); i != nil {
		return i
	}
	n := &node{Context: ctx}
	c.Request = c.Request.WithContext(n)
	return &n.info
}

// ClientIP returns c.ClientIP(). A request with an Info computes it once
// (Gin parses the address and proxy headers and allocates the string each
// call), so the middlewares that record it share one value.
func ClientIP(c *gin.Context) string {
	info := From(c.Request.Context())
	if info == nil {
		return c.ClientIP()
	}
	if !info.clientIPSet {
		info.clientIP, info.clientIPSet = c.ClientIP(), true
	}
	return info.clientIP
}

// NewContext returns ctx carrying i (for code that has no gin.Context).
func NewContext(ctx context.Context, i *Info) context.Context {
	return context.WithValue(ctx, key{}, i)
}

// TraceIDs returns the IDs of the span in ctx, or "" when there is no valid one.
func TraceIDs(ctx context.Context) (traceID, spanID string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}

// StatusClientClosedRequest is recorded for requests whose client went away.
const StatusClientClosedRequest = 499

// PanicKind says how a recovered panic value is to be treated.
type PanicKind int

const (
	// PanicServerError is a bug: answered with 500.
	PanicServerError PanicKind = iota
	// PanicBrokenPipe is a write to a client that has gone (EPIPE, ECONNRESET).
	PanicBrokenPipe
	// PanicAbort is http.ErrAbortHandler, which net/http must see.
	PanicAbort
)

// ClassifyPanic says what kind of panic p is.
func ClassifyPanic(p any) PanicKind {
	err, ok := p.(error)
	if !ok {
		return PanicServerError
	}
	if errors.Is(err, http.ErrAbortHandler) {
		return PanicAbort
	}
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
		return PanicBrokenPipe
	}
	return PanicServerError
}

// ObservePanic is for middlewares that record a request's outcome and see a
// panic pass on its way to Recovery (they recover, observe, and panic again).
// It keeps the stack of the panic site for Recovery's log, and returns the
// status the request will end with.
func ObservePanic(c *gin.Context, p any) int {
	info := Ensure(c)
	if info.PanicStack == nil {
		info.PanicStack = debug.Stack()
	}
	switch ClassifyPanic(p) {
	case PanicBrokenPipe, PanicAbort:
		return StatusClientClosedRequest
	}
	if c.Writer.Written() {
		return c.Writer.Status()
	}
	return http.StatusInternalServerError
}
