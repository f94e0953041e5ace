package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
)

// The RED middleware and the governance metrics on one registry: the rate
// limiter and the breakers report through their hooks.
func ExampleNewGovernance() {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		panic(err)
	}
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		panic(err)
	}
	limiter, err := ratelimit.New(nil, ratelimit.Global(2, time.Minute).WithName("api"),
		ratelimit.WithOnDecision(gov.OnDecision))
	if err != nil {
		panic(err)
	}
	breakers, err := circuitbreaker.New(circuitbreaker.WithOnStateChange(gov.OnBreakerChange))
	if err != nil {
		panic(err)
	}

	r := gin.New()
	r.Use(m.Middleware(), limiter.Middleware(), breakers.Middleware())
	r.GET("/orders/:id", func(c *gin.Context) { c.String(200, "ok") })
	for _, id := range []string{"1", "2", "3"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/orders/"+id, nil))
	}

	// Serve metrics.Handler(reg) on a route outside the limiter.
	w := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(w.Body.String(), "\n") {
		if strings.HasPrefix(line, "http_server_requests_total") || strings.HasPrefix(line, "gingov_ratelimit_decisions_total") {
			fmt.Println(line)
		}
	}
	// Output:
	// gingov_ratelimit_decisions_total{result="allowed",rule="api",source="local"} 2
	// gingov_ratelimit_decisions_total{result="limited",rule="api",source="local"} 1
	// http_server_requests_total{method="GET",route="/orders/:id",status="200"} 2
	// http_server_requests_total{method="GET",route="/orders/:id",status="429"} 1
}
