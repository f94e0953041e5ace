package logging_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// logSink collects JSON log lines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func (s *logSink) byMsg(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range s.lines(t) {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// requestID and accessLog build the middlewares; the tests give them valid
// options, so an error is a bug of the test.
func requestID(opts ...logging.RequestIDOption) gin.HandlerFunc {
	m, err := logging.NewRequestID(opts...)
	if err != nil {
		panic(err)
	}
	return m.Middleware()
}

func accessLog(l *slog.Logger, opts ...logging.AccessLogOption) gin.HandlerFunc {
	m, err := logging.NewAccessLog(l, opts...)
	if err != nil {
		panic(err)
	}
	return m.Middleware()
}

// chain builds the documented chain: Recovery, RequestID, AccessLog, errcode.
func chain(sink *logSink, opts ...logging.AccessLogOption) *gin.Engine {
	logger := logging.New(sink, slog.LevelDebug)
	r := gin.New()
	r.Use(logging.Recovery(logger), requestID(), accessLog(logger, opts...))
	errcode.Handle(r)
	return r
}

func serve(r http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func envelope(t *testing.T, w *httptest.ResponseRecorder) errcode.Envelope {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != errcode.ContentType {
		t.Fatalf("content type %q, want %q; body %s", ct, errcode.ContentType, w.Body)
	}
	var env errcode.Envelope
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("envelope: %v", err)
	}
	return env
}

func TestRequestIDKeepsValidIncomingAndReplacesInvalid(t *testing.T) {
	r := gin.New()
	r.Use(requestID())
	var seen string
	r.GET("/x", func(c *gin.Context) { seen = logging.RequestIDFromContext(c.Request.Context()) })

	w := serve(r, "GET", "/x", "X-Request-ID", "abc-123_x.y:z")
	if got := w.Header().Get("X-Request-ID"); got != "abc-123_x.y:z" || seen != got {
		t.Fatalf("valid id: header %q, context %q", got, seen)
	}
	for _, bad := range []string{"", "has space", "quote\"", strings.Repeat("a", logging.MaxRequestIDLen+1), "ünï", "a\nb"} {
		w := serve(r, "GET", "/x", "X-Request-ID", bad)
		got := w.Header().Get("X-Request-ID")
		if got == bad || !logging.ValidRequestID(got) || len(got) != 32 || seen != got {
			t.Fatalf("invalid id %q: got header %q context %q", bad, got, seen)
		}
	}
	a, b := serve(r, "GET", "/x").Header().Get("X-Request-ID"), serve(r, "GET", "/x").Header().Get("X-Request-ID")
	if a == b {
		t.Fatalf("two generated ids are equal: %q", a)
	}
	if !logging.ValidRequestID(strings.Repeat("a", logging.MaxRequestIDLen)) {
		t.Fatal("id of MaxRequestIDLen bytes rejected")
	}
}

