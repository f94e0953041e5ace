package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/reqstate"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s     string
		limit int
		want  string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "…"},
		{"abcd", 4, "abcd"},
		{"abcde", 4, "a…"},
		{"ééé", 6, "ééé"},
		{"ééé", 5, "é…"}, // 2 bytes kept, not 1.5 runes
		{"ééé", 6 - 1, "é…"},
		{"日本語", 8, "日…"}, // 3 bytes of 日 + mark
		{"日本語", 5, "…"},  // no whole rune fits beside the mark
		{"🎉🎉", 6, "…"},
		{"🎉🎉", 7, "🎉…"},
		{"🎉🎉", 8, "🎉🎉"},
		{"a🎉🎉", 8, "a🎉…"},
		{"a🎉🎉", 7, "a…"},
	} {
		if got := truncate(tc.s, tc.limit); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.limit, got, tc.want)
		}
	}
}

// FuzzTruncate: valid UTF-8 in, valid UTF-8 out, within the limit, a
// prefix of the input followed by the mark; and the JSON of the bounded
// field is valid and says the same.
func FuzzTruncate(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s, 16)
	}
	f.Add(strings.Repeat("é", 40), 17)
	f.Add(strings.Repeat("🎉", 40), 18)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit < len(TruncatedMark) || limit > 1<<20 {
			return
		}
		out := truncate(s, limit)
		if len(out) > limit {
			t.Fatalf("truncate(%q, %d) = %q: %d bytes", s, limit, out, len(out))
		}
		if len(s) <= limit {
			if out != s {
				t.Fatalf("truncate(%q, %d) = %q, want it unchanged", s, limit, out)
			}
		} else if !strings.HasSuffix(out, TruncatedMark) || !strings.HasPrefix(s, strings.TrimSuffix(out, TruncatedMark)) {
			t.Fatalf("truncate(%q, %d) = %q: not a prefix and the mark", s, limit, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("truncate(%q, %d) = %q: invalid UTF-8", s, limit, out)
		}
		if utf8.ValidString(s) && len(s) > limit && limit >= len(TruncatedMark)+utf8.UTFMax-1 &&
			len(out) < limit-(utf8.UTFMax-1) {
			t.Fatalf("truncate(%q, %d) = %q: cut more than a rune short", s, limit, out)
		}
		b := appendBoundedJSON([]byte{'{', '"', 'x', '"', ':', '0'}, `,"k":`, s, limit)
		b = append(b, '}')
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("bounded JSON %s: %v", b, err)
		}
		if utf8.ValidString(s) && m["k"] != out {
			t.Fatalf("bounded JSON %s says %q, want %q", b, m["k"], out)
		}
		if cut := len(s) > limit; cut != (m["k_len"] == float64(len(s))) {
			t.Fatalf("bounded JSON %s: k_len for a cut of %v", b, cut)
		}
	})
}

// FuzzAccessLineBounded: whatever the request's strings, the line is one
// JSON object of at most the line bound.
func FuzzAccessLineBounded(f *testing.F) {
	f.Add("/p", "q=1", "ua", "err", "h", 1024, 32)
	f.Add(strings.Repeat("\x01", 3000), strings.Repeat("é", 2000), strings.Repeat("\"", 3000), strings.Repeat("日", 1000), "\xff\xfe", 1024, 1024)
	f.Fuzz(func(t *testing.T, path, query, ua, errText, hv string, maxLine, maxField int) {
		var buf bytes.Buffer
		l := New(&buf, nil).With("service", "s")
		cfg, err := newAccessConfig([]AccessLogOption{WithMaxLineBytes(maxLine), WithMaxFieldBytes(maxField),
			WithRequestHeaders("X-A", "X-B")}, l.Handler().(*jsonHandler).prefix())
		if err != nil {
			return
		}
		a := newAccessLog(l, cfg)
		ln := line{time: time.Now(), level: slog.LevelError, status: 500, latency: time.Millisecond, size: 10, code: 500001,
			method: "GET", route: "/*p", path: path, query: query, clientIP: "127.0.0.1", userAgent: ua,
			requestID: hv, reason: "R", errText: errText, header: http.Header{"X-A": {hv}, "X-B": {path}}}
		a.writeFast(&ln)
		out := buf.String()
		if len(out) > maxLine {
			t.Fatalf("line of %d bytes, bound %d", len(out), maxLine)
		}
		if !json.Valid([]byte(out)) || !utf8.ValidString(out) || strings.Count(out, "\n") != 1 {
			t.Fatalf("not one JSON line: %q", out)
		}
	})
}

// Through a foreign slog handler (the slog path), fields are cut as on
// the fast path, byte for byte, and the line bound holds as well.
func TestAccessLineSlogPathBounded(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	for _, tc := range []struct {
		name    string
		opts    []AccessLogOption
		maxLine int
	}{
		{"fields only", []AccessLogOption{WithMaxLineBytes(1 << 20), WithMaxFieldBytes(100)}, 1 << 20},
		{"line budget", []AccessLogOption{WithMaxLineBytes(2048), WithMaxFieldBytes(1000)}, 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fastBuf, slowBuf bytes.Buffer
			opts := append([]AccessLogOption{WithRequestHeaders("X-Odd", "Authorization")}, tc.opts...)
			fastCfg, err := newAccessConfig(opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			fast := newAccessLog(New(&fastBuf, nil), fastCfg)
			slowCfg, _ := newAccessConfig(opts, nil)
			slow := newAccessLog(slog.New(slog.NewJSONHandler(&slowBuf, nil)), slowCfg)
			if slow.fast != nil || fast.fast == nil {
				t.Fatal("paths not as meant")
			}
			for i, s := range []string{"é", "日本", "\x01", `"`, "a", "\xff"} {
				for _, a := range []*AccessLog{fast, slow} {
					c, _ := gin.CreateTestContext(httptest.NewRecorder())
					c.Request = &http.Request{
						Method:     "GET",
						URL:        &url.URL{Path: "/p/" + long(s, 900), RawQuery: "q=" + long(s, 700)},
						Header:     http.Header{"X-Odd": {long(s, 800)}, "Authorization": {long(s, 999)}, "User-Agent": {long(s, 600)}},
						RemoteAddr: "127.0.0.1:1234",
					}
					info := reqstate.Ensure(c)
					info.RequestID = long(s, 200)
					info.Code, info.Reason, info.Cause = 50000+i, "REASON", errString(long(s, 3000))
					c.Status(500)
					a.write(c, info, c.Request.Context(), time.Now(), 500)
				}
			}
			fl := strings.SplitAfter(fastBuf.String(), "\n")
			sl := strings.SplitAfter(slowBuf.String(), "\n")
			if len(fl) != 7 || len(sl) != 7 {
				t.Fatalf("%d and %d lines", len(fl)-1, len(sl)-1)
			}
			for i := range 6 {
				for _, l := range []string{fl[i], sl[i]} {
					if len(l) > tc.maxLine || !json.Valid([]byte(l)) || !strings.Contains(l, `"path_len":`) {
						t.Errorf("line %d of %d bytes (bound %d): %.300s", i, len(l), tc.maxLine, l)
					}
				}
				// Same cuts; the latency's digits may move the budget's cut
				// by a rune, so only the field-bound lines compare whole.
				if tc.maxLine == 1<<20 {
					if f, s := normalise(fl[i]), normalise(sl[i]); f != s {
						t.Errorf("line %d:\nfast %s\nslog %s", i, f, s)
					}
				}
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }
