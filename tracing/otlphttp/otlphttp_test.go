package otlphttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestOptionsValidated(t *testing.T) {
	for _, c := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithEndpoint("nowhere")}, `otlphttp: WithEndpoint: "nowhere" is not host:port or an http(s) URL`},
		{[]Option{WithEndpoint("127.0.0.1:99999")}, `otlphttp: WithEndpoint: "127.0.0.1:99999" has no valid port`},
		{[]Option{WithEndpoint("ftp://127.0.0.1:4318")}, `otlphttp: WithEndpoint: "ftp://127.0.0.1:4318" is not host:port`},
		{[]Option{WithHeaders(map[string]string{"bad name": "x"})}, `otlphttp: WithHeaders: "bad name" is not a header name`},
		{[]Option{WithInsecure(), nil}, "otlphttp: option 2 is nil"},
	} {
		exp, err := New(t.Context(), c.opts...)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			if exp != nil {
				_ = exp.Shutdown(context.Background())
			}
			t.Errorf("New: %v; want %q", err, c.want)
		}
	}
}

func TestURL(t *testing.T) {
	for _, c := range []struct {
		opts    []Option
		env     map[string]string
		want    string
		wantErr string
	}{
		{nil, nil, "https://localhost:4318/v1/traces", ""},
		{[]Option{WithInsecure()}, nil, "http://localhost:4318/v1/traces", ""},
		{[]Option{WithEndpoint("collector:4318")}, nil, "https://collector:4318/v1/traces", ""},
		{[]Option{WithEndpoint("http://collector:4318/custom/traces")}, nil, "http://collector:4318/custom/traces", ""},
		{[]Option{WithEndpoint("https://collector.example")}, nil, "https://collector.example/v1/traces", ""},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/otlp/"}, "http://base:4318/otlp/v1/traces", ""},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318"}, "http://t:4318/x", ""},
		{[]Option{WithEndpoint("opt:4318"), WithInsecure()}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/x"}, "http://opt:4318/v1/traces", ""},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "nowhere"}, "", `otlphttp: OTEL_EXPORTER_OTLP_ENDPOINT: "nowhere" is not host:port`},
	} {
		t.Run(c.want+c.wantErr, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := newConfig(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := exportURL(cfg)
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("exportURL: %q, %v; want error %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("exportURL: %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestEnvHeaders(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=1")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", " Authorization = Bearer%20x ,X-Tenant=t1,")
	h, err := envHeaders()
	if err != nil || len(h) != 2 || h["Authorization"] != "Bearer x" || h["X-Tenant"] != "t1" {
		t.Fatalf("headers %v, %v", h, err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "novalue")
	if _, err := envHeaders(); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
		t.Fatalf("error %v", err)
	}
}

func resourceSpans(names ...string) []*tracepb.ResourceSpans {
	var spans []*tracepb.Span
	for _, n := range names {
		spans = append(spans, &tracepb.Span{Name: n, TraceId: make([]byte, 16), SpanId: make([]byte, 8)})
	}
	return []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}, {ScopeSpans: []*tracepb.ScopeSpans{{}}}}
}

// The request body is an ExportTraceServiceRequest as the collector's own
// generated code decodes it.
func TestEncodeRequest(t *testing.T) {
	in := resourceSpans("a", "b")
	b, err := encodeRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&req, &coltracepb.ExportTraceServiceRequest{ResourceSpans: in}) {
		t.Fatalf("decoded %v", &req)
	}
}

func TestPartialSuccess(t *testing.T) {
	b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{
		RejectedSpans: 3, ErrorMessage: "too old",
	}})
	if n, msg := partialSuccess(b); n != 3 || msg != "too old" {
		t.Fatalf("partial success %d %q", n, msg)
	}
	b, _ = proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	if n, msg := partialSuccess(b); n != 0 || msg != "" {
		t.Fatalf("empty answer read as %d %q", n, msg)
	}
	if n, msg := partialSuccess([]byte("not protobuf \xff\xff")); n != 0 || msg != "" {
		t.Fatalf("garbage read as %d %q", n, msg)
	}
}

// errorHandler collects what the exporter reports through otel.Handle.
type errorHandler struct {
	mu   sync.Mutex
	errs []error
}

func (h *errorHandler) Handle(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

// A collector answering 503 with Retry-After is asked again; a partial
// success is reported through otel.Handle; a 400 is final.
func TestUploadRetriesAndReports(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var gotAuth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "dup"}})
			_, _ = w.Write(b)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	h := &errorHandler{}
	otel.SetErrorHandler(h)
	defer otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))

	c := newClient(srv.URL+"/v1/traces", map[string]string{"Authorization": "Bearer t"})
	defer c.Stop(context.Background())
	if err := c.UploadTraces(t.Context(), resourceSpans("a")); err != nil {
		t.Fatalf("upload after a 503: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d attempts; want 2", n)
	}
	h.mu.Lock()
	if len(h.errs) != 1 || !strings.Contains(h.errs[0].Error(), "rejected 1 spans: dup") {
		t.Errorf("reported %v", h.errs)
	}
	h.mu.Unlock()
	err := c.UploadTraces(t.Context(), resourceSpans("b"))
	if err == nil || !strings.Contains(err.Error(), "400") || calls.Load() != 3 {
		t.Fatalf("upload answered 400: %v after %d attempts", err, calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range gotAuth {
		if a != "Bearer t" {
			t.Errorf("Authorization %q", a)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A collector that keeps answering 503 is retried, with growing waits,
// until DefaultTimeout ends the export; Stop ends an upload in flight;
// after Stop uploads fail at once. Fake time (testing/synctest).
func TestUploadBoundedAndStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts []time.Duration
		start := time.Now()
		c := newClient("http://collector.invalid/v1/traces", nil)
		c.hc.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			attempts = append(attempts, time.Since(start))
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
				Header: http.Header{}, Body: io.NopCloser(strings.NewReader(""))}, nil
		})
		err := c.UploadTraces(context.Background(), resourceSpans("a"))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("upload: %v", err)
		}
		if d := time.Since(start); d != DefaultTimeout {
			t.Fatalf("upload gave up after %v; want DefaultTimeout %v", d, DefaultTimeout)
		}
		// Waits from 200 ms doubling to 5 s, each in the upper half of its
		// base (jitter): not all of them the base itself.
		if len(attempts) < 6 || attempts[0] != 0 {
			t.Fatalf("attempts at %v; want at least 6, the first at once", attempts)
		}
		jittered := false
		for i := 1; i < len(attempts); i++ {
			base := min(200*time.Millisecond<<(i-1), 5*time.Second)
			gap := attempts[i] - attempts[i-1]
			if gap < base/2 || gap > base {
				t.Fatalf("attempts at %v: wait %d is %v, want within [%v, %v]", attempts, i, gap, base/2, base)
			}
			jittered = jittered || gap != base
		}
		if !jittered {
			t.Fatalf("attempts at %v: every wait is its base, no jitter", attempts)
		}

		done := make(chan error, 1)
		go func() { done <- c.UploadTraces(context.Background(), resourceSpans("b")) }()
		synctest.Wait() // waiting to retry
		_ = c.Stop(context.Background())
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("upload in flight at Stop: %v", err)
		}
		if err := c.UploadTraces(context.Background(), resourceSpans("c")); !errors.Is(err, errStopped) {
			t.Fatalf("upload after Stop: %v", err)
		}
	})
}
