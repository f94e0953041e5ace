package tracing

import (
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/gingov/gingov/internal/cowmap"
	"github.com/gingov/gingov/internal/reqstate"
	"github.com/gingov/gingov/reqinfo"
)

// Server traces the requests of a Gin server. Build it with [NewServer];
// it is safe for concurrent use.
type Server struct {
	skip    reqinfo.PathSet
	prop    propagation.TextMapPropagator
	sampler sdktrace.Sampler // nil: the tracer provider's sampler decides
	root    sdktrace.Sampler // the root sampler sampler delegates to without a parent
	w3cProp bool             // prop is the Provider's default propagator
	header  string
	names   spanNames
	path    spanPath        // the kit's own span path
	otel    gin.HandlerFunc // with WithOtelgin: otelgin instead
}

// NewServer returns the server side of tracing: [Server.Middleware] traces
// each request in a server span with the current HTTP semantic
// conventions: the spans otelgin (the version go.mod pins) records, span
// for span (a differential test runs a corpus of requests through both),
// built by the kit's own path at a fraction of otelgin's cost.
// [WithOtelgin] runs otelgin itself instead. server names the server for
// the server.address attribute ("" takes the request's Host).
//
// With [WithProvider], the middleware decides sampling itself first, with
// the provider's sampler and the trace ID the SDK would have used: a
// request the sampler drops builds no span and no attribute. It gets a
// non-recording span context instead (the parent's trace ID, or a new one;
// a new span ID; the sampled flag off), so logs, envelopes and outbound
// requests still carry its trace ID. Without it ([WithOTel], or nothing:
// OpenTelemetry's globals) the tracer provider's sampler decides when the
// span starts, with the request's attributes, as under otelgin.
//
// The span's context stays in c.Request's context after the middleware
// returns (under otelgin, the context from before it comes back).
// otelgin's own OpenTelemetry metrics are off: the metrics package counts
// requests. A nil option or an invalid one is an error naming it.
func NewServer(server string, opts ...ServerOption) (*Server, error) {
	cfg, err := newServerConfig(opts)
	if err != nil {
		return nil, err
	}
	return newServer(server, cfg), nil
}

func newServer(server string, cfg serverConfig) *Server {
	s := &Server{skip: cfg.skip, prop: cfg.prop, header: cfg.header}
	s.names.Limit = maxSpanNames
	if cfg.provider != nil {
		s.sampler, s.root = cfg.provider.sampler, cfg.provider.root
		s.w3cProp = cfg.provider.w3cProp
	}
	if !cfg.otelgin {
		s.path = newSpanPath(cfg.tp, server)
		return s
	}
	s.otel = otelgin.Middleware(server,
		otelgin.WithTracerProvider(wrapProvider{tp: cfg.tp}),
		// The middleware extracts the parent itself, before otelgin runs.
		otelgin.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelgin.WithMeterProvider(noop.NewMeterProvider()),
		otelgin.WithSpanNameFormatter(s.names.name),
	)
	return s
}

// Middleware traces each request in a server span:
//
//   - the span is named by method and route template ("GET /orders/:id");
//     a request no route matches is named by its method alone ("GET",
//     and "HTTP" for a method outside the standard ones), so names stay
//     bounded;
//   - http.response.status_code is set; 5xx responses and panics mark the
//     span as an error, 4xx responses do not (even with errors in
//     c.Errors, which are recorded as events);
//   - a panic passing through is recorded (exception event with the stack
//     of the panic site, status 500) and goes on to logging.Recovery,
//     which renders the envelope with the trace ID;
//   - the span's context is in c.Request's context for everything after
//     the middleware: access log and error envelopes read the trace ID
//     from it, and [Transport] propagates it.
//
// Put it after logging's RequestID and before its AccessLog and the
// metrics middleware.
func (s *Server) Middleware() gin.HandlerFunc { return s.handle }

// Middleware is the middleware of a [Server] with [WithProvider](p), the
// request's Host as server name and no other option. For skip paths or a
// response header, use [NewServer] with [WithProvider](p).
func (p *Provider) Middleware() gin.HandlerFunc {
	return newServer("", serverConfig{httpConfig: p.httpConfig()}).Middleware()
}

