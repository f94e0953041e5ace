package logging_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
)

// boundedServer serves r over a real http.Server whose header limit is
// raised to 4 MB, so that the requests below get through Go's own limits.
func boundedServer(t *testing.T, r http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(r)
	srv.Config.MaxHeaderBytes = 4 << 20
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, srv *httptest.Server, method, target string, hdr http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// checkLines checks that every line of sink is at most maxLine bytes
// (newline included), valid UTF-8 and one JSON object, and returns the
// lines with the given msg and the length of the longest line.
func checkLines(t *testing.T, sink *logSink, maxLine int, msg string) ([]map[string]any, int) {
	lines, sizes := checkLineSizes(t, sink, maxLine, msg)
	return lines, slices.Max(append(sizes, 0))
}

// checkLineSizes is checkLines returning the length of each line.
func checkLineSizes(t *testing.T, sink *logSink, maxLine int, msg string) ([]map[string]any, []int) {
	t.Helper()
	sink.mu.Lock()
	raw := sink.buf.String()
	sink.mu.Unlock()
	var sizes []int
	var out []map[string]any
	for _, l := range strings.SplitAfter(raw, "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line is not JSON: %v: %.300s", err, l)
		}
		if !utf8.ValidString(l) {
			t.Errorf("line is not valid UTF-8: %.300q", l)
		}
		if m["msg"] == msg {
			sizes = append(sizes, len(l))
			out = append(out, m)
			if len(l) > maxLine {
				t.Errorf("%s line of %d bytes, more than %d", msg, len(l), maxLine)
			}
		}
	}
	return out, sizes
}

