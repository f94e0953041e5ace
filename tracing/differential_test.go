package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/tracing"
)

// The differential test: every request of a corpus goes through plain
// otelgin (the reference, at the version go.mod pins) and through the kit's
// server middleware, each on its own tracer provider with an in-memory
// recorder, and the exported spans must be equal field by field
// (timestamps and IDs aside). The kit's side runs its own span path with a
// Provider (sampling decided before the span) and with another provider
// (WithOTel: the SDK's sampler decides), and otelgin itself (WithOtelgin),
// each with three server names ("", a host, a host and port). The kit deviates from otelgin on purpose in
// two places only, and the test applies exactly these to the reference:
//
//   - a 4xx response is never an error, even with errors in c.Errors
//     (otelgin marks those with c.Errors.String() as description);
//   - a panic passing through is recorded: http.response.status_code of
//     the answer Recovery gives, an exception event with the panic's
//     stack, and status Error "panic" when that status is a 5xx (otelgin
//     ends the span with none of these).

// diffCase is one request of the corpus.
type diffCase struct {
	name   string
	method string
	target string
	header http.Header
	body   string
	remote string // RemoteAddr; "" keeps httptest's
	host   string // Host; "" keeps the target's
	proto  string // "" keeps HTTP/1.1
	panics bool   // the kit records a panic
}

const (
	sampledParent   = "00-" + parentTrace + "-" + parentSpan + "-01"
	unsampledParent = "00-" + parentTrace + "-" + parentSpan + "-00"
)

