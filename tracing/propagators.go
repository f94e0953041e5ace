package tracing

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/propagation"
)

// Names of the propagators [WithPropagators] and [NewPropagator] accept:
// the names OTEL_PROPAGATORS uses for the same formats.
const (
	// PropagatorTraceContext is W3C trace context (traceparent, tracestate).
	PropagatorTraceContext = "tracecontext"
	// PropagatorBaggage is W3C baggage (the baggage header).
	PropagatorBaggage = "baggage"
	// PropagatorB3 is Zipkin's B3 written in the single b3 header.
	PropagatorB3 = "b3"
	// PropagatorB3Multi is Zipkin's B3 written in the x-b3-traceid,
	// x-b3-spanid and x-b3-sampled headers (Envoy's Zipkin tracer sends
	// and expects these).
	PropagatorB3Multi = "b3multi"
)

// DefaultPropagators are the propagators of a [Provider] built without
// [WithPropagators] or [WithPropagator]: W3C trace context and baggage.
// Do not modify it.
var DefaultPropagators = []string{PropagatorTraceContext, PropagatorBaggage}

// NewPropagator returns the propagator of the formats named (see the
// Propagator constants; lower or upper case, at least one; a name repeated
// counts once), for tracer providers built elsewhere ([WithOTel]). An
// unknown name is an error naming it.
//
// Inject writes every format named. Extract reads them in the order named,
// a later format found in the request overriding an earlier one. Either B3
// name reads both B3 encodings, the single b3 header and the x-b3-*
// headers; they differ only in what Inject writes, and naming both writes
// both. B3 trace IDs of 64 bits (16 hex digits, as Envoy's Zipkin tracer
// sends by default) are accepted and left-padded with zeros to 128 bits;
// the headers written then carry the 32-digit form.
func NewPropagator(names ...string) (propagation.TextMapPropagator, error) {
	p, _, err := buildPropagator(names)
	if err != nil {
		return nil, fmt.Errorf("tracing: NewPropagator: %w", err)
	}
	return p, nil
}

// buildPropagator composes the propagators names and reports whether they
// are W3C ones only (the server's fast path then skips extraction when the
// request carries no W3C header).
func buildPropagator(names []string) (prop propagation.TextMapPropagator, w3cOnly bool, err error) {
	if len(names) == 0 {
		return nil, false, errors.New("no propagator named")
	}
	var (
		props    []propagation.TextMapPropagator
		seen     = make(map[string]bool, len(names))
		b3At     = -1 // index in props of the one B3 propagator
		encoding b3.Encoding
	)
	w3cOnly = true
	for _, raw := range names {
		name := strings.ToLower(strings.TrimSpace(raw))
		if seen[name] {
			continue
		}
		seen[name] = true
		switch name {
		case PropagatorTraceContext:
			props = append(props, propagation.TraceContext{})
		case PropagatorBaggage:
			props = append(props, propagation.Baggage{})
		case PropagatorB3, PropagatorB3Multi:
			w3cOnly = false
			if name == PropagatorB3 {
				encoding |= b3.B3SingleHeader
			} else {
				encoding |= b3.B3MultipleHeader
			}
			if b3At < 0 {
				b3At = len(props)
				props = append(props, nil) // filled in below, once the encodings are known
			}
		default:
			return nil, false, fmt.Errorf("unknown propagator %q (known: %s, %s, %s, %s)", raw,
				PropagatorTraceContext, PropagatorBaggage, PropagatorB3, PropagatorB3Multi)
		}
	}
	if b3At >= 0 {
		props[b3At] = b3.New(b3.WithInjectEncoding(encoding))
	}
	if len(props) == 1 {
		return props[0], w3cOnly, nil
	}
	return propagation.NewCompositeTextMapPropagator(props...), w3cOnly, nil
}

// compositeType is the type of OpenTelemetry's composite propagator.
var compositeType = reflect.TypeOf(propagation.NewCompositeTextMapPropagator())

// w3cOnly reports whether p is one of OpenTelemetry's W3C propagators
// (TraceContext, Baggage) or a composite of only those, as a propagator
// given to [WithPropagator] may be: its Extract then reads the
// traceparent, tracestate and baggage headers only, and returns the
// context it is given when the request has neither traceparent nor
// baggage, so the server's fast path may skip it.
func w3cOnly(p propagation.TextMapPropagator) bool {
	switch p.(type) {
	case propagation.TraceContext, propagation.Baggage:
		return true
	}
	if reflect.TypeOf(p) != compositeType {
		return false
	}
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Slice || v.Len() == 0 {
		return false
	}
	for i := range v.Len() {
		e, ok := v.Index(i).Interface().(propagation.TextMapPropagator)
		if !ok || !w3cOnly(e) {
			return false
		}
	}
	return true
}
