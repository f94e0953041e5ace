package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/tracing"
)

func TestSetupValidates(t *testing.T) {
	cases := []struct {
		name    string
		service string
		opts    []tracing.Option
		want    string
	}{
		{"empty service", " ", nil, "service name is empty"},
		{"ratio below 0", "svc", []tracing.Option{tracing.WithSampleRatio(-0.1)}, "sample ratio -0.1 is not in [0, 1]"},
		{"ratio above 1", "svc", []tracing.Option{tracing.WithSampleRatio(1.5)}, "sample ratio 1.5 is not in [0, 1]"},
		{"ratio NaN", "svc", []tracing.Option{tracing.WithSampleRatio(math.NaN())}, "sample ratio NaN"},
		{"unknown exporter", "svc", []tracing.Option{tracing.WithExporter("zipkin")}, `exporter "zipkin" is not none, stdout, otlp-grpc or otlp-http`},
		{"endpoint without OTLP", "svc", []tracing.Option{tracing.WithExporter(tracing.ExporterStdout), tracing.WithEndpoint("127.0.0.1:4318")}, `endpoint "127.0.0.1:4318" is set but exporter "stdout"`},
		{"endpoint not host:port", "svc", []tracing.Option{tracing.WithExporter(tracing.ExporterOTLPHTTP), tracing.WithEndpoint("nowhere")}, `endpoint "nowhere" is not host:port`},
		{"endpoint bad port", "svc", []tracing.Option{tracing.WithExporter(tracing.ExporterOTLPGRPC), tracing.WithEndpoint("127.0.0.1:99999")}, "has no valid port"},
		{"endpoint bad scheme", "svc", []tracing.Option{tracing.WithExporter(tracing.ExporterOTLPHTTP), tracing.WithEndpoint("ftp://127.0.0.1:4318")}, "is not host:port or an http(s) URL"},
		{"stdout writer without stdout", "svc", []tracing.Option{tracing.WithStdoutWriter(&bytes.Buffer{})}, `stdout writer is set but exporter is "none"`},
		{"nil processor", "svc", []tracing.Option{tracing.WithSpanProcessor(nil)}, "WithSpanProcessor: processor is nil"},
		{"nil propagator", "svc", []tracing.Option{tracing.WithPropagator(nil)}, "WithPropagator: propagator is nil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := tracing.Setup(t.Context(), c.service, c.opts...)
			if err == nil {
				_ = p.Shutdown(context.Background())
				t.Fatal("Setup accepted the configuration")
			}
			if !strings.HasPrefix(err.Error(), "tracing: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q; want it to contain %q", err, c.want)
			}
		})
	}
}

func TestSetupDefaults(t *testing.T) {
	p, err := tracing.Setup(t.Context(), "svc")
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
	// Accepted endpoint forms.
	for _, ep := range []string{"127.0.0.1:4318", "localhost:4318", "http://127.0.0.1:4318/custom/traces", "https://collector.example:443"} {
		q, err := tracing.Setup(t.Context(), "svc", tracing.WithExporter(tracing.ExporterOTLPHTTP), tracing.WithEndpoint(ep))
		if err != nil {
			t.Fatalf("%s: %v", ep, err)
		}
		if err := q.Shutdown(context.Background()); err != nil {
			t.Fatalf("%s: shutdown: %v", ep, err)
		}
	}
}

// The stdout exporter writes spans as JSON, with the resource, once
// Shutdown flushes the batch.
func TestStdoutExporterFlushesOnShutdown(t *testing.T) {
	var out testenv.Buffer
	p, err := tracing.Setup(t.Context(), "orders",
		tracing.WithExporter(tracing.ExporterStdout), tracing.WithStdoutWriter(&out),
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

// newRecorded returns a Provider whose spans land in an in-memory recorder.
func newRecorded(t *testing.T, opts ...tracing.Option) (*tracing.Provider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	p, err := tracing.Setup(t.Context(), "svc", append([]tracing.Option{tracing.WithSpanProcessor(rec)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, rec
}
