// Package stdout builds an exporter that writes spans as JSON lines, for
// development, for [github.com/gingov/gingov/tracing.WithSpanExporter]:
//
//	exp, err := stdout.New()
//	if err != nil { ... }
//	tp, err := tracing.New(ctx, "orders", tracing.WithSpanExporter(exp))
package stdout

import (
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Option configures [New].
type Option interface{ apply(*config) }

type option func(*config)

func (f option) apply(c *config) { f(c) }

type config struct {
	w    io.Writer
	nilW bool
}

// WithWriter sets where spans are written (default os.Stdout; nil is an
// error). Writes come from the batch processor's goroutine.
func WithWriter(w io.Writer) Option {
	return option(func(c *config) { c.w, c.nilW = w, w == nil })
}

func newConfig(opts []Option) (config, error) {
	cfg := config{w: os.Stdout}
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("stdout: option %d is nil", i+1)
		}
		o.apply(&cfg)
	}
	if cfg.nilW {
		return cfg, fmt.Errorf("stdout: WithWriter: writer is nil")
	}
	return cfg, nil
}

// New returns an exporter writing each span as one JSON line (the
// OpenTelemetry SDK's stdouttrace). Pass it to [github.com/gingov/gingov/tracing.WithSpanExporter],
// which batches its spans: they are written when a batch is flushed.
func New(opts ...Option) (sdktrace.SpanExporter, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	exp, err := stdouttrace.New(stdouttrace.WithWriter(cfg.w))
	if err != nil {
		return nil, fmt.Errorf("stdout: %w", err)
	}
	return exp, nil
}
