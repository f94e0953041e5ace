// Package otlphttp builds an exporter that sends spans as OTLP protobuf
// over HTTP (collector port 4318, path /v1/traces), for
// [github.com/gingov/gingov/tracing.WithSpanExporter]:
//
//	exp, err := otlphttp.New(ctx, otlphttp.WithEndpoint("127.0.0.1:4318"), otlphttp.WithInsecure())
//	if err != nil { ... }
//	tp, err := tracing.New(ctx, "orders", tracing.WithSpanExporter(exp))
//
// It links no gRPC: the OpenTelemetry SDK's own OTLP/HTTP exporter shares
// its configuration code and the collector's generated service with the
// gRPC one and so links gRPC and grpc-gateway; this package turns spans
// into OTLP with the SDK (otlptrace) and posts them itself. scripts/check-deps.sh
// proves that a Gin program using it does not link google.golang.org/grpc.
package otlphttp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gingov/gingov/tracing/internal/otlpopt"
)

// DefaultEndpoint is where spans go when neither [WithEndpoint] nor
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT names a
// collector.
const DefaultEndpoint = "localhost:4318"

// DefaultPath is the URL path of exports to a host:port endpoint.
const DefaultPath = "/v1/traces"

// DefaultTimeout bounds one export, retries included (the OTLP default).
const DefaultTimeout = 10 * time.Second

// Option configures [New].
type Option interface{ apply(*otlpopt.Config) }

type option func(*otlpopt.Config)

func (f option) apply(c *otlpopt.Config) { f(c) }

// WithEndpoint sets the collector: "host:port" (exports go to
// [DefaultPath]), or a URL "http://host:port/path" / "https://…" (http
// means no TLS; the path replaces /v1/traces, an empty one keeps it).
// Default (and ""): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a URL used as
// is), or OTEL_EXPORTER_OTLP_ENDPOINT (a base URL, /v1/traces appended),
// else [DefaultEndpoint].
func WithEndpoint(endpoint string) Option {
	return option(otlpopt.Endpoint(endpoint))
}

// WithInsecure sends without TLS to a host:port endpoint (default: TLS).
// A URL's scheme decides for itself.
func WithInsecure() Option { return option(otlpopt.Insecure) }

// WithHeaders adds headers (e.g. authentication) to every export (default:
// those of OTEL_EXPORTER_OTLP_TRACES_HEADERS or OTEL_EXPORTER_OTLP_HEADERS,
// "name=value,…"). Calls add up; a later value for a name wins, and over
// the environment's.
func WithHeaders(h map[string]string) Option {
	return option(otlpopt.Headers(h))
}

func newConfig(opts []Option) (otlpopt.Config, error) {
	return otlpopt.Apply("otlphttp", opts, Option.apply)
}

// New returns an OTLP/HTTP span exporter. It does not connect yet: the
// first export does. Exports are protobuf POSTs bounded by
// [DefaultTimeout]; an answer 429, 502, 503 or 504, or a failed
// connection, is retried (after Retry-After when the collector sends one)
// until that timeout. Pass it to
// [github.com/gingov/gingov/tracing.WithSpanExporter], which batches its
// spans and stops it on Shutdown. ctx bounds its construction only.
//
// Of the OTEL_EXPORTER_OTLP_* variables it reads the endpoint and headers
// ones (see [WithEndpoint], [WithHeaders]); exports are not compressed and
// TLS uses the system's roots.
func New(ctx context.Context, opts ...Option) (sdktrace.SpanExporter, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	target, err := exportURL(cfg)
	if err != nil {
		return nil, err
	}
	headers, err := envHeaders()
	if err != nil {
		return nil, err
	}
	maps.Copy(headers, cfg.Headers)
	c := newClient(target, headers)
	exp, err := otlptrace.New(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("otlphttp: %w", err)
	}
	return exp, nil
}

// exportURL is where exports are posted.
func exportURL(cfg otlpopt.Config) (string, error) {
	ep, env := cfg.Endpoint, ""
	asIs := false
	if ep == "" {
		if v := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
			ep, env, asIs = v, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", true
		} else if v := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
			ep, env = v, "OTEL_EXPORTER_OTLP_ENDPOINT"
		} else {
			ep = DefaultEndpoint
		}
		if env != "" {
			if err := otlpopt.CheckEndpoint(ep); err != nil {
				return "", fmt.Errorf("otlphttp: %s: %w", env, err)
			}
		}
	}
	if !otlpopt.IsURL(ep) {
		scheme := "https"
		if cfg.Insecure {
			scheme = "http"
		}
		return scheme + "://" + ep + DefaultPath, nil
	}
	u, _ := url.Parse(ep) // checked
	switch {
	case env == "OTEL_EXPORTER_OTLP_ENDPOINT":
		u.Path = strings.TrimSuffix(u.Path, "/") + DefaultPath
	case asIs:
	case u.Path == "" || u.Path == "/":
		u.Path = DefaultPath
	}
	return u.String(), nil
}

// envHeaders reads OTEL_EXPORTER_OTLP_TRACES_HEADERS, else
// OTEL_EXPORTER_OTLP_HEADERS: "name=value" pairs separated by commas,
// values URL-encoded.
func envHeaders() (map[string]string, error) {
	name := "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	v := os.Getenv(name)
	if v == "" {
		name = "OTEL_EXPORTER_OTLP_HEADERS"
		v = os.Getenv(name)
	}
	h := map[string]string{}
	for pair := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if !ok || err != nil {
			return nil, fmt.Errorf("otlphttp: %s: %q is not name=value", name, pair)
		}
		h[k] = dec
	}
	if err := otlpopt.CheckHeaders(h); err != nil {
		return nil, fmt.Errorf("otlphttp: %s: %w", name, err)
	}
	return h, nil
}

var errStopped = errors.New("otlphttp: exporter is shut down")
