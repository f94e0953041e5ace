package tracing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Exporter names where spans are sent.
type Exporter string

// The exporters [Setup] knows.
const (
	// ExporterNone exports nothing: requests still get trace IDs (in logs,
	// envelopes and outbound headers) and sampling decisions, and span
	// processors added with [WithSpanProcessor] still see the spans.
	ExporterNone Exporter = "none"
	// ExporterStdout writes spans as JSON lines, for development.
	ExporterStdout Exporter = "stdout"
	// ExporterOTLPGRPC sends OTLP over gRPC (collector port 4317).
	ExporterOTLPGRPC Exporter = "otlp-grpc"
	// ExporterOTLPHTTP sends OTLP protobuf over HTTP (collector port 4318, path /v1/traces).
	ExporterOTLPHTTP Exporter = "otlp-http"
)

// DefaultSampleRatio is the share of root traces (requests without an
// incoming trace context) that are sampled unless [WithSampleRatio] says
// otherwise: all of them, as the OpenTelemetry SDK does by default.
// Services with real traffic usually want 0.01–0.1: a dropped request costs
// a fraction of a sampled one (see the package benchmarks).
const DefaultSampleRatio = 1.0

// Option configures [Setup].
type Option func(*config)

type config struct {
	exporter   Exporter
	endpoint   string
	insecure   bool
	headers    map[string]string
	stdout     io.Writer
	ratio      float64
	version    string
	instance   string
	attrs      []attribute.KeyValue
	prop       propagation.TextMapPropagator
	processors []sdktrace.SpanProcessor
	exporters  []sdktrace.SpanExporter
	batchOpts  []sdktrace.BatchSpanProcessorOption
	global     bool
	errs       []error
}

// WithExporter selects where spans go (default, and "": [ExporterNone]).
func WithExporter(e Exporter) Option { return func(c *config) { c.exporter = e } }

// WithEndpoint sets the OTLP collector address: "host:port", or a URL
// "http://host:port/path" / "https://…" (http means no TLS; for
// [ExporterOTLPHTTP] the path replaces /v1/traces). Default: the
// exporter's own, from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317 (gRPC) or
// localhost:4318 (HTTP). Only valid with an OTLP exporter.
func WithEndpoint(endpoint string) Option { return func(c *config) { c.endpoint = endpoint } }

// WithInsecure sends OTLP without TLS (default: TLS, unless the endpoint
// is an http:// URL).
func WithInsecure() Option { return func(c *config) { c.insecure = true } }

// WithHeaders adds headers (e.g. authentication) to every OTLP export.
func WithHeaders(h map[string]string) Option {
	return func(c *config) {
		if c.headers == nil {
			c.headers = make(map[string]string, len(h))
		}
		for k, v := range h {
			c.headers[k] = v
		}
	}
}

// WithStdoutWriter sets where [ExporterStdout] writes (default os.Stdout).
func WithStdoutWriter(w io.Writer) Option { return func(c *config) { c.stdout = w } }

// WithSampleRatio sets the share of root traces sampled, in [0, 1]
// (default [DefaultSampleRatio]). The sampler is parent-based: a request
// whose incoming trace context is sampled is always sampled, one whose
// context is not sampled never is, and a root request is sampled when its
// trace ID falls in the ratio (the SDK's TraceIDRatioBased), so every
// service of a trace decides alike.
func WithSampleRatio(r float64) Option { return func(c *config) { c.ratio = r } }

// WithServiceVersion sets service.version on every span (default none).
func WithServiceVersion(v string) Option { return func(c *config) { c.version = v } }

// WithServiceInstance sets service.instance.id on every span (default
// none; OTEL_RESOURCE_ATTRIBUTES can carry one).
func WithServiceInstance(id string) Option { return func(c *config) { c.instance = id } }

// WithResourceAttributes adds attributes to the resource of every span.
// service.name, service.version and service.instance.id set by Setup's
// arguments and options win over them.
func WithResourceAttributes(kv ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, kv...) }
}

// WithPropagator replaces the propagator that reads and writes trace
// context in HTTP headers (default: W3C tracecontext and baggage). B3 or
// another format can be added by passing, e.g.,
// propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New()).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) {
		if p == nil {
			c.errs = append(c.errs, errors.New("tracing: WithPropagator: propagator is nil"))
			return
		}
		c.prop = p
	}
}