func diffCorpus() []diffCase {
	big := strings.Repeat("x", 16<<10)
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
	cs := []diffCase{
		{name: "get route", method: "GET", target: "/items/42"},
		{name: "get query", method: "GET", target: "/items/42?expand=owner&x=%20y"},
		{name: "post body", method: "POST", target: "/items/7", body: `{"name":"widget","qty":3}`,
			header: http.Header{"Content-Type": {"application/json"}}},
		{name: "put body", method: "PUT", target: "/items/7?dry=1", body: strings.Repeat("a", 5000)},
		{name: "delete", method: "DELETE", target: "/items/7"},
		{name: "options", method: "OPTIONS", target: "/items/7"},
		{name: "head", method: "HEAD", target: "/items/7"},
		{name: "patch no route for method", method: "PATCH", target: "/items/7"},
		{name: "wildcard", method: "GET", target: "/files/a/b/c.txt"},
		{name: "nested params", method: "GET", target: "/users/u1/orders/o2"},
		{name: "unmatched", method: "GET", target: "/no/such/path?q=1"},
		{name: "unmatched post", method: "POST", target: "/nope", body: "abc"},
		{name: "unmatched delete", method: "DELETE", target: "/"},
		{name: "unknown method", method: "PURGE", target: "/items/7"},
		{name: "lowercase method", method: "get", target: "/items/7"},
		{name: "created", method: "POST", target: "/create"},
		{name: "no content", method: "DELETE", target: "/gone/3"},
		{name: "redirect", method: "GET", target: "/old"},
		{name: "400 with error", method: "GET", target: "/bad"},
		{name: "404 from handler", method: "GET", target: "/missing"},
		{name: "429 plain", method: "GET", target: "/limited"},
		{name: "500 with error", method: "GET", target: "/fail"},
		{name: "500 two errors", method: "GET", target: "/fail2"},
		{name: "503 plain", method: "GET", target: "/unavailable"},
		{name: "200 with error", method: "GET", target: "/warn"},
		{name: "panic string", method: "GET", target: "/panic", panics: true},
		{name: "panic error", method: "POST", target: "/panic-err", body: "x", panics: true},
		{name: "panic after write", method: "GET", target: "/panic-late", panics: true},
		{name: "broken pipe", method: "GET", target: "/broken-pipe", panics: true},
		{name: "sampled parent", method: "GET", target: "/items/1", header: http.Header{"Traceparent": {sampledParent}}},
		{name: "sampled parent tracestate baggage", method: "GET", target: "/items/1", header: http.Header{
			"Traceparent": {sampledParent}, "Tracestate": {"vendor=x,other=y"}, "Baggage": {"tenant=acme,region=eu"}}},
		{name: "sampled parent 500", method: "GET", target: "/fail", header: http.Header{"Traceparent": {sampledParent}}},
		{name: "sampled parent panic", method: "GET", target: "/panic", panics: true, header: http.Header{"Traceparent": {sampledParent}}},
		{name: "unsampled parent", method: "GET", target: "/items/1", header: http.Header{"Traceparent": {unsampledParent}}},
		{name: "malformed parent", method: "GET", target: "/items/1", header: http.Header{"Traceparent": {"00-zz-yy-01"}}},
		{name: "baggage only", method: "GET", target: "/items/1", header: http.Header{"Baggage": {"k=v"}}},
		{name: "large headers", method: "GET", target: "/items/9", header: http.Header{
			"Cookie": {big}, "X-Big": {big, big}, "Accept": {"*/*"}}},
		{name: "user agent", method: "GET", target: "/items/9", header: http.Header{"User-Agent": {ua}}},
		{name: "xff one", method: "GET", target: "/items/9", header: http.Header{"X-Forwarded-For": {"203.0.113.7"}}},
		{name: "xff chain", method: "GET", target: "/items/9", header: http.Header{"X-Forwarded-For": {"203.0.113.7, 198.51.100.2, 10.0.0.1"}}},
		{name: "x-real-ip", method: "GET", target: "/items/9", header: http.Header{"X-Real-Ip": {"198.51.100.9"}}},
		{name: "xff garbage", method: "GET", target: "/items/9", header: http.Header{"X-Forwarded-For": {"not-an-ip"}}},
		{name: "ipv6 peer", method: "GET", target: "/items/9", remote: "[2001:db8::1]:61000"},
		{name: "peer without port", method: "GET", target: "/items/9", remote: "192.0.2.44"},
		{name: "unix peer", method: "GET", target: "/items/9", remote: "@"},
		{name: "unparsable peer with xff", method: "GET", target: "/items/9", remote: "pipe",
			header: http.Header{"X-Forwarded-For": {"203.0.113.8, 10.0.0.2"}}},
		{name: "no peer", method: "GET", target: "/items/9", remote: "-"},
		{name: "host with port", method: "GET", target: "/items/9", host: "api.example.com:8443"},
		{name: "host port 80", method: "GET", target: "/items/9", host: "api.example.com:80"},
		{name: "ipv6 host", method: "GET", target: "/items/9", host: "[2001:db8::2]:9000"},
		{name: "no host", method: "GET", target: "/items/9", host: "-"},
		{name: "https", method: "GET", target: "https://secure.example/items/5"},
		{name: "https port 443", method: "GET", target: "https://secure.example:443/items/5"},
		{name: "https other port", method: "GET", target: "https://secure.example:8443/items/5"},
		{name: "http2", method: "GET", target: "/items/5", proto: "HTTP/2.0"},
		{name: "http1.0", method: "GET", target: "/items/5", proto: "HTTP/1.0"},
	}
	return cs
}

