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
	"reflect"
	"runtime"
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

	// afterRecovery holds what DeferToRecovery kept, run by
	// RunAfterRecovery (a pointer: only a panicking request has any).
	afterRecovery *[]func(status int)

	// clientIP is c.ClientIP(), once computed (see ClientIP): "" until
	// then, noClientIP for an empty one (no flag beside it keeps Info, and
	// the one allocation of a request's state, in a smaller size class).
	clientIP string

	// idBuf holds a generated request ID in the state's own allocation
	// (see IDBuffer); idBufUsed is set once it has been handed out.
	idBuf     [GeneratedIDLen]byte
	idBufUsed bool
}

// GeneratedIDLen is the length of the request IDs IDBuffer has room for.
const GeneratedIDLen = 32

// IDBuffer returns room for one generated request ID in the Info's own
// allocation, so that the ID's string costs no allocation of its own; nil
// when it was handed out before: a string made over it must never change.
func (i *Info) IDBuffer() *[GeneratedIDLen]byte {
	if i.idBufUsed {
		return nil
	}
	i.idBufUsed = true
	return &i.idBuf
}

type key struct{}

// node is both the context value and the context carrying it, so a request
// pays one allocation for its shared state. It only answers Value for its
// own key; deadlines and cancellation are its parent's.
type node struct {
	context.Context
	info Info
	// req is the request carrying the node, in the same allocation.
	req http.Request
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
	c.Request = WithContext(&n.req, c.Request, n)
	return &n.info
}

// WithContext is r.WithContext(ctx) written into dst, storage the caller
// allocated anyway (with the context node, say), so that replacing a
// request's context costs no allocation of its own. It returns dst.
func WithContext(dst, r *http.Request, ctx context.Context) *http.Request {
	*dst = *r.WithContext(ctx) // the copy WithContext makes stays on the stack
	return dst
}

// ClientIP returns c.ClientIP(). A request with an Info computes it once
// (Gin parses the address and proxy headers and allocates the string each
// call), so the middlewares that record it share one value.
func ClientIP(c *gin.Context) string {
	info := From(c.Request.Context())
	if info == nil {
		return c.ClientIP()
	}
	if info.clientIP == "" {
		info.clientIP = c.ClientIP()
		if info.clientIP == "" {
			info.clientIP = noClientIP
		}
	}
	if info.clientIP == noClientIP {
		return ""
	}
	return info.clientIP
}

// noClientIP records a computed client IP that is empty; it is no address.
const noClientIP = "\x00"

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

// NextRecovering is c.Next() for a middleware that answers every panic
// passing it (logging.Recovery): while it runs, its frame on the stack
// tells [DeferToRecovery], in a middleware below that sees a panic pass,
// that the panic will be answered above. It must not be inlined: its frame
// is the mark.
//
//go:noinline
func NextRecovering(c *gin.Context) { c.Next() }

// nextRecoveringPC is NextRecovering's entry point.
var nextRecoveringPC = reflect.ValueOf(NextRecovering).Pointer()

// recoveringAbove reports whether a NextRecovering frame is on the stack
// of the calling goroutine. A panicking goroutine keeps the frames of the
// functions that the panic is unwinding until a deferred call recovers it,
// so a middleware's deferred function still sees the frame of every
// middleware above it.
func recoveringAbove() bool {
	var pcs [64]uintptr
	skip := 2
	for {
		n := runtime.Callers(skip, pcs[:])
		frames := runtime.CallersFrames(pcs[:n])
		for {
			f, more := frames.Next()
			if f.Entry == nextRecoveringPC {
				return true
			}
			if !more {
				break
			}
		}
		if n < len(pcs) {
			return false
		}
		skip += n
	}
}

// DeferToRecovery is for a middleware that records a request's outcome and
// sees a panic pass (see [ObservePanic]): when a middleware answering
// panics (logging.Recovery, through [NextRecovering]) is above it, fn is
// kept, to run once that middleware has answered, with the status of the
// answer, so that the record counts the answer's bytes; it reports true.
// Otherwise it keeps nothing and reports false: the caller records the
// outcome at once. fn runs on the request's goroutine.
func DeferToRecovery(c *gin.Context, fn func(status int)) bool {
	if !recoveringAbove() {
		return false
	}
	info := Ensure(c)
	if info.afterRecovery == nil {
		info.afterRecovery = new([]func(status int))
	}
	*info.afterRecovery = append(*info.afterRecovery, fn)
	return true
}

// RunAfterRecovery runs, in the order they were kept, and forgets the
// functions that [DeferToRecovery] kept for c's request, with status: the
// middleware answering panics calls it once it has answered (or once a
// panic it expected was swallowed on the way). It does nothing when none
// were kept.
func RunAfterRecovery(c *gin.Context, status int) {
	info := From(c.Request.Context())
	if info == nil || info.afterRecovery == nil {
		return
	}
	fns := *info.afterRecovery
	info.afterRecovery = nil
	for _, fn := range fns {
		fn(status)
	}
}
