package tracing_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/stdout"
)

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name    string
		service string
		opts    []tracing.Option
		want    string
	}{
		{"empty service", " ", nil, "tracing: service name is empty"},
		{"ratio below 0", "svc", []tracing.Option{tracing.WithSampleRatio(-0.1)}, "tracing: WithSampleRatio: -0.1 is not in [0, 1]"},
		{"ratio above 1", "svc", []tracing.Option{tracing.WithSampleRatio(1.5)}, "tracing: WithSampleRatio: 1.5 is not in [0, 1]"},
		{"ratio NaN", "svc", []tracing.Option{tracing.WithSampleRatio(math.NaN())}, "tracing: WithSampleRatio: NaN"},
		{"nil processor", "svc", []tracing.Option{tracing.WithSpanProcessor(nil)}, "tracing: WithSpanProcessor: processor is nil"},
		{"nil exporter", "svc", []tracing.Option{tracing.WithSpanExporter(nil)}, "tracing: WithSpanExporter: exporter is nil"},
		{"typed-nil exporter", "svc", []tracing.Option{tracing.WithSpanExporter((*nilExporter)(nil))}, "tracing: WithSpanExporter: exporter is nil"},
		{"nil propagator", "svc", []tracing.Option{tracing.WithPropagator(nil)}, "tracing: WithPropagator: propagator is nil"},
		{"nil batch option", "svc", []tracing.Option{tracing.WithBatchOptions(nil)}, "tracing: WithBatchOptions: option is nil"},
		{"nil option", "svc", []tracing.Option{tracing.WithGlobal(), nil}, "tracing: option 2 is nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := tracing.New(t.Context(), c.service, c.opts...)
			if err == nil {
				_ = p.Shutdown(context.Background())
				t.Fatal("New accepted the configuration")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %q; want %q", err, c.want)
			}
		})
	}
}

// stopCounter is an exporter that counts its shutdowns.
type stopCounter struct{ stops atomic.Int32 }

func (*stopCounter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (s *stopCounter) Shutdown(context.Context) error                           { s.stops.Add(1); return nil }

// The provider owns the exporters it is given: a failed New stops them
// (no connection leaks), a successful one stops them on Shutdown, once.
func TestNewOwnsExporters(t *testing.T) {
	e := &stopCounter{}
	if _, err := tracing.New(t.Context(), "svc", tracing.WithSpanExporter(e), tracing.WithSampleRatio(2)); err == nil {
		t.Fatal("New accepted ratio 2")
	}
	if n := e.stops.Load(); n != 1 {
		t.Fatalf("exporter of a failed New stopped %d times; want 1", n)
	}
	e = &stopCounter{}
	if _, err := tracing.New(t.Context(), "svc", nil, tracing.WithSpanExporter(e)); err == nil {
		t.Fatal("New accepted a nil option")
	}
	if n := e.stops.Load(); n != 1 {
		t.Fatalf("exporter given after a nil option stopped %d times; want 1", n)
	}
	e = &stopCounter{}
	p, err := tracing.New(t.Context(), "svc", tracing.WithSpanExporter(e))
	if err != nil {
		t.Fatal(err)
	}
	if e.stops.Load() != 0 {
		t.Fatal("exporter stopped by a successful New")
	}
	_ = p.Shutdown(context.Background())
	_ = p.Shutdown(context.Background())
	if n := e.stops.Load(); n != 1 {
		t.Fatalf("exporter stopped %d times by Shutdown; want 1", n)
	}
}

func TestNewDefaults(t *testing.T) {
	p, err := tracing.New(t.Context(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if p.SampleRatio() != tracing.DefaultSampleRatio || tracing.DefaultSampleRatio != 1 {
		t.Fatalf("ratio %v", p.SampleRatio())
	}
	f := p.Propagator().Fields()
	slices.Sort(f)
	if strings.Join(f, ",") != "baggage,traceparent,tracestate" {
		t.Fatalf("propagator fields %v", f)
	}
}

// The stdout exporter writes spans as JSON, with the resource, once
// Shutdown flushes the batch.
func TestStdoutExporterFlushesOnShutdown(t *testing.T) {
	var out testenv.Buffer
	exp, err := stdout.New(stdout.WithWriter(&out))
	if err != nil {
		t.Fatal(err)
	}
	p, err := tracing.New(t.Context(), "orders", tracing.WithSpanExporter(exp),
		tracing.WithServiceVersion("v1.2.3"), tracing.WithServiceInstance("orders-1"))
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer("test").Start(t.Context(), "work")
	span.End()
	if out.String() != "" {
		t.Fatal("span written before the batch was flushed")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name     string
		Resource []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("stdout: %v\n%s", err, out.String())
	}
	res := map[string]any{}
	for _, kv := range got.Resource {
		res[kv.Key] = kv.Value.Value
	}
	if got.Name != "work" || res["service.name"] != "orders" || res["service.version"] != "v1.2.3" ||
		res["service.instance.id"] != "orders-1" || res["telemetry.sdk.language"] != "go" {
		t.Fatalf("span %q, resource %v", got.Name, res)
	}
	// After Shutdown, spans go nowhere and Shutdown again is a no-op.
	_, span = p.Tracer("test").Start(t.Context(), "late")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Spans wait in the batch until its timeout (or Shutdown): with a batch
// timeout of an hour, nothing is exported for 59 minutes, then the batch
// leaves. Fake time (testing/synctest), so the hour takes no time.
func TestBatchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := tracetest.NewInMemoryExporter()
		p, err := tracing.New(t.Context(), "orders", tracing.WithSpanExporter(mem),
			tracing.WithBatchOptions(sdktrace.WithBatchTimeout(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Shutdown(context.Background())
		r := gin.New()
		r.Use(p.Middleware())
		r.GET("/orders/:id", func(c *gin.Context) { c.Status(http.StatusOK) })
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/orders/1", nil))
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if n := len(mem.GetSpans()); n != 0 {
			t.Fatalf("%d spans exported before the batch timeout", n)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if spans := mem.GetSpans(); len(spans) != 1 || spans[0].Name != "GET /orders/:id" {
			t.Fatalf("exported after the batch timeout: %v", spans)
		}
	})
}

// newRecorded returns a Provider whose spans land in an in-memory recorder.
func newRecorded(t *testing.T, opts ...tracing.Option) (*tracing.Provider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	p, err := tracing.New(t.Context(), "svc", append([]tracing.Option{tracing.WithSpanProcessor(rec)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, rec
}

// nilExporter is an exporter type whose nil pointer New must reject.
type nilExporter struct{}

func (*nilExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (*nilExporter) Shutdown(context.Context) error                             { return nil }

// A nil WithProvider stays an error when a later WithProvider or WithOTel
// replaces it.
func TestNilProviderNotCleared(t *testing.T) {
	tp, err := tracing.New(t.Context(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tp.Shutdown(context.Background()) }()
	for name, later := range map[string]tracing.CommonOption{"WithOTel": tracing.WithOTel(nil, nil), "WithProvider": tracing.WithProvider(tp)} {
		const want = "tracing: WithProvider: provider is nil"
		if s, err := tracing.NewServer("", tracing.WithProvider(nil), later); s != nil || err == nil || err.Error() != want {
			t.Errorf("NewServer, then %s: %v; want %q", name, err, want)
		}
		if tr, err := tracing.NewTransport(nil, tracing.WithProvider(nil), later); tr != nil || err == nil || err.Error() != want {
			t.Errorf("NewTransport, then %s: %v; want %q", name, err, want)
		}
	}
}
