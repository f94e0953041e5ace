package reqinfo_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/reqinfo"
)

func TestPathSet(t *testing.T) {
	gin.SetMode(gin.TestMode)
	var s reqinfo.PathSet
	s = s.Add("/metrics").Add("/items/:id")
	r := gin.New()
	got := map[string]bool{}
	h := func(c *gin.Context) { got[c.Request.URL.Path] = s.Match(c) }
	r.GET("/metrics", h)
	r.GET("/items/:id", h)
	r.GET("/orders", h)
	r.NoRoute(h)
	for _, p := range []string{"/metrics", "/items/3", "/orders", "/items/:id/x"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	want := map[string]bool{"/metrics": true, "/items/3": true, "/orders": false, "/items/:id/x": false}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("Match(%s) = %v; want %v", p, got[p], w)
		}
	}

	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/metrics", nil)
	var empty reqinfo.PathSet
	if empty.Match(c) || reqinfo.NewPathSet().Match(c) {
		t.Error("an empty set matched a request")
	}
	// A URL path matches without a route (a request no route matched).
	if !reqinfo.NewPathSet("/health", "/metrics").Match(c) {
		t.Error("NewPathSet did not match the URL path")
	}
	// Add leaves the set it was called on as it was.
	base := reqinfo.NewPathSet("/health")
	_ = base.Add("/metrics")
	if base.Match(c) {
		t.Error("Add changed the set it was called on")
	}
}