// diffRoutes builds the same engine on both sides around mw.
func diffRoutes(mw gin.HandlerFunc) *gin.Engine {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(logging.Recovery(logging.New(io.Discard, nil)), mw)
	item := func(c *gin.Context) {
		n, _ := io.Copy(io.Discard, c.Request.Body)
		c.JSON(http.StatusOK, gin.H{"id": c.Param("id"), "read": n})
	}
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"} {
		r.Handle(m, "/items/:id", item)
	}
	r.GET("/files/*path", func(c *gin.Context) { c.String(http.StatusOK, c.Param("path")) })
	r.GET("/users/:uid/orders/:oid", item)
	r.POST("/create", func(c *gin.Context) { c.JSON(http.StatusCreated, gin.H{"ok": true}) })
	r.DELETE("/gone/:id", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	r.GET("/old", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/items/1") })
	r.GET("/bad", func(c *gin.Context) {
		_ = c.AbortWithError(http.StatusBadRequest, errors.New("field x is missing"))
	})
	r.GET("/missing", func(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"error": "no such item"}) })
	r.GET("/limited", func(c *gin.Context) { c.String(http.StatusTooManyRequests, "slow down") })
	r.GET("/fail", func(c *gin.Context) {
		_ = c.Error(errors.New("db down"))
		c.String(http.StatusInternalServerError, "internal")
	})
	r.GET("/fail2", func(c *gin.Context) {
		_ = c.Error(errors.New("first"))
		_ = c.Error(fmt.Errorf("second: %w", os.ErrNotExist))
		c.Status(http.StatusInternalServerError)
	})
	r.GET("/unavailable", func(c *gin.Context) { c.Status(http.StatusServiceUnavailable) })
	r.GET("/warn", func(c *gin.Context) {
		_ = c.Error(errors.New("cache miss"))
		c.String(http.StatusOK, "ok")
	})
	r.GET("/panic", func(c *gin.Context) { panicHere() })
	r.POST("/panic-err", func(c *gin.Context) { panic(fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF)) })
	r.GET("/panic-late", func(c *gin.Context) {
		c.String(http.StatusOK, "partial")
		panic("late")
	})
	r.GET("/broken-pipe", func(c *gin.Context) {
		panic(&net.OpError{Op: "write", Net: "tcp", Err: &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}})
	})
	return r
}

func (dc diffCase) request(t *testing.T) *http.Request {
	var body io.Reader
	if dc.body != "" {
		body = strings.NewReader(dc.body)
	}
	req := httptest.NewRequestWithContext(t.Context(), dc.method, dc.target, body)
	for k, v := range dc.header {
		req.Header[k] = v
	}
	switch dc.remote {
	case "":
	case "-":
		req.RemoteAddr = ""
	default:
		req.RemoteAddr = dc.remote
	}
	switch dc.host {
	case "":
	case "-":
		req.Host = ""
	default:
		req.Host = dc.host
	}
	if dc.proto != "" {
		req.Proto = dc.proto
		_, _ = fmt.Sscanf(dc.proto, "HTTP/%d.%d", &req.ProtoMajor, &req.ProtoMinor)
	}
	return req
}

// spanView is what a backend receives of a span, timestamps and IDs aside.
type spanView struct {
	Name           string
	Kind           string
	Attrs          map[attribute.Key]string
	StatusCode     codes.Code
	StatusDesc     string
	Events         []eventView
	Links          []string
	Parent         string // the parent's trace and span ID, remote flag; "root"
	SameTrace      bool   // the span's trace ID is the parent's
	Scope          string
	Dropped        [3]int // attributes, events, links
	ChildSpanCount int
}

type eventView struct {
	Name  string
	Attrs map[attribute.Key]string
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := make(map[attribute.Key]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Type().String() + ":" + kv.Value.Emit()
	}
	return m
}

func viewOf(s sdktrace.ReadOnlySpan) spanView {
	v := spanView{
		Name: s.Name(), Kind: s.SpanKind().String(), Attrs: attrMap(s.Attributes()),
		StatusCode: s.Status().Code, StatusDesc: s.Status().Description,
		Parent: "root", ChildSpanCount: s.ChildSpanCount(),
		Dropped: [3]int{s.DroppedAttributes(), s.DroppedEvents(), s.DroppedLinks()},
	}
	if p := s.Parent(); p.IsValid() {
		v.Parent = fmt.Sprintf("%s-%s remote=%v flags=%s state=%s", p.TraceID(), p.SpanID(), p.IsRemote(), p.TraceFlags(), p.TraceState())
		v.SameTrace = p.TraceID() == s.SpanContext().TraceID()
	}
	for _, e := range s.Events() {
		v.Events = append(v.Events, eventView{Name: e.Name, Attrs: attrMap(e.Attributes)})
	}
	for _, l := range s.Links() {
		v.Links = append(v.Links, fmt.Sprintf("%s-%s %v", l.SpanContext.TraceID(), l.SpanContext.SpanID(), attrMap(l.Attributes)))
	}
	sc := s.InstrumentationScope()
	v.Scope = fmt.Sprintf("%s@%s schema=%q attrs=%v", sc.Name, sc.Version, sc.SchemaURL, sc.Attributes.Encoded(attribute.DefaultEncoder()))
	return v
}

