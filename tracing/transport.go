package tracing

import (
	"errors"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/logging"
)

// transportScope is the instrumentation scope of client spans.
const transportScope = "github.com/gingov/gingov/tracing"

// Transport is an http.RoundTripper that sends each request through the
// next one in a client span, child of the span in the request's context,
// and writes the trace context into the outgoing headers, so the server
// called continues the same trace. A request whose trace is not sampled is
// still propagated (with the sampled flag off).
//
// The span is named by the method ("GET"), carries http.request.method,
// server.address, server.port, url.full (without user info and query) and
// http.response.status_code, and covers the round trip up to the
// response headers. A transport error or a 4xx/5xx answer marks it as an
// error. When the request's context has a deadline, the remaining budget
// is sent on in the deadline.Header header (see deadline.Propagate), and a
// request with less than a millisecond left fails at once with an error
// that is errors.Is context.DeadlineExceeded. The request ID of the
// context (logging.RequestIDFromContext: the incoming request's, Envoy's
// x-request-id among them) is sent on in the header the logging.RequestID
// middleware read it from, unless the request already has that header
// (see logging.InjectRequestID). The caller's request is not modified. It
// is safe for concurrent use.
type Transport struct {
	next   http.RoundTripper
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// NewTransport returns a [Transport] sending through next (nil:
// http.DefaultTransport). Use [WithProvider] or [WithOTel] to choose the
// provider and propagator (default: OpenTelemetry's globals). A nil option
// is an error.
func NewTransport(next http.RoundTripper, opts ...TransportOption) (*Transport, error) {
	cfg, err := newTransportConfig(opts)
	if err != nil {
		return nil, err
	}
	return newTransport(next, cfg), nil
}

func newTransport(next http.RoundTripper, cfg transportConfig) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	return &Transport{
		next:   next,
		tracer: cfg.tp.Tracer(transportScope),
		prop:   cfg.prop,
	}
}

// Transport is the [Transport] of [NewTransport](next, [WithProvider](p)).
func (p *Provider) Transport(next http.RoundTripper) *Transport {
	return newTransport(next, transportConfig{httpConfig: p.httpConfig()})
}

// Client returns an *http.Client whose transport is
// p.Transport(http.DefaultTransport): outbound calls continue the trace.
func (p *Provider) Client() *http.Client { return &http.Client{Transport: p.Transport(nil)} }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	name := method
	if !knownMethods[name] {
		name = "HTTP"
	}
	ctx, span := t.tracer.Start(req.Context(), name, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	recording := span.IsRecording()
	if recording {
		span.SetAttributes(clientAttrs(req, method)...)
	}

	// A RoundTripper must not modify the request: send a copy with its own
	// header map carrying the trace context.
	out := req.WithContext(ctx)
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, 2)
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	logging.InjectRequestID(ctx, out.Header)
	if err := deadline.Inject(ctx, out.Header); err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrip must close the body, even on error
		}
		if recording {
			span.SetAttributes(attribute.String("error.type", "deadline_exceeded"))
			span.SetStatus(codes.Error, err.Error())
		}
		return nil, err
	}

	resp, err := t.next.RoundTrip(out)
	if err != nil {
		if recording {
			span.SetAttributes(attribute.String("error.type", errorType(err)))
			span.SetStatus(codes.Error, err.Error())
		}
		return resp, err
	}
	if recording {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 400 {
			span.SetAttributes(attribute.String("error.type", strconv.Itoa(resp.StatusCode)))
			span.SetStatus(codes.Error, "")
		}
	}
	return resp, nil
}

func clientAttrs(req *http.Request, method string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, attribute.String("http.request.method", method))
	if u := req.URL; u != nil {
		host, port := u.Hostname(), u.Port()
		if host != "" {
			attrs = append(attrs, attribute.String("server.address", host))
		}
		if port == "" {
			switch u.Scheme {
			case "http":
				port = "80"
			case "https":
				port = "443"
			}
		}
		if n, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attribute.Int("server.port", n))
		}
		clean := *u
		clean.User, clean.RawQuery, clean.ForceQuery, clean.Fragment, clean.RawFragment = nil, "", false, "", ""
		attrs = append(attrs, attribute.String("url.full", clean.String()))
	}
	return attrs
}

// errorType is a low-cardinality name for a transport error.
func errorType(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "_OTHER"
}
