package tracing

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
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
