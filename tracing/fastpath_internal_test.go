package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

type ownTraceContext struct{ propagation.TraceContext }

// Only OpenTelemetry's own W3C propagators, alone or composed, are taken
// for ones whose extraction can be skipped.
func TestW3COnly(t *testing.T) {
	tc, bg := propagation.TraceContext{}, propagation.Baggage{}
	comp := propagation.NewCompositeTextMapPropagator
	for _, c := range []struct {
		name string
		p    propagation.TextMapPropagator
		want bool
	}{
		{"tracecontext", tc, true},
		{"baggage", bg, true},
		{"composite", comp(tc, bg), true},
		{"composite reversed", comp(bg, tc), true},
		{"nested composite", comp(comp(tc), bg), true},
		{"empty composite", comp(), false},
		{"b3", b3.New(), false},
		{"composite with b3", comp(tc, bg, b3.New()), false},
		{"own type", ownTraceContext{}, false},
		{"composite with own type", comp(ownTraceContext{}, bg), false},
	} {
		if got := w3cOnly(c.p); got != c.want {
			t.Errorf("%s: w3cOnly = %v, want %v", c.name, got, c.want)
		}
	}
	p, err := New(context.Background(), "svc", WithPropagator(comp(tc, bg)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	if !p.w3cProp {
		t.Error("WithPropagator(TraceContext + Baggage): not taken for W3C")
	}
}

// What the fast path relies on: without traceparent and baggage headers,
// the W3C propagators return the context they are given.
func TestW3CExtractWithoutHeaders(t *testing.T) {
	ctx := context.WithValue(context.Background(), stateKey{}, 1)
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	for _, h := range []http.Header{{}, {"Tracestate": {"vendor=x"}}, {"X-Other": {"1"}}} {
		if got := prop.Extract(ctx, propagation.HeaderCarrier(h)); got != ctx {
			t.Errorf("%v: Extract returned a new context", h)
		}
		if hasW3CHeaders(h) {
			t.Errorf("%v: hasW3CHeaders", h)
		}
	}
	m, _ := baggage.NewMember("k", "v")
	b, _ := baggage.New(m)
	h := http.Header{}
	propagation.Baggage{}.Inject(baggage.ContextWithBaggage(ctx, b), propagation.HeaderCarrier(h))
	if !hasW3CHeaders(h) || baggage.FromContext(prop.Extract(ctx, propagation.HeaderCarrier(h))).Member("k").Value() != "v" {
		t.Errorf("%v: baggage not seen", h)
	}
}

// A dropped request's context reads as trace.ContextWithSpanContext's
// would, and the request carrying it is a copy of the original, in one
// allocation.
func TestDroppedSpanContext(t *testing.T) {
	if spanKey == nil {
		t.Fatal("OpenTelemetry's span key was not found")
	}
	ts, _ := trace.ParseTraceState("vendor=x")
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceState: ts,
	})
	type other struct{}
	parent := context.WithValue(context.Background(), other{}, "v")
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	dropped, hdr := withDroppedSpan(req, parent, sc)
	if hdr == nil {
		t.Fatal("no room for the header value")
	}
	if dropped == req || dropped.URL != req.URL || req.Context() == dropped.Context() {
		t.Fatalf("request %+v", dropped)
	}
	got, want := dropped.Context(), trace.ContextWithSpanContext(parent, sc)
	if !trace.SpanContextFromContext(got).Equal(trace.SpanContextFromContext(want)) {
		t.Fatalf("span context %v, want %v", trace.SpanContextFromContext(got), sc)
	}
	gs, ws := trace.SpanFromContext(got), trace.SpanFromContext(want)
	if gs.IsRecording() != ws.IsRecording() || !gs.SpanContext().Equal(ws.SpanContext()) || gs.TracerProvider() == nil {
		t.Fatalf("span %#v, want %#v", gs, ws)
	}
	gs.SetAttributes(attribute.String("k", "v")) // does nothing, as on ws
	gs.End()
	if got.Value(other{}) != "v" {
		t.Fatal("parent's values lost")
	}
	// A child started from it continues the trace, unsampled.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, child := tp.Tracer("t").Start(got, "child")
	child.End()
	if c := child.SpanContext(); c.TraceID() != sc.TraceID() || c.IsSampled() || len(rec.Ended()) != 0 {
		t.Fatalf("child %v, %d spans recorded", c, len(rec.Ended()))
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = withDroppedSpan(req, parent, sc) }); n != 1 {
		t.Fatalf("%v allocations, want 1", n)
	}
}
