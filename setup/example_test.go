package setup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/setup"
)

// The whole chain from a small document: the second request of a client
// is over its limit and gets the kit's error envelope, while Prometheus
// scrapes /metrics as often as it likes.
func ExampleUse() {
	cfg, err := setup.Parse([]byte(`
service: {name: orders}
ratelimit:
  rules: [{by: ip, limit: 1, period: 1m}]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := gin.New()
	chain, err := setup.Use(context.Background(), r, cfg, setup.WithLogOutput(io.Discard))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer chain.Close(context.Background())
	r.GET("/orders/:id", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"id": c.Param("id")}) })

	for _, path := range []string{"/orders/7", "/orders/8", "/metrics", "/metrics"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		var envelope struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		}
		if w.Code != http.StatusOK && json.Unmarshal(w.Body.Bytes(), &envelope) == nil {
			fmt.Println(path, w.Code, envelope.Code, envelope.Reason)
			continue
		}
		fmt.Println(path, w.Code)
	}
	// Output:
	// /orders/7 200
	// /orders/8 429 429001 RATE_LIMITED
	// /metrics 200
	// /metrics 200
}

// Every field is validated and the first wrong one is named by its YAML
// path, so that a bad deployment fails at start with a useful message.
func ExampleConfig_Validate() {
	cfg, err := setup.Parse([]byte(`
service: {name: orders}
ratelimit:
  rules:
    - {by: ip, limit: 100, period: 1s}
    - {by: "header:X-User-Id", limit: 10}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Validate())
	// Output:
	// setup: ratelimit.rules[1].period: 0s must be > 0 (e.g. 1s, 1m)
}

// Environment variables override a document: GINGOV_ and the field's YAML
// path in upper case. An unknown variable is an error, so a typo does not
// pass silently.
func ExampleApplyEnv() {
	cfg, _ := setup.Parse([]byte("service: {name: orders}\ntracing: {exporter: otlp-http}"))
	err := setup.ApplyEnv(&cfg, []string{
		"GINGOV_TRACING_ENDPOINT=otel-collector:4318",
		"GINGOV_RATELIMIT_REDIS_ADDRS=10.0.0.5:6379,10.0.0.6:6379",
	})
	fmt.Println(err, cfg.Tracing.Endpoint, cfg.RateLimit.Redis.Addrs)

	err = setup.ApplyEnv(&cfg, []string{"GINGOV_TRACING_SAMPLE_RATE=0.1"})
	fmt.Println(err)
	// Output:
	// <nil> otel-collector:4318 [10.0.0.5:6379 10.0.0.6:6379]
	// setup: environment variable GINGOV_TRACING_SAMPLE_RATE matches no configuration field
}