// kitDeviation applies the kit's documented differences to otelgin's span
// of a request answered with status.
func kitDeviation(v *spanView, dc diffCase, status int) {
	if v.StatusCode == codes.Error && status >= 100 && status < 500 {
		v.StatusCode, v.StatusDesc = codes.Unset, ""
	}
	if !dc.panics {
		return
	}
	v.Attrs["http.response.status_code"] = fmt.Sprintf("INT64:%d", status)
	if status >= 500 {
		v.StatusCode, v.StatusDesc = codes.Error, "panic"
	}
	// The SDK's End records the panic it sees unwinding as an exception
	// event (type and message). The kit's event carries the same message,
	// the type as %T names it (the SDK writes ".string" for a string) and
	// the stack of the panic site.
	e := &v.Events[len(v.Events)-1]
	if e.Name != "exception" || len(e.Attrs) != 2 {
		panic(fmt.Sprintf("otelgin's span has no panic event: %v", v.Events))
	}
	e.Attrs["exception.type"] = strings.Replace(e.Attrs["exception.type"], "STRING:.", "STRING:", 1)
	e.Attrs["exception.stacktrace"] = "(stack)"
}

// checkStack checks that the kit's panic event has the stack of the panic
// site, and replaces it by the placeholder kitDeviation puts in otelgin's.
func checkStack(t *testing.T, name string, v *spanView, site string) {
	t.Helper()
	for i := range v.Events {
		e := &v.Events[i]
		st, ok := e.Attrs["exception.stacktrace"]
		if e.Name != "exception" || !ok {
			continue
		}
		if !strings.HasPrefix(st, "STRING:goroutine ") || !strings.Contains(st, site) {
			t.Errorf("%s: exception.stacktrace %q; want the stack of %s", name, st, site)
		}
		e.Attrs["exception.stacktrace"] = "(stack)"
	}
}

// panicSite is the function each panicking route panics in.
var panicSite = map[string]string{
	"/panic":       "tracing_test.panicHere",
	"/panic-err":   "tracing_test.diffRoutes.func",
	"/panic-late":  "tracing_test.diffRoutes.func",
	"/broken-pipe": "tracing_test.diffRoutes.func",
}

// diffSide is one side of the comparison: an engine and its recorder.
type diffSide struct {
	r   *gin.Engine
	rec *tracetest.SpanRecorder
}

func (s diffSide) serve(t *testing.T, dc diffCase) (int, []sdktrace.ReadOnlySpan) {
	before := len(s.rec.Ended())
	w := httptest.NewRecorder()
	s.r.ServeHTTP(w, dc.request(t))
	return w.Code, s.rec.Ended()[before:]
}