func TestRequestIDOptions(t *testing.T) {
	r := gin.New()
	r.Use(requestID(logging.WithRequestIDHeader("x-correlation-id"),
		logging.WithRequestIDGenerator(func() string { return "bad id" })))
	r.GET("/x", func(c *gin.Context) {})
	w := serve(r, "GET", "/x", "X-Correlation-ID", "corr-1")
	if got := w.Header().Get("X-Correlation-ID"); got != "corr-1" {
		t.Fatalf("custom header: %q", got)
	}
	w = serve(r, "GET", "/x")
	if got := w.Header().Get("X-Correlation-ID"); !logging.ValidRequestID(got) {
		t.Fatalf("invalid generator output was not replaced: %q", got)
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"nil access-log option", func() error {
			_, err := logging.NewAccessLog(nil, logging.WithQuery(false), nil)
			return err
		}, "logging: option 2 is nil"},
		{"bad request header", func() error {
			_, err := logging.NewAccessLog(nil, logging.WithRequestHeaders("X-Tenant", "Bad Header"))
			return err
		}, `logging: WithRequestHeaders: invalid header name "Bad Header"`},
		{"empty request header", func() error {
			_, err := logging.NewAccessLog(nil, logging.WithRequestHeaders(""))
			return err
		}, `logging: WithRequestHeaders: invalid header name ""`},
		{"nil request-ID option", func() error {
			_, err := logging.NewRequestID(nil)
			return err
		}, "logging: option 1 is nil"},
		{"bad ID header", func() error {
			_, err := logging.NewRequestID(logging.WithRequestIDHeader("X-Request:ID"))
			return err
		}, `logging: WithRequestIDHeader: invalid header name "X-Request:ID"`},
		{"empty ID header", func() error {
			_, err := logging.NewRequestID(logging.WithRequestIDHeader(""))
			return err
		}, `logging: WithRequestIDHeader: invalid header name ""`},
		{"nil generator", func() error {
			_, err := logging.NewRequestID(logging.WithRequestIDGenerator(nil))
			return err
		}, "logging: WithRequestIDGenerator: nil generator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.err(); err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", strings.Repeat("z", 200), "\x00", "ok-1.2:3_4"} {
		f.Add(s)
	}
	r := gin.New()
	r.Use(requestID())
	r.GET("/x", func(c *gin.Context) {})
	f.Fuzz(func(t *testing.T, in string) {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header["X-Request-Id"] = []string{in}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		got := w.Header().Get("X-Request-ID")
		if !logging.ValidRequestID(got) {
			t.Fatalf("echoed invalid id %q for input %q", got, in)
		}
		if logging.ValidRequestID(in) != (got == in) {
			t.Fatalf("input %q (valid=%v) gave %q", in, logging.ValidRequestID(in), got)
		}
	})
}

func TestAccessLogLine(t *testing.T) {
	sink := &logSink{}
	r := chain(sink)
	r.SetTrustedProxies(nil) //nolint:errcheck // nil never fails
	r.GET("/users/:id", func(c *gin.Context) { c.String(200, "hello") })

	serve(r, "GET", "/users/42?page=2&access_token=s3cr3t&Password=hunter2", "X-Request-ID", "rid-1",
		"User-Agent", "ua/1", "X-Forwarded-For", "203.0.113.9")
	lines := sink.byMsg(t, "request")
	if len(lines) != 1 {
		t.Fatalf("want 1 access line, got %d: %v", len(lines), lines)
	}
	l := lines[0]
	want := map[string]any{
		"level": "INFO", "method": "GET", "route": "/users/:id", "path": "/users/42",
		"status": 200.0, "bytes": 5.0, "client_ip": "192.0.2.1", "user_agent": "ua/1",
		"request_id": "rid-1", "query": "page=2&access_token=[REDACTED]&Password=[REDACTED]",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %v, want %v", k, l[k], v)
		}
	}
	if lat, ok := l["latency"].(float64); !ok || lat < 0 || lat > 5 {
		t.Errorf("latency = %v", l["latency"])
	}
	for _, k := range []string{"time", "code", "reason", "error", "trace_id"} {
		_, has := l[k]
		if has != (k == "time") {
			t.Errorf("field %s present=%v", k, has)
		}
	}
	if strings.Contains(sink.buf.String(), "s3cr3t") || strings.Contains(sink.buf.String(), "hunter2") {
		t.Fatal("secret query value reached the log")
	}
}

