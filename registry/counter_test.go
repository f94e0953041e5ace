package registry_test

import (
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/registry/registrytest"
)

// The live instance count divides a Redis limiter's budget while Redis is
// unreachable: 4 instances of 100 per minute each admit 25, then, when
// the fleet shrinks to 2, 50.
func TestCounterSharesRateLimitFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := registrytest.New()
		reg.Set("orders", ins("127.0.0.1:1"), ins("127.0.0.1:2"), ins("127.0.0.1:3"), ins("127.0.0.1:4"))
		res := newResolver(t, reg)
		count := res.Counter("orders")
		waitCount(t, count, 4)

		// Redis on a loopback port nothing listens on: every decision falls back.
		rdb := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1})
		defer rdb.Close()
		lim, err := ratelimit.NewRedis(rdb, "orders", ratelimit.PerMinute(100),
			ratelimit.WithFailurePolicy(ratelimit.FailLocalFunc(count)),
			ratelimit.WithLogger(logging.New(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer lim.Close()
		if got := admitted(t, lim, "k1"); got != 25 {
			t.Fatalf("4 instances: %d of 100 admitted, want 25", got)
		}
		reg.Set("orders", ins("127.0.0.1:1"), ins("127.0.0.1:2"))
		waitCount(t, count, 2)
		if got := admitted(t, lim, "k2"); got != 50 {
			t.Fatalf("2 instances: %d of 100 admitted, want 50", got)
		}
	})
}

func waitCount(t *testing.T, count func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for count() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(); n != want {
		t.Fatalf("count = %d, want %d", n, want)
	}
}

func admitted(t *testing.T, lim ratelimit.Limiter, key string) int {
	t.Helper()
	n := 0
	for range 100 {
		d, err := ratelimit.Allow(t.Context(), lim, key)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			n++
		}
	}
	return n
}
