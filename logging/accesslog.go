package logging

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
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
	maxField       int
	maxLine        int
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

// WithMaxFieldBytes bounds each string field of a line that comes from the
// request or from an error (method, route, path, query, client_ip,
// user_agent, request_id, reason, error, header values), in bytes (default
// [DefaultMaxFieldBytes], at least [MinFieldBytes]; 0 is invalid). A longer
// value is cut at a rune boundary and ends in [TruncatedMark], and its
// original length is logged beside it as <field>_len. The loggers of
// [FromContext] and the line of [Recovery] bound their strings the same way.
func WithMaxFieldBytes(n int) AccessLogOption {
	return accessOption(func(c *accessConfig) { c.maxField = n })
}

// WithMaxLineBytes bounds one access-log line, in bytes, newline included
// (default [DefaultMaxLineBytes]; 0 is invalid). A line that would be
// longer with every field at the field bound is written with one smaller
// bound for all its request-derived fields, the largest that fits: short
// fields stay whole, the long ones share the rest, and each cut field
// keeps its _len. It must be at least [MinLineBytes] and leave room for
// the line's fixed fields, the logger's own attributes and the names of
// the headers of [WithRequestHeaders] (NewAccessLog says how much). The
// bound holds as written for the loggers of [New] and [Default]; with
// another slog handler the fields are cut as if it wrote the kit's JSON.
func WithMaxLineBytes(n int) AccessLogOption {
	return accessOption(func(c *accessConfig) { c.maxLine = n })
}

// newAccessConfig applies opts in order over the defaults and validates
// the result; prefix is the logger's own attributes as the fast path
// writes them (nil for a logger not of [New]), which count in a line.
func newAccessConfig(opts []AccessLogOption, prefix []byte) (accessConfig, error) {
	cfg := accessConfig{clientErrLevel: DefaultClientErrorLevel, logQuery: true,
		maxField: DefaultMaxFieldBytes, maxLine: DefaultMaxLineBytes}
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
	if cfg.maxField < MinFieldBytes {
		return cfg, fmt.Errorf("logging: WithMaxFieldBytes: %d is below %d", cfg.maxField, MinFieldBytes)
	}
	if cfg.maxLine < MinLineBytes {
		return cfg, fmt.Errorf("logging: WithMaxLineBytes: %d is below %d", cfg.maxLine, MinLineBytes)
	}
	if least := minLineBytes(cfg, prefix); cfg.maxLine < least {
		return cfg, fmt.Errorf("logging: WithMaxLineBytes: %d leaves no room for the fields: these options and the logger's attributes need at least %d", cfg.maxLine, least)
	}
	return cfg, nil
}

// minLineBytes is the longest line of cfg and prefix with every
// request-derived field cut to the mark: the smallest line bound that
// fit can always meet.
func minLineBytes(cfg accessConfig, prefix []byte) int {
	a := &AccessLog{cfg: cfg, prefix: prefix}
	long := strings.Repeat("x", 2*len(TruncatedMark))
	hdr := make(http.Header, len(cfg.headers))
	for _, n := range cfg.headers {
		hdr[n] = []string{long}
	}
	level := slog.LevelError
	if len(cfg.clientErrLevel.String()) > len(level.String()) {
		level = cfg.clientErrLevel
	}
	l := line{
		time:    time.Date(2006, 1, 2, 15, 4, 5, 123456789, time.FixedZone("", -(11*3600+30*60))),
		level:   level,
		status:  599,
		latency: 123456789123456,
		size:    math.MaxInt,
		code:    math.MaxInt,
		sc: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1},
		}),
		method: long, route: long, path: long, query: long, clientIP: long,
		userAgent: long, requestID: long, reason: long, errText: long, header: hdr,
	}
	n := len(a.encode(nil, &l, len(TruncatedMark)))
	// Each cut field's _len may have up to 19 digits rather than 1, a
	// latency up to 24 characters rather than 15, and the slog path keeps
	// slogTimeSlack free.
	return n + (9+len(cfg.headers))*(len(strconv.Itoa(math.MaxInt))-1) + 16 + slogTimeSlack
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
// error holds the internal error text that the client never sees. The
// strings that come from the request or an error are bounded, and so is
// the line ([WithMaxFieldBytes], [WithMaxLineBytes]). A request that panics
// is logged too (as 500, or 499 for a broken connection): under [Recovery],
// once Recovery has answered, with the envelope's bytes; without it, before
// the panic goes on. The logger, its strings bounded, also becomes the base
// of [FromContext] for the request. It fails when an option is nil or
// invalid.
func NewAccessLog(logger *slog.Logger, opts ...AccessLogOption) (*AccessLog, error) {
	logger = OrDefault(logger)
	var prefix []byte
	if h, ok := logger.Handler().(*jsonHandler); ok {
		prefix = h.prefix()
	}
	cfg, err := newAccessConfig(opts, prefix)
	if err != nil {
		return nil, err
	}
	return newAccessLog(logger, cfg), nil
}

