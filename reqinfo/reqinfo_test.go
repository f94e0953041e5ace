package reqinfo_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/reqinfo"
)

func TestRoute(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	var got []string
	record := func(c *gin.Context) { got = append(got, reqinfo.Route(c)) }
	r.GET("/orders/:id", record)
	r.NoRoute(record)
	for _, p := range []string{"/orders/7", "/nowhere/at/all"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	want := []string{"/orders/:id", reqinfo.UnmatchedRoute}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("routes = %q; want %q", got, want)
	}
}

func TestValidHeaderName(t *testing.T) {
	for _, ok := range []string{"X-Request-ID", "Trace-Id", "a", "x_y", "X.Y~Z"} {
		if !reqinfo.ValidHeaderName(ok) {
			t.Errorf("ValidHeaderName(%q) = false; want true", ok)
		}
	}
	for _, bad := range []string{"", "X Request", "X:Y", "é", "a\nb", "(x)"} {
		if reqinfo.ValidHeaderName(bad) {
			t.Errorf("ValidHeaderName(%q) = true; want false", bad)
		}
	}
}

func TestClassifyPanic(t *testing.T) {
	if k := reqinfo.ClassifyPanic(http.ErrAbortHandler); k != reqinfo.PanicAbort {
		t.Errorf("ErrAbortHandler: kind %v; want PanicAbort", k)
	}
	if k := reqinfo.ClassifyPanic("boom"); k != reqinfo.PanicServerError {
		t.Errorf("string panic: kind %v; want PanicServerError", k)
	}
}

// ClientIP is Gin's client IP, once per request with the kit's state.
func TestClientIP(t *testing.T) {
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
	c.Request.Header.Set("X-Forwarded-For", "203.0.113.7")
	if got := reqinfo.ClientIP(c); got != "203.0.113.7" || got != c.ClientIP() {
		t.Fatalf("ClientIP %q; Gin's %q", got, c.ClientIP())
	}
	reqinfo.ObservePanic(c, "x") // attaches the kit's state
	first := reqinfo.ClientIP(c)
	c.Request.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := reqinfo.ClientIP(c); got != first {
		t.Fatalf("ClientIP %q after %q: not shared", got, first)
	}
}
