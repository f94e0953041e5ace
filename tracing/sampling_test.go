package tracing_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/tracing"
)

func ctxInfo(t *testing.T, s *server, hdr http.Header) (spanInfo, *httptest.ResponseRecorder) {
	t.Helper()
	w := s.do(t, http.MethodGet, "/ctx", hdr)
	var info spanInfo
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	return info, w
}

// At ratio 0.1 the middleware samples about a tenth of root requests, and
// exactly those the SDK's TraceIDRatioBased sampler picks from their trace
// IDs; the dropped ones still carry a valid trace ID, unsampled.
func TestRootSamplingMatchesSDK(t *testing.T) {
	const n, ratio = 2000, 0.1
	p, rec := newRecorded(t, tracing.WithSampleRatio(ratio))
	s := newServer(middleware(t, "", tracing.WithProvider(p), tracing.WithResponseHeader("Trace-Id")))
	sdk := sdktrace.TraceIDRatioBased(ratio)
	seen := map[string]bool{}
	sampled := 0
	for range n {
		info, w := ctxInfo(t, s, nil)
		tid, err := trace.TraceIDFromHex(info.TraceID)
		if err != nil || !tid.IsValid() || seen[info.TraceID] {
			t.Fatalf("trace ID %q (err %v, repeated %v)", info.TraceID, err, seen[info.TraceID])
		}
		seen[info.TraceID] = true
		if h := w.Header().Get("Trace-Id"); h != info.TraceID {
			t.Fatalf("Trace-Id %q; context %q", h, info.TraceID)
		}
		want := sdk.ShouldSample(sdktrace.SamplingParameters{ParentContext: t.Context(), TraceID: tid}).Decision == sdktrace.RecordAndSample
		if info.Sampled != want || info.Recording != want {
			t.Fatalf("trace %s: sampled %v recording %v; the SDK sampler says %v", tid, info.Sampled, info.Recording, want)
		}
		if want {
			sampled++
		}
	}
	spans := rec.Ended()
	if len(spans) != sampled {
		t.Fatalf("%d spans for %d sampled requests", len(spans), sampled)
	}
	for _, sp := range spans {
		if !seen[sp.SpanContext().TraceID().String()] || sp.Parent().IsValid() {
			t.Fatalf("span %v parent %v", sp.SpanContext(), sp.Parent())
		}
	}
	// Binomial(2000, 0.1): mean 200, sd 13.4; ±5 sd.
	if sampled < 133 || sampled > 267 {
		t.Fatalf("%d of %d sampled at ratio %v", sampled, n, ratio)
	}
	t.Logf("%d of %d sampled", sampled, n)
}

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
)

// A sampled parent forces sampling even at ratio 0; the span continues the
// caller's trace as a child of its remote span.
func TestParentSampledForcesSampling(t *testing.T) {
	p, rec := newRecorded(t, tracing.WithSampleRatio(0))
	s := newServer(p.Middleware())
	info, _ := ctxInfo(t, s, http.Header{
		"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-01"},
		"Tracestate":  {"vendor=x"},
	})
	if !info.Sampled || !info.Recording || info.TraceID != parentTrace || info.TraceState != "vendor=x" {
		t.Fatalf("context %+v", info)
	}
	sp := onlySpan(t, rec)
	if sp.Parent().SpanID().String() != parentSpan || !sp.Parent().IsRemote() || sp.SpanContext().SpanID().String() != info.SpanID {
		t.Fatalf("span %v parent %v", sp.SpanContext(), sp.Parent())
	}
	// Roots are never sampled at ratio 0.
	for range 50 {
		if info, _ := ctxInfo(t, s, nil); info.Sampled || info.TraceID == "" {
			t.Fatalf("root %+v", info)
		}
	}
	if len(rec.Ended()) != 1 {
		t.Fatalf("%d spans", len(rec.Ended()))
	}
}

