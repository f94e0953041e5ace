package tracing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultSampleRatio is the share of root traces (requests without an
// incoming trace context) that are sampled unless [WithSampleRatio] says
// otherwise: all of them, as the OpenTelemetry SDK does by default.
// Services with real traffic usually want 0.01–0.1: a dropped request costs
// a fraction of a sampled one (see the package benchmarks).
const DefaultSampleRatio = 1.0

// Option configures [New].
type Option interface{ apply(*config) }

type option func(*config)

func (f option) apply(c *config) { f(c) }

type config struct {
	ratio        float64
	version      string
	instance     string
	attrs        []attribute.KeyValue
	prop         propagation.TextMapPropagator
	propSet      bool
	propNames    []string // with WithPropagators
	propNamed    bool
	w3cProp      bool // prop is W3C tracecontext and/or baggage only
	processors   []sdktrace.SpanProcessor
	exporters    []sdktrace.SpanExporter
	batchOpts    []sdktrace.BatchSpanProcessorOption
	global       bool
	nilProcessor bool
	nilExporter  bool
	nilBatchOpt  bool
}

// WithSampleRatio sets the share of root traces sampled, in [0, 1]
// (default [DefaultSampleRatio]; 0 samples no root trace). The sampler is
// parent-based: a request whose incoming trace context is sampled is
// always sampled, one whose context is not sampled never is, and a root
// request is sampled when its trace ID falls in the ratio (the SDK's
// TraceIDRatioBased), so every service of a trace decides alike.
func WithSampleRatio(r float64) Option { return option(func(c *config) { c.ratio = r }) }

// WithServiceVersion sets service.version on every span (default and "":
// none).
func WithServiceVersion(v string) Option { return option(func(c *config) { c.version = v }) }

// WithServiceInstance sets service.instance.id on every span (default and
// "": none; OTEL_RESOURCE_ATTRIBUTES can carry one).
func WithServiceInstance(id string) Option { return option(func(c *config) { c.instance = id }) }

// WithResourceAttributes adds attributes to the resource of every span
// (default none). service.name, service.version and service.instance.id set
// by New's arguments and options win over them.
func WithResourceAttributes(kv ...attribute.KeyValue) Option {
	return option(func(c *config) { c.attrs = append(c.attrs, kv...) })
}

// WithPropagator replaces the propagator that reads and writes trace
// context in HTTP headers (default: [DefaultPropagators], W3C tracecontext
// and baggage; nil is an error). [WithPropagators] selects the built-in
// formats by name; this option takes any other. The last of the two given
// wins.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return option(func(c *config) {
		c.prop, c.propSet, c.propNames, c.propNamed = p, true, nil, false
	})
}

// WithPropagators selects the formats that read and write trace context in
// HTTP headers by name: [PropagatorTraceContext], [PropagatorBaggage],
// [PropagatorB3] (single b3 header) and [PropagatorB3Multi] (x-b3-*
// headers), as [NewPropagator] composes them (default:
// [DefaultPropagators], W3C tracecontext and baggage). An unknown name, or
// none, is an error from [New] naming it. Behind an Envoy sidecar with its
// Zipkin tracer, WithPropagators("tracecontext", "baggage", "b3multi")
// continues Envoy's trace and passes it on in both formats. The last of
// WithPropagator and WithPropagators given wins.
func WithPropagators(names ...string) Option {
	names = append([]string(nil), names...)
	return option(func(c *config) {
		c.prop, c.propSet, c.propNames, c.propNamed = nil, false, names, true
	})
}

// WithSpanProcessor adds a span processor (for instance the SDK's
// tracetest.SpanRecorder), besides the exporters' (default none; nil is an
// error). The provider owns it: [Provider.Shutdown] shuts it down.
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return option(func(c *config) {
		if sp == nil {
			c.nilProcessor = true
			return
		}
		c.processors = append(c.processors, sp)
	})
}

// WithSpanExporter adds an exporter behind a batch span processor (default
// none: requests still get trace IDs and sampling decisions, and span
// processors still see the spans; nil, or a nil pointer in e, is an error). The exporters live in
// their own packages so that a program links only the one it uses:
// [github.com/gingov/gingov/tracing/otlphttp] (OTLP over HTTP, no gRPC),
// [github.com/gingov/gingov/tracing/otlpgrpc] and
// [github.com/gingov/gingov/tracing/stdout]; any sdktrace.SpanExporter
// works. The provider owns the exporter from the call to New on: Shutdown
// stops it, and so does New when it fails.
func WithSpanExporter(e sdktrace.SpanExporter) Option {
	return option(func(c *config) {
		if v := reflect.ValueOf(e); e == nil || v.Kind() == reflect.Pointer && v.IsNil() {
			c.nilExporter = true // a nil pointer in e would panic at export
			return
		}
		c.exporters = append(c.exporters, e)
	})
}

