package tracing_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/tracing"
)

// server is a service with the kit's chain around the tracing middleware.
type server struct {
	r    *gin.Engine
	logs *testenv.Buffer
}

// newServer builds Recovery, RequestID, mw, AccessLog, errcode and routes.
func newServer(mw gin.HandlerFunc) *server {
	s := &server{logs: &testenv.Buffer{}}
	l := logging.New(s.logs, nil)
	requestID, err := logging.NewRequestID()
	if err != nil {
		panic(err)
	}
	accessLog, err := logging.NewAccessLog(l)
	if err != nil {
		panic(err)
	}
	r := gin.New()
	r.Use(logging.Recovery(l), requestID.Middleware(), mw, accessLog.Middleware())
	errcode.Handle(r)
	r.GET("/orders/:id", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"id": c.Param("id")}) })
	r.GET("/bad", func(c *gin.Context) {
		_ = c.AbortWithError(http.StatusBadRequest, errors.New("field x is missing"))
	})
	r.GET("/fail", func(c *gin.Context) { _ = c.Error(errors.New("db down")) })
	r.GET("/panic", func(c *gin.Context) { panicHere() })
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/ctx", func(c *gin.Context) {
		sc := trace.SpanContextFromContext(c.Request.Context())
		c.JSON(http.StatusOK, spanInfo{
			TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(),
			Sampled: sc.IsSampled(), Recording: trace.SpanFromContext(c.Request.Context()).IsRecording(),
			TraceState: sc.TraceState().String(),
		})
	})
	s.r = r
	return s
}

type spanInfo struct {
	TraceID, SpanID, TraceState string
	Sampled, Recording          bool
}

func panicHere() { panic("boom") }

func (s *server) do(t *testing.T, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, target, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.r.ServeHTTP(w, req)
	return w
}

// lastLog returns the last access-log line.
func (s *server) lastLog(t *testing.T) map[string]any {
	t.Helper()
	var last map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m["msg"] == "request" {
			last = m
		}
	}
	if last == nil {
		t.Fatalf("no access-log line in %s", s.logs.String())
	}
	return last
}

