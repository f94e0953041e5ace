package tracing

import (
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/reqinfo"
)

// DefaultResponseHeader is the conventional name to pass to
// [WithResponseHeader] (by default no header is written).
const DefaultResponseHeader = "Trace-Id"

// ServerOption configures [NewServer].
type ServerOption interface{ applyServer(*serverConfig) }

// TransportOption configures [NewTransport].
type TransportOption interface{ applyTransport(*transportConfig) }

// CommonOption is an option valid for both [NewServer] and [NewTransport]:
// the tracer provider and propagator of either side.
type CommonOption interface {
	ServerOption
	TransportOption
}

// httpConfig is what both sides share.
type httpConfig struct {
	provider    *Provider
	nilProvider bool
	tp          trace.TracerProvider
	prop        propagation.TextMapPropagator
}

type serverConfig struct {
	httpConfig
	otelgin   bool
	skip      reqinfo.PathSet
	header    string
	headerSet bool
}

type transportConfig struct {
	httpConfig
}

type httpOption func(*httpConfig)

func (f httpOption) applyServer(c *serverConfig)       { f(&c.httpConfig) }
func (f httpOption) applyTransport(c *transportConfig) { f(&c.httpConfig) }

type serverOption func(*serverConfig)

func (f serverOption) applyServer(c *serverConfig) { f(c) }

// WithProvider uses p's tracer provider and propagator (nil is an error,
// even when a later WithProvider or WithOTel replaces it).
// With it the server middleware knows the sampler and drops unsampled
// requests before any instrumentation runs (see [NewServer]). Default:
// OpenTelemetry's globals, as with [WithOTel](nil, nil).
func WithProvider(p *Provider) CommonOption {
	return httpOption(func(c *httpConfig) {
		if p == nil {
			*c = httpConfig{nilProvider: true}
			return
		}
		*c = p.httpConfig().keepNil(c)
	})
}

// WithOTel uses a tracer provider and propagator built elsewhere (nil
// ones: OpenTelemetry's globals, the default). Every request then goes
// through otelgin, which starts the span and lets tp's sampler decide.
func WithOTel(tp trace.TracerProvider, prop propagation.TextMapPropagator) CommonOption {
	return httpOption(func(c *httpConfig) {
		*c = httpConfig{tp: tp, prop: prop}.keepNil(c)
	})
}

// keepNil carries a nil WithProvider seen earlier into the replacing
// configuration c: a later WithProvider or WithOTel does not clear it.
func (c httpConfig) keepNil(old *httpConfig) httpConfig {
	c.nilProvider = old.nilProvider
	return c
}

// WithSkipPaths traces nothing, at no cost, for requests whose URL path or
// route template is one of paths (health checks, /metrics). Such requests
// carry no trace ID. Default: every request is traced.
func WithSkipPaths(paths ...string) ServerOption {
	return serverOption(func(c *serverConfig) { c.skip = c.skip.Add(paths...) })
}

// WithOtelgin traces requests through otelgin (the version go.mod pins)
// instead of the kit's own span path. Both record the same spans (a test
// compares them request by request); the own path, the default, costs a
// fraction of otelgin's. otelgin also stores its tracer in the gin.Context
// for otelgin.HTML, which the own path does not.
func WithOtelgin() ServerOption {
	return serverOption(func(c *serverConfig) { c.otelgin = true })
}

// WithResponseHeader echoes the request's trace ID (32 lowercase hex
// digits, sampled or not) in the named response header, e.g.
// [DefaultResponseHeader]. Default: no header. A name that is not a valid
// header name ("" included) is an error from [NewServer].
func WithResponseHeader(name string) ServerOption {
	return serverOption(func(c *serverConfig) { c.header, c.headerSet = name, true })
}

// httpConfig is [WithProvider](p) applied to an empty configuration.
func (p *Provider) httpConfig() httpConfig {
	return httpConfig{provider: p, tp: p.tp, prop: p.prop}
}

// check validates the shared part and fills in the globals.
func (c *httpConfig) check() error {
	if c.nilProvider {
		return errors.New("tracing: WithProvider: provider is nil")
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider() // delegates to whatever is set later
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	return nil
}

func newServerConfig(opts []ServerOption) (serverConfig, error) {
	var cfg serverConfig
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("tracing: option %d is nil", i+1)
		}
		o.applyServer(&cfg)
	}
	if err := cfg.check(); err != nil {
		return cfg, err
	}
	if cfg.headerSet {
		if !reqinfo.ValidHeaderName(cfg.header) {
			return cfg, fmt.Errorf("tracing: WithResponseHeader: %q is not a header name", cfg.header)
		}
		cfg.header = http.CanonicalHeaderKey(cfg.header)
	}
	return cfg, nil
}

func newTransportConfig(opts []TransportOption) (transportConfig, error) {
	var cfg transportConfig
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("tracing: option %d is nil", i+1)
		}
		o.applyTransport(&cfg)
	}
	return cfg, cfg.check()
}