func newAccessLog(logger *slog.Logger, cfg accessConfig) *AccessLog {
	a := &AccessLog{logger: logger, cfg: cfg,
		ctxLogger: slog.New(boundHandler(logger.Handler(), cfg.maxField))}
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
	// ctxLogger is logger with its strings bounded: the base of
	// [FromContext] for the request.
	ctxLogger *slog.Logger
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
	info.Logger = a.ctxLogger
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
		logPanic := func(status int) {
			info.Code, info.Reason = code.Code(), code.Reason()
			info.Cause = PanicError{Value: p}
			a.write(c, info, entryCtx, start, status)
		}
		// Under Recovery, the line waits for its answer, so that it counts
		// the envelope's bytes.
		if !reqstate.DeferToRecovery(c, logPanic) {
			logPanic(status)
		}
		panic(p)
	}()
	c.Next()
	completed = true
	a.write(c, info, entryCtx, start, c.Writer.Status())
}

// line is what one access-log line says, gathered once for either
// encoder. The strings are the request's as they are; the encoders bound
// them.
type line struct {
	time      time.Time
	level     slog.Level
	status    int
	latency   time.Duration
	size      int
	code      int
	sc        trace.SpanContext
	method    string
	route     string
	path      string
	query     string
	clientIP  string
	userAgent string
	requestID string
	reason    string
	errText   string
	header    http.Header
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
	l := line{
		time:      now,
		level:     level,
		status:    status,
		latency:   now.Sub(start),
		size:      max(0, c.Writer.Size()),
		code:      info.Code,
		sc:        trace.SpanContextFromContext(entryCtx),
		method:    c.Request.Method,
		route:     c.FullPath(),
		path:      c.Request.URL.Path,
		clientIP:  reqstate.ClientIP(c),
		userAgent: headerValue(c.Request.Header, "User-Agent"),
		requestID: info.RequestID,
		reason:    info.Reason,
		errText:   errorText(c, info),
		header:    c.Request.Header,
	}
	if !l.sc.IsValid() {
		l.sc = trace.SpanContextFromContext(ctx)
	}
	if a.cfg.logQuery && c.Request.URL.RawQuery != "" {
		l.query = a.redactQuery(c.Request.URL.RawQuery)
	}
	if a.fast != nil {
		a.writeFast(&l)
		return
	}
	limit := a.cfg.maxField
	if a.mayExceed(&l) {
		bp := lineBufs.Get().(*[]byte)
		var b []byte
		// slog writes its own record time, whose fraction may be longer.
		b, limit = a.fit((*bp)[:0], &l, a.cfg.maxLine-slogTimeSlack)
		a.putBuf(bp, b)
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = boundedString(attrs, "method", l.method, limit)
	attrs = boundedString(attrs, "route", l.route, limit)
	attrs = boundedString(attrs, "path", l.path, limit)
	if l.query != "" {
		attrs = boundedString(attrs, "query", l.query, limit)
	}
	attrs = append(attrs,
		slog.Int("status", l.status),
		slog.Float64("latency", l.latency.Seconds()),
		slog.Int("bytes", l.size),
	)
	attrs = boundedString(attrs, "client_ip", l.clientIP, limit)
	attrs = boundedString(attrs, "user_agent", l.userAgent, limit)
	attrs = boundedString(attrs, "request_id", l.requestID, limit)
	if l.sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", l.sc.TraceID().String()), slog.String("span_id", l.sc.SpanID().String()))
	}
	if l.code != 0 {
		attrs = append(attrs, slog.Int("code", l.code))
		attrs = boundedString(attrs, "reason", l.reason, limit)
	}
	if l.errText != "" {
		attrs = boundedString(attrs, "error", l.errText, limit)
	}
	if len(a.cfg.headers) > 0 {
		var h []slog.Attr
		for _, name := range a.cfg.headers {
			v := l.header.Get(name)
			if v == "" {
				continue
			}
			if a.sensitive(name) {
				h = append(h, slog.String(name, Redacted))
				continue
			}
			h = boundedString(h, name, v, limit)
		}
		if len(h) > 0 {
			attrs = append(attrs, slog.Attr{Key: "headers", Value: slog.GroupValue(h...)})
		}
	}
	a.logger.LogAttrs(ctx, l.level, "request", attrs...)
}

// writeFast encodes the line as slog.JSONHandler would, with the same
// fields in the same order, and writes it in one call.
func (a *AccessLog) writeFast(l *line) {
	bp := lineBufs.Get().(*[]byte)
	b := a.encode((*bp)[:0], l, a.cfg.maxField)
	if len(b) > a.cfg.maxLine {
		b, _ = a.fit(b[:0], l, a.cfg.maxLine)
	}
	_, _ = a.fast.out.Write(b)
	a.putBuf(bp, b)
}

