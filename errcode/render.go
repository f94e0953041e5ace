package errcode

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/jsonstr"
	"github.com/gingov/gingov/internal/reqstate"
)

// ContentType is the content type of every envelope.
const ContentType = "application/json; charset=utf-8"

// Envelope is the JSON body of every error answer of the kit:
//
//	{"code":429001,"reason":"RATE_LIMITED","message":"too many requests",
//	 "solution":"…","request_id":"…","trace_id":"…","metadata":{…}}
//
// solution, trace_id and metadata are left out when empty.
type Envelope struct {
	Code      int               `json:"code"`
	Reason    string            `json:"reason"`
	Message   string            `json:"message"`
	Solution  string            `json:"solution,omitempty"`
	RequestID string            `json:"request_id"`
	TraceID   string            `json:"trace_id,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Renderer writes an error answer in place of the default JSON envelope.
// It must write a response (status and body).
type Renderer func(c *gin.Context, status int, env Envelope)

var customRenderer atomic.Pointer[Renderer]

// SetRenderer replaces how every kit middleware renders errors, process-wide;
// nil restores the default envelope. Mapping, logging and aborting stay the kit's.
func SetRenderer(r Renderer) {
	if r == nil {
		customRenderer.Store(nil)
		return
	}
	customRenderer.Store(&r)
}

var contentTypeHeader = []string{ContentType}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Write renders err as the envelope with the status of its code and aborts
// the rest of the chain. The error's cause,
// code and reason are recorded for the access log; the client sees only
// public text. When the response was already written, Write only aborts.
// A nil err renders [Internal].
func Write(c *gin.Context, err error) {
	e := From(err)
	if e == nil {
		e = &Error{code: Internal}
	}
	c.Abort()
	ctx := c.Request.Context()
	var requestID string
	if info := reqstate.From(ctx); info != nil {
		info.Code, info.Reason, info.Cause = e.code.code, e.code.reason, e.cause
		requestID = info.RequestID
	}
	if c.Writer.Written() {
		return
	}
	traceID, _ := reqstate.TraceIDs(ctx)
	env := Envelope{
		Code:      e.code.code,
		Reason:    e.code.reason,
		Message:   e.Message(),
		Solution:  e.code.solution,
		RequestID: requestID,
		TraceID:   traceID,
		Metadata:  e.metadata,
	}
	if r := customRenderer.Load(); r != nil {
		(*r)(c, e.code.status, env)
		return
	}
	bp := bufPool.Get().(*[]byte)
	b := env.AppendJSON((*bp)[:0])
	c.Writer.Header()["Content-Type"] = contentTypeHeader
	c.Writer.WriteHeader(e.code.status)
	_, _ = c.Writer.Write(b) // a failed write means the client is gone; nothing to do
	if cap(b) <= 64<<10 {
		*bp = b
		bufPool.Put(bp)
	}
}

// AppendJSON appends env encoded as JSON to b: the bytes encoding/json
// produces for Envelope (metadata keys sorted, HTML characters escaped).
func (env *Envelope) AppendJSON(b []byte) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(env.Code), 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, env.Reason)
	b = append(b, `,"message":`...)
	b = appendString(b, env.Message)
	if env.Solution != "" {
		b = append(b, `,"solution":`...)
		b = appendString(b, env.Solution)
	}
	b = append(b, `,"request_id":`...)
	b = appendString(b, env.RequestID)
	if env.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendString(b, env.TraceID)
	}
	if len(env.Metadata) > 0 {
		var small [8]string
		keys := small[:0]
		for k := range env.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"metadata":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, env.Metadata[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string, escaping as encoding/json does.
func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s, jsonstr.EncodingJSON) }

// Handle routes r's own answers through the envelope: unmatched paths get
// [NotFound], wrong methods [MethodNotAllowed] (with the Allow header), and
// errors that handlers add with c.Error are rendered by [Middleware]. The
// 404 and 405 answers pass through every global middleware of r (logging,
// metrics, tracing), whatever the order of Handle and r.Use.
//
// Call Handle before registering routes: like every r.Use, its middleware
// applies to routes registered after it.
func Handle(r *gin.Engine) {
	r.HandleMethodNotAllowed = true
	r.Use(Middleware())
	r.NoRoute(func(c *gin.Context) { Write(c, NotFound) })
	r.NoMethod(func(c *gin.Context) { Write(c, MethodNotAllowed) })
}

// Middleware renders the last error a handler added with c.Error, unless
// the handler wrote a body itself. It also covers gin's own c.Bind* and
// c.AbortWithError, which set a status and flush the header before the
// error could be rendered: below Middleware the header is held back until
// the body is written or the handler returns. A gin binding error becomes
// [BadRequest]; a plain error for which the handler chose a status becomes
// the kit code of that status (404 [NotFound], 409 [Conflict], …; other 4xx
// [BadRequest]), anything else goes through [From].
func Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		orig := c.Writer
		hw := holdPool.Get().(*heldHeaderWriter)
		hw.ResponseWriter, hw.held = orig, false
		c.Writer = hw
		defer func() {
			c.Writer = orig
			hw.ResponseWriter = nil
			holdPool.Put(hw)
		}()
		c.Next()
		c.Writer = orig
		if len(c.Errors) == 0 || orig.Written() {
			if hw.held {
				orig.WriteHeaderNow()
			}
			return
		}
		Write(c, handlerError(c.Errors.Last(), orig.Status()))
	}
}

// handlerError is the error to render for a gin error and the status the
// handler chose (200 when it chose none).
func handlerError(last *gin.Error, status int) error {
	err := last.Err
	var known *Error
	var code *Code
	if errors.As(err, &known) || errors.As(err, &code) {
		return err
	}
	if last.IsType(gin.ErrorTypeBind) {
		return BadRequest.Wrap(err)
	}
	if status >= 400 && status != http.StatusInternalServerError {
		if e := From(err); e.code == Internal {
			return forStatus(status).Wrap(err)
		}
	}
	return err
}

// forStatus is the kit code answering with status (or its class).
func forStatus(status int) *Code {
	switch status {
	case http.StatusBadRequest:
		return BadRequest
	case http.StatusUnauthorized:
		return Unauthenticated
	case http.StatusForbidden:
		return Forbidden
	case http.StatusNotFound:
		return NotFound
	case http.StatusMethodNotAllowed:
		return MethodNotAllowed
	case http.StatusConflict:
		return Conflict
	case http.StatusTooManyRequests:
		return RateLimited
	case ClientClosed.status:
		return ClientClosed
	case http.StatusNotImplemented:
		return NotImplemented
	case http.StatusServiceUnavailable:
		return Unavailable
	case http.StatusGatewayTimeout:
		return Timeout
	}
	if status < 500 {
		return BadRequest
	}
	return Internal
}

// heldHeaderWriter holds back WriteHeaderNow (the body, or gin at the end of
// the request, writes the header) so that an error can still be rendered.
type heldHeaderWriter struct {
	gin.ResponseWriter
	held bool
}

func (w *heldHeaderWriter) WriteHeaderNow() {
	if !w.Written() {
		w.held = true
	}
}

var holdPool = sync.Pool{New: func() any { return new(heldHeaderWriter) }}

// Handler adapts a handler that returns an error: a non-nil error is
// rendered with [Write].
func Handler(fn func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := fn(c); err != nil {
			Write(c, err)
		}
	}
}