func TestAccessLogLevelsCodesAndErrors(t *testing.T) {
	sink := &logSink{}
	r := chain(sink)
	r.GET("/fail", func(c *gin.Context) { _ = c.Error(errors.New("db: connection refused to 10.0.0.7")) })
	r.GET("/limited", func(c *gin.Context) { errcode.Write(c, errcode.RateLimited) })

	w := serve(r, "GET", "/fail")
	env := envelope(t, w)
	if w.Code != 500 || env.Code != errcode.Internal.Code() || strings.Contains(w.Body.String(), "10.0.0.7") {
		t.Fatalf("handler error answered %d %+v", w.Code, env)
	}
	serve(r, "GET", "/limited")
	serve(r, "DELETE", "/limited")
	serve(r, "GET", "/nope")

	lines := sink.byMsg(t, "request")
	if len(lines) != 4 {
		t.Fatalf("want 4 lines, got %d", len(lines))
	}
	cases := []struct {
		level  string
		status float64
		reason string
		route  string
		errSub string
	}{
		{"ERROR", 500, "INTERNAL", "/fail", "10.0.0.7"},
		{"WARN", 429, "RATE_LIMITED", "/limited", ""},
		{"WARN", 405, "METHOD_NOT_ALLOWED", "", ""},
		{"WARN", 404, "NOT_FOUND", "", ""},
	}
	for i, c := range cases {
		l := lines[i]
		if l["level"] != c.level || l["status"] != c.status || l["reason"] != c.reason || l["route"] != c.route {
			t.Errorf("line %d: %v", i, l)
		}
		errText, _ := l["error"].(string)
		if c.errSub != "" && !strings.Contains(errText, c.errSub) {
			t.Errorf("line %d: internal error text not logged: %v", i, l)
		}
		if code, _ := l["code"].(float64); code == 0 {
			t.Errorf("line %d: no code: %v", i, l)
		}
	}
}

func TestAccessLogOptions(t *testing.T) {
	sink := &logSink{}
	r := chain(sink,
		logging.WithSkipPaths("/healthz"),
		logging.WithClientErrorLevel(slog.LevelInfo),
		logging.WithRequestHeaders("Authorization", "X-Tenant", "X-Session-Key", "Cookie"),
		logging.WithSensitive("X-Tenant"),
		logging.WithQuery(false),
	)
	r.GET("/healthz", func(c *gin.Context) { c.Status(200) })
	r.GET("/x", func(c *gin.Context) { c.Status(404) })

	serve(r, "GET", "/healthz")
	serve(r, "GET", "/x?token=abc", "Authorization", "Bearer abc", "X-Tenant", "t1", "X-Session-Key", "k", "Cookie", "a=b")
	lines := sink.byMsg(t, "request")
	if len(lines) != 1 {
		t.Fatalf("skip path logged or /x missing: %v", lines)
	}
	l := lines[0]
	if l["level"] != "INFO" || l["route"] != "/x" {
		t.Fatalf("client error level option ignored: %v", l)
	}
	if _, has := l["query"]; has {
		t.Fatal("query logged with WithQuery(false)")
	}
	h, _ := l["headers"].(map[string]any)
	for _, k := range []string{"Authorization", "X-Tenant", "X-Session-Key", "Cookie"} {
		if h[k] != logging.Redacted {
			t.Errorf("header %s = %v, want redacted", k, h[k])
		}
	}
}

func TestAccessLogTraceIDsAndFromContext(t *testing.T) {
	sink := &logSink{}
	logger := logging.New(sink, nil)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	r := gin.New()
	r.Use(requestID(), func(c *gin.Context) {
		// stands in for a tracing middleware
		c.Request = c.Request.WithContext(trace.ContextWithSpanContext(c.Request.Context(), sc))
		c.Next()
	}, accessLog(logger))
	errcode.Handle(r)
	r.GET("/x", func(c *gin.Context) {
		logging.FromContext(c.Request.Context()).Info("handler line", "order", 7)
		errcode.Write(c, errcode.Conflict)
	})
	w := serve(r, "GET", "/x", "X-Request-ID", "rid-9")
	if env := envelope(t, w); env.TraceID != tid.String() || env.RequestID != "rid-9" {
		t.Fatalf("envelope ids: %+v", env)
	}
	for _, msg := range []string{"handler line", "request"} {
		ls := sink.byMsg(t, msg)
		if len(ls) != 1 {
			t.Fatalf("%q lines: %d", msg, len(ls))
		}
		if ls[0]["request_id"] != "rid-9" || ls[0]["trace_id"] != tid.String() || ls[0]["span_id"] != sid.String() {
			t.Errorf("%q not correlated: %v", msg, ls[0])
		}
	}
}

