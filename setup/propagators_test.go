package setup_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/setup"
)

// invalidPropagatorDocs are tracing sections (after a service name) that
// Validate rejects, each with the start of the error; the schema test
// checks them too.
var invalidPropagatorDocs = []struct{ doc, want string }{
	{"tracing: {propagators: [tracecontext, zipkin]}", `setup: tracing.propagators[1]: "zipkin" is not tracecontext, baggage, b3 or b3multi`},
	{"tracing: {propagators: []}", "setup: tracing.propagators: names no propagator"},
}

func TestTracingPropagatorsParsed(t *testing.T) {
	cfg := mustParse(t, "service: {name: a}\ntracing: {propagators: [tracecontext, baggage, b3]}")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"tracecontext", "baggage", "b3"}; !reflect.DeepEqual(cfg.Tracing.Propagators, want) {
		t.Fatalf("propagators %q; want %q", cfg.Tracing.Propagators, want)
	}
	cfg = mustParse(t, "service: {name: a}")
	if cfg.Tracing.Propagators != nil {
		t.Fatalf("default propagators %q; want none (tracing's default)", cfg.Tracing.Propagators)
	}
	if err := setup.ApplyEnv(&cfg, []string{"GINGOV_TRACING_PROPAGATORS=b3multi,tracecontext"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"b3multi", "tracecontext"}; !reflect.DeepEqual(cfg.Tracing.Propagators, want) {
		t.Fatalf("propagators from the environment %q; want %q", cfg.Tracing.Propagators, want)
	}

	for _, tc := range invalidPropagatorDocs {
		cfg := mustParse(t, "service: {name: a}\n"+tc.doc)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Fatalf("%s: error %v; want %q", tc.doc, err, tc.want)
		}
		if _, err := setup.Use(context.Background(), gin.New(), cfg, setup.WithLogOutput(io.Discard)); err == nil || !strings.Contains(err.Error(), "tracing.propagators") {
			t.Fatalf("%s: Use: %v; want the field named", tc.doc, err)
		}
	}
}

// A chain built from YAML with b3 selected continues Envoy's B3 trace
// (64-bit trace ID, x-b3-* headers) in the request's server span, keeps
// Envoy's x-request-id, and passes both on through the chain's client in
// the single b3 header. Without the setting, B3 is ignored.
func TestChainWithB3Propagator(t *testing.T) {
	const (
		envoyTrace = "a3ce929d0e0e4736"
		envoySpan  = "00f067aa0ba902b7"
		envoyRID   = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
		wantTrace  = "0000000000000000" + envoyTrace
	)
	got := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer up.Close()

	for _, doc := range []string{"tracing: {propagators: [tracecontext, baggage, b3]}", ""} {
		cfg := mustParse(t, "service: {name: orders}\n"+doc)
		r := gin.New()
		ch, err := setup.Use(context.Background(), r, cfg, setup.WithLogOutput(io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		client := ch.Tracing.Client()
		var sc, parent trace.SpanContext
		r.GET("/call", func(c *gin.Context) {
			ctx := c.Request.Context()
			sc = trace.SpanContextFromContext(ctx)
			if s, ok := trace.SpanFromContext(ctx).(interface{ Parent() trace.SpanContext }); ok {
				parent = s.Parent()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, up.URL, nil)
			resp, err := client.Do(req)
			if err != nil {
				c.Status(http.StatusBadGateway)
				return
			}
			resp.Body.Close()
		})
		req := httptest.NewRequest(http.MethodGet, "/call", nil)
		req.Header.Set("X-B3-TraceId", envoyTrace)
		req.Header.Set("X-B3-SpanId", envoySpan)
		req.Header.Set("X-B3-Sampled", "1")
		req.Header.Set("X-Request-Id", envoyRID)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		client.CloseIdleConnections()
		if err := ch.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusOK {
			t.Fatalf("%q: status %d", doc, w.Code)
		}
		h := <-got
		if h.Get("X-Request-Id") != envoyRID || w.Header().Get("X-Request-Id") != envoyRID {
			t.Fatalf("%q: x-request-id upstream %q, echoed %q; want %q", doc, h.Get("X-Request-Id"), w.Header().Get("X-Request-Id"), envoyRID)
		}
		if doc == "" {
			if sc.TraceID().String() == wantTrace || h.Get("B3") != "" {
				t.Fatalf("default propagators: trace %s, b3 header %q; want a new trace and no b3", sc.TraceID(), h.Get("B3"))
			}
			continue
		}
		if sc.TraceID().String() != wantTrace {
			t.Fatalf("server span's trace %s; want %s", sc.TraceID(), wantTrace)
		}
		if parent.SpanID().String() != envoySpan || !parent.IsRemote() {
			t.Fatalf("server span's parent %v; want Envoy's span %s", parent, envoySpan)
		}
		if b3 := h.Get("B3"); !strings.HasPrefix(b3, wantTrace+"-") || !strings.HasSuffix(b3, "-1") || strings.Contains(b3, envoySpan) {
			t.Fatalf("outbound b3 header %q; want %s-<client span>-1", b3, wantTrace)
		}
		if !strings.HasPrefix(h.Get("Traceparent"), "00-"+wantTrace+"-") {
			t.Fatalf("outbound traceparent %q; want trace %s", h.Get("Traceparent"), wantTrace)
		}
	}
}
