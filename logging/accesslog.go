package logging

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/reqstate"
	"github.com/gingov/gingov/reqinfo"
)

// Redacted replaces the value of a sensitive header or query parameter.
const Redacted = "[REDACTED]"

// DefaultSensitive lists the lower-case fragments that make a header name
// or query key sensitive: its value is logged as [Redacted]. Matching is by
// substring, so "Authorization", "X-Auth-Token" and "access_token" all match.
var DefaultSensitive = []string{
	"auth", "token", "passw", "pwd", "secret", "cookie", "session",
	"api-key", "api_key", "apikey", "signature", "credential", "private",
}

// AccessLogOption configures [NewAccessLog].
type AccessLogOption interface{ applyAccessLog(*accessConfig) }

type accessOption func(*accessConfig)

func (f accessOption) applyAccessLog(c *accessConfig) { f(c) }

type accessConfig struct {
	skip           reqinfo.PathSet
	clientErrLevel slog.Level
	headers        []string
	sensitive      []string
	logQuery       bool
}

// WithSkipPaths logs nothing for requests whose URL path or route template
// is one of paths (health checks, /metrics). Default none; repeated options
// add up.
func WithSkipPaths(paths ...string) AccessLogOption {
	return accessOption(func(c *accessConfig) { c.skip = c.skip.Add(paths...) })
}

// DefaultClientErrorLevel is the level of the access log's 4xx lines.
const DefaultClientErrorLevel = slog.LevelWarn

// WithClientErrorLevel sets the level of 4xx lines (default
// [DefaultClientErrorLevel]). 5xx lines are ERROR and the others INFO.
func WithClientErrorLevel(l slog.Level) AccessLogOption {
	return accessOption(func(c *accessConfig) { c.clientErrLevel = l })
}

// WithRequestHeaders logs the named request headers in a "headers" group;
// sensitive ones (see [DefaultSensitive]) are redacted. None by default;
// repeated options add up. Each name must be a valid header name.
func WithRequestHeaders(names ...string) AccessLogOption {
	return accessOption(func(c *accessConfig) { c.headers = append(c.headers, names...) })
}

// WithSensitive adds fragments to [DefaultSensitive], matched without
// regard to case; empty fragments are ignored. None by default.
func WithSensitive(fragments ...string) AccessLogOption {
	return accessOption(func(c *accessConfig) {
		for _, f := range fragments {
			if f != "" {
				c.sensitive = append(c.sensitive, strings.ToLower(f))
			}
		}
	})
}

// WithQuery sets whether the query string is logged, redacted, in "query"
// (default true).
func WithQuery(on bool) AccessLogOption {
	return accessOption(func(c *accessConfig) { c.logQuery = on })
}

// newAccessConfig applies opts in order over the defaults and validates
// the result.
func newAccessConfig(opts []AccessLogOption) (accessConfig, error) {
	cfg := accessConfig{clientErrLevel: DefaultClientErrorLevel, logQuery: true}
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("logging: option %d is nil", i+1)
		}
		o.applyAccessLog(&cfg)
	}
	for i, n := range cfg.headers {
		if !reqinfo.ValidHeaderName(n) {
			return cfg, fmt.Errorf("logging: WithRequestHeaders: invalid header name %q", n)
		}
		cfg.headers[i] = http.CanonicalHeaderKey(n)
	}
	cfg.sensitive = append(append([]string(nil), DefaultSensitive...), cfg.sensitive...)
	return cfg, nil
}

// NewAccessLog returns the access log writing to logger (nil means
// [Default]): [AccessLog.Middleware] writes one JSON line per request,
// after the request completes:
//
//	time, level, msg="request", method, route (template), path, query,
//	status, latency (seconds), bytes, client_ip, user_agent, request_id,
//	trace_id, span_id, and code, reason and error when the request failed.
//
// client_ip follows Gin's trusted-proxy settings (engine.SetTrustedProxies).
// error holds the internal error text that the client never sees. A request
// that panics is logged too (as 500, or 499 for a broken connection) before
// the panic goes on to [Recovery]. The logger also becomes the base of
// [FromContext] for the request. It fails when an option is nil or invalid.
func NewAccessLog(logger *slog.Logger, opts ...AccessLogOption) (*AccessLog, error) {
	cfg, err := newAccessConfig(opts)
	if err != nil {
		return nil, err
	}
	return newAccessLog(OrDefault(logger), cfg), nil
}

func newAccessLog(logger *slog.Logger, cfg accessConfig) *AccessLog {
	a := &AccessLog{logger: logger, cfg: cfg}
	if h, ok := logger.Handler().(*jsonHandler); ok {
		a.fast, a.prefix = h, h.prefix()
	}
	return a
}

// Middleware returns the access-log middleware. Put it after RequestID and
// the tracing middleware, so that its lines carry their IDs.
func (a *AccessLog) Middleware() gin.HandlerFunc { return a.handle }

// AccessLog writes the access log. Create it with [NewAccessLog]; it is
// safe for concurrent use.
type AccessLog struct {
	logger *slog.Logger
	cfg    accessConfig
	// fast is the logger's handler when it is the one of [New]: the line is
	// then encoded here, byte for byte as slog would write it, after prefix
	// (the logger's own attributes as slog renders them).
	fast   *jsonHandler
	prefix []byte
}

