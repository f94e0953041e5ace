package errcode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
)

func TestRunFallback(t *testing.T) {
	cause := errors.New("open")
	cases := []struct {
		name     string
		fb       errcode.Fallback
		answered bool
		err      string
	}{
		{"answers", func(c *gin.Context, err error) error { c.String(200, err.Error()); return nil }, true, ""},
		{"writes nothing", func(*gin.Context, error) error { return nil }, false, ""},
		{"fails", func(*gin.Context, error) error { return errors.New("no cache") }, false, "no cache"},
		{"writes then fails", func(c *gin.Context, _ error) error { c.String(200, "part"); return errors.New("late") }, true, "late"},
		{"panics", func(*gin.Context, error) error { panic("bug") }, false, "errcode: fallback panicked: bug"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nextRan := false
			r := gin.New()
			r.GET("/x", func(c *gin.Context) {
				answered, err := errcode.RunFallback(c, tc.fb, cause)
				if answered != tc.answered || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
					t.Errorf("answered %v, err %v; want %v, %q", answered, err, tc.answered, tc.err)
				}
				if tc.name == "panics" && !errors.Is(err, errcode.ErrFallbackPanicked) {
					t.Errorf("panic error %v does not wrap ErrFallbackPanicked", err)
				}
				if c.IsAborted() != tc.answered {
					t.Errorf("aborted %v, want %v", c.IsAborted(), tc.answered)
				}
			}, func(*gin.Context) { nextRan = true })
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
			if nextRan == tc.answered {
				t.Errorf("next handler ran: %v", nextRan)
			}
		})
	}
}

func TestRunFallbackRepanicsAbort(t *testing.T) {
	defer func() {
		if p := recover(); p != http.ErrAbortHandler { //nolint:errorlint // identity
			t.Fatalf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	r := gin.New()
	r.GET("/x", func(c *gin.Context) {
		_, _ = errcode.RunFallback(c, func(*gin.Context, error) error { panic(http.ErrAbortHandler) }, nil)
	})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
}

func TestLogFallbackError(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		AddSource: true,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{}
			case slog.SourceKey:
				return slog.String("source", filepath.Base(a.Value.Any().(*slog.Source).File))
			}
			return a
		},
	}))
	ctx := context.Background()
	errcode.LogFallbackError(ctx, logger, nil, "fallback failed", slog.String("route", "/a"))
	errcode.LogFallbackError(ctx, logger, errors.New("cache miss"), "fallback failed", slog.String("route", "/a"))
	errcode.LogFallbackError(ctx, logger, fmt.Errorf("%w: bug", errcode.ErrFallbackPanicked), "fallback failed",
		slog.String("route", "/b"), slog.Int("n", 2))
	want := `{"level":"WARN","source":"fallback_test.go","msg":"fallback failed","route":"/a","error":"cache miss"}` + "\n" +
		`{"level":"ERROR","source":"fallback_test.go","msg":"fallback failed","route":"/b","n":2,"error":"errcode: fallback panicked: bug"}` + "\n"
	if buf.String() != want {
		t.Fatalf("log:\n%s\nwant:\n%s", &buf, want)
	}

	buf.Reset()
	quiet := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	errcode.LogFallbackError(ctx, quiet, errors.New("cache miss"), "fallback failed")
	if buf.Len() != 0 {
		t.Fatalf("a WARN line got past an ERROR logger: %s", &buf)
	}
}
