package tracing_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/tracing"
)

// twoServices runs service B and service A (whose /call calls B's target
// through the provider's client) on loopback, each traced by its own
// provider.
func twoServices(t *testing.T, ratioA float64, bTarget string) (a, b *httptest.Server, recA, recB *tracetest.SpanRecorder) {
	t.Helper()
	pb, recB := newRecorded(t)
	rb := gin.New()
	rb.Use(pb.Middleware())
	rb.GET("/items/:id", func(c *gin.Context) {
		c.String(http.StatusOK, trace.SpanContextFromContext(c.Request.Context()).TraceID().String())
	})
	rb.GET("/missing", func(c *gin.Context) { c.Status(http.StatusNotFound) })
	b = httptest.NewServer(rb)
	t.Cleanup(b.Close)

	pa, recA := newRecorded(t, tracing.WithSampleRatio(ratioA))
	client := pa.Client()
	t.Cleanup(client.CloseIdleConnections)
	ra := gin.New()
	ra.Use(pa.Middleware())
	ra.GET("/call", func(c *gin.Context) {
		req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, b.URL+bTarget+"?token=secret", nil)
		if err != nil {
			_ = c.AbortWithError(http.StatusInternalServerError, err)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			_ = c.AbortWithError(http.StatusBadGateway, err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		c.String(resp.StatusCode, string(body))
	})
	a = httptest.NewServer(ra)
	t.Cleanup(a.Close)
	return a, b, recA, recB
}

func get(t *testing.T, url string, hdr http.Header) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func byName(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// A calls B through the transport: one trace across both services, B's
// server span a child of A's client span, itself a child of A's server span.
func TestTraceAcrossTwoServices(t *testing.T) {
	a, b, recA, recB := twoServices(t, 1, "/items/7")
	defer http.DefaultClient.CloseIdleConnections()
	code, body := get(t, a.URL+"/call", nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	aServer, aClient := byName(recA.Ended(), "GET /call"), byName(recA.Ended(), "GET")
	bServer := byName(recB.Ended(), "GET /items/:id")
	if aServer == nil || aClient == nil || bServer == nil {
		t.Fatalf("spans A %v, B %v", recA.Ended(), recB.Ended())
	}
	tid := aServer.SpanContext().TraceID()
	if aClient.SpanContext().TraceID() != tid || bServer.SpanContext().TraceID() != tid || body != tid.String() {
		t.Fatalf("trace IDs: A server %s, A client %s, B server %s, B saw %s",
			tid, aClient.SpanContext().TraceID(), bServer.SpanContext().TraceID(), body)
	}
	if aClient.Parent().SpanID() != aServer.SpanContext().SpanID() || aClient.SpanKind() != trace.SpanKindClient {
		t.Errorf("A client span parent %v kind %v", aClient.Parent(), aClient.SpanKind())
	}
	if bServer.Parent().SpanID() != aClient.SpanContext().SpanID() || !bServer.Parent().IsRemote() {
		t.Errorf("B server span parent %v; want A client %v", bServer.Parent(), aClient.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range aClient.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	host, port, _ := strings.Cut(strings.TrimPrefix(b.URL, "http://"), ":")
	if attrs["http.request.method"] != "GET" || attrs["server.address"] != host || attrs["server.port"] != port ||
		attrs["url.full"] != b.URL+"/items/7" || attrs["http.response.status_code"] != "200" {
		t.Errorf("client span attributes %v", attrs)
	}
	if aClient.Status().Code != codes.Unset {
		t.Errorf("client status %v", aClient.Status())
	}
}

// An unsampled trace is propagated unsampled: B records nothing and sees
// the same trace ID.
func TestUnsampledTraceAcrossTwoServices(t *testing.T) {
	a, _, recA, recB := twoServices(t, 0, "/items/7")
	defer http.DefaultClient.CloseIdleConnections()
	_, body := get(t, a.URL+"/call", http.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-00"}})
	if body != parentTrace {
		t.Fatalf("B saw trace %q", body)
	}
	if len(recA.Ended())+len(recB.Ended()) != 0 {
		t.Fatalf("spans recorded for an unsampled trace: %v %v", recA.Ended(), recB.Ended())
	}
}

// A 4xx answer marks the client span as an error (semantic conventions for
// clients) while B's server span is not one.
func TestClientSpanErrorStatus(t *testing.T) {
	a, _, recA, recB := twoServices(t, 1, "/missing")
	defer http.DefaultClient.CloseIdleConnections()
	if code, _ := get(t, a.URL+"/call", nil); code != 404 {
		t.Fatalf("status %d", code)
	}
	if cs := byName(recA.Ended(), "GET"); cs == nil || cs.Status().Code != codes.Error {
		t.Fatalf("client span %v", cs)
	}
	if ss := byName(recB.Ended(), "GET /missing"); ss == nil || ss.Status().Code != codes.Unset {
		t.Fatalf("server span %v", ss)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The transport leaves the caller's request alone and records transport
// errors.
func TestTransportDoesNotModifyRequest(t *testing.T) {
	p, rec := newRecorded(t)
	var sent *http.Request
	boom := errors.New("connection refused")
	rt := p.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) { sent = r; return nil, boom }))
	ctx, parent := p.Tracer("test").Start(t.Context(), "parent")
	req, _ := http.NewRequestWithContext(ctx, "PURGE", "http://user:pw@127.0.0.1:1/x?q=1", nil)
	req.Header.Set("X-Keep", "1")
	if _, err := rt.RoundTrip(req); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	parent.End()
	if req.Header.Get("Traceparent") != "" || len(req.Header) != 1 {
		t.Fatalf("caller's header changed: %v", req.Header)
	}
	if sent.Header.Get("X-Keep") != "1" || !strings.HasPrefix(sent.Header.Get("Traceparent"), "00-"+parent.SpanContext().TraceID().String()) {
		t.Fatalf("sent header %v", sent.Header)
	}
	cs := byName(rec.Ended(), "HTTP")
	if cs == nil || cs.Status().Code != codes.Error || cs.Status().Description != boom.Error() {
		t.Fatalf("client span %v", cs)
	}
	for _, kv := range cs.Attributes() {
		if kv.Key == "url.full" && kv.Value.AsString() != "http://127.0.0.1:1/x" {
			t.Errorf("url.full %q keeps user info or query", kv.Value.AsString())
		}
	}
}

// NewTransport with WithOTel uses that provider and propagator.
func TestNewTransportWithOTel(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	var sent http.Header
	rt, err := tracing.NewTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	}), tracing.WithOTel(tp, propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1:1/x", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	cs := onlySpan(t, rec)
	if cs.Name() != "GET" || cs.SpanKind() != trace.SpanKindClient ||
		!strings.HasPrefix(sent.Get("Traceparent"), "00-"+cs.SpanContext().TraceID().String()+"-"+cs.SpanContext().SpanID().String()) {
		t.Fatalf("span %q %v, sent %v", cs.Name(), cs.SpanKind(), sent)
	}
}