// WithSpanProcessor adds a span processor (for instance the SDK's
// tracetest.SpanRecorder), besides the exporter's.
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return func(c *config) {
		if sp == nil {
			c.errs = append(c.errs, errors.New("tracing: WithSpanProcessor: processor is nil"))
			return
		}
		c.processors = append(c.processors, sp)
	}
}

// WithSpanExporter adds an exporter, batched like the configured one.
func WithSpanExporter(e sdktrace.SpanExporter) Option {
	return func(c *config) {
		if e == nil {
			c.errs = append(c.errs, errors.New("tracing: WithSpanExporter: exporter is nil"))
			return
		}
		c.exporters = append(c.exporters, e)
	}
}

// WithBatchOptions tunes the batch span processor of every exporter (the
// SDK's defaults: 5 s batch timeout, 512 spans a batch, a 2048-span queue).
func WithBatchOptions(opts ...sdktrace.BatchSpanProcessorOption) Option {
	return func(c *config) { c.batchOpts = append(c.batchOpts, opts...) }
}

// WithGlobal also installs the provider and its propagator as
// OpenTelemetry's globals (otel.SetTracerProvider,
// otel.SetTextMapPropagator), so other instrumentation uses them.
func WithGlobal() Option { return func(c *config) { c.global = true } }

// Provider is a configured OpenTelemetry TracerProvider with its sampler
// and propagator. Its middleware decides sampling before any
// instrumentation runs, which it can do because it knows the sampler.
// It is safe for concurrent use.
type Provider struct {
	tp      *sdktrace.TracerProvider
	prop    propagation.TextMapPropagator
	sampler sdktrace.Sampler
	ratio   float64
	service string
}

// Setup builds a TracerProvider for service (service.name; required): the
// exporter chosen by [WithExporter] behind a batch span processor, a
// parent-based ratio sampler ([WithSampleRatio]), the resource (service
// name, version and instance, the SDK's telemetry.sdk.* attributes and
// OTEL_RESOURCE_ATTRIBUTES) and W3C tracecontext + baggage propagation.
// ctx bounds the exporters' construction only. Call [Provider.Shutdown]
// before exit to flush spans still queued.
func Setup(ctx context.Context, service string, opts ...Option) (*Provider, error) {
	cfg := config{exporter: ExporterNone, ratio: DefaultSampleRatio}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := validate(service, &cfg); err != nil {
		return nil, err
	}
	exp, err := newExporter(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	attrs := append([]attribute.KeyValue(nil), cfg.attrs...)
	attrs = append(attrs, attribute.String("service.name", service))
	if cfg.version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.version))
	}
	if cfg.instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.instance))
	}
	// Schemaless: it merges with the SDK's default resource whatever
	// semantic-convention version that carries.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		// Only conflicting schema URLs fail, and ours has none.
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.ratio))
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithIDGenerator(idGenerator{}),
	}
	if exp != nil {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp, cfg.batchOpts...))
	}
	for _, e := range cfg.exporters {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(e, cfg.batchOpts...))
	}
	for _, sp := range cfg.processors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(sp))
	}
	prop := cfg.prop
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	p := &Provider{
		tp:      sdktrace.NewTracerProvider(tpOpts...),
		prop:    prop,
		sampler: sampler,
		ratio:   cfg.ratio,
		service: service,
	}
	if cfg.global {
		otel.SetTracerProvider(p.tp)
		otel.SetTextMapPropagator(prop)
	}
	return p, nil
}

