package tracing_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/tracing"
)

func TestPropagatorsValidated(t *testing.T) {
	cases := []struct {
		name string
		opt  tracing.Option
		want string
	}{
		{"unknown", tracing.WithPropagators("tracecontext", "zipkin"), `tracing: WithPropagators: unknown propagator "zipkin"`},
		{"none", tracing.WithPropagators(), "tracing: WithPropagators: no propagator named"},
		{"empty name", tracing.WithPropagators(""), `tracing: WithPropagators: unknown propagator ""`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := tracing.New(t.Context(), "svc", c.opt)
			if err == nil {
				_ = p.Shutdown(t.Context())
				t.Fatal("New accepted the propagators")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %q; want %q", err, c.want)
			}
		})
	}
	if _, err := tracing.NewPropagator("b3", "jaeger"); err == nil || !strings.Contains(err.Error(), `"jaeger"`) {
		t.Fatalf("NewPropagator(b3, jaeger): %v; want an error naming jaeger", err)
	}
	for _, names := range [][]string{{"tracecontext"}, {"baggage"}, {"B3"}, {"b3multi"}, {"b3", "b3multi", "b3"}, tracing.DefaultPropagators} {
		if _, err := tracing.NewPropagator(names...); err != nil {
			t.Fatalf("NewPropagator(%v): %v", names, err)
		}
	}
	// Each name writes its own headers, and only those.
	fields := map[string][]string{
		"tracecontext": {"traceparent", "tracestate"},
		"baggage":      {"baggage"},
		"b3":           {"b3"},
		"b3multi":      {"x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"},
	}
	for name, want := range fields {
		p, err := tracing.NewPropagator(name)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(p.Fields(), ",")
		for _, f := range want {
			if !strings.Contains(got, f) {
				t.Fatalf("%s: fields %q lack %q", name, got, f)
			}
		}
		if name != "b3" && strings.Contains(","+got+",", ",b3,") {
			t.Fatalf("%s: fields %q include b3", name, got)
		}
	}
}

const (
	remoteTrace128 = "4bf92f3577b34da6a3ce929d0e0e4736"
	remoteTrace64  = "a3ce929d0e0e4736" // Envoy's Zipkin tracer's default
	remoteSpan     = "00f067aa0ba902b7"
)

// A request carrying B3 (single or multi header, 64- or 128-bit trace ID)
// gets a server span that is a child of the remote span: the same trace
// (64-bit IDs left-padded to 128 bits), the remote span as parent. Both
// server paths (the kit's own and otelgin) are checked, under each B3 name.
func TestB3ExtractionMakesChildSpan(t *testing.T) {
	headers := []struct {
		name      string
		hdr       map[string]string
		wantTrace string
	}{
		{"multi 128-bit", map[string]string{"X-B3-TraceId": remoteTrace128, "X-B3-SpanId": remoteSpan, "X-B3-Sampled": "1"}, remoteTrace128},
		{"multi 64-bit", map[string]string{"x-b3-traceid": remoteTrace64, "x-b3-spanid": remoteSpan, "x-b3-sampled": "1"}, "0000000000000000" + remoteTrace64},
		{"single 128-bit", map[string]string{"b3": remoteTrace128 + "-" + remoteSpan + "-1"}, remoteTrace128},
		{"single 64-bit", map[string]string{"b3": remoteTrace64 + "-" + remoteSpan + "-1"}, "0000000000000000" + remoteTrace64},
	}
	for _, sel := range []string{"b3", "b3multi"} {
		for _, otelgin := range []bool{false, true} {
			for _, h := range headers {
				name := sel + "/" + h.name
				if otelgin {
					name += "/otelgin"
				}
				t.Run(name, func(t *testing.T) {
					p, rec := newRecorded(t, tracing.WithPropagators("tracecontext", "baggage", sel))
					span := serveB3(t, p, rec, otelgin, h.hdr)
					if got := span.SpanContext().TraceID().String(); got != h.wantTrace {
						t.Fatalf("server span's trace %s; want %s", got, h.wantTrace)
					}
					parent := span.Parent()
					if got := parent.SpanID().String(); got != remoteSpan || !parent.IsRemote() {
						t.Fatalf("server span's parent %s (remote %v); want remote %s", got, parent.IsRemote(), remoteSpan)
					}
					if span.SpanKind() != trace.SpanKindServer {
						t.Fatalf("span kind %v", span.SpanKind())
					}
				})
			}
		}
	}

	// The default propagators ignore B3: the request starts a new trace.
	p, rec := newRecorded(t)
	span := serveB3(t, p, rec, false, headers[0].hdr)
	if span.Parent().IsValid() || span.SpanContext().TraceID().String() == remoteTrace128 {
		t.Fatalf("default propagators continued a B3 trace: parent %v", span.Parent())
	}
}

// serveB3 serves one GET with the headers through p's server middleware
// and returns the one span recorded.
func serveB3(t *testing.T, p *tracing.Provider, rec *tracetest.SpanRecorder, otelgin bool, hdr map[string]string) sdktrace.ReadOnlySpan {
	t.Helper()
	opts := []tracing.ServerOption{tracing.WithProvider(p)}
	if otelgin {
		opts = append(opts, tracing.WithOtelgin())
	}
	s, err := tracing.NewServer("svc", opts...)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(s.Middleware())
	r.GET("/items/:id", func(c *gin.Context) { c.Status(http.StatusOK) })
	req := httptest.NewRequest(http.MethodGet, "/items/7", nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r.ServeHTTP(httptest.NewRecorder(), req)
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans recorded; want 1", len(spans))
	}
	return spans[0]
}

