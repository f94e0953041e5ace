package logging

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestNilLoggerIsDefault checks that the access log and Recovery given a
// nil logger write the kit's JSON lines through Default, not slog.Default.
func TestNilLoggerIsDefault(t *testing.T) {
	var buf bytes.Buffer
	saved := defaultLogger
	defaultLogger = func() *slog.Logger { return New(&buf, nil) }
	t.Cleanup(func() { defaultLogger = saved })

	a, err := NewAccessLog(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(Recovery(nil), a.Middleware())
	r.GET("/boom", func(c *gin.Context) { panic("boom") })
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/boom", nil))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// The access line waits for Recovery's answer, so it comes second.
	if len(lines) != 2 || !strings.Contains(lines[0], `"msg":"panic recovered"`) || !strings.Contains(lines[1], `"msg":"request"`) {
		t.Fatalf("default logger lines:\n%s", buf.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"time":`) {
			t.Fatalf("not a JSON line of the kit: %s", l)
		}
	}
}
