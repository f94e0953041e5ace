package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/registry"
)

// populated returns a registry holding every series the kit registers,
// each with data: RED metrics after traffic (a sampled request among it),
// and every governance hook called.
func populated(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ratelimit.New(nil, ratelimit.Global(1, time.Minute).WithName("api"), ratelimit.WithOnDecision(gov.OnDecision))
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(m.Middleware(), g.Middleware())
	r.POST("/orders/:id", func(c *gin.Context) { c.String(201, "created") })
	req, _ := sampled(t, "/orders/1", true)
	req.Method = "POST"
	req.Body = io.NopCloser(strings.NewReader("{}"))
	req.ContentLength = 2
	r.ServeHTTP(httptest.NewRecorder(), req)
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/orders/2", strings.NewReader("{}")))
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nowhere", nil))

	ctx := context.Background()
	gov.OnDecision(ctx, ratelimit.Event{Rule: "api", Decision: ratelimit.Decision{Allowed: true, Source: ratelimit.SourceRedis}, Latency: time.Millisecond})
	health := gov.RedisHealthHook("api")
	health(ctx, ratelimit.Event{Kind: ratelimit.EventRedisDown, Rule: "api", Err: errors.New("connection refused")})
	health(ctx, ratelimit.Event{Kind: ratelimit.EventRedisUp, Rule: "api", DownFor: time.Second})
	health(ctx, ratelimit.Event{Kind: ratelimit.EventInstances, Rule: "api", Instances: 4})
	gov.OnSentinelBlock(ctx, "GET:/orders/:id", "flow")
	gov.OnBreakerChange(ctx, circuitbreaker.Event{Name: "GET /orders/:id", From: circuitbreaker.StateClosed, To: circuitbreaker.StateOpen})
	gov.OnDeadline(ctx, deadline.Event{Method: "GET", Route: "/orders/:id", Timeout: time.Second, Elapsed: time.Second})
	gov.OnConfigReload(ctx, "etcd", nil)
	gov.OnConfigReload(ctx, "etcd", errors.New("setup: ratelimit.rules[0].limit: 0 must be > 0"))
	ins := &registry.ServiceInstance{Name: "orders"}
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.Registered, Instance: ins})
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.HeartbeatFailed, Instance: ins, Err: errors.New("timeout")})
	return reg
}

// TestPromtoolFindsNothing runs promtool's linter on the exposition of a
// registry holding every series of the kit.
func TestPromtoolFindsNothing(t *testing.T) {
	reg := populated(t)
	w := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	for _, name := range []string{"http_server_request_size_bytes_bucket", "gingov_ratelimit_redis_duration_seconds_bucket",
		"gingov_sentinel_blocks_total", "gingov_registry_events_total", "gingov_circuitbreaker_state",
		`gingov_config_reloads_total{result="accepted",source="etcd"} 1`, `gingov_config_reloads_total{result="rejected",source="etcd"} 1`} {
		if !strings.Contains(body, name) {
			t.Fatalf("exposition lacks %s:\n%s", name, body)
		}
	}
	if out := testenv.PromtoolCheckMetrics(t, w.Body.Bytes()); out != "" {
		t.Fatalf("promtool check metrics:\n%s", out)
	}
}