// Behind Envoy: a request with Envoy's 64-bit B3 headers, traceparent-less,
// and its UUID x-request-id reaches a gingov service whose handler calls a
// loopback upstream through the provider's client. The upstream receives
// the same trace in B3 (the form selected) and in W3C trace context, the
// client span as parent, and Envoy's x-request-id.
func TestB3InjectionAndRequestIDOnOutboundCalls(t *testing.T) {
	const envoyRequestID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	wantTrace := "0000000000000000" + remoteTrace64
	for _, sel := range []string{"b3", "b3multi"} {
		t.Run(sel, func(t *testing.T) {
			got := make(chan http.Header, 1)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
			defer up.Close()

			p, rec := newRecorded(t, tracing.WithPropagators("tracecontext", "baggage", sel))
			rid, err := logging.NewRequestID()
			if err != nil {
				t.Fatal(err)
			}
			client := p.Client()
			defer client.CloseIdleConnections()
			r := gin.New()
			r.Use(rid.Middleware(), p.Middleware())
			r.GET("/call", func(c *gin.Context) {
				req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, up.URL+"/items", nil)
				resp, err := client.Do(req)
				if err != nil {
					c.Status(http.StatusBadGateway)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
			srv := httptest.NewServer(r)
			defer srv.Close()

			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/call", nil)
			req.Header["x-b3-traceid"] = []string{remoteTrace64}
			req.Header["x-b3-spanid"] = []string{remoteSpan}
			req.Header["x-b3-sampled"] = []string{"1"}
			req.Header["x-request-id"] = []string{envoyRequestID}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			h := <-got

			var client0 sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.SpanKind() == trace.SpanKindClient {
					client0 = s
				}
			}
			if client0 == nil {
				t.Fatal("no client span recorded")
			}
			if tid := client0.SpanContext().TraceID().String(); tid != wantTrace {
				t.Fatalf("client span's trace %s; want %s", tid, wantTrace)
			}
			clientSpan := client0.SpanContext().SpanID().String()

			switch sel {
			case "b3":
				if want := wantTrace + "-" + clientSpan + "-1"; h.Get("B3") != want {
					t.Fatalf("b3 header %q; want %q", h.Get("B3"), want)
				}
				if h.Get("X-B3-Traceid") != "" {
					t.Fatalf("b3 (single) also wrote x-b3-traceid: %v", h)
				}
			case "b3multi":
				if h.Get("X-B3-Traceid") != wantTrace || h.Get("X-B3-Spanid") != clientSpan || h.Get("X-B3-Sampled") != "1" {
					t.Fatalf("x-b3 headers %q %q %q; want %s %s 1", h.Get("X-B3-Traceid"), h.Get("X-B3-Spanid"), h.Get("X-B3-Sampled"), wantTrace, clientSpan)
				}
				if h.Get("B3") != "" {
					t.Fatalf("b3multi also wrote b3: %v", h)
				}
			}
			if want := "00-" + wantTrace + "-" + clientSpan + "-01"; h.Get("Traceparent") != want {
				t.Fatalf("traceparent %q; want %q", h.Get("Traceparent"), want)
			}
			if id := h.Get("X-Request-Id"); id != envoyRequestID {
				t.Fatalf("upstream's x-request-id %q; want Envoy's %q", id, envoyRequestID)
			}
		})
	}
}

// An outbound request that already has a request ID keeps it; one made
// outside any request carries none.
func TestTransportRequestIDOnlyWhenAbsent(t *testing.T) {
	got := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer up.Close()
	p, _ := newRecorded(t)
	client := p.Client()
	defer client.CloseIdleConnections()

	rid, err := logging.NewRequestID()
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(rid.Middleware(), p.Middleware())
	r.GET("/call", func(c *gin.Context) {
		req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, up.URL, nil)
		req.Header.Set("X-Request-Id", "set-by-handler")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	})
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/call", nil)
	req.Header.Set("X-Request-Id", "incoming-1")
	r.ServeHTTP(w, req)
	if id := (<-got).Get("X-Request-Id"); id != "set-by-handler" {
		t.Fatalf("upstream got %q; want the handler's own ID", id)
	}

	req2, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, up.URL, nil)
	resp, err := client.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-got; h.Get("X-Request-Id") != "" {
		t.Fatalf("a call outside any request sent X-Request-Id %q", h.Get("X-Request-Id"))
	}
}

// Of WithPropagator and WithPropagators, the last given wins.
func TestPropagatorOptionsLastWins(t *testing.T) {
	own, err := tracing.NewPropagator("baggage")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := newRecorded(t, tracing.WithPropagators("b3"), tracing.WithPropagator(own))
	if p.Propagator() != own {
		t.Fatal("WithPropagator given last did not win")
	}
	p, _ = newRecorded(t, tracing.WithPropagator(own), tracing.WithPropagators("b3multi"))
	if f := strings.Join(p.Propagator().Fields(), ","); !strings.Contains(f, "x-b3-traceid") {
		t.Fatalf("WithPropagators given last did not win: fields %q", f)
	}
}
