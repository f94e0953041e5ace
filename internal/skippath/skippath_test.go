package skippath

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestSet(t *testing.T) {
	gin.SetMode(gin.TestMode)
	var s Set
	s = s.Add("/metrics", "/items/:id")
	r := gin.New()
	got := map[string]bool{}
	h := func(c *gin.Context) { got[c.Request.URL.Path] = s.Skip(c) }
	r.GET("/metrics", h)
	r.GET("/items/:id", h)
	r.GET("/orders", h)
	for _, p := range []string{"/metrics", "/items/3", "/orders"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	want := map[string]bool{"/metrics": true, "/items/3": true, "/orders": false}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("Skip(%s) = %v; want %v", p, got[p], w)
		}
	}
	var empty Set
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if empty.Skip(c) {
		t.Error("an empty set skipped a request")
	}
}