func envelopeTraceID(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var env struct {
		TraceID string `json:"trace_id"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("envelope %q: %v", w.Body, err)
	}
	return env.TraceID
}

func attrOf(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func onlySpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended; want 1", len(spans))
	}
	return spans[0]
}

func TestServerSpans(t *testing.T) {
	cases := []struct {
		target     string
		name       string
		route      string
		status     int
		spanStatus codes.Code
		envelope   bool // an errcode envelope carries the trace ID
		exception  bool
	}{
		{"/orders/42", "GET /orders/:id", "/orders/:id", 200, codes.Unset, false, false},
		{"/bad", "GET /bad", "/bad", 400, codes.Unset, true, true},
		{"/fail", "GET /fail", "/fail", 500, codes.Error, true, true},
		{"/panic", "GET /panic", "/panic", 500, codes.Error, true, true},
		{"/nowhere", "GET", "", 404, codes.Unset, true, false},
	}
	for _, c := range cases {
		t.Run(c.target, func(t *testing.T) {
			p, rec := newRecorded(t)
			s := newServer(middleware(t, "", tracing.WithProvider(p), tracing.WithResponseHeader(tracing.DefaultResponseHeader)))
			w := s.do(t, http.MethodGet, c.target, nil)
			if w.Code != c.status {
				t.Fatalf("status %d; want %d: %s", w.Code, c.status, w.Body)
			}
			span := onlySpan(t, rec)
			tid, sid := span.SpanContext().TraceID().String(), span.SpanContext().SpanID().String()
			if span.Name() != c.name || span.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q kind %v; want %q server", span.Name(), span.SpanKind(), c.name)
			}
			if v, _ := attrOf(span, "http.response.status_code"); v.AsInt64() != int64(c.status) {
				t.Errorf("http.response.status_code %v; want %d", v.Emit(), c.status)
			}
			if v, ok := attrOf(span, "http.route"); c.route != "" && (!ok || v.AsString() != c.route) {
				t.Errorf("http.route %q; want %q", v.Emit(), c.route)
			}
			if span.Status().Code != c.spanStatus {
				t.Errorf("span status %v %q; want %v", span.Status().Code, span.Status().Description, c.spanStatus)
			}
			var exc bool
			for _, e := range span.Events() {
				exc = exc || e.Name == "exception"
			}
			if exc != c.exception {
				t.Errorf("exception event %v; want %v (events %v)", exc, c.exception, span.Events())
			}
			if got := w.Header().Get("Trace-Id"); got != tid {
				t.Errorf("Trace-Id header %q; want %q", got, tid)
			}
			if c.envelope {
				if got := envelopeTraceID(t, w); got != tid {
					t.Errorf("envelope trace_id %q; want %q", got, tid)
				}
			}
			line := s.lastLog(t)
			if line["trace_id"] != tid || line["span_id"] != sid || line["status"] != float64(c.status) {
				t.Errorf("access log %v; want trace_id %s span_id %s status %d", line, tid, sid, c.status)
			}
		})
	}
}

func TestPanicRecordedWithStack(t *testing.T) {
	p, rec := newRecorded(t)
	s := newServer(p.Middleware())
	w := s.do(t, http.MethodGet, "/panic", nil)
	if w.Code != 500 || !strings.Contains(w.Body.String(), "INTERNAL_PANIC") || strings.Contains(w.Body.String(), "boom") {
		t.Fatalf("answer %d %s", w.Code, w.Body)
	}
	span := onlySpan(t, rec)
	if span.Status().Description != "panic" {
		t.Errorf("status description %q", span.Status().Description)
	}
	var ev sdktrace.Event
	for _, e := range span.Events() {
		if e.Name == "exception" {
			ev = e
		}
	}
	got := map[attribute.Key]string{}
	for _, kv := range ev.Attributes {
		got[kv.Key] = kv.Value.Emit()
	}
	if got["exception.message"] != "boom" || got["exception.type"] != "string" ||
		!strings.Contains(got["exception.stacktrace"], "tracing_test.panicHere") {
		t.Errorf("exception event %v", got)
	}
	// Recovery logged the panic once with the trace ID of the span.
	if !strings.Contains(s.logs.String(), `"msg":"panic recovered"`) ||
		!strings.Contains(s.logs.String(), span.SpanContext().TraceID().String()) {
		t.Errorf("logs: %s", s.logs.String())
	}
}

func TestSkipPathsAreNotTraced(t *testing.T) {
	p, rec := newRecorded(t)
	s := newServer(middleware(t, "", tracing.WithProvider(p), tracing.WithSkipPaths("/healthz", "/orders/:id"), tracing.WithResponseHeader("X-Trace")))
	for _, target := range []string{"/healthz", "/orders/7"} {
		w := s.do(t, http.MethodGet, target, http.Header{"Traceparent": {"00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"}})
		if w.Code != 200 || w.Header().Get("X-Trace") != "" {
			t.Fatalf("%s: %d, X-Trace %q", target, w.Code, w.Header().Get("X-Trace"))
		}
		if _, ok := s.lastLog(t)["trace_id"]; ok {
			t.Errorf("%s: trace_id logged for a skipped path", target)
		}
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans for skipped paths", n)
	}
	s.do(t, http.MethodGet, "/ctx", nil)
	if n := len(rec.Ended()); n != 1 {
		t.Fatalf("%d spans for a traced path", n)
	}
}

func TestSpanNamesBounded(t *testing.T) {
	p, rec := newRecorded(t)
	s := newServer(p.Middleware())
	s.do(t, "PURGE", "/orders/1", nil) // no such method: 405
	s.do(t, http.MethodDelete, "/no/such/path", nil)
	s.do(t, http.MethodGet, "/orders/1", nil)
	s.do(t, http.MethodGet, "/orders/2", nil) // cached name
	var names []string
	for _, sp := range rec.Ended() {
		names = append(names, sp.Name())
	}
	if got := strings.Join(names, ","); got != "HTTP,DELETE,GET /orders/:id,GET /orders/:id" {
		t.Fatalf("span names %s", got)
	}
}

// Every server and transport option is checked by the constructor, which
// names the option in its error.
func TestOptionsValidated(t *testing.T) {
	for _, c := range []struct {
		opts []tracing.ServerOption
		want string
	}{
		{[]tracing.ServerOption{tracing.WithResponseHeader("bad header")}, `tracing: WithResponseHeader: "bad header" is not a header name`},
		{[]tracing.ServerOption{tracing.WithResponseHeader("")}, `tracing: WithResponseHeader: "" is not a header name`},
		{[]tracing.ServerOption{tracing.WithProvider(nil)}, "tracing: WithProvider: provider is nil"},
		{[]tracing.ServerOption{tracing.WithSkipPaths("/healthz"), nil}, "tracing: option 2 is nil"},
	} {
		if s, err := tracing.NewServer("", c.opts...); s != nil || err == nil || err.Error() != c.want {
			t.Errorf("NewServer: %v, %v; want %q", s, err, c.want)
		}
	}
	for _, c := range []struct {
		opts []tracing.TransportOption
		want string
	}{
		{[]tracing.TransportOption{tracing.WithProvider(nil)}, "tracing: WithProvider: provider is nil"},
		{[]tracing.TransportOption{nil}, "tracing: option 1 is nil"},
	} {
		if tr, err := tracing.NewTransport(nil, c.opts...); tr != nil || err == nil || err.Error() != c.want {
			t.Errorf("NewTransport: %v, %v; want %q", tr, err, c.want)
		}
	}
}

// middleware is NewServer(server, opts...).Middleware(), failing the test
// on a construction error.
func middleware(t testing.TB, server string, opts ...tracing.ServerOption) gin.HandlerFunc {
	t.Helper()
	s, err := tracing.NewServer(server, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s.Middleware()
}

// Without a Provider, the middleware runs any TracerProvider through
// otelgin, with the same span shape.
func TestMiddlewareWithOtherProvider(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	s := newServer(middleware(t, "orders.example", tracing.WithOTel(tp, propagation.TraceContext{})))
	parent := "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"
	for _, target := range []string{"/bad", "/panic"} {
		w := s.do(t, http.MethodGet, target, http.Header{"Traceparent": {parent}})
		if got := envelopeTraceID(t, w); got != "0102030405060708090a0b0c0d0e0f10" {
			t.Errorf("%s: envelope trace_id %q", target, got)
		}
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	if spans[0].Status().Code != codes.Unset || spans[1].Status().Code != codes.Error {
		t.Errorf("statuses %v, %v", spans[0].Status(), spans[1].Status())
	}
	for _, sp := range spans {
		if sp.Parent().SpanID().String() != "0102030405060708" || !sp.Parent().IsRemote() {
			t.Errorf("%s: parent %v", sp.Name(), sp.Parent())
		}
		if v, _ := attrOf(sp, "server.address"); v.AsString() != "orders.example" {
			t.Errorf("server.address %q", v.Emit())
		}
	}
}

// With OpenTelemetry's default global provider (a no-op) nothing is traced
// and no trace ID is invented: Setup or WithOTel is needed.
func TestMiddlewareWithNoopGlobal(t *testing.T) {
	s := newServer(middleware(t, "", tracing.WithResponseHeader("Trace-Id")))
	info, w := ctxInfo(t, s, nil)
	if info.TraceID != "00000000000000000000000000000000" || w.Header().Get("Trace-Id") != "" {
		t.Fatalf("context %+v, header %q", info, w.Header().Get("Trace-Id"))
	}
	// The default global propagator reads no headers either.
	info, _ = ctxInfo(t, s, http.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-01"}})
	if info.TraceID != "00000000000000000000000000000000" {
		t.Fatalf("context %+v", info)
	}
	if _, ok := s.lastLog(t)["trace_id"]; ok {
		t.Fatal("trace_id logged without a span")
	}
}

// A server-only option is no TransportOption, so passing one to
// NewTransport does not compile; the shared ones are both.
func TestOptionTypes(t *testing.T) {
	for name, o := range map[string]tracing.ServerOption{
		"WithSkipPaths": tracing.WithSkipPaths("/healthz"), "WithResponseHeader": tracing.WithResponseHeader("X"),
		"WithOtelgin": tracing.WithOtelgin(),
	} {
		if _, ok := o.(tracing.TransportOption); ok {
			t.Errorf("%s is a TransportOption", name)
		}
	}
	for _, o := range []tracing.CommonOption{tracing.WithProvider(nil), tracing.WithOTel(nil, nil)} {
		var _ tracing.ServerOption = o
		var _ tracing.TransportOption = o
	}
}
