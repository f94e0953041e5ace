package errcode_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/reqstate"
)

// Tests here do not run in parallel: SetRenderer is process-wide.

func serve(r http.Handler, method, target string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	return rec
}

// decodeEnvelope decodes body strictly: no unknown field, no trailing data.
func decodeEnvelope(t *testing.T, body []byte) errcode.Envelope {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var env errcode.Envelope
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("decode envelope %q: %v", body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("envelope %q has trailing data (%v)", body, err)
	}
	return env
}

// checkEnvelope checks status, content type and the code of an answer and
// returns its envelope.
func checkEnvelope(t *testing.T, rec *httptest.ResponseRecorder, code *errcode.Code) errcode.Envelope {
	t.Helper()
	if rec.Code != code.Status() {
		t.Errorf("status = %d; want %d (body %q)", rec.Code, code.Status(), rec.Body)
	}
	if ct := rec.Header().Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q; want exactly application/json; charset=utf-8", ct)
	}
	env := decodeEnvelope(t, rec.Body.Bytes())
	if env.Code != code.Code() || env.Reason != code.Reason() {
		t.Errorf("envelope code = %d %s; want %d %s", env.Code, env.Reason, code.Code(), code.Reason())
	}
	return env
}

func rawFields(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return m
}

func newEngine(mws ...gin.HandlerFunc) *gin.Engine {
	r := gin.New()
	errcode.Handle(r)
	r.Use(mws...)
	return r
}

func TestHandleNotFound(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.GET("/items", func(c *gin.Context) { c.String(200, "items") })

	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		rec := serve(r, method, "/nope", nil)
		env := checkEnvelope(t, rec, errcode.NotFound)
		want := errcode.Envelope{
			Code:     404001,
			Reason:   "NOT_FOUND",
			Message:  errcode.NotFound.Message(),
			Solution: errcode.NotFound.Solution(),
		}
		if !reflect.DeepEqual(env, want) {
			t.Errorf("%s /nope: envelope = %+v; want %+v", method, env, want)
		}
		if _, ok := rawFields(t, rec.Body.Bytes())["request_id"]; !ok {
			t.Errorf("request_id is missing from %s; it is always present", rec.Body)
		}
	}
}

func TestHandleMethodNotAllowed(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.GET("/items", func(c *gin.Context) { c.String(200, "items") })

	rec := serve(r, http.MethodPost, "/items", nil)
	env := checkEnvelope(t, rec, errcode.MethodNotAllowed)
	if env.Code != 405001 || rec.Code != 405 {
		t.Errorf("POST /items = %d, code %d; want 405, 405001", rec.Code, env.Code)
	}
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q; want it to list GET", allow)
	}
	// The route still works for its method.
	if rec := serve(r, http.MethodGet, "/items", nil); rec.Code != 200 || rec.Body.String() != "items" {
		t.Errorf("GET /items = %d %q", rec.Code, rec.Body)
	}
}

// 404 and 405 answers pass through global middleware registered before or
// after Handle.
func TestHandleGlobalMiddlewareOrder(t *testing.T) {
	gin.SetMode(gin.TestMode)
	mark := func(name string) gin.HandlerFunc {
		return func(c *gin.Context) { c.Header("X-"+name, "1"); c.Next() }
	}
	r := gin.New()
	r.Use(mark("Before"))
	errcode.Handle(r)
	r.Use(mark("After"))
	r.GET("/items", func(c *gin.Context) {})

	for _, tc := range []struct {
		method, path string
		code         *errcode.Code
	}{
		{http.MethodGet, "/nope", errcode.NotFound},
		{http.MethodPost, "/items", errcode.MethodNotAllowed},
	} {
		rec := serve(r, tc.method, tc.path, nil)
		checkEnvelope(t, rec, tc.code)
		if rec.Header().Get("X-Before") != "1" || rec.Header().Get("X-After") != "1" {
			t.Errorf("%s %s skipped a global middleware: headers %v", tc.method, tc.path, rec.Header())
		}
	}
}