func TestSpansMatchOtelgin(t *testing.T) {
	servers := []string{"", "orders.example", "orders.example:9090"}
	// Each configuration builds the reference and the kit's side on
	// providers of identical configuration.
	configs := []struct {
		name string
		make func(t *testing.T, server string) (ref, kit diffSide)
	}{
		{"WithProvider", func(t *testing.T, server string) (diffSide, diffSide) {
			pr, rr := newRecorded(t)
			pk, rk := newRecorded(t)
			ref := otelgin.Middleware(server, otelgin.WithTracerProvider(pr.TracerProvider()),
				otelgin.WithPropagators(pr.Propagator()), otelgin.WithMeterProvider(noop.NewMeterProvider()))
			kit := middleware(t, server, tracing.WithProvider(pk), tracing.WithResponseHeader(tracing.DefaultResponseHeader))
			return diffSide{diffRoutes(ref), rr}, diffSide{diffRoutes(kit), rk}
		}},
		{"WithProvider+WithOtelgin", func(t *testing.T, server string) (diffSide, diffSide) {
			pr, rr := newRecorded(t)
			pk, rk := newRecorded(t)
			ref := otelgin.Middleware(server, otelgin.WithTracerProvider(pr.TracerProvider()),
				otelgin.WithPropagators(pr.Propagator()), otelgin.WithMeterProvider(noop.NewMeterProvider()))
			kit := middleware(t, server, tracing.WithProvider(pk), tracing.WithOtelgin())
			return diffSide{diffRoutes(ref), rr}, diffSide{diffRoutes(kit), rk}
		}},
		{"WithOTel", func(t *testing.T, server string) (diffSide, diffSide) {
			side := func() (tp0 sdktraceTP, rec *tracetest.SpanRecorder) {
				rec = tracetest.NewSpanRecorder()
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(rec))
				t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				return tp, rec
			}
			prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
			tr, rr := side()
			tk, rk := side()
			ref := otelgin.Middleware(server, otelgin.WithTracerProvider(tr), otelgin.WithPropagators(prop),
				otelgin.WithMeterProvider(noop.NewMeterProvider()))
			kit := middleware(t, server, tracing.WithOTel(tk, prop))
			return diffSide{diffRoutes(ref), rr}, diffSide{diffRoutes(kit), rk}
		}},
	}
	for _, cfg := range configs {
		for _, server := range servers {
			t.Run(cfg.name+"/server="+server, func(t *testing.T) {
				ref, kit := cfg.make(t, server)
				spans := 0
				for _, dc := range diffCorpus() {
					refStatus, refSpans := ref.serve(t, dc)
					kitStatus, kitSpans := kit.serve(t, dc)
					if refStatus != kitStatus && !dc.panics {
						t.Errorf("%s: status %d; otelgin's %d", dc.name, kitStatus, refStatus)
					}
					if len(refSpans) != len(kitSpans) {
						t.Errorf("%s: %d spans; otelgin %d", dc.name, len(kitSpans), len(refSpans))
						continue
					}
					for i := range refSpans {
						spans++
						want, got := viewOf(refSpans[i]), viewOf(kitSpans[i])
						kitDeviation(&want, dc, kitStatus)
						if dc.panics {
							checkStack(t, dc.name, &got, panicSite[dc.target])
						}
						diffViews(t, dc.name, want, got)
					}
				}
				if spans < len(diffCorpus())-2 {
					t.Fatalf("only %d spans compared", spans)
				}
			})
		}
	}
}

type sdktraceTP = *sdktrace.TracerProvider

func diffViews(t *testing.T, name string, want, got spanView) {
	t.Helper()
	diff := func(field string, w, g any) { t.Errorf("%s: %s\n  kit      %v\n  otelgin  %v", name, field, g, w) }
	if want.Name != got.Name {
		diff("name", want.Name, got.Name)
	}
	if want.Kind != got.Kind {
		diff("kind", want.Kind, got.Kind)
	}
	for k, w := range want.Attrs {
		if g, ok := got.Attrs[k]; !ok || g != w {
			diff("attribute "+string(k), w, g)
		}
	}
	for k, g := range got.Attrs {
		if _, ok := want.Attrs[k]; !ok {
			diff("extra attribute "+string(k), "(none)", g)
		}
	}
	if want.StatusCode != got.StatusCode || want.StatusDesc != got.StatusDesc {
		diff("status", fmt.Sprintf("%v %q", want.StatusCode, want.StatusDesc), fmt.Sprintf("%v %q", got.StatusCode, got.StatusDesc))
	}
	if fmt.Sprint(want.Events) != fmt.Sprint(got.Events) {
		diff("events", want.Events, got.Events)
	}
	if !slices.Equal(want.Links, got.Links) {
		diff("links", want.Links, got.Links)
	}
	if want.Parent != got.Parent || want.SameTrace != got.SameTrace {
		diff("parent", want.Parent+fmt.Sprint(want.SameTrace), got.Parent+fmt.Sprint(got.SameTrace))
	}
	if want.Scope != got.Scope {
		diff("scope", want.Scope, got.Scope)
	}
	if want.Dropped != got.Dropped || want.ChildSpanCount != got.ChildSpanCount {
		diff("dropped/children", fmt.Sprint(want.Dropped, want.ChildSpanCount), fmt.Sprint(got.Dropped, got.ChildSpanCount))
	}
}
