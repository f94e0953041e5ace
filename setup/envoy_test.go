package setup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/setup"
	"github.com/gingov/gingov/tracing"
)

// serve runs h on a loopback port until the test ends.
func serve(t *testing.T, h http.Handler) int {
	t.Helper()
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { _ = hs.Close() })
	return lis.Addr().(*net.TCPAddr).Port
}

// headerLog keeps the headers of the requests a server got.
type headerLog struct {
	mu  sync.Mutex
	got []http.Header
}

func (l *headerLog) add(h http.Header) { l.mu.Lock(); l.got = append(l.got, h.Clone()); l.mu.Unlock() }

func (l *headerLog) only(t *testing.T, who string) http.Header {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) != 1 {
		t.Fatalf("%s got %d requests, want 1", who, len(l.got))
	}
	return l.got[0]
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestThroughEnvoyZipkin: a request through a real Envoy 1.40.0 with its
// Zipkin tracer (docs/mesh/envoy.yaml) reaches a meshed gingov service
// with B3 headers and Envoy's x-request-id. The service's span is a child
// of Envoy's span, the access log line and the error envelope carry the
// trace id and Envoy's request id, and the handler's outbound call carries
// both onward.
func TestThroughEnvoyZipkin(t *testing.T) {
	testenv.EnvoyBinary(t)
	var zipkin struct {
		mu    sync.Mutex
		spans []map[string]any
	}
	zipkinPort := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spans []map[string]any
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &spans); err != nil {
			t.Errorf("zipkin receiver: %v: %s", err, body)
		}
		zipkin.mu.Lock()
		zipkin.spans = append(zipkin.spans, spans...)
		zipkin.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	var atUpstream, atApp headerLog
	upstreamPort := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atUpstream.add(r.Header)
		w.WriteHeader(http.StatusNotFound)
	}))

	rec := tracetest.NewSpanRecorder()
	r := gin.New()
	r.Use(func(c *gin.Context) { atApp.add(c.Request.Header) }) // what Envoy sent, before gingov's chain
	logs := &testenv.Buffer{}
	ch, err := setup.Use(context.Background(), r, mustParse(t, "service: {name: orders}\nmesh: sidecar"),
		setup.WithLogOutput(logs), setup.WithTracingOptions(tracing.WithSpanProcessor(sdktrace.SpanProcessor(rec))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close(context.Background()) })
	client, err := ch.NewClient(setup.WithSidecar("http://127.0.0.1:" + strconv.Itoa(upstreamPort)))
	if err != nil {
		t.Fatal(err)
	}
	r.GET("/orders/:id", errcode.Handler(func(c *gin.Context) error {
		req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, "http://inventory/items/"+c.Param("id"), nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return errcode.NotFound // the item is not in stock: the envelope
	}))
	appPort := serve(t, r)

	admin, ingress := testenv.FreePort(t), testenv.FreePort(t)
	testenv.StartEnvoy(t, testenv.ExpandEnvoyConfig(t, "../docs/mesh/envoy.yaml", map[string]string{
		"ADMIN_PORT": strconv.Itoa(admin), "INGRESS_PORT": strconv.Itoa(ingress), "APP_PORT": strconv.Itoa(appPort),
		"EGRESS_PORT": strconv.Itoa(testenv.FreePort(t)), "UPSTREAM_ADDR": "127.0.0.1", "UPSTREAM_PORT": strconv.Itoa(testenv.FreePort(t)),
		// No X-User-Id header, no descriptor: Envoy does not call the
		// rate-limit service here.
		"RATELIMIT_PORT": strconv.Itoa(testenv.FreePort(t)), "RATELIMIT_TIMEOUT": "5s",
		"ZIPKIN_PORT": strconv.Itoa(zipkinPort), "TRACE_SAMPLING": "100",
	}), admin)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(ingress)+"/orders/7", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("through Envoy: %d %s", resp.StatusCode, body)
	}

	// What Envoy sent to the app.
	in := atApp.only(t, "the app")
	b3Trace, b3Span, requestID := in.Get("X-B3-Traceid"), in.Get("X-B3-Spanid"), in.Get("X-Request-Id")
	t.Logf("Envoy sent x-b3-traceid %s, x-b3-spanid %s, x-b3-sampled %s, traceparent %s, x-request-id %s",
		b3Trace, b3Span, in.Get("X-B3-Sampled"), in.Get("Traceparent"), requestID)
	if len(b3Trace) != 16 && len(b3Trace) != 32 || len(b3Span) != 16 || in.Get("X-B3-Sampled") != "1" {
		t.Fatalf("B3 headers from Envoy: %v", in)
	}
	if !uuidRE.MatchString(requestID) {
		t.Fatalf("x-request-id from Envoy %q is not a UUID", requestID)
	}
	traceID := strings.Repeat("0", 32-len(b3Trace)) + b3Trace // a 64-bit B3 id, left-padded

	// The gingov server span: Envoy's child.
	var server sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "GET /orders/:id" {
			server = s
		}
	}
	if server == nil {
		t.Fatalf("no server span among %d", len(rec.Ended()))
	}
	if got := server.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("gingov span's trace id %s, Envoy's %s", got, traceID)
	}
	if got := server.Parent().SpanID().String(); got != b3Span || !server.Parent().IsRemote() {
		t.Errorf("gingov span's parent %s (remote %v), Envoy's span %s", got, server.Parent().IsRemote(), b3Span)
	}

	// The envelope and the access log line.
	var env struct{ Reason, RequestID, TraceID string }
	if err := json.Unmarshal(body, &struct {
		Reason    *string `json:"reason"`
		RequestID *string `json:"request_id"`
		TraceID   *string `json:"trace_id"`
	}{&env.Reason, &env.RequestID, &env.TraceID}); err != nil {
		t.Fatalf("not an envelope: %s", body)
	}
	if env.Reason != "NOT_FOUND" || env.TraceID != traceID || env.RequestID != requestID {
		t.Errorf("envelope %s: want trace_id %s, request_id %s", body, traceID, requestID)
	}
	var line map[string]any
	for _, l := range bytes.Split([]byte(logs.String()), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["path"] == "/orders/7" {
			line = m
		}
	}
	if line == nil || line["trace_id"] != traceID || line["request_id"] != requestID {
		t.Errorf("access log line %v: want trace_id %s, request_id %s\n%s", line, traceID, requestID, logs.String())
	}

	// The outbound call, at the second server.
	out := atUpstream.only(t, "the upstream")
	if got := out.Get("X-B3-Traceid"); got != traceID {
		t.Errorf("outbound x-b3-traceid %q, want %s", got, traceID)
	}
	if got := out.Get("Traceparent"); !strings.Contains(got, "-"+traceID+"-") {
		t.Errorf("outbound traceparent %q, want trace %s", got, traceID)
	}
	var call sdktrace.ReadOnlySpan // the handler's call: child of the server span
	for _, s := range rec.Ended() {
		if s.SpanContext().SpanID().String() == out.Get("X-B3-Spanid") {
			call = s
		}
	}
	if call == nil || call.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("outbound x-b3-spanid %q is not a client span under gingov's server span", out.Get("X-B3-Spanid"))
	}
	if got := out.Get("X-Request-Id"); got != requestID {
		t.Errorf("outbound x-request-id %q, want Envoy's %s", got, requestID)
	}

	// Envoy reported its span, the parent of gingov's, to Zipkin.
	deadline := time.Now().Add(15 * time.Second)
	for {
		zipkin.mu.Lock()
		found := false
		for _, s := range zipkin.spans {
			if s["id"] == b3Span && strings.HasSuffix(traceID, s["traceId"].(string)) {
				found = true
			}
		}
		n := len(zipkin.spans)
		zipkin.mu.Unlock()
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Zipkin got %d spans from Envoy, none with id %s", n, b3Span)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