func TestMiddlewareHidesInternalError(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.GET("/boom", func(c *gin.Context) { _ = c.Error(errors.New("secret internal text")) })

	rec := serve(r, http.MethodGet, "/boom", nil)
	env := checkEnvelope(t, rec, errcode.Internal)
	if strings.Contains(rec.Body.String(), "secret internal text") {
		t.Errorf("body %q leaks the internal error", rec.Body)
	}
	if env.Message != errcode.Internal.Message() {
		t.Errorf("message = %q; want %q", env.Message, errcode.Internal.Message())
	}
}

func TestMiddlewareRendersCode(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.GET("/orders/:id", func(c *gin.Context) {
		_ = c.Error(errcode.NotFound.WithMetadata("id", c.Param("id")))
	})
	r.GET("/wrapped", func(c *gin.Context) {
		_ = c.Error(fmt.Errorf("load order: %w", errcode.Conflict))
	})
	r.GET("/last", func(c *gin.Context) {
		_ = c.Error(errcode.Conflict)
		_ = c.Error(errcode.Forbidden)
	})

	rec := serve(r, http.MethodGet, "/orders/7", nil)
	env := checkEnvelope(t, rec, errcode.NotFound)
	if !reflect.DeepEqual(env.Metadata, map[string]string{"id": "7"}) {
		t.Errorf("metadata = %v; want id=7", env.Metadata)
	}

	rec = serve(r, http.MethodGet, "/wrapped", nil)
	checkEnvelope(t, rec, errcode.Conflict)
	if strings.Contains(rec.Body.String(), "load order") {
		t.Errorf("body %q leaks the wrapping text", rec.Body)
	}

	rec = serve(r, http.MethodGet, "/last", nil)
	checkEnvelope(t, rec, errcode.Forbidden)
	// Forbidden has no solution and no metadata: the fields are left out.
	fields := rawFields(t, rec.Body.Bytes())
	for _, k := range []string{"solution", "trace_id", "metadata"} {
		if _, ok := fields[k]; ok {
			t.Errorf("empty field %q present in %s", k, rec.Body)
		}
	}
}

type createOrder struct {
	Name string `json:"name" binding:"required"`
}

func TestMiddlewareBindError(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.POST("/orders", func(c *gin.Context) {
		var req createOrder
		if err := c.ShouldBindJSON(&req); err != nil {
			_ = c.Error(err).SetType(gin.ErrorTypeBind)
			return
		}
		c.String(201, req.Name)
	})

	rec := serve(r, http.MethodPost, "/orders", strings.NewReader(`{}`))
	env := checkEnvelope(t, rec, errcode.BadRequest)
	if env.Message != errcode.BadRequest.Message() {
		t.Errorf("message = %q; want %q", env.Message, errcode.BadRequest.Message())
	}
	if strings.Contains(rec.Body.String(), "required") || strings.Contains(rec.Body.String(), "createOrder") {
		t.Errorf("body %q leaks the validator's text", rec.Body)
	}

	rec = serve(r, http.MethodPost, "/orders", strings.NewReader(`{"name":"x"}`))
	if rec.Code != 201 || rec.Body.String() != "x" {
		t.Errorf("valid body = %d %q; want 201 x", rec.Code, rec.Body)
	}
}

// A bind-typed error that already is a code keeps its code.
func TestMiddlewareBindTypedCode(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.POST("/orders", func(c *gin.Context) {
		_ = c.Error(errcode.Conflict.WithMessage("duplicate name")).SetType(gin.ErrorTypeBind)
	})
	env := checkEnvelope(t, serve(r, http.MethodPost, "/orders", nil), errcode.Conflict)
	if env.Message != "duplicate name" {
		t.Errorf("message = %q; want the occurrence's", env.Message)
	}
}