func (s *Server) handle(c *gin.Context) {
	if s.skip.Match(c) {
		c.Next()
		return
	}
	ctx := c.Request.Context()
	if !s.w3cProp || hasW3CHeaders(c.Request.Header) {
		ctx = s.prop.Extract(ctx, propagation.HeaderCarrier(c.Request.Header))
	}
	var preset trace.TraceID
	if s.sampler != nil {
		psc := trace.SpanContextFromContext(ctx)
		tid := psc.TraceID()
		if !tid.IsValid() {
			tid = newTraceID()
			preset = tid
		}
		params := sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Kind: trace.SpanKindServer}
		var res sdktrace.SamplingResult
		if preset.IsValid() && psc.TraceState().Len() == 0 {
			// No parent: the parent-based sampler would ask its root one,
			// which reads the trace ID and the parent's trace state (empty)
			// only; spare both their lookups of the parent in ctx.
			params.ParentContext = context.Background()
			res = s.root.ShouldSample(params)
		} else {
			res = s.sampler.ShouldSample(params)
		}
		if res.Decision == sdktrace.Drop {
			// What the SDK's tracer.Start returns for a dropped span.
			sc := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    tid,
				SpanID:     newSpanID(),
				TraceFlags: psc.TraceFlags() &^ trace.FlagsSampled,
				TraceState: res.Tracestate,
			})
			var hdr *[1]string
			c.Request, hdr = withDroppedSpan(c.Request, ctx, sc)
			if s.header != "" {
				hdr[0] = tid.String()
				c.Writer.Header()[s.header] = hdr[:]
			}
			c.Next()
			return
		}
	}
	st := &serverState{Context: ctx, c: c, header: s.header, presetTrace: preset}
	if s.otel == nil {
		s.serve(c, st)
		return
	}
	c.Request = c.Request.WithContext(st)
	defer func() {
		// otelgin put its saved context back; after a panic, leave the
		// span's context for Recovery's log line and envelope.
		if st.panicked {
			c.Request = c.Request.WithContext(st.spanCtx)
		}
	}()
	s.otel(c)
}

// hasW3CHeaders reports whether h has a header the default propagator
// reads (tracestate is read only with a traceparent). Without one, its
// Extract returns the context it is given, after canonicalising the
// lower-case names it looks up, which allocates.
func hasW3CHeaders(h http.Header) bool {
	if len(h) == 0 {
		return false
	}
	_, tp := h["Traceparent"]
	_, bg := h["Baggage"]
	return tp || bg
}

// withDroppedSpan is r.WithContext(trace.ContextWithSpanContext(ctx, sc))
// for a dropped request, in one allocation instead of three (the span, the
// context node, the request's copy): a droppedCtx answers OpenTelemetry's
// span key with a non-recording span of its own and holds the copy.
//
// hdr is where the trace-ID response header's value may be kept.
func withDroppedSpan(r *http.Request, ctx context.Context, sc trace.SpanContext) (_ *http.Request, hdr *[1]string) {
	if spanKey == nil {
		return r.WithContext(trace.ContextWithSpanContext(ctx, sc)), new([1]string)
	}
	d := &droppedCtx{Context: ctx}
	d.span.sc = sc
	return reqstate.WithContext(&d.req, r, d), &d.hdr
}

// droppedCtx is a dropped request's context: its parent and the
// non-recording span that carries the request's span context; and the
// request that carries it, and the trace-ID header's value.
type droppedCtx struct {
	context.Context
	span droppedSpan
	req  http.Request
	hdr  [1]string // the trace-ID response header's value
}

func (d *droppedCtx) Value(k any) any {
	if k == spanKey {
		return &d.span
	}
	return d.Context.Value(k)
}

// droppedSpan is the non-recording span of a dropped request, as the one
// trace.ContextWithSpanContext stores: it does nothing but carry its span
// context, and its tracer provider is a no-op one.
type droppedSpan struct {
	tracenoop.Span
	sc trace.SpanContext
}

func (s *droppedSpan) SpanContext() trace.SpanContext { return s.sc }

// spanKey is the context key under which OpenTelemetry keeps the current
// span (trace.ContextWithSpan; the key is unexported), found once by
// asking a probing context which key trace.SpanFromContext looks up, and
// checked: nil when trace.SpanContextFromContext does not read a
// droppedCtx's span context back, and then trace.ContextWithSpanContext
// is used.
var spanKey any

func init() { spanKey = probeSpanKey() }

type keyProbe struct {
	context.Context
	keys []any
}

func (p *keyProbe) Value(k any) any {
	p.keys = append(p.keys, k)
	return nil
}

func probeSpanKey() any {
	p := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(p)
	if len(p.keys) != 1 {
		return nil
	}
	key := p.keys[0]
	ts, err := trace.ParseTraceState("probe=1")
	if err != nil {
		return nil
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceState: ts, Remote: true,
	})
	d := &droppedCtx{Context: context.Background()}
	d.span.sc = sc
	spanKey = key // init only: nothing reads it concurrently yet
	ok := trace.SpanContextFromContext(d).Equal(sc) && !trace.SpanFromContext(d).IsRecording()
	spanKey = nil
	if !ok {
		return nil
	}
	return key
}

