package tracing

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/internal/reqstate"
)

// The server span of the kit's own path records what otelgin v0.65.0
// records for a request (the HTTP semantic conventions v1.39.0 attributes,
// span name, kind, status, error events, instrumentation scope), checked
// against otelgin itself by the differential test. It differs in how: the
// attributes are built once into a pooled buffer, the span name and route
// attribute come from a per-route cache, nothing is stored in gin's Keys,
// no per-request closure or option is allocated, the request's context is
// replaced once, and no metric attribute set is built for a no-op meter.

// scopeName and scopeVersion are otelgin's instrumentation scope, so a
// backend sees the same scope whichever path recorded the span.
const (
	scopeName    = otelgin.ScopeName
	scopeVersion = otelgin.Version
)

// serverKind is the one span-kind option every server span starts with.
var (
	serverKind     = trace.WithSpanKind(trace.SpanKindServer)
	serverKindOnly = []trace.SpanStartOption{serverKind}
)

// maxStartAttrs is the most attributes a request's span starts with.
const maxStartAttrs = 16

type attrBuf [maxStartAttrs]attribute.KeyValue

// attrPool holds start-attribute buffers: the SDK copies the attributes
// when the span starts, so a buffer is free again right after.
var attrPool = sync.Pool{New: func() any { return new(attrBuf) }}

// spanPath is what the own path precomputes at construction.
type spanPath struct {
	tracer trace.Tracer
	// server's host and port, when NewServer was given a server name.
	serverSet  bool
	serverHost string
	serverPort int // -1: none, the request's Host gives it
}

func newSpanPath(tp trace.TracerProvider, server string) spanPath {
	p := spanPath{
		tracer:     tp.Tracer(scopeName, trace.WithInstrumentationVersion(scopeVersion)),
		serverPort: -1,
	}
	if server != "" {
		p.serverSet = true
		p.serverHost, p.serverPort = splitHostPort(server)
	}
	return p
}

// serve runs the rest of the chain inside a server span started from
// parent (the context with the extracted remote parent, if any).
func (s *Server) serve(c *gin.Context, st *serverState) {
	buf := attrPool.Get().(*attrBuf)
	attrs := s.path.startAttrs(buf[:0], c)
	name, route := s.names.route(c)
	attrs = append(attrs, route)
	var ctx context.Context
	var span trace.Span
	if s.sampler != nil {
		// The sampler (the Provider's) has decided and ignores attributes:
		// set them on the started span, which spares the SDK a copy.
		ctx, span = s.path.tracer.Start(st, name, serverKindOnly...)
		setStartAttrs(span, attrs)
	} else {
		// Another provider's sampler may read them: start with them.
		st.opts = [2]trace.SpanStartOption{trace.WithAttributes(attrs...), serverKind}
		ctx, span = s.path.tracer.Start(st, name, st.opts[:]...)
		st.opts = [2]trace.SpanStartOption{}
	}
	clear(attrs)
	attrPool.Put(buf)
	st.presetTrace = trace.TraceID{}
	if tid := span.SpanContext().TraceID(); s.header != "" && tid.IsValid() {
		st.hdr[0] = tid.String()
		c.Writer.Header()[s.header] = st.hdr[:]
	}
	// The span's context stays in c.Request after the middleware returns,
	// as it does for a dropped request.
	c.Request = reqstate.WithContext(&st.req, c.Request, ctx)
	defer s.end(c, st, span)
	c.Next()
}

// setStartAttrs sets the n start attributes on a started span in two
// calls, the first of (n+2)/2 rounded up. The SDK sizes the span's
// attribute slice for each call, so the second call doubles it to room
// for the 2 response attributes too: one call of n sizes it for n, and
// the response attributes regrow it at the end of the request (for 13
// attributes: 512 + 1024 bytes instead of 896 + 1792). The attributes
// recorded are the same.
func setStartAttrs(span trace.Span, attrs []attribute.KeyValue) {
	if k := (len(attrs) + 3) / 2; k < len(attrs) {
		span.SetAttributes(attrs[:k]...)
		attrs = attrs[k:]
	}
	span.SetAttributes(attrs...)
}

// end records the outcome and ends the span. It is deferred by serve, so
// a panic passing through is seen here (recover), recorded, and goes on.
func (s *Server) end(c *gin.Context, st *serverState, span trace.Span) {
	if p := recover(); p != nil {
		recordPanic(c, span, p)
		span.End()
		panic(p)
	}
	if !span.IsRecording() {
		span.End()
		return
	}
	status := c.Writer.Status()
	failed := status < 100 || status >= 500 // 4xx are not errors
	switch {
	case status < 100 || status >= 600:
		span.SetStatus(codes.Error, fmt.Sprintf("Invalid HTTP status code %d", status))
	case status >= 500:
		span.SetStatus(codes.Error, "")
	}
	n := 0
	if size := c.Writer.Size(); size > 0 {
		st.end[n] = semconv.HTTPResponseBodySize(size)
		n++
	}
	if status > 0 {
		st.end[n] = semconv.HTTPResponseStatusCode(status)
		n++
	}
	span.SetAttributes(st.end[:n]...)
	if len(c.Errors) > 0 {
		if failed {
			span.SetStatus(codes.Error, c.Errors.String())
		}
		for _, e := range c.Errors {
			span.RecordError(e.Err) // the exception event otelgin records
		}
	}
	span.End()
}