// A parent that is not sampled forces a drop even at ratio 1; the request
// keeps the caller's trace ID and trace state under a new span ID.
func TestParentNotSampledForcesDrop(t *testing.T) {
	p, rec := newRecorded(t, tracing.WithSampleRatio(1))
	s := newServer(middleware(t, "", tracing.WithProvider(p), tracing.WithResponseHeader("Trace-Id")))
	info, w := ctxInfo(t, s, http.Header{
		"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-00"},
		"Tracestate":  {"vendor=x"},
	})
	if info.Sampled || info.Recording || info.TraceID != parentTrace || info.SpanID == parentSpan ||
		info.SpanID == "0000000000000000" || info.TraceState != "vendor=x" {
		t.Fatalf("context %+v", info)
	}
	if w.Header().Get("Trace-Id") != parentTrace {
		t.Fatalf("Trace-Id %q", w.Header().Get("Trace-Id"))
	}
	if line := s.lastLog(t); line["trace_id"] != parentTrace || line["span_id"] != info.SpanID {
		t.Fatalf("access log %v", line)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans for an unsampled parent", n)
	}
	// A malformed traceparent is ignored: a root, sampled at ratio 1.
	info, _ = ctxInfo(t, s, http.Header{"Traceparent": {"00-zz-yy-01"}})
	if !info.Sampled || info.TraceID == parentTrace {
		t.Fatalf("context %+v", info)
	}
}

// Unsampled requests carry their trace ID into the error envelope, and a
// panic's envelope carries it too.
func TestDroppedRequestEnvelopes(t *testing.T) {
	p, _ := newRecorded(t, tracing.WithSampleRatio(0))
	s := newServer(p.Middleware())
	for _, target := range []string{"/fail", "/panic", "/nowhere"} {
		w := s.do(t, http.MethodGet, target, http.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-00"}})
		if got := envelopeTraceID(t, w); got != parentTrace {
			t.Errorf("%s: envelope trace_id %q", target, got)
		}
	}
}

// The sampled flag decides whether the handler's own spans are recorded.
func TestChildSpansFollowDecision(t *testing.T) {
	p, rec := newRecorded(t, tracing.WithSampleRatio(0))
	r := gin.New()
	r.Use(p.Middleware())
	r.GET("/work", func(c *gin.Context) {
		_, sp := p.Tracer("app").Start(c.Request.Context(), "query")
		sp.End()
	})
	for _, flags := range []string{"00", "01"} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/work", nil)
		req.Header.Set("Traceparent", "00-"+parentTrace+"-"+parentSpan+"-"+flags)
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Name() != "query" || spans[1].Name() != "GET /work" ||
		spans[0].Parent().SpanID() != spans[1].SpanContext().SpanID() {
		t.Fatalf("spans %v", spans)
	}
}

// renamedParent is a propagator that reads the W3C traceparent from
// another header, X-Parent.
type renamedParent struct{ propagation.TraceContext }

func (p renamedParent) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return p.TraceContext.Extract(ctx, propagation.MapCarrier{"traceparent": carrier.Get("X-Parent")})
}

// A propagator of one's own is always asked, even when the request has
// none of the W3C headers that the default one reads.
func TestOwnPropagatorExtracts(t *testing.T) {
	p, rec := newRecorded(t, tracing.WithSampleRatio(0), tracing.WithPropagator(renamedParent{}))
	s := newServer(p.Middleware())
	info, _ := ctxInfo(t, s, http.Header{"X-Parent": {"00-" + parentTrace + "-" + parentSpan + "-01"}})
	if !info.Sampled || info.TraceID != parentTrace {
		t.Fatalf("context %+v", info)
	}
	if sp := onlySpan(t, rec); sp.Parent().SpanID().String() != parentSpan {
		t.Fatalf("parent %v", sp.Parent())
	}
}

// The W3C propagators given through WithPropagator (as the default's
// composite, or alone) still read the request's traceparent and baggage:
// the fast path that skips extraction for requests without them applies
// to them as to the default.
func TestGivenW3CPropagatorExtracts(t *testing.T) {
	for name, prop := range map[string]propagation.TextMapPropagator{
		"composite":    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		"tracecontext": propagation.TraceContext{},
	} {
		t.Run(name, func(t *testing.T) {
			p, rec := newRecorded(t, tracing.WithSampleRatio(0), tracing.WithPropagator(prop))
			s := newServer(p.Middleware())
			info, _ := ctxInfo(t, s, http.Header{
				"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-01"},
				"Tracestate":  {"vendor=x"},
			})
			if !info.Sampled || info.TraceID != parentTrace || info.TraceState != "vendor=x" {
				t.Fatalf("context %+v", info)
			}
			if sp := onlySpan(t, rec); sp.Parent().SpanID().String() != parentSpan {
				t.Fatalf("parent %v", sp.Parent())
			}
			if info, _ := ctxInfo(t, s, nil); info.Sampled || info.TraceID == "" || info.TraceID == parentTrace {
				t.Fatalf("root %+v", info)
			}
		})
	}
}
