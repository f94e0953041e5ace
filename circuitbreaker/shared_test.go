package circuitbreaker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/internal/testenv"
)

func sharedInstance(t *testing.T, rdb redis.UniversalClient, handler gin.HandlerFunc) (*gin.Engine, *circuitbreaker.Server) {
	t.Helper()
	s, err := circuitbreaker.New(quiet,
		circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5, OpenTimeout: time.Second}),
		circuitbreaker.WithShared(circuitbreaker.Shared{Client: rdb, SyncInterval: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	r := gin.New()
	r.Use(s.Middleware())
	r.GET("/pay", handler)
	return r, s
}

// An instance that sees the upstream fail trips the route for every
// instance: a healthy-looking peer rejects it within a sync interval,
// until the trip's open period is over.
func TestSharedTripReachesPeers(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	a, sa := sharedInstance(t, rdb, func(c *gin.Context) { c.Status(502) })
	b, sb := sharedInstance(t, rdb, func(c *gin.Context) { c.Status(200) })
	if w := get(b, "/pay"); w.Code != 200 {
		t.Fatal(w.Code)
	}
	for i := 0; i < 5; i++ {
		get(a, "/pay")
	}
	if sa.State("GET", "/pay") != circuitbreaker.StateOpen {
		t.Fatal("instance A did not trip")
	}
	tripped := time.Now()
	var w = get(b, "/pay")
	for w.Code == 200 && time.Since(tripped) < time.Second {
		time.Sleep(10 * time.Millisecond)
		w = get(b, "/pay")
	}
	t.Logf("peer rejected %v after the trip", time.Since(tripped).Round(time.Millisecond))
	if w.Code != 503 || !strings.Contains(w.Body.String(), "CIRCUIT_OPEN") || sb.State("GET", "/pay") != circuitbreaker.StateOpen {
		t.Fatalf("peer B did not adopt A's trip: %d %s", w.Code, w.Body)
	}
	if time.Since(tripped) > 300*time.Millisecond {
		t.Fatalf("peer took %v, sync interval 50ms", time.Since(tripped))
	}
	time.Sleep(time.Until(tripped.Add(time.Second + 150*time.Millisecond)))
	if w := get(b, "/pay"); w.Code != 200 {
		t.Fatalf("peer still rejects after the open period: %d", w.Code)
	}
}

// With Redis gone, instances keep their local breakers and no request waits.
func TestSharedWithoutRedis(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer rdb.Close()
	a, sa := sharedInstance(t, rdb, func(c *gin.Context) { c.Status(502) })
	srv.Kill()
	start := time.Now()
	for i := 0; i < 5; i++ {
		get(a, "/pay")
	}
	if sa.State("GET", "/pay") != circuitbreaker.StateOpen {
		t.Fatal("local breaker did not trip without Redis")
	}
	if w := get(a, "/pay"); w.Code != 503 {
		t.Fatalf("open breaker answered %d", w.Code)
	}
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Fatalf("requests waited for Redis: %v", el)
	}
}