func TestHandler(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.GET("/conflict", errcode.Handler(func(c *gin.Context) error {
		return errcode.Conflict.WithMessage("version mismatch")
	}))
	r.GET("/plain", errcode.Handler(func(c *gin.Context) error {
		return errors.New("dial tcp 10.0.0.1:5432: connection refused")
	}))
	r.GET("/ok", errcode.Handler(func(c *gin.Context) error {
		c.String(200, "fine")
		return nil
	}))

	env := checkEnvelope(t, serve(r, http.MethodGet, "/conflict", nil), errcode.Conflict)
	if env.Message != "version mismatch" {
		t.Errorf("message = %q; want version mismatch", env.Message)
	}
	rec := serve(r, http.MethodGet, "/plain", nil)
	checkEnvelope(t, rec, errcode.Internal)
	if strings.Contains(rec.Body.String(), "10.0.0.1") {
		t.Errorf("body %q leaks the cause", rec.Body)
	}
	if rec := serve(r, http.MethodGet, "/ok", nil); rec.Code != 200 || rec.Body.String() != "fine" {
		t.Errorf("nil error: %d %q; want 200 fine", rec.Code, rec.Body)
	}

	// Handler works without Handle too.
	plain := gin.New()
	plain.GET("/x", errcode.Handler(func(*gin.Context) error { return errcode.Unavailable }))
	checkEnvelope(t, serve(plain, http.MethodGet, "/x", nil), errcode.Unavailable)
}

func TestMiddlewareDoesNotWriteTwice(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.GET("/written", func(c *gin.Context) {
		c.String(http.StatusAccepted, "done")
		_ = c.Error(errors.New("after the fact"))
	})
	r.GET("/write-after", func(c *gin.Context) {
		c.String(http.StatusAccepted, "done")
		errcode.Write(c, errcode.Conflict)
	})
	for _, path := range []string{"/written", "/write-after"} {
		rec := serve(r, http.MethodGet, path, nil)
		if rec.Code != http.StatusAccepted || rec.Body.String() != "done" {
			t.Errorf("%s = %d %q; want the handler's own 202 done", path, rec.Code, rec.Body)
		}
	}
}

func TestWriteAborts(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	ran := false
	r.GET("/limited", func(c *gin.Context) {
		errcode.Write(c, errcode.RateLimited)
	}, func(c *gin.Context) { ran = true })
	checkEnvelope(t, serve(r, http.MethodGet, "/limited", nil), errcode.RateLimited)
	if ran {
		t.Error("the handler after Write ran: Write did not abort")
	}
}

func TestWriteNil(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.GET("/nil", func(c *gin.Context) { errcode.Write(c, nil) })
	checkEnvelope(t, serve(r, http.MethodGet, "/nil", nil), errcode.Internal)
}

func TestRequestInfo(t *testing.T) {
	gin.SetMode(gin.TestMode)
	var info *reqstate.Info
	r := newEngine(func(c *gin.Context) {
		info = reqstate.Ensure(c)
		info.RequestID = "rid-1"
		c.Next()
	})
	cause := errors.New("db down")
	r.GET("/fail", func(c *gin.Context) { _ = c.Error(fmt.Errorf("load: %w", cause)) })

	rec := serve(r, http.MethodGet, "/fail", nil)
	env := checkEnvelope(t, rec, errcode.Internal)
	if env.RequestID != "rid-1" {
		t.Errorf("request_id = %q; want rid-1", env.RequestID)
	}
	if info.Code != 500001 || info.Reason != "INTERNAL" {
		t.Errorf("reqstate code = %d %q; want 500001 INTERNAL", info.Code, info.Reason)
	}
	if !errors.Is(info.Cause, cause) {
		t.Errorf("reqstate cause = %v; want it to wrap %v", info.Cause, cause)
	}

	info = nil
	rec = serve(r, http.MethodGet, "/nope", nil)
	env = checkEnvelope(t, rec, errcode.NotFound)
	if env.RequestID != "rid-1" || info == nil || info.Code != 404001 || info.Reason != "NOT_FOUND" || info.Cause != nil {
		t.Errorf("404: request_id %q, reqstate %+v; want rid-1, 404001 NOT_FOUND, nil cause", env.RequestID, info)
	}
}