// checkCut checks that field in m (a line or its headers group) was cut to
// at most maxField bytes, ends in the mark, is a prefix of want, and has
// want's length in field_len.
func checkCut(t *testing.T, m map[string]any, field, want string, maxField int) {
	t.Helper()
	v, ok := m[field].(string)
	if !ok {
		t.Errorf("%s: missing in %v", field, keys(m))
		return
	}
	if len(v) > maxField || !strings.HasSuffix(v, logging.TruncatedMark) || !strings.HasPrefix(want, strings.TrimSuffix(v, logging.TruncatedMark)) {
		t.Errorf("%s: %d bytes %.80q…, want a cut of at most %d bytes ending in %q", field, len(v), v, maxField, logging.TruncatedMark)
	}
	if n, ok := m[field+"_len"].(float64); !ok || int(n) != len(want) {
		t.Errorf("%s_len = %v, want %d", field, m[field+"_len"], len(want))
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// The cases: a 100 KB path, a 1 MB header set and a 64 KB error
// text, through a real server; every access-log line stays within the
// line bound and says how long each cut field was.
func TestAccessLogLinesBounded(t *testing.T) {
	longPath := "/files/" + strings.Repeat("a", 100<<10)
	ua := strings.Repeat("U", 256<<10)
	big := strings.Repeat("h", 128<<10)
	errText := strings.Repeat("e", 64<<10)
	headerSet := http.Header{"User-Agent": {ua}}
	logged := []string{"X-Big-1", "X-Big-2", "X-Big-3", "X-Big-4", "X-Small"}
	for _, n := range logged[:4] {
		headerSet[n] = []string{big}
	}
	headerSet["X-Small"] = []string{"kept"}
	for i := range 300 { // many headers, not logged
		headerSet[fmt.Sprintf("X-Filler-%d", i)] = []string{strings.Repeat("f", 1<<10)}
	}
	size := 0
	for k, vs := range headerSet {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if size < 1<<20 {
		t.Fatalf("header set of %d bytes, want at least 1 MB", size)
	}

	for _, tc := range []struct {
		name              string
		opts              []logging.AccessLogOption
		maxField, maxLine int
	}{
		{"defaults", nil, logging.DefaultMaxFieldBytes, logging.DefaultMaxLineBytes},
		{"small bounds", []logging.AccessLogOption{logging.WithMaxFieldBytes(100), logging.WithMaxLineBytes(2048)}, 100, 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &logSink{}
			logger := logging.New(sink, slog.LevelDebug)
			r := gin.New()
			r.Use(logging.Recovery(logger), requestID(),
				accessLog(logger, append([]logging.AccessLogOption{logging.WithRequestHeaders(logged...)}, tc.opts...)...))
			errcode.Handle(r)
			r.GET("/files/*name", func(c *gin.Context) { c.String(200, "ok") })
			r.GET("/fail", func(c *gin.Context) { errcode.Write(c, errors.New(errText)) })
			srv := boundedServer(t, r)

			if resp := send(t, srv, "GET", longPath, nil); resp.StatusCode != 200 {
				t.Fatalf("100 KB path: status %d", resp.StatusCode)
			}
			if resp := send(t, srv, "GET", "/files/x", headerSet); resp.StatusCode != 200 {
				t.Fatalf("1 MB header set: status %d", resp.StatusCode)
			}
			if resp := send(t, srv, "GET", "/fail", nil); resp.StatusCode != 500 {
				t.Fatalf("64 KB error: status %d", resp.StatusCode)
			}
			lines, sizes := checkLineSizes(t, sink, tc.maxLine, "request")
			if len(lines) != 3 {
				t.Fatalf("%d access lines, want 3", len(lines))
			}
			t.Logf("access lines (bound %d): 100 KB path %d bytes, 1 MB header set %d bytes, 64 KB error %d bytes",
				tc.maxLine, sizes[0], sizes[1], sizes[2])

			checkCut(t, lines[0], "path", longPath, tc.maxField)

			checkCut(t, lines[1], "user_agent", ua, tc.maxField)
			hdrs, _ := lines[1]["headers"].(map[string]any)
			for _, n := range logged[:4] {
				checkCut(t, hdrs, n, big, tc.maxField)
			}
			if hdrs["X-Small"] != "kept" || hdrs["X-Small_len"] != nil {
				t.Errorf("a short header was changed: %v", hdrs)
			}

			checkCut(t, lines[2], "error", errText, tc.maxField)
			if lines[2]["status"] != 500.0 || lines[2]["path"] != "/fail" {
				t.Errorf("error line: %v", lines[2])
			}
		})
	}
}

// Every field long at once, and escaped six times over (control bytes),
// takes the line budget: the line stays within it, short fields stay
// whole, and every cut field keeps its length.
func TestAccessLogLineBudgetSharesTheRest(t *testing.T) {
	sink := &logSink{}
	logger := logging.New(sink, slog.LevelDebug).With("service", "orders")
	r := gin.New()
	r.Use(logging.Recovery(logger), requestID(), accessLog(logger, logging.WithRequestHeaders("X-A", "X-B", "Authorization")))
	errcode.Handle(r)
	ctl := strings.Repeat("\x01", 8<<10)
	errText := "e" + ctl
	r.GET("/*p", func(c *gin.Context) { errcode.Write(c, errors.New(errText)) })
	srv := boundedServer(t, r)
	path := "/" + strings.Repeat("p", 50<<10)
	query := "q=" + strings.Repeat("%01", 10<<10)
	hdr := http.Header{"User-Agent": {strings.Repeat("u", 20<<10)}, "X-A": {strings.Repeat("a", 30<<10)},
		"X-B": {"short"}, "Authorization": {strings.Repeat("s", 10<<10)}}
	send(t, srv, "GET", path+"?"+query, hdr)

	lines, longest := checkLines(t, sink, logging.DefaultMaxLineBytes, "request")
	if len(lines) != 1 {
		t.Fatalf("%d access lines", len(lines))
	}
	t.Logf("line: %d bytes", longest)
	l := lines[0]
	// The budget cut the fields below the field bound.
	for field, want := range map[string]string{"path": path, "query": query, "user_agent": hdr.Get("User-Agent"), "error": errText} {
		checkCut(t, l, field, want, logging.DefaultMaxFieldBytes)
	}
	hdrs := l["headers"].(map[string]any)
	checkCut(t, hdrs, "X-A", hdr.Get("X-A"), logging.DefaultMaxFieldBytes)
	if hdrs["X-B"] != "short" || hdrs["Authorization"] != logging.Redacted || l["service"] != "orders" || l["method"] != "GET" || l["route"] != "/*p" {
		t.Errorf("short fields changed: %v", l)
	}
	if longest < logging.DefaultMaxLineBytes-512 {
		t.Errorf("line of %d bytes: the budget of %d is not used", longest, logging.DefaultMaxLineBytes)
	}
}

// Multi-byte runes are never split: the cut line is valid UTF-8 and says
// the same as the request, up to the mark.
func TestAccessLogCutKeepsRunes(t *testing.T) {
	sink := &logSink{}
	r := chain(sink, logging.WithMaxFieldBytes(100))
	r.GET("/*p", func(c *gin.Context) {})
	for _, s := range []string{"é", "日本", "🎉", "aé"} {
		path := "/" + strings.Repeat(s, 200)
		serve(r, "GET", path)
	}
	lines, _ := checkLines(t, sink, logging.DefaultMaxLineBytes, "request")
	for i, s := range []string{"é", "日本", "🎉", "aé"} {
		checkCut(t, lines[i], "path", "/"+strings.Repeat(s, 200), 100)
	}
}

// A huge panic value is bounded in the access line and in Recovery's line.
func TestPanicValueBounded(t *testing.T) {
	sink := &logSink{}
	r := chain(sink)
	value := strings.Repeat("v", 1<<20)
	r.GET("/boom", func(c *gin.Context) { panic(value) })
	w := serve(r, "GET", "/boom")
	if w.Code != 500 {
		t.Fatalf("status %d", w.Code)
	}
	acc, _ := checkLines(t, sink, logging.DefaultMaxLineBytes, "request")
	if len(acc) != 1 {
		t.Fatalf("%d access lines", len(acc))
	}
	checkCut(t, acc[0], "error", "panic: "+value, logging.DefaultMaxFieldBytes)
	rec := sink.byMsg(t, "panic recovered")
	if len(rec) != 1 {
		t.Fatalf("%d panic lines", len(rec))
	}
	checkCut(t, rec[0], "panic", value, logging.DefaultMaxFieldBytes)
	if s, _ := rec[0]["stack"].(string); !strings.Contains(s, "TestPanicValueBounded") {
		t.Errorf("stack not logged whole: %.200s", s)
	}
}

// A handler logging through FromContext gets its strings bounded as the
// access log's fields: attributes, groups, errors and the message.
func TestFromContextBoundsStrings(t *testing.T) {
	sink := &logSink{}
	r := chain(sink, logging.WithMaxFieldBytes(64))
	longErr := errors.New(strings.Repeat("E", 10<<10))
	msg := strings.Repeat("m", 5<<10)
	r.GET("/*p", func(c *gin.Context) {
		l := logging.FromContext(c.Request.Context()).With("with", strings.Repeat("w", 3<<10))
		l.Info(msg, "path", c.Request.URL.Path, "err", longErr, slog.Group("g", "inner", strings.Repeat("i", 4<<10), "n", 1), "short", "ok")
		l.WithGroup("grp").With("a", strings.Repeat("a", 2<<10)).Info("grouped", "b", strings.Repeat("b", 2<<10))
	})
	path := "/" + strings.Repeat("p", 100<<10)
	serve(r, "GET", path)
	lines, longest := checkLines(t, sink, 1<<10, "m"+strings.Repeat("m", 64-1-len(logging.TruncatedMark))+logging.TruncatedMark)
	if len(lines) != 1 {
		t.Fatalf("%d handler lines:\n%s", len(lines), sink.buf.String())
	}
	t.Logf("handler line: %d bytes", longest)
	l := lines[0]
	if n, _ := l["msg_len"].(float64); int(n) != len(msg) {
		t.Errorf("msg_len = %v", l["msg_len"])
	}
	checkCut(t, l, "path", path, 64)
	checkCut(t, l, "err", longErr.Error(), 64)
	checkCut(t, l, "with", strings.Repeat("w", 3<<10), 64)
	checkCut(t, l["g"].(map[string]any), "inner", strings.Repeat("i", 4<<10), 64)
	if l["short"] != "ok" || l["request_id"] == nil || l["g"].(map[string]any)["n"] != 1.0 {
		t.Errorf("other fields: %v", l)
	}
	grouped, _ := checkLines(t, sink, 1<<10, "grouped")
	if len(grouped) != 1 {
		t.Fatalf("%d grouped lines", len(grouped))
	}
	grp, _ := grouped[0]["grp"].(map[string]any)
	checkCut(t, grp, "a", strings.Repeat("a", 2<<10), 64)
	checkCut(t, grp, "b", strings.Repeat("b", 2<<10), 64)
}

// FromContext under RequestID alone (no access log) bounds with the
// default field bound.
func TestFromContextWithoutAccessLogBounds(t *testing.T) {
	var buf bytes.Buffer
	saved := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(saved) })
	r := gin.New()
	r.Use(requestID())
	r.GET("/*p", func(c *gin.Context) { logging.FromContext(c.Request.Context()).Info("h", "path", c.Request.URL.Path) })
	path := "/" + strings.Repeat("p", 100<<10)
	serve(r, "GET", path)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	checkCut(t, m, "path", path, logging.DefaultMaxFieldBytes)
}