func validate(service string, cfg *config) error {
	if len(cfg.errs) > 0 {
		return errors.Join(cfg.errs...)
	}
	if strings.TrimSpace(service) == "" {
		return errors.New("tracing: service name is empty")
	}
	if cfg.ratio != cfg.ratio || cfg.ratio < 0 || cfg.ratio > 1 {
		return fmt.Errorf("tracing: sample ratio %v is not in [0, 1]", cfg.ratio)
	}
	if cfg.exporter == "" {
		cfg.exporter = ExporterNone
	}
	switch cfg.exporter {
	case ExporterNone, ExporterStdout:
		if cfg.endpoint != "" {
			return fmt.Errorf("tracing: endpoint %q is set but exporter %q sends nowhere", cfg.endpoint, cfg.exporter)
		}
	case ExporterOTLPGRPC, ExporterOTLPHTTP:
		if cfg.endpoint != "" {
			if err := checkEndpoint(cfg.endpoint); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("tracing: exporter %q is not %s, %s, %s or %s",
			cfg.exporter, ExporterNone, ExporterStdout, ExporterOTLPGRPC, ExporterOTLPHTTP)
	}
	if cfg.stdout != nil && cfg.exporter != ExporterStdout {
		return fmt.Errorf("tracing: stdout writer is set but exporter is %q", cfg.exporter)
	}
	return nil
}

// checkEndpoint accepts host:port with a numeric port, or an http(s) URL
// with a host.
func checkEndpoint(ep string) error {
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("tracing: endpoint %q is not host:port or an http(s) URL", ep)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" {
		return fmt.Errorf("tracing: endpoint %q is not host:port or an http(s) URL", ep)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("tracing: endpoint %q has no valid port", ep)
	}
	return nil
}

func newExporter(ctx context.Context, cfg *config) (sdktrace.SpanExporter, error) {
	isURL := strings.Contains(cfg.endpoint, "://")
	switch cfg.exporter {
	case ExporterStdout:
		w := cfg.stdout
		if w == nil {
			w = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("tracing: stdout exporter: %w", err)
		}
		return exp, nil
	case ExporterOTLPGRPC:
		var o []otlptracegrpc.Option
		switch {
		case isURL:
			o = append(o, otlptracegrpc.WithEndpointURL(cfg.endpoint))
		case cfg.endpoint != "":
			o = append(o, otlptracegrpc.WithEndpoint(cfg.endpoint))
		}
		if cfg.insecure {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		if len(cfg.headers) > 0 {
			o = append(o, otlptracegrpc.WithHeaders(cfg.headers))
		}
		exp, err := otlptracegrpc.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("tracing: otlp-grpc exporter: %w", err)
		}
		return exp, nil
	case ExporterOTLPHTTP:
		var o []otlptracehttp.Option
		switch {
		case isURL:
			o = append(o, otlptracehttp.WithEndpointURL(cfg.endpoint))
		case cfg.endpoint != "":
			o = append(o, otlptracehttp.WithEndpoint(cfg.endpoint))
		}
		if cfg.insecure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		if len(cfg.headers) > 0 {
			o = append(o, otlptracehttp.WithHeaders(cfg.headers))
		}
		exp, err := otlptracehttp.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("tracing: otlp-http exporter: %w", err)
		}
		return exp, nil
	}
	return nil, nil
}

// TracerProvider returns the SDK provider, for instrumentation that takes one.
func (p *Provider) TracerProvider() *sdktrace.TracerProvider { return p.tp }

// Propagator returns the propagator that reads and writes trace headers.
func (p *Provider) Propagator() propagation.TextMapPropagator { return p.prop }

// Tracer returns a tracer of the provider, for spans of the service's own.
func (p *Provider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return p.tp.Tracer(name, opts...)
}

// SampleRatio returns the share of root traces sampled.
func (p *Provider) SampleRatio() float64 { return p.ratio }

// ForceFlush exports every span ended so far, bounded by ctx.
func (p *Provider) ForceFlush(ctx context.Context) error { return p.tp.ForceFlush(ctx) }

// Shutdown flushes the spans still queued and stops the exporters, bounded
// by ctx. Spans ended afterwards are dropped. Calling it again does nothing.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }

// idGenerator is the SDK's ID semantics (random, non-zero) with one
// addition: a root span started by the middleware takes the trace ID the
// middleware already drew to decide sampling, so that the decision made
// before instrumentation runs and the SDK's own one see the same ID.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	// The server span's tracer clears the preset once the span has started,
	// on the request's goroutine before any handler runs, so a new root
	// started later by a handler gets its own trace ID.
	if st, ok := ctx.Value(stateKey{}).(*serverState); ok && st.presetTrace.IsValid() {
		return st.presetTrace, newSpanID()
	}
	return newTraceID(), newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