func TestFromContextWithoutMiddleware(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	if l := logging.FromContext(req.Context()); l != slog.Default() {
		t.Fatal("FromContext without request state should be slog.Default()")
	}
}

func TestRecoveryPanicEnvelopeAndOneStack(t *testing.T) {
	sink := &logSink{}
	r := chain(sink)
	r.GET("/boom", func(c *gin.Context) { panicInHandler() })

	w := serve(r, "GET", "/boom", "X-Request-ID", "rid-p")
	env := envelope(t, w)
	if w.Code != 500 || env.Code != errcode.Panic.Code() || env.Reason != "INTERNAL_PANIC" || env.RequestID != "rid-p" {
		t.Fatalf("panic answered %d %+v", w.Code, env)
	}
	if strings.Contains(w.Body.String(), "kaboom") {
		t.Fatal("panic value reached the client")
	}
	stacks := 0
	for _, l := range sink.lines(t) {
		if s, ok := l["stack"].(string); ok {
			stacks++
			if !strings.Contains(s, "panicInHandler") {
				t.Errorf("logged stack is not the panic site's:\n%s", s)
			}
			if l["level"] != "ERROR" || l["request_id"] != "rid-p" || !strings.Contains(l["panic"].(string), "kaboom") {
				t.Errorf("panic line: %v", l)
			}
		}
	}
	if stacks != 1 {
		t.Fatalf("stack logged %d times, want once", stacks)
	}
	acc := sink.byMsg(t, "request")
	if len(acc) != 1 || acc[0]["status"] != 500.0 || acc[0]["reason"] != "INTERNAL_PANIC" || acc[0]["level"] != "ERROR" {
		t.Fatalf("access line for panic: %v", acc)
	}
}

//go:noinline
func panicInHandler() { panic("kaboom") }

func TestRecoveryWithoutAccessLog(t *testing.T) {
	sink := &logSink{}
	r := gin.New()
	r.Use(logging.Recovery(logging.New(sink, nil)))
	r.GET("/boom", func(c *gin.Context) { panicInHandler() })
	w := serve(r, "GET", "/boom")
	if env := envelope(t, w); w.Code != 500 || env.Reason != "INTERNAL_PANIC" {
		t.Fatalf("%d %+v", w.Code, env)
	}
	ls := sink.byMsg(t, "panic recovered")
	if len(ls) != 1 || !strings.Contains(ls[0]["stack"].(string), "panicInHandler") {
		t.Fatalf("panic line: %v", ls)
	}
}

func TestRecoveryBrokenPipeIsNotServerError(t *testing.T) {
	sink := &logSink{}
	r := chain(sink)
	r.GET("/gone", func(c *gin.Context) {
		panic(&net.OpError{Op: "write", Net: "tcp", Err: &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}})
	})
	w := serve(r, "GET", "/gone")
	if w.Code == 500 {
		t.Fatal("broken pipe answered 500")
	}
	for _, l := range sink.lines(t) {
		if l["level"] == "ERROR" {
			t.Errorf("broken pipe logged at ERROR: %v", l)
		}
		if _, has := l["stack"]; has {
			t.Errorf("stack logged for broken pipe: %v", l)
		}
	}
	acc := sink.byMsg(t, "request")
	if len(acc) != 1 || acc[0]["status"] != 499.0 || acc[0]["reason"] != "CLIENT_CLOSED_REQUEST" {
		t.Fatalf("access line: %v", acc)
	}
	if ls := sink.byMsg(t, "client connection broken"); len(ls) != 1 || ls[0]["level"] != "WARN" {
		t.Fatalf("broken pipe line: %v", ls)
	}
}