// stateKey finds a request's serverState in its context.
type stateKey struct{}

// serverState is one sampled request's context node and its server span,
// in one allocation. Written by the request's goroutine only, before the
// handlers run (except panicked, set while unwinding).
type serverState struct {
	context.Context // the request's context with the extracted parent

	c           *gin.Context
	header      string
	presetTrace trace.TraceID // root trace ID drawn for the sampling decision

	// The own path's.
	opts [2]trace.SpanStartOption
	end  [2]attribute.KeyValue
	hdr  [1]string

	// The request carrying the span's context (the own path's).
	req http.Request

	// The otelgin path's.
	span     serverSpan
	spanCtx  context.Context
	panicked bool
}

func (st *serverState) Value(k any) any {
	if k == (stateKey{}) {
		return st
	}
	return st.Context.Value(k)
}

// wrapProvider hands otelgin a tracer that keeps the server span's
// handle, so that status and panics are recorded the kit's way.
type wrapProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (w wrapProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &wrapTracer{t: w.tp.Tracer(name, opts...)}
}

type wrapTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (w *wrapTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := w.t.Start(ctx, name, opts...)
	st, ok := ctx.Value(stateKey{}).(*serverState)
	if !ok || st.span.Span != nil {
		return ctx, span // not the server span (otelgin.HTML, say)
	}
	st.presetTrace = trace.TraceID{}
	st.span = serverSpan{Span: span, st: st}
	st.spanCtx = ctx
	if tid := span.SpanContext().TraceID(); st.header != "" && tid.IsValid() {
		st.c.Writer.Header()[st.header] = []string{tid.String()}
	}
	return ctx, &st.span
}

// serverSpan is the server span as otelgin sees it.
type serverSpan struct {
	trace.Span
	st *serverState
}

// SetStatus keeps 4xx responses from being marked as errors: otelgin
// marks any request with c.Errors as one.
func (s *serverSpan) SetStatus(code codes.Code, description string) {
	if code == codes.Error {
		if st := s.st.c.Writer.Status(); st >= 100 && st < 500 {
			return
		}
	}
	s.Span.SetStatus(code, description)
}

// End is deferred by otelgin, so a panic passing through can be seen here
// while the span is still open: it is recorded, the span ended, and the
// panic goes on.
func (s *serverSpan) End(opts ...trace.SpanEndOption) {
	if p := recover(); p != nil {
		s.recordPanic(p)
		s.Span.End(opts...)
		panic(p)
	}
	s.Span.End(opts...)
}

func (s *serverSpan) recordPanic(p any) {
	s.st.panicked = true
	recordPanic(s.st.c, s.Span, p)
}

// knownMethods are the methods a span name may carry; others become HTTP.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
	http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

// spanMethod is the method as a span name carries it: upper case, and
// HTTP for a method outside the standard ones (as otelgin names spans).
func spanMethod(m string) string {
	if knownMethods[m] {
		return m
	}
	if up := strings.ToUpper(m); knownMethods[up] {
		return up
	}
	return "HTTP"
}

// maxSpanNames bounds the cache of span names (method × route).
const maxSpanNames = 4096

type routeKey struct{ method, route string }

// routeInfo is what a route gives every span of its requests.
type routeInfo struct {
	name  string             // "METHOD /route"
	route attribute.KeyValue // http.route
}

// unmatchedRoute is the http.route of a request no route matched: otelgin
// records the empty template.
var unmatchedRoute = semconv.HTTPRoute("")

// spanNames caches each route's span name and http.route attribute, so a
// request reads them without allocating or locking.
type spanNames struct {
	cowmap.Map[routeKey, routeInfo]
}

func (n *spanNames) name(c *gin.Context) string {
	name, _ := n.route(c)
	return name
}

// route returns the span name and http.route attribute of c's request.
func (n *spanNames) route(c *gin.Context) (string, attribute.KeyValue) {
	method := spanMethod(c.Request.Method)
	route := c.FullPath()
	if route == "" {
		return method, unmatchedRoute
	}
	k := routeKey{method, route}
	if ri, ok := n.Load(k); ok {
		return ri.name, ri.route
	}
	ri, _ := n.LoadOrStore(k, routeInfo{name: method + " " + route, route: semconv.HTTPRoute(route)})
	return ri.name, ri.route
}