// WithBatchOptions tunes the batch span processor of every exporter
// (default: the SDK's, a 5 s batch timeout, 512 spans a batch, a
// 2048-span queue).
func WithBatchOptions(opts ...sdktrace.BatchSpanProcessorOption) Option {
	return option(func(c *config) {
		for _, o := range opts {
			if o == nil {
				c.nilBatchOpt = true
				return
			}
		}
		c.batchOpts = append(c.batchOpts, opts...)
	})
}

// WithGlobal also installs the provider and its propagator as
// OpenTelemetry's globals (otel.SetTracerProvider,
// otel.SetTextMapPropagator), so other instrumentation uses them (default:
// the globals are left alone).
func WithGlobal() Option { return option(func(c *config) { c.global = true }) }

// newConfig applies opts over the defaults and returns the first problem.
func newConfig(service string, opts []Option) (config, error) {
	cfg := config{ratio: DefaultSampleRatio}
	nilOpt := 0
	for i, o := range opts {
		if o == nil {
			if nilOpt == 0 {
				nilOpt = i + 1
			}
			continue // the others still apply: New stops every exporter given
		}
		o.apply(&cfg)
	}
	switch {
	case nilOpt > 0:
		return cfg, fmt.Errorf("tracing: option %d is nil", nilOpt)
	case strings.TrimSpace(service) == "":
		return cfg, errors.New("tracing: service name is empty")
	case cfg.ratio != cfg.ratio || cfg.ratio < 0 || cfg.ratio > 1:
		return cfg, fmt.Errorf("tracing: WithSampleRatio: %v is not in [0, 1]", cfg.ratio)
	case cfg.propSet && cfg.prop == nil:
		return cfg, errors.New("tracing: WithPropagator: propagator is nil")
	case cfg.nilProcessor:
		return cfg, errors.New("tracing: WithSpanProcessor: processor is nil")
	case cfg.nilExporter:
		return cfg, errors.New("tracing: WithSpanExporter: exporter is nil")
	case cfg.nilBatchOpt:
		return cfg, errors.New("tracing: WithBatchOptions: option is nil")
	}
	if cfg.propNamed {
		prop, w3c, err := buildPropagator(cfg.propNames)
		if err != nil {
			return cfg, fmt.Errorf("tracing: WithPropagators: %w", err)
		}
		cfg.prop, cfg.w3cProp = prop, w3c
	}
	if cfg.prop == nil {
		cfg.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		cfg.w3cProp = true
	} else if cfg.propSet {
		cfg.w3cProp = w3cOnly(cfg.prop)
	}
	return cfg, nil
}

// Provider is a configured OpenTelemetry TracerProvider with its sampler
// and propagator. Its middleware decides sampling before any
// instrumentation runs, which it can do because it knows the sampler.
// It is safe for concurrent use.
type Provider struct {
	tp      *sdktrace.TracerProvider
	prop    propagation.TextMapPropagator
	w3cProp bool // prop reads W3C tracecontext and/or baggage only
	sampler sdktrace.Sampler
	root    sdktrace.Sampler // sampler's root sampler (requests without a parent)
	ratio   float64
	service string
}

// New builds a TracerProvider for service (service.name; required): the
// exporters given with [WithSpanExporter], each behind a batch span
// processor, a parent-based ratio sampler ([WithSampleRatio]), the
// resource (service name, version and instance, the SDK's telemetry.sdk.*
// attributes and OTEL_RESOURCE_ATTRIBUTES) and the propagation of
// [WithPropagators] (default W3C tracecontext + baggage). ctx bounds the shutdown of the exporters when New fails.
// Call [Provider.Shutdown] before exit to flush spans still queued.
func New(ctx context.Context, service string, opts ...Option) (*Provider, error) {
	cfg, err := newConfig(service, opts)
	if err != nil {
		shutdownAll(ctx, cfg.exporters)
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
		shutdownAll(ctx, cfg.exporters)
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	root := sdktrace.TraceIDRatioBased(cfg.ratio)
	sampler := sdktrace.ParentBased(root)
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithIDGenerator(idGenerator{}),
	}
	for _, e := range cfg.exporters {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(e, cfg.batchOpts...))
	}
	for _, sp := range cfg.processors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(sp))
	}
	p := &Provider{
		tp:      sdktrace.NewTracerProvider(tpOpts...),
		prop:    cfg.prop,
		w3cProp: cfg.w3cProp,
		sampler: sampler,
		root:    root,
		ratio:   cfg.ratio,
		service: service,
	}
	if cfg.global {
		otel.SetTracerProvider(p.tp)
		otel.SetTextMapPropagator(cfg.prop)
	}
	return p, nil
}

// shutdownAll stops exporters handed to a New that failed, rather than
// leak their connections.
func shutdownAll(ctx context.Context, exporters []sdktrace.SpanExporter) {
	for _, e := range exporters {
		_ = e.Shutdown(ctx)
	}
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
