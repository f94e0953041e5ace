package sentinel_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/ratelimit/sentinel"
)

// A flow rule of one request per second on GET /ping: the second request
// in the same second is blocked with 429 FLOW_BLOCKED.
func ExampleNew() {
	rules, err := sentinel.ParseRules([]byte(`flow: [{resource: "GET:/ping", threshold: 1}]`))
	if err != nil {
		panic(err)
	}
	if err := sentinel.Load(rules); err != nil {
		panic(err)
	}
	defer sentinel.Load(sentinel.Rules{}) //nolint:errcheck // the empty set is valid

	flow, err := sentinel.New()
	if err != nil {
		panic(err)
	}
	r := gin.New()
	errcode.Handle(r)
	r.Use(flow.Middleware())
	r.GET("/ping", func(c *gin.Context) { c.String(200, "pong") })

	for range 2 {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/ping", nil))
		fmt.Printf("%d Retry-After=%q\n", w.Code, w.Header().Get("Retry-After"))
	}
	// Output:
	// 200 Retry-After=""
	// 429 Retry-After="1"
}
