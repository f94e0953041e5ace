package tracing_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/otlpgrpc"
	"github.com/gingov/gingov/tracing/otlphttp"
)

// collector keeps what an OTLP receiver got.
type collector struct {
	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	auth     []string
}

func (c *collector) add(req *coltracepb.ExportTraceServiceRequest, auth string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests = append(c.requests, req)
	c.auth = append(c.auth, auth)
}

// spans flattens what was received: resource attributes and spans.
func (c *collector) spans() (res []map[string]string, spans []*tracepb.Span, auth []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.requests {
		for _, rs := range req.GetResourceSpans() {
			attrs := map[string]string{}
			for _, kv := range rs.GetResource().GetAttributes() {
				attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					res = append(res, attrs)
					spans = append(spans, s)
				}
			}
		}
	}
	return res, spans, append([]string(nil), c.auth...)
}

// serveOnce sends GET /orders/42 through p's middleware and returns the
// trace ID the handler saw.
func serveOnce(t *testing.T, p *tracing.Provider) string {
	t.Helper()
	r := gin.New()
	r.Use(middleware(t, "", tracing.WithProvider(p), tracing.WithResponseHeader("Trace-Id")))
	r.GET("/orders/:id", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/orders/42", nil))
	if w.Code != 200 || len(w.Header().Get("Trace-Id")) != 32 {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	return w.Header().Get("Trace-Id")
}

// checkExported asserts the collector got exactly the request's span,
// with the service resource, and only once Shutdown flushed it.
func checkExported(t *testing.T, p *tracing.Provider, col *collector, wantAuth string) {
	t.Helper()
	tid := serveOnce(t, p)
	// The batch timeout is an hour: nothing leaves before the flush
	// (TestBatchTimeout waits the hour in fake time).
	if _, spans, _ := col.spans(); len(spans) != 0 {
		t.Fatalf("%d spans exported before Shutdown", len(spans))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	res, spans, auth := col.spans()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported; want 1", len(spans))
	}
	s := spans[0]
	if got := traceHex(s.GetTraceId()); got != tid {
		t.Errorf("trace ID %s; want %s", got, tid)
	}
	if s.GetName() != "GET /orders/:id" || s.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("span %q kind %v", s.GetName(), s.GetKind())
	}
	var status int64
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == "http.response.status_code" {
			status = kv.GetValue().GetIntValue()
		}
	}
	if status != 200 {
		t.Errorf("http.response.status_code %d", status)
	}
	if res[0]["service.name"] != "orders" || res[0]["service.version"] != "v2" {
		t.Errorf("resource %v", res[0])
	}
	if auth[0] != wantAuth {
		t.Errorf("authorization %q; want %q", auth[0], wantAuth)
	}
}

func traceHex(b []byte) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, hex[c>>4], hex[c&0xF])
	}
	return string(out)
}

var authHeader = map[string]string{"Authorization": "Bearer t0ken"}

// built fails the test when building an exporter failed.
func built(t *testing.T) func(sdktrace.SpanExporter, error) sdktrace.SpanExporter {
	return func(exp sdktrace.SpanExporter, err error) sdktrace.SpanExporter {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}
}

// newOTLP is New("orders") exporting to exp, batches leaving on flush only.
func newOTLP(t *testing.T, exp sdktrace.SpanExporter) *tracing.Provider {
	t.Helper()
	p, err := tracing.New(t.Context(), "orders", tracing.WithSpanExporter(exp),
		tracing.WithServiceVersion("v2"), tracing.WithBatchOptions(sdktrace.WithBatchTimeout(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A real OTLP/HTTP receiver on loopback decodes the protobuf export.
func TestOTLPHTTPExport(t *testing.T) {
	for _, c := range []struct{ name, path string }{{"host:port", "/v1/traces"}, {"URL", "/custom/traces"}} {
		t.Run(c.name, func(t *testing.T) {
			col := &collector{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if r.URL.Path != c.path || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
					t.Errorf("export to %s (%s): %v", r.URL.Path, r.Header.Get("Content-Type"), err)
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				req := &coltracepb.ExportTraceServiceRequest{}
				if err := proto.Unmarshal(body, req); err != nil {
					t.Errorf("decode: %v", err)
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				col.add(req, r.Header.Get("Authorization"))
				out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
				w.Header().Set("Content-Type", "application/x-protobuf")
				_, _ = w.Write(out)
			}))
			defer srv.Close()
			opts := []otlphttp.Option{otlphttp.WithHeaders(authHeader)}
			if c.name == "URL" {
				opts = append(opts, otlphttp.WithEndpoint(srv.URL+c.path))
			} else {
				opts = append(opts, otlphttp.WithEndpoint(srv.Listener.Addr().String()), otlphttp.WithInsecure())
			}
			checkExported(t, newOTLP(t, built(t)(otlphttp.New(t.Context(), opts...))), col, "Bearer t0ken")
		})
	}
}

type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	col *collector
}

func (g *grpcCollector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var auth string
	if v := md.Get("authorization"); len(v) > 0 {
		auth = v[0]
	}
	g.col.add(req, auth)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// A real OTLP/gRPC receiver on loopback (the collector's TraceService).
func TestOTLPGRPCExport(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, &grpcCollector{col: col})
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	defer func() { gs.Stop(); <-done }()

	p := newOTLP(t, built(t)(otlpgrpc.New(t.Context(), otlpgrpc.WithHeaders(authHeader),
		otlpgrpc.WithEndpoint(lis.Addr().String()), otlpgrpc.WithInsecure())))
	checkExported(t, p, col, "Bearer t0ken")
}

// Shutdown is bounded by its context when the collector does not answer.
func TestShutdownBoundedWhenCollectorHangs(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	p := newOTLP(t, built(t)(otlphttp.New(t.Context(), otlphttp.WithEndpoint(srv.Listener.Addr().String()), otlphttp.WithInsecure())))
	serveOnce(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Shutdown(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v; want the context's deadline", err)
	}
}
