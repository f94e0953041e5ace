package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/registry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestNewGovernanceValidates(t *testing.T) {
	if _, err := metrics.NewGovernance(nil); err == nil || err.Error() != "metrics: nil Registerer" {
		t.Fatalf("nil registerer: %v", err)
	}
	if _, err := metrics.NewGovernance((*prometheus.Registry)(nil)); err == nil || err.Error() != "metrics: nil Registerer" {
		t.Fatalf("nil *Registry: %v", err)
	}
	if _, err := metrics.NewGovernance(prometheus.NewRegistry(), metrics.WithNamespace("shop"), nil); err == nil ||
		err.Error() != "metrics: option 2 is nil" {
		t.Fatalf("nil option: %v", err)
	}
	if _, err := metrics.NewGovernance(prometheus.NewRegistry(), metrics.WithRedisBuckets(0.1, 0.01)); err == nil ||
		!strings.Contains(err.Error(), "WithRedisBuckets: buckets must be strictly increasing") {
		t.Fatalf("bad buckets: %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := metrics.NewGovernance(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.NewGovernance(reg); err == nil {
		t.Fatal("second NewGovernance on one registry accepted")
	}
	// A failed registration leaves nothing behind: NewHTTP still fits.
	if _, err := metrics.NewHTTP(reg); err != nil {
		t.Fatalf("NewHTTP beside NewGovernance: %v", err)
	}
}

// TestRateLimitDecisions counts the decisions of a local guard through its
// real hook: allowed and limited, by rule and source.
func TestRateLimitDecisions(t *testing.T) {
	reg := prometheus.NewRegistry()
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ratelimit.New(nil, ratelimit.Global(2, time.Minute).WithName("api"), ratelimit.WithOnDecision(gov.OnDecision))
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(g.Middleware())
	r.GET("/x", func(c *gin.Context) {})
	for range 5 {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	}
	want := `
# HELP gingov_ratelimit_decisions_total Rate-limit decisions, by rule, result (allowed, limited) and source (local, redis, lease, fallback).
# TYPE gingov_ratelimit_decisions_total counter
gingov_ratelimit_decisions_total{result="allowed",rule="api",source="local"} 2
gingov_ratelimit_decisions_total{result="limited",rule="api",source="local"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gingov_ratelimit_decisions_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "gingov_ratelimit_redis_duration_seconds"); n != 0 {
		t.Fatalf("local decisions observed as Redis latency: %d series", n)
	}
}

// TestRedisSeriesOnlyWithRedis checks that the Redis series of the rate
// limiter exist only for a limiter that reported a Redis: a Governance fed
// the decisions of a local guard exports none, and a Redis limiter's
// health hook brings them, healthy.
func TestRedisSeriesOnlyWithRedis(t *testing.T) {
	reg := prometheus.NewRegistry()
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		t.Fatal(err)
	}
	gov.OnDecision(context.Background(), ratelimit.Event{Rule: "api", Decision: ratelimit.Decision{Allowed: true, Source: ratelimit.SourceLocal}})
	redisFamilies := []string{"gingov_ratelimit_redis_up", "gingov_ratelimit_redis_health_changes_total",
		"gingov_ratelimit_fallback_activations_total", "gingov_ratelimit_redis_duration_seconds"}
	for _, name := range redisFamilies {
		if n := testutil.CollectAndCount(reg, name); n != 0 {
			t.Fatalf("%s: %d series without Redis, want none", name, n)
		}
	}

	health := gov.RedisHealthHook("orders")
	want := `
# HELP gingov_ratelimit_redis_up Whether the rate limiter's Redis answers (1) or its failure policy answers instead (0), by limiter.
# TYPE gingov_ratelimit_redis_up gauge
gingov_ratelimit_redis_up{limiter="orders"} 1
# HELP gingov_ratelimit_fallback_activations_total Times the rate limiter's failure policy took over from an unreachable Redis, by limiter.
# TYPE gingov_ratelimit_fallback_activations_total counter
gingov_ratelimit_fallback_activations_total{limiter="orders"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"gingov_ratelimit_redis_up", "gingov_ratelimit_fallback_activations_total"); err != nil {
		t.Fatal(err)
	}
	health(context.Background(), ratelimit.Event{Kind: ratelimit.EventRedisDown, Rule: "api", Err: errors.New("connection refused")})
	if v := value(t, reg, "gingov_ratelimit_redis_up", "orders"); v != 0 {
		t.Fatalf("redis_up after a down report = %v, want 0", v)
	}
	// A second hook for the same limiter keeps its state.
	gov.RedisHealthHook("orders")
	if v := value(t, reg, "gingov_ratelimit_redis_up", "orders"); v != 0 {
		t.Fatalf("redis_up after a second hook = %v, want 0", v)
	}
}

// TestRedisLimiterHealth drives a Redis-backed guard against a real Redis,
// then stops Redis: decisions move from source redis (with latency) to
// fallback, the health gauge drops to 0 and the fallback activation is
// counted; with Redis back the gauge returns to 1.
func TestRedisLimiterHealth(t *testing.T) {
	srv := testenv.StartRedis(t)
	reg := prometheus.NewRegistry()
	gov, err := metrics.NewGovernance(reg, metrics.WithNamespace("shop"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	g, err := ratelimit.New(rdb, ratelimit.Global(1000, time.Second).WithName("api"),
		ratelimit.WithOnDecision(gov.OnDecision),
		ratelimit.WithOnHealthChange(gov.RedisHealthHook("orders")),
		ratelimit.WithLogger(quiet),
		ratelimit.WithDeadline(100*time.Millisecond),
		ratelimit.WithProbeInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r := gin.New()
	r.Use(g.Middleware())
	r.GET("/x", func(c *gin.Context) {})
	serve := func(n int) {
		for range n {
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
		}
	}
	up := func() float64 {
		return value(t, reg, "shop_gingov_ratelimit_redis_up", "orders")
	}
	if v := up(); v != 1 {
		t.Fatalf("redis_up before any decision = %v, want 1", v)
	}
	serve(10)
	if n := testutil.CollectAndCount(reg, "shop_gingov_ratelimit_redis_duration_seconds"); n != 1 {
		t.Fatalf("redis latency series = %d, want 1", n)
	}
	if c := sampleCount(t, reg, "shop_gingov_ratelimit_redis_duration_seconds"); c != 10 {
		t.Fatalf("redis latency observations = %d, want 10", c)
	}
	// The rule's membership refresh (in the background) reports one instance.
	for wait := time.Now().Add(5 * time.Second); testutil.CollectAndCount(reg, "shop_gingov_ratelimit_instances") == 0 && time.Now().Before(wait); {
		serve(1)
		time.Sleep(20 * time.Millisecond)
	}
	if v := value(t, reg, "shop_gingov_ratelimit_instances", "orders", "api"); v != 1 {
		t.Fatalf("instances = %v, want 1", v)
	}

	srv.Stop()
	serve(10)
	if v := up(); v != 0 {
		t.Fatalf("redis_up with Redis stopped = %v, want 0", v)
	}
	want := `
# HELP shop_gingov_ratelimit_fallback_activations_total Times the rate limiter's failure policy took over from an unreachable Redis, by limiter.
# TYPE shop_gingov_ratelimit_fallback_activations_total counter
shop_gingov_ratelimit_fallback_activations_total{limiter="orders"} 1
# HELP shop_gingov_ratelimit_redis_health_changes_total Rate-limiter Redis health changes, by limiter and state entered (up, down).
# TYPE shop_gingov_ratelimit_redis_health_changes_total counter
shop_gingov_ratelimit_redis_health_changes_total{limiter="orders",state="down"} 1
shop_gingov_ratelimit_redis_health_changes_total{limiter="orders",state="up"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"shop_gingov_ratelimit_fallback_activations_total", "shop_gingov_ratelimit_redis_health_changes_total"); err != nil {
		t.Fatal(err)
	}
	if v := value(t, reg, "shop_gingov_ratelimit_decisions_total", "allowed", "api", "fallback"); v != 10 {
		t.Fatalf("fallback decisions = %v, want 10", v)
	}

	srv.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for up() != 1 && time.Now().Before(deadline) {
		serve(1)
		time.Sleep(20 * time.Millisecond)
	}
	if v := up(); v != 1 {
		t.Fatalf("redis_up after Redis came back = %v, want 1", v)
	}
}

// TestBreakerState opens a real server breaker with failing requests and
// checks the state gauge (2 = open) and the transition counter.
func TestBreakerState(t *testing.T) {
	reg := prometheus.NewRegistry()
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := circuitbreaker.New(
		circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 3, OpenTimeout: time.Hour}),
		circuitbreaker.WithOnStateChange(gov.OnBreakerChange),
		circuitbreaker.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	r := gin.New()
	r.Use(cb.Middleware())
	r.GET("/fail", func(c *gin.Context) { c.Status(500) })
	for range 5 {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fail", nil))
	}
	want := `
# HELP gingov_circuitbreaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open, by breaker.
# TYPE gingov_circuitbreaker_state gauge
gingov_circuitbreaker_state{breaker="GET /fail"} 2
# HELP gingov_circuitbreaker_transitions_total Circuit breaker state changes, by breaker and state entered.
# TYPE gingov_circuitbreaker_transitions_total counter
gingov_circuitbreaker_transitions_total{breaker="GET /fail",state="open"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"gingov_circuitbreaker_state", "gingov_circuitbreaker_transitions_total"); err != nil {
		t.Fatal(err)
	}
	gov.OnBreakerChange(context.Background(), circuitbreaker.Event{Name: "GET /fail", From: circuitbreaker.StateOpen, To: circuitbreaker.StateHalfOpen})
	if v := value(t, reg, "gingov_circuitbreaker_state", "GET /fail"); v != 1 {
		t.Fatalf("half-open state = %v, want 1", v)
	}
}

func TestSentinelBlocks(t *testing.T) {
	reg := prometheus.NewRegistry()
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gov.OnSentinelBlock(ctx, "GET:/orders/:id", "flow")
	gov.OnSentinelBlock(ctx, "GET:/orders/:id", "flow")
	gov.OnSentinelBlock(ctx, "GET:/orders/:id", "circuit_breaking")
	gov.OnSentinelBlock(ctx, "bad\xff", "flow") // invalid UTF-8: dropped, no panic
	want := `
# HELP gingov_sentinel_blocks_total Requests blocked by Sentinel, by resource and block type.
# TYPE gingov_sentinel_blocks_total counter
gingov_sentinel_blocks_total{block_type="circuit_breaking",resource="GET:/orders/:id"} 1
gingov_sentinel_blocks_total{block_type="flow",resource="GET:/orders/:id"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gingov_sentinel_blocks_total"); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryEvents(t *testing.T) {
	reg := prometheus.NewRegistry()
	gov, err := metrics.NewGovernance(reg)
	if err != nil {
		t.Fatal(err)
	}
	ins := &registry.ServiceInstance{Name: "orders", Address: "127.0.0.1:8080"}
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.Registered, Instance: ins})
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.HeartbeatFailed, Instance: ins, Err: errors.New("x")})
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.HeartbeatFailed, Instance: ins, Err: errors.New("x")})
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "nacos", Kind: registry.RegisterFailed, Instance: ins, Err: errors.New("x")})
	regd := func(backend string) float64 { return value(t, reg, "gingov_registry_registered", backend, "orders") }
	if regd("eureka") != 1 || regd("nacos") != 0 {
		t.Fatalf("registered: eureka %v nacos %v, want 1 and 0", regd("eureka"), regd("nacos"))
	}
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.Deregistered, Instance: ins})
	if regd("eureka") != 0 {
		t.Fatal("still registered after Deregistered")
	}
	// A Resolver's events name the discovered service, not an instance,
	// and leave the registered gauge alone.
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.EmptyHeld, Service: "orders"})
	gov.OnRegistryEvent(context.Background(), registry.Event{Backend: "eureka", Kind: registry.EmptyAccepted, Service: "orders"})
	if regd("eureka") != 0 {
		t.Fatal("the empty-set events changed the registered gauge")
	}
	want := `
# HELP gingov_registry_events_total Service registry events, by backend, service and event.
# TYPE gingov_registry_events_total counter
gingov_registry_events_total{backend="eureka",event="deregistered",service="orders"} 1
gingov_registry_events_total{backend="eureka",event="empty_accepted",service="orders"} 1
gingov_registry_events_total{backend="eureka",event="empty_held",service="orders"} 1
gingov_registry_events_total{backend="eureka",event="heartbeat_failed",service="orders"} 2
gingov_registry_events_total{backend="eureka",event="registered",service="orders"} 1
gingov_registry_events_total{backend="nacos",event="register_failed",service="orders"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gingov_registry_events_total"); err != nil {
		t.Fatal(err)
	}
}

// value returns the value of the gauge or counter series of the named
// family with the given label values (in label-name order).
func value(t *testing.T, g prometheus.Gatherer, name string, values ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(values) {
				continue
			}
			for i, lp := range m.GetLabel() {
				if lp.GetValue() != values[i] {
					continue next
				}
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, values)
	return 0
}

func sampleCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestDeadlines counts requests answered 504 by the deadline middleware,
// by what set their deadline; a request answered in time is not counted.
func TestDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		gov, err := metrics.NewGovernance(reg)
		if err != nil {
			t.Fatal(err)
		}
		d, err := deadline.New(50*time.Millisecond, deadline.WithOnTimeout(gov.OnDeadline))
		if err != nil {
			t.Fatal(err)
		}
		r := gin.New()
		r.Use(d.Middleware())
		r.GET("/slow/:id", func(c *gin.Context) { <-c.Request.Context().Done() })
		r.GET("/fast", func(c *gin.Context) { c.Status(204) })
		for range 2 {
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/slow/1", nil))
		}
		req := httptest.NewRequest("GET", "/slow/2", nil)
		req.Header.Set(deadline.Header, "10")
		r.ServeHTTP(httptest.NewRecorder(), req)
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fast", nil))
		want := `
# HELP gingov_deadline_exceeded_total Requests answered 504 because their deadline passed, by method, route template and what set the deadline (route, caller).
# TYPE gingov_deadline_exceeded_total counter
gingov_deadline_exceeded_total{method="GET",route="/slow/:id",source="caller"} 1
gingov_deadline_exceeded_total{method="GET",route="/slow/:id",source="route"} 2
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gingov_deadline_exceeded_total"); err != nil {
			t.Fatal(err)
		}
	})
}
