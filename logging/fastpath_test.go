package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/internal/reqstate"
)

// oddStrings are the strings that exercise every escaping rule of slog's
// JSON handler.
var oddStrings = []string{
	"", "plain", `q"uote`, `back\slash`, "new\nline\r\t", "\x00\x01\x1f\x7f",
	"\b\f", "<script>&amp;</script>", "héllo wörld", "日本語", "emoji 🎉",
	"bad\xffutf8\xc3", "\xed\xa0\x80", "sep\u2028par\u2029", "\u2027\u202a",
	strings.Repeat("long ", 300), "/users/{id}", "a=1&token=s3cr3t",
}

// sljson is slog's own JSON output for one string attribute value.
func sljson(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).LogAttrs(context.Background(), slog.LevelInfo, "", slog.String("k", s))
	line := strings.TrimSuffix(buf.String(), "}\n")
	_, v, ok := strings.Cut(line, `,"msg":"","k":`)
	if !ok {
		t.Fatalf("unexpected slog line %q", buf.String())
	}
	return v
}

func TestAppendJSONStringMatchesSlog(t *testing.T) {
	for _, s := range oddStrings {
		if got, want := string(appendJSONString(nil, s)), sljson(t, s); got != want {
			t.Errorf("appendJSONString(%q) = %s, slog writes %s", s, got, want)
		}
	}
	for c := range 256 {
		s := string([]byte{'a', byte(c), 'z'})
		if got, want := string(appendJSONString(nil, s)), sljson(t, s); got != want {
			t.Errorf("appendJSONString(%q) = %s, slog writes %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendJSONString(nil, s)), sljson(t, s); got != want {
			t.Fatalf("appendJSONString(%q) = %s, slog writes %s", s, got, want)
		}
	})
}

func TestAppendJSONFloatMatchesJSON(t *testing.T) {
	vals := []float64{0, 1, -1, 0.5, 1e-6, 9.99e-7, 1.234e-9, 1e-10, 1e20, 1e21, 123456789.123,
		math.SmallestNonzeroFloat64, math.MaxFloat64, -2.5e-8, 0.000123, 3e-7, 1.5e-100}
	for i := range 2000 {
		vals = append(vals, time.Duration(i*i*7919).Seconds())
	}
	for _, v := range vals {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONFloat(nil, v); string(got) != string(want) {
			t.Errorf("appendJSONFloat(%v) = %s, encoding/json writes %s", v, got, want)
		}
	}
}

func FuzzAppendJSONFloat(f *testing.F) {
	f.Add(0.0012)
	f.Add(1e-9)
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		want, _ := json.Marshal(v)
		if got := appendJSONFloat(nil, v); string(got) != string(want) {
			t.Fatalf("appendJSONFloat(%v) = %s, encoding/json writes %s", v, got, want)
		}
	})
}

func TestAppendJSONTimeMatchesSlog(t *testing.T) {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("x", -(3*3600 + 30*60)), time.FixedZone("y", 5*3600+45*60)}
	for i, tm := range []time.Time{
		time.Now(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 30, 23, 59, 59, 999999999, time.UTC),
	} {
		for _, z := range zones {
			tm := tm.In(z)
			var buf bytes.Buffer
			_ = slog.NewJSONHandler(&buf, nil).Handle(context.Background(), slog.NewRecord(tm, slog.LevelInfo, "", 0))
			want := strings.TrimPrefix(strings.TrimSuffix(buf.String(), `,"level":"INFO","msg":""}`+"\n"), `{"time":`)
			if got := string(appendJSONTime(nil, tm)); got != want {
				t.Errorf("%d: appendJSONTime(%v) = %s, slog writes %s", i, tm, got, want)
			}
		}
	}
}

// lineErr is an error whose text ends in a newline.
type lineErr string

func (e lineErr) Error() string { return string(e) }

var (
	timeRe    = regexp.MustCompile(`^\{"time":"[^"]+",`)
	latencyRe = regexp.MustCompile(`,"latency":[-+.e0-9]+,`)
)

// normalise blanks the values that differ between two writes: time and latency.
func normalise(line string) string {
	line = timeRe.ReplaceAllString(line, `{"time":"T",`)
	return latencyRe.ReplaceAllString(line, `,"latency":0,`)
}

