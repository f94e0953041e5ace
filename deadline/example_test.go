package deadline_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/deadline"
)

// A handler that honours its context returns when the deadline passes,
// and the request is answered with the 504 envelope. The caller asked
// for 50 ms (Request-Timeout), shorter than the route's 10 s.
func ExampleNew() {
	d, err := deadline.New(deadline.DefaultTimeout,
		deadline.WithRoute("GET /reports/:id", 10*time.Second), // slow reports get longer
		deadline.WithExempt("GET /events"),                     // a stream: no deadline
	)
	if err != nil {
		panic(err)
	}
	r := gin.New()
	r.Use(d.Middleware())
	r.GET("/reports/:id", func(c *gin.Context) {
		select {
		case <-c.Request.Context().Done(): // e.g. a database query giving up
			return
		case <-time.After(time.Minute):
			c.String(http.StatusOK, "report")
		}
	})

	req := httptest.NewRequest(http.MethodGet, "/reports/7", nil)
	req.Header.Set(deadline.Header, "50")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	fmt.Println(w.Code)
	fmt.Println(w.Body.String())
	// Output:
	// 504
	// {"code":504002,"reason":"DEADLINE_EXCEEDED","message":"the request did not complete within its deadline","solution":"retry later; a caller that sets Request-Timeout or grpc-timeout may allow more time","request_id":""}
}