func TestTraceID(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := newEngine()
	r.GET("/fail", func(c *gin.Context) { _ = c.Error(errcode.Unavailable) })

	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10},
		SpanID:     trace.SpanID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8},
		TraceFlags: trace.FlagsSampled,
	})
	for _, path := range []string{"/fail", "/nope"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req = req.WithContext(trace.ContextWithSpanContext(req.Context(), sc))
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		env := decodeEnvelope(t, rec.Body.Bytes())
		if env.TraceID != "0102030405060708090a0b0c0d0e0f10" {
			t.Errorf("%s: trace_id = %q; want 0102030405060708090a0b0c0d0e0f10", path, env.TraceID)
		}
	}

	// No span, or an invalid one: no trace_id field at all.
	for name, ctxReq := range map[string]*http.Request{
		"no span":      httptest.NewRequest(http.MethodGet, "/fail", nil),
		"invalid span": httptest.NewRequest(http.MethodGet, "/fail", nil),
	} {
		req := ctxReq
		if name == "invalid span" {
			req = req.WithContext(trace.ContextWithSpanContext(req.Context(), trace.SpanContext{}))
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		checkEnvelope(t, rec, errcode.Unavailable)
		if _, ok := rawFields(t, rec.Body.Bytes())["trace_id"]; ok {
			t.Errorf("%s: trace_id present in %s", name, rec.Body)
		}
	}
}