// TestAccessLineFastMatchesSlog renders the same requests through the fast
// path and through slog (the path of foreign handlers) and compares bytes.
func TestAccessLineFastMatchesSlog(t *testing.T) {
	build := func(buf *bytes.Buffer, fast bool, with func(*slog.Logger) *slog.Logger, opts ...AccessLogOption) *AccessLog {
		l := with(New(buf, slog.LevelDebug))
		cfg, err := newAccessConfig(opts, l.Handler().(*jsonHandler).prefix())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := l.Handler().(*jsonHandler); !ok {
			t.Fatalf("handler %T is not the kit's", l.Handler())
		}
		al := newAccessLog(l, cfg)
		if !fast {
			al.fast, al.prefix = nil, nil
		}
		return al
	}
	withs := map[string]func(*slog.Logger) *slog.Logger{
		"none": func(l *slog.Logger) *slog.Logger { return l },
		"attrs": func(l *slog.Logger) *slog.Logger {
			return l.With("service", "or\"ders", "n", 3, "f", 0.25, "ok", true, "d", time.Second,
				slog.Group("g", "a", "<b>"), "err", lineErr("e\n")).With("version", "v1\xff")
		},
	}
	opts := []AccessLogOption{WithRequestHeaders("X-Odd", "Authorization", "X-Missing", "User-Agent"), WithClientErrorLevel(slog.LevelWarn + 2)}
	n := 0
	for wname, with := range withs {
		var fastBuf, slowBuf bytes.Buffer
		fast, slow := build(&fastBuf, true, with, opts...), build(&slowBuf, false, with, opts...)
		for i, s := range oddStrings {
			for _, status := range []int{200, 404, 499, 500} {
				for _, a := range []*AccessLog{fast, slow} {
					w := httptest.NewRecorder()
					c, _ := gin.CreateTestContext(w)
					c.Request = &http.Request{
						Method:     "GET" + s[:min(len(s), 3)],
						URL:        &url.URL{Path: "/p/" + s, RawQuery: "q=" + url.QueryEscape(s) + "&token=" + s},
						Header:     http.Header{"X-Odd": {s}, "Authorization": {"Bearer x"}, "User-Agent": {s}},
						RemoteAddr: "127.0.0.1:1234",
					}
					if i%3 == 0 {
						c.Request = c.Request.WithContext(trace.ContextWithSpanContext(c.Request.Context(), trace.NewSpanContext(trace.SpanContextConfig{
							TraceID: trace.TraceID{0xab, byte(i), 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xf0},
							SpanID:  trace.SpanID{1, 2, 0xcd, 4, 5, 6, 7, byte(i + 1)},
						})))
					}
					info := reqstate.Ensure(c)
					info.RequestID = s
					if status >= 400 {
						info.Code, info.Reason = 40000+i, "REASON_"+s
					}
					switch status {
					case 500:
						info.Cause = errors.New("cause " + s)
					case 404:
						_ = c.Error(errors.New("gin error " + s))
					}
					if i%2 == 0 {
						a.cfg.logQuery = i%4 == 0
					}
					c.Status(status)
					a.write(c, info, c.Request.Context(), time.Now().Add(-time.Duration(i)*time.Microsecond), status)
				}
				n++
			}
		}
		fl := strings.Split(fastBuf.String(), "\n")
		sl := strings.Split(slowBuf.String(), "\n")
		if len(fl) != len(sl) || len(fl) != n+1 {
			t.Fatalf("%s: %d fast lines, %d slog lines, want %d", wname, len(fl)-1, len(sl)-1, n)
		}
		for _, want := range []string{`"headers":{"X-Odd":`, `"Authorization":"[REDACTED]"`, `"query":"q=`, `"error":"cause `,
			`"error":"Error #01: gin error`, `"code":40003,"reason":"REASON_`, `"level":"WARN+2"`, `"level":"ERROR"`,
			`"trace_id":"ab00030405060708090a0b0c0d0e0ff0","span_id":"0102cd0405060701"`} {
			if !strings.Contains(fastBuf.String(), want) {
				t.Errorf("%s: no line holds %s", wname, want)
			}
		}
		if wname == "attrs" && !strings.Contains(fl[0], `"msg":"request","service":"or\"ders","n":3,"f":0.25,"ok":true,"d":1000000000,"g":{"a":"<b>"},"err":"e\n","version":"v1\ufffd","method":`) {
			t.Errorf("logger attributes not first: %s", fl[0])
		}
		for i := range fl {
			if f, s := normalise(fl[i]), normalise(sl[i]); f != s {
				t.Errorf("%s line %d:\nfast %s\nslog %s", wname, i, f, s)
			}
		}
		n = 0
	}
}

// TestHandlerBehavesAsSlogJSON checks New's handler against slog's for
// ordinary logging: attributes, groups, levels.
func TestHandlerBehavesAsSlogJSON(t *testing.T) {
	var kit, std bytes.Buffer
	tm := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	for _, p := range []struct {
		buf *bytes.Buffer
		h   slog.Handler
	}{{&kit, New(&kit, slog.LevelWarn).Handler()}, {&std, slog.NewJSONHandler(&std, &slog.HandlerOptions{Level: slog.LevelWarn})}} {
		h := p.h.WithAttrs([]slog.Attr{slog.String("a", "<1>")}).WithGroup("g").WithAttrs([]slog.Attr{slog.Int("b", 2)})
		for _, lv := range []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError + 1} {
			for _, hh := range []slog.Handler{p.h, h, p.h.WithAttrs(nil).WithGroup("x")} {
				if !hh.Enabled(context.Background(), lv) {
					continue
				}
				r := slog.NewRecord(tm, lv, "m\n", 0)
				r.AddAttrs(slog.Any("e", errors.New("x")), slog.Float64("f", 1e-9))
				_ = hh.Handle(context.Background(), r)
			}
		}
	}
	if kit.String() != std.String() || kit.Len() == 0 {
		t.Fatalf("kit handler wrote\n%s\nslog wrote\n%s", kit.String(), std.String())
	}
}
