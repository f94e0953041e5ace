// Package otlpgrpc builds an exporter that sends spans over OTLP/gRPC
// (collector port 4317), for [github.com/gingov/gingov/tracing.WithSpanExporter]:
//
//	exp, err := otlpgrpc.New(ctx, otlpgrpc.WithEndpoint("127.0.0.1:4317"), otlpgrpc.WithInsecure())
//	if err != nil { ... }
//	tp, err := tracing.New(ctx, "orders", tracing.WithSpanExporter(exp))
//
// It links gRPC; a program that sends OTLP over HTTP uses
// [github.com/gingov/gingov/tracing/otlphttp] instead and links none.
package otlpgrpc

import (
	"context"
	"fmt"
	"maps"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gingov/gingov/tracing/internal/otlpopt"
)

// DefaultEndpoint is where spans go when neither [WithEndpoint] nor
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT names a
// collector.
const DefaultEndpoint = "localhost:4317"

// Option configures [New].
type Option interface{ apply(*config) }

type option func(*config)

func (f option) apply(c *config) { f(c) }

type config struct {
	endpoint string
	insecure bool
	headers  map[string]string
}

// WithEndpoint sets the collector address: "host:port", or a URL
// "http://host:port" / "https://host:port" (http means no TLS). Default
// (and ""): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT, else [DefaultEndpoint].
func WithEndpoint(endpoint string) Option {
	return option(func(c *config) { c.endpoint = endpoint })
}

// WithInsecure sends without TLS (default: TLS, unless the endpoint is an
// http:// URL).
func WithInsecure() Option { return option(func(c *config) { c.insecure = true }) }

// WithHeaders adds metadata (e.g. authentication) to every export
// (default none). Calls add up; a later value for a name wins.
func WithHeaders(h map[string]string) Option {
	return option(func(c *config) {
		if c.headers == nil {
			c.headers = make(map[string]string, len(h))
		}
		maps.Copy(c.headers, h)
	})
}

func newConfig(opts []Option) (config, error) {
	var cfg config
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("otlpgrpc: option %d is nil", i+1)
		}
		o.apply(&cfg)
	}
	if cfg.endpoint != "" {
		if err := otlpopt.CheckEndpoint(cfg.endpoint); err != nil {
			return cfg, fmt.Errorf("otlpgrpc: WithEndpoint: %w", err)
		}
	}
	if err := otlpopt.CheckHeaders(cfg.headers); err != nil {
		return cfg, fmt.Errorf("otlpgrpc: WithHeaders: %w", err)
	}
	return cfg, nil
}

// New returns an OTLP/gRPC span exporter (the OpenTelemetry SDK's
// otlptracegrpc). It does not connect yet: the first export does. ctx
// bounds its construction only. Pass it to [github.com/gingov/gingov/tracing.WithSpanExporter],
// which batches its spans and stops it on Shutdown.
func New(ctx context.Context, opts ...Option) (sdktrace.SpanExporter, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var o []otlptracegrpc.Option
	switch {
	case otlpopt.IsURL(cfg.endpoint):
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
		return nil, fmt.Errorf("otlpgrpc: %w", err)
	}
	return exp, nil
}
