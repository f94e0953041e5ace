package circuitbreaker_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
)

// A route that keeps failing is cut off: after 5 failures out of at least 5
// requests its breaker opens for 30 s, and requests get the fallback (or,
// without one, the 503 CIRCUIT_OPEN envelope) without reaching the handler.
func ExampleNew() {
	breakers, err := circuitbreaker.New(
		circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5, OpenTimeout: 30 * time.Second}),
		circuitbreaker.WithFallback("/recommendations", func(c *gin.Context, _ error) error {
			c.JSON(200, gin.H{"items": []string{}, "degraded": true})
			return nil
		}),
	)
	if err != nil {
		panic(err)
	}
	r := gin.New()
	errcode.Handle(r)
	r.Use(breakers.Middleware())
	r.GET("/recommendations", func(c *gin.Context) { c.Status(500) }) // the dependency is down

	for i := 0; i < 6; i++ {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/recommendations", nil))
		fmt.Println(strings.TrimSpace(fmt.Sprint(w.Code, " ", w.Body.String())))
	}
	// Output:
	// 500
	// 500
	// 500
	// 500
	// 500
	// 200 {"degraded":true,"items":[]}
}