func (a *AccessLog) putBuf(bp *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
}

// mayExceed reports whether l could encode to more than the line bound
// with each field at the field bound: false when even its strings all
// escaped to six bytes each (\u00XX) and the fixed fields leave room.
func (a *AccessLog) mayExceed(l *line) bool {
	n := len(l.method) + len(l.route) + len(l.path) + len(l.query) + len(l.clientIP) +
		len(l.userAgent) + len(l.requestID) + len(l.reason) + len(l.errText)
	fixed := fixedLineBytes
	for _, name := range a.cfg.headers {
		n += len(name) + len(l.header.Get(name))
		fixed += len(name) + 32 // its _len sibling
	}
	return 6*n+len(a.prefix)+fixed > a.cfg.maxLine-slogTimeSlack
}

// fixedLineBytes is an upper bound of what a line holds besides the
// request's strings, the header names and the logger's attributes: field
// names, time, level, numbers, trace and span IDs, and the fields' _len
// siblings.
const fixedLineBytes = 1024

// slogTimeSlack is what the slog path keeps free in a line for the time
// slog writes, whose fraction of a second may be up to 10 bytes longer
// than the one the line was fitted with.
const slogTimeSlack = 16

// fit encodes l into b within budget bytes: with every field at the
// field bound when that fits, else with one smaller bound for every field
// (the largest that fits, found by bisection), so that short fields stay
// whole and the long ones share what is left. It returns the line and
// the bound used. newAccessConfig made sure that the smallest bound fits
// the line bound, with room for slogTimeSlack.
func (a *AccessLog) fit(b []byte, l *line, budget int) ([]byte, int) {
	b = a.encode(b[:0], l, a.cfg.maxField)
	if len(b) <= budget {
		return b, a.cfg.maxField
	}
	lo, hi := len(TruncatedMark), a.cfg.maxField // lo fits, hi does not
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if b = a.encode(b[:0], l, mid); len(b) <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	return a.encode(b[:0], l, lo), lo
}

// encode appends l's JSON line, each request-derived string cut to limit
// bytes.
func (a *AccessLog) encode(b []byte, l *line, limit int) []byte {
	b = append(b, `{"time":`...)
	b = appendJSONTime(b, l.time)
	b = append(b, `,"level":`...)
	b = appendJSONString(b, l.level.String())
	b = append(b, `,"msg":"request"`...)
	b = append(b, a.prefix...)
	b = appendBoundedJSON(b, `,"method":`, l.method, limit)
	b = appendBoundedJSON(b, `,"route":`, l.route, limit)
	b = appendBoundedJSON(b, `,"path":`, l.path, limit)
	if l.query != "" {
		b = appendBoundedJSON(b, `,"query":`, l.query, limit)
	}
	b = append(b, `,"status":`...)
	b = appendInt(b, l.status)
	b = append(b, `,"latency":`...)
	b = appendJSONFloat(b, l.latency.Seconds())
	b = append(b, `,"bytes":`...)
	b = appendInt(b, l.size)
	b = appendBoundedJSON(b, `,"client_ip":`, l.clientIP, limit)
	b = appendBoundedJSON(b, `,"user_agent":`, l.userAgent, limit)
	b = appendBoundedJSON(b, `,"request_id":`, l.requestID, limit)
	if l.sc.IsValid() {
		tid, sid := l.sc.TraceID(), l.sc.SpanID()
		b = append(b, `,"trace_id":"`...)
		b = hex.AppendEncode(b, tid[:])
		b = append(b, `","span_id":"`...)
		b = hex.AppendEncode(b, sid[:])
		b = append(b, '"')
	}
	if l.code != 0 {
		b = append(b, `,"code":`...)
		b = appendInt(b, l.code)
		b = appendBoundedJSON(b, `,"reason":`, l.reason, limit)
	}
	if l.errText != "" {
		b = appendBoundedJSON(b, `,"error":`, l.errText, limit)
	}
	opened := false
	for _, name := range a.cfg.headers {
		v := l.header.Get(name)
		if v == "" {
			continue
		}
		if opened {
			b = append(b, ',')
		} else {
			b = append(b, `,"headers":{`...)
			opened = true
		}
		if a.sensitive(name) {
			b = appendJSONString(b, name)
			b = append(b, ':')
			b = appendJSONString(b, Redacted)
			continue
		}
		b = appendBoundedJSONKey(b, name, v, limit)
	}
	if opened {
		b = append(b, '}')
	}
	return append(b, '}', '\n')
}

// headerValue is h.Get(name) for a canonical name, without canonicalising it again.
func headerValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func appendInt(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) }

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