// lineBufs holds the buffers of the fast path.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (a *AccessLog) handle(c *gin.Context) {
	if a.cfg.skip.Match(c) {
		c.Next()
		return
	}
	start := time.Now()
	info := reqstate.Ensure(c)
	info.Logger = a.logger
	entryCtx := c.Request.Context()
	completed := false
	defer func() {
		if completed {
			return
		}
		// Only a panic (or runtime.Goexit) gets here.
		p := recover()
		if p == nil {
			return
		}
		status := reqinfo.ObservePanic(c, p)
		code := errcode.Panic
		if status == reqinfo.StatusClientClosedRequest {
			code = errcode.ClientClosed
		}
		info.Code, info.Reason = code.Code(), code.Reason()
		info.Cause = PanicError{Value: p}
		a.write(c, info, entryCtx, start, status)
		panic(p)
	}()
	c.Next()
	completed = true
	a.write(c, info, entryCtx, start, c.Writer.Status())
}

func (a *AccessLog) write(c *gin.Context, info *reqstate.Info, entryCtx context.Context, start time.Time, status int) {
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = a.cfg.clientErrLevel
	}
	ctx := c.Request.Context()
	if !a.logger.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	latency := now.Sub(start)
	sc := trace.SpanContextFromContext(entryCtx)
	if !sc.IsValid() {
		sc = trace.SpanContextFromContext(ctx)
	}
	size := c.Writer.Size()
	if size < 0 {
		size = 0
	}
	var query string
	if a.cfg.logQuery && c.Request.URL.RawQuery != "" {
		query = a.redactQuery(c.Request.URL.RawQuery)
	}
	errText := errorText(c, info)
	if a.fast != nil {
		a.writeFast(c, info, now, level, status, latency, size, query, sc, errText)
		return
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("method", c.Request.Method),
		slog.String("route", c.FullPath()),
		slog.String("path", c.Request.URL.Path),
	)
	if query != "" {
		attrs = append(attrs, slog.String("query", query))
	}
	attrs = append(attrs,
		slog.Int("status", status),
		slog.Float64("latency", latency.Seconds()),
		slog.Int("bytes", size),
		slog.String("client_ip", reqstate.ClientIP(c)),
		slog.String("user_agent", c.Request.UserAgent()),
		slog.String("request_id", info.RequestID),
	)
	if sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if info.Code != 0 {
		attrs = append(attrs, slog.Int("code", info.Code), slog.String("reason", info.Reason))
	}
	if errText != "" {
		attrs = append(attrs, slog.String("error", errText))
	}
	if len(a.cfg.headers) > 0 {
		h := make([]any, 0, len(a.cfg.headers))
		for _, name := range a.cfg.headers {
			v := c.Request.Header.Get(name)
			if v == "" {
				continue
			}
			if a.sensitive(name) {
				v = Redacted
			}
			h = append(h, slog.String(name, v))
		}
		if len(h) > 0 {
			attrs = append(attrs, slog.Group("headers", h...))
		}
	}
	a.logger.LogAttrs(ctx, level, "request", attrs...)
}

// writeFast encodes the line as slog.JSONHandler would, with the same
// fields in the same order, and writes it in one call.
func (a *AccessLog) writeFast(c *gin.Context, info *reqstate.Info, now time.Time, level slog.Level, status int,
	latency time.Duration, size int, query string, sc trace.SpanContext, errText string) {
	bp := lineBufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":`...)
	b = appendJSONTime(b, now)
	b = append(b, `,"level":`...)
	b = appendJSONString(b, level.String())
	b = append(b, `,"msg":"request"`...)
	b = append(b, a.prefix...)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, c.Request.Method)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, c.FullPath())
	b = append(b, `,"path":`...)
	b = appendJSONString(b, c.Request.URL.Path)
	if query != "" {
		b = append(b, `,"query":`...)
		b = appendJSONString(b, query)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"latency":`...)
	b = appendJSONFloat(b, latency.Seconds())
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, `,"client_ip":`...)
	b = appendJSONString(b, reqstate.ClientIP(c))
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, c.Request.UserAgent())
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, info.RequestID)
	if sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		b = append(b, `,"trace_id":"`...)
		b = hex.AppendEncode(b, tid[:])
		b = append(b, `","span_id":"`...)
		b = hex.AppendEncode(b, sid[:])
		b = append(b, '"')
	}
	if info.Code != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(info.Code), 10)
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, info.Reason)
	}
	if errText != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, errText)
	}
	opened := false
	for _, name := range a.cfg.headers {
		v := c.Request.Header.Get(name)
		if v == "" {
			continue
		}
		if a.sensitive(name) {
			v = Redacted
		}
		if opened {
			b = append(b, ',')
		} else {
			b = append(b, `,"headers":{`...)
			opened = true
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	if opened {
		b = append(b, '}')
	}
	b = append(b, '}', '\n')
	_, _ = a.fast.out.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
}

// errorText is the internal error text of the request: the cause of the
// rendered envelope, else the errors handlers added with c.Error.
func errorText(c *gin.Context, info *reqstate.Info) string {
	if info.Cause != nil {
		return info.Cause.Error()
	}
	if len(c.Errors) > 0 {
		return c.Errors.String()
	}
	return ""
}

func (a *AccessLog) sensitive(name string) bool {
	name = strings.ToLower(name)
	for _, f := range a.cfg.sensitive {
		if strings.Contains(name, f) {
			return true
		}
	}
	return false
}

// redactQuery replaces the values of sensitive keys, keeping order and the
// rest of the query as it was sent.
func (a *AccessLog) redactQuery(raw string) string {
	var b strings.Builder
	changed := false
	for i, part := range strings.Split(raw, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, _, hasValue := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if hasValue && a.sensitive(k) {
			b.WriteString(part[:strings.IndexByte(part, '=')+1])
			b.WriteString(Redacted)
			changed = true
			continue
		}
		b.WriteString(part)
	}
	if !changed {
		return raw
	}
	return b.String()
}