// recordPanic records a panic passing through the server span: the status
// the request will end with, an exception event with the stack of the
// panic site, and an error status for a 5xx.
func recordPanic(c *gin.Context, span trace.Span, p any) {
	status := reqstate.ObservePanic(c, p)
	if !span.IsRecording() {
		return
	}
	var stack string
	if info := reqstate.From(c.Request.Context()); info != nil {
		stack = string(info.PanicStack)
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	span.AddEvent("exception", trace.WithAttributes(
		attribute.String("exception.type", fmt.Sprintf("%T", p)),
		attribute.String("exception.message", fmt.Sprint(p)),
		attribute.String("exception.stacktrace", stack),
	))
	if status >= 500 {
		span.SetStatus(codes.Error, "panic")
	}
}

// startAttrs appends the attributes the span starts with, but the route.
func (p *spanPath) startAttrs(attrs []attribute.KeyValue, c *gin.Context) []attribute.KeyValue {
	req := c.Request
	tls := req.TLS != nil

	host, port := p.serverHost, p.serverPort
	if !p.serverSet {
		host, port = splitHostPort(req.Host)
	} else if port < 0 {
		_, port = splitHostPort(req.Host)
	}
	attrs = append(attrs, semconv.ServerAddress(host))
	if tls {
		attrs = append(attrs, semconv.URLScheme("https"))
	} else {
		attrs = append(attrs, semconv.URLScheme("http"))
	}
	if port > 0 && (tls && port != 443 || !tls && port != 80) {
		attrs = append(attrs, semconv.ServerPort(port))
	}

	method, known := methodAttr(req.Method)
	attrs = append(attrs, method)
	if !known {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(req.Method))
	}

	peer, peerPort := splitHostPort(req.RemoteAddr)
	if peer != "" {
		attrs = append(attrs, semconv.NetworkPeerAddress(peer))
		if peerPort > 0 {
			attrs = append(attrs, semconv.NetworkPeerPort(peerPort))
		}
	}
	if ua := req.Header.Get("User-Agent"); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	// Gin's client IP (it honours the engine's trusted proxies), else the
	// first X-Forwarded-For entry, else the peer.
	ip := reqstate.ClientIP(c)
	if ip == "" {
		ip, _, _ = strings.Cut(req.Header.Get("X-Forwarded-For"), ",")
		if ip == "" {
			ip = peer
		}
	}
	if ip != "" {
		attrs = append(attrs, semconv.ClientAddress(ip))
	}
	if req.URL != nil && req.URL.Path != "" {
		attrs = append(attrs, semconv.URLPath(req.URL.Path))
	}
	name, version := protocol(req.Proto)
	if name != "" && name != "http" {
		attrs = append(attrs, semconv.NetworkProtocolName(name))
	}
	if version != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(version))
	}
	return attrs
}

// methodAttr is http.request.method: the standard method m names, in
// upper case, with known false when m is not exactly that name (the
// original then goes in http.request.method_original). Neither "" nor an
// unknown method is standard: both are recorded as GET, as otelgin does.
func methodAttr(m string) (kv attribute.KeyValue, known bool) {
	if m == "" {
		return semconv.HTTPRequestMethodGet, true
	}
	if knownMethods[m] {
		return semconv.HTTPRequestMethodKey.String(m), true
	}
	if up := strings.ToUpper(m); knownMethods[up] {
		return semconv.HTTPRequestMethodKey.String(up), false
	}
	return semconv.HTTPRequestMethodGet, false
}

// protocol splits a request's Proto ("HTTP/1.1") into the lower-case
// protocol name and its version.
func protocol(proto string) (name, version string) {
	name, version, _ = strings.Cut(proto, "/")
	switch name {
	case "HTTP":
		return "http", version
	case "QUIC":
		return "quic", version
	case "SPDY":
		return "spdy", version
	}
	return strings.ToLower(name), version
}

// splitHostPort splits "host", "host:port", "[host]", "[host]:port" or
// ":port" (a zone may follow the host) into host and port. An unparsable
// address gives host ""; a missing or unparsable port gives -1.
func splitHostPort(hostport string) (host string, port int) {
	if strings.HasPrefix(hostport, "[") {
		end := strings.LastIndexByte(hostport, ']')
		if end < 0 {
			return "", -1
		}
		if !strings.Contains(hostport[end:], ":") {
			return hostport[1:end], -1
		}
	} else if !strings.Contains(hostport, ":") {
		return hostport, -1
	}
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", -1
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return host, -1
	}
	return host, int(n)
}