func TestBoundOptionsValidated(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = "X-Header-Number-" + strconv.Itoa(i)
	}
	for _, tc := range []struct {
		opts []logging.AccessLogOption
		want string
	}{
		{[]logging.AccessLogOption{logging.WithMaxFieldBytes(0)}, "logging: WithMaxFieldBytes: 0 is below 16"},
		{[]logging.AccessLogOption{logging.WithMaxFieldBytes(15)}, "logging: WithMaxFieldBytes: 15 is below 16"},
		{[]logging.AccessLogOption{logging.WithMaxLineBytes(0)}, "logging: WithMaxLineBytes: 0 is below 1024"},
		{[]logging.AccessLogOption{logging.WithMaxLineBytes(1023)}, "logging: WithMaxLineBytes: 1023 is below 1024"},
		{[]logging.AccessLogOption{logging.WithMaxLineBytes(2048), logging.WithRequestHeaders(many...)}, "logging: WithMaxLineBytes: 2048 leaves no room for the fields"},
	} {
		_, err := logging.NewAccessLog(logging.New(io.Discard, nil), tc.opts...)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if _, err := logging.NewAccessLog(nil, logging.WithMaxFieldBytes(16), logging.WithMaxLineBytes(1024)); err != nil {
		t.Errorf("smallest bounds: %v", err)
	}
}