func TestRecoveryPassesAbortHandler(t *testing.T) {
	sink := &logSink{}
	r := chain(sink)
	r.GET("/abort", func(c *gin.Context) { panic(http.ErrAbortHandler) })
	defer func() {
		if p := recover(); p != http.ErrAbortHandler { //nolint:errorlint // identity is the contract
			t.Fatalf("recovered %v, want http.ErrAbortHandler passed on", p)
		}
	}()
	serve(r, "GET", "/abort")
	t.Fatal("ErrAbortHandler was swallowed")
}

// TestBrokenPipeOverRealConnection writes to a client that has gone.
func TestBrokenPipeOverRealConnection(t *testing.T) {
	sink := &logSink{}
	r := chain(sink)
	wrote := make(chan struct{})
	r.GET("/stream", func(c *gin.Context) {
		defer close(wrote)
		c.Status(200)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for i := 0; i < 1000; i++ {
			if _, err := c.Writer.Write(chunk); err != nil {
				panic(err) // what code that ignores nothing does with a write error
			}
			c.Writer.Flush()
		}
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if _, err := conn.Read(buf); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetLinger(0) // reset, so the server's writes fail
	conn.Close()
	<-wrote
	srv.Close()
	for _, l := range sink.lines(t) {
		if l["level"] == "ERROR" {
			t.Errorf("client disconnect logged at ERROR: %v", l)
		}
	}
	if acc := sink.byMsg(t, "request"); len(acc) != 1 || acc[0]["status"] != 499.0 {
		t.Fatalf("access line: %v", acc)
	}
}

// The access log's 4xx level without WithClientErrorLevel is the exported
// default (the table above sees WARN lines).
func TestDefaultClientErrorLevel(t *testing.T) {
	if logging.DefaultClientErrorLevel != slog.LevelWarn {
		t.Fatalf("DefaultClientErrorLevel = %v, want WARN", logging.DefaultClientErrorLevel)
	}
}

func TestValidRequestIDBytes(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:", byte(c)) >= 0
		if got := logging.ValidRequestID("a" + string([]byte{byte(c)}) + "z"); got != want {
			t.Fatalf("byte %#x: valid = %v, want %v", c, got, want)
		}
	}
	for i := 0; i < 1000; i++ {
		if id := logging.GenerateRequestID(); !logging.ValidRequestID(id) || len(id) != 32 {
			t.Fatalf("generated id %q is not valid", id)
		}
	}
}

// A generated ID lives in the request state's allocation: the middleware
// allocates nothing for it. A second RequestID on the same request (which
// generates again) must not change the first one's ID.
func TestGeneratedRequestIDNoAllocationAndStable(t *testing.T) {
	mw := requestID()
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	req := httptest.NewRequest("GET", "/x", nil)
	if n := testing.AllocsPerRun(100, func() {
		c.Request = req
		mw(c)
	}); n != 1 { // the request's state, nothing for the ID
		t.Fatalf("RequestID with a generated ID: %v allocations, want 1", n)
	}
	if id := c.Writer.Header().Get("X-Request-ID"); !logging.ValidRequestID(id) || logging.RequestIDFromContext(c.Request.Context()) != id {
		t.Fatalf("generated ID %q", id)
	}

	r := gin.New()
	var first, firstCopy, second string
	r.Use(mw, func(c *gin.Context) {
		first = logging.RequestIDFromContext(c.Request.Context())
		firstCopy = strings.Clone(first)
		c.Next()
	}, requestID(), func(c *gin.Context) {
		second = logging.RequestIDFromContext(c.Request.Context())
	})
	r.GET("/x", func(c *gin.Context) {})
	serve(r, "GET", "/x")
	if first != firstCopy || !logging.ValidRequestID(first) || len(first) != 32 {
		t.Fatalf("first ID changed: %q, was %q", first, firstCopy)
	}
	if !logging.ValidRequestID(second) || second == first {
		t.Fatalf("second ID %q (first %q)", second, first)
	}
}
