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
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gingov/gingov/tracing/internal/otlpopt"
)

// DefaultEndpoint is where spans go when neither [WithEndpoint] nor
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT names a
// collector.
const DefaultEndpoint = "localhost:4317"

// DefaultTimeout bounds one export, retries included, unless
// OTEL_EXPORTER_OTLP_TRACES_TIMEOUT / OTEL_EXPORTER_OTLP_TIMEOUT says
// otherwise (the OTLP default).
const DefaultTimeout = 10 * time.Second

// Option configures [New].
type Option interface{ apply(*otlpopt.Config) }

type option func(*otlpopt.Config)

func (f option) apply(c *otlpopt.Config) { f(c) }

// WithEndpoint sets the collector address: "host:port", or a URL
// "http://host:port" / "https://host:port" (http means no TLS). Default
// (and ""): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT, else [DefaultEndpoint].
func WithEndpoint(endpoint string) Option {
	return option(otlpopt.Endpoint(endpoint))
}

// WithInsecure sends without TLS (default: TLS, unless the endpoint is an
// http:// URL).
func WithInsecure() Option { return option(otlpopt.Insecure) }

// WithHeaders adds metadata (e.g. authentication) to every export
// (default none). Calls add up; a later value for a name wins.
func WithHeaders(h map[string]string) Option {
	return option(otlpopt.Headers(h))
}

func newConfig(opts []Option) (otlpopt.Config, error) {
	return otlpopt.Apply("otlpgrpc", opts, Option.apply)
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
	case otlpopt.IsURL(cfg.Endpoint):
		o = append(o, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	case cfg.Endpoint != "":
		o = append(o, otlptracegrpc.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Insecure {
		o = append(o, otlptracegrpc.WithInsecure())
	}
	if !timeoutFromEnv() {
		o = append(o, otlptracegrpc.WithTimeout(DefaultTimeout))
	}
	if len(cfg.Headers) > 0 {
		o = append(o, otlptracegrpc.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracegrpc.New(ctx, o...)
	if err != nil {
		return nil, fmt.Errorf("otlpgrpc: %w", err)
	}
	return exp, nil
}

// timeoutFromEnv reports whether the environment sets the export timeout,
// which then wins over DefaultTimeout.
func timeoutFromEnv() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TIMEOUT") != ""
}
