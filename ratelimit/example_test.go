package ratelimit_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/ratelimit"
)

// Two requests per minute per client IP, in process. With a Redis client
// instead of nil, the same rules are shared by every instance.
func ExampleNew() {
	limiter, err := ratelimit.New(nil, ratelimit.PerIP(2, time.Minute))
	if err != nil {
		panic(err)
	}
	r := gin.New()
	errcode.Handle(r)
	r.Use(limiter.Middleware())
	r.GET("/ping", func(c *gin.Context) { c.String(200, "pong") })

	for i := 0; i < 3; i++ {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/ping", nil))
		fmt.Printf("%d remaining=%s retry-after=%q\n", w.Code, w.Header().Get("X-RateLimit-Remaining"), w.Header().Get("Retry-After"))
	}
	// Output:
	// 200 remaining=1 retry-after=""
	// 200 remaining=0 retry-after=""
	// 429 remaining=0 retry-after="30"
}