func TestSetRenderer(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Cleanup(func() { errcode.SetRenderer(nil) })

	var got errcode.Envelope
	errcode.SetRenderer(func(c *gin.Context, status int, env errcode.Envelope) {
		got = env
		c.Data(status, "text/plain; charset=utf-8", []byte("custom "+env.Reason))
	})
	r := newEngine(func(c *gin.Context) { reqstate.Ensure(c).RequestID = "rid-2"; c.Next() })
	r.GET("/fail", func(c *gin.Context) { _ = c.Error(errcode.Conflict.WithMetadata("k", "v")) })

	rec := serve(r, http.MethodGet, "/nope", nil)
	if rec.Code != 404 || rec.Body.String() != "custom NOT_FOUND" || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("custom renderer: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = serve(r, http.MethodGet, "/fail", nil)
	if rec.Code != 409 || rec.Body.String() != "custom CONFLICT" {
		t.Errorf("custom renderer: %d %q", rec.Code, rec.Body)
	}
	want := errcode.Envelope{Code: 409001, Reason: "CONFLICT", Message: errcode.Conflict.Message(),
		RequestID: "rid-2", Metadata: map[string]string{"k": "v"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("renderer got %+v; want %+v", got, want)
	}

	errcode.SetRenderer(nil)
	checkEnvelope(t, serve(r, http.MethodGet, "/nope", nil), errcode.NotFound)
}

// appendJSONCases are envelopes whose strings need escaping.
var appendJSONCases = []errcode.Envelope{
	{},
	{Code: 404001, Reason: "NOT_FOUND", Message: "the resource was not found", RequestID: "rid"},
	{Code: -1, Reason: `quote " and backslash \`, Message: `\"\\"`},
	{Code: 1, Message: "control \x00\x01\x07\x08\x0b\x0c\x1b\x1f and \n\r\t end"},
	{Code: 2, Message: "<script>alert('x')</script> & more", Solution: "a<b>c&d"},
	{Code: 3, Message: "line\u2028separator\u2029paragraph", TraceID: "\u2028"},
	{Code: 4, Message: "invalid \xff\xfe utf-8 \xc3 and truncated \xe2\x82", RequestID: "\xed\xa0\x80"},
	{Code: 5, Message: "unicode é 日本 🎉 \ufffd \u007f", Solution: "ok"},
	{Code: 999_999_999, Reason: "R", Message: "m", Solution: "s", RequestID: "r", TraceID: "t",
		Metadata: map[string]string{"z": "last", "a": "first", "m": "<&>", "": "empty key", "\u2028": "\x00", "é": "\xff"}},
	{Code: 7, Metadata: map[string]string{}},
	{Code: 8, Metadata: map[string]string{"b": "2", "a": "1", "c": "3", "aa": "x", "B": "upper"}},
}

func TestAppendJSON(t *testing.T) {
	for i, env := range appendJSONCases {
		got := env.AppendJSON(nil)
		if !json.Valid(got) {
			t.Errorf("case %d: invalid JSON %q", i, got)
			continue
		}
		want, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := decodeStrict(t, got), decodeStrict(t, want); !reflect.DeepEqual(g, w) {
			t.Errorf("case %d:\nAppendJSON   %s -> %+v\njson.Marshal %s -> %+v", i, got, g, want, w)
		}
		// The same bytes as encoding/json: field order and escapes.
		if string(got) != string(want) {
			t.Errorf("case %d:\nAppendJSON   %s\njson.Marshal %s", i, got, want)
		}
	}
}

func TestAppendJSONEscapes(t *testing.T) {
	env := errcode.Envelope{Message: "<>&\u2028\u2029\"\\\n\x01", Metadata: map[string]string{"b": "1", "a": "2"}}
	got := string(env.AppendJSON(nil))
	for _, want := range []string{`\u003c\u003e\u0026\u2028\u2029\"\\\n\u0001`, `"metadata":{"a":"2","b":"1"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("AppendJSON = %s; want it to contain %s", got, want)
		}
	}
	if strings.ContainsAny(got, "<>&\u2028\u2029\n\x01") {
		t.Errorf("AppendJSON = %q left a character unescaped", got)
	}
	if got := string((&errcode.Envelope{Message: "\xff"}).AppendJSON(nil)); !strings.Contains(got, `"message":"\ufffd"`) {
		t.Errorf("invalid UTF-8: %s; want \\ufffd", got)
	}
}

func TestAppendJSONAppends(t *testing.T) {
	env := errcode.Envelope{Code: 1, Reason: "R", Message: "m"}
	prefix := []byte("prefix:")
	got := env.AppendJSON(prefix)
	if !bytes.HasPrefix(got, []byte("prefix:")) || !json.Valid(got[len(prefix):]) {
		t.Errorf("AppendJSON(prefix) = %q", got)
	}
	want := `{"code":1,"reason":"R","message":"m","request_id":""}`
	if string(got[len(prefix):]) != want {
		t.Errorf("AppendJSON = %s; want %s", got[len(prefix):], want)
	}
}

// The response body is exactly AppendJSON's output.
func TestWriteBodyIsAppendJSON(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	e := errcode.BadRequest.WithMessage("bad <field>").WithMetadata("field", "na\"me", "a", "\u2028")
	r.GET("/x", func(c *gin.Context) { errcode.Write(c, e) })
	rec := serve(r, http.MethodGet, "/x", nil)
	env := errcode.Envelope{Code: 400001, Reason: "BAD_REQUEST", Message: "bad <field>",
		Solution: errcode.BadRequest.Solution(), Metadata: e.Metadata()}
	if want := string(env.AppendJSON(nil)); rec.Body.String() != want {
		t.Errorf("body = %s; want %s", rec.Body, want)
	}
}

func decodeStrict(t testing.TB, b []byte) errcode.Envelope {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var env errcode.Envelope
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return env
}

func FuzzAppendJSON(f *testing.F) {
	for _, env := range appendJSONCases {
		keys := make([]string, 0, 2)
		vals := make([]string, 0, 2)
		for k, v := range env.Metadata {
			if len(keys) == 2 {
				break
			}
			keys, vals = append(keys, k), append(vals, v)
		}
		for len(keys) < 2 {
			keys, vals = append(keys, ""), append(vals, "")
		}
		f.Add(env.Code, env.Reason, env.Message, env.Solution, env.RequestID, env.TraceID,
			len(env.Metadata) > 0, keys[0], vals[0], keys[1], vals[1])
	}
	f.Fuzz(func(t *testing.T, code int, reason, message, solution, requestID, traceID string,
		withMeta bool, k1, v1, k2, v2 string) {
		env := errcode.Envelope{
			Code: code, Reason: reason, Message: message, Solution: solution,
			RequestID: requestID, TraceID: traceID,
		}
		if withMeta {
			env.Metadata = map[string]string{k1: v1, k2: v2}
		}
		got := env.AppendJSON(nil)
		if !json.Valid(got) {
			t.Fatalf("AppendJSON(%+v) = %q: invalid JSON", env, got)
		}
		want, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := decodeStrict(t, got), decodeStrict(t, want); !reflect.DeepEqual(g, w) {
			t.Fatalf("AppendJSON %s -> %+v\njson.Marshal %s -> %+v", got, g, want, w)
		}
	})
}
