package ratelimit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit"
)

func newRedis(t *testing.T) (*testenv.Redis, *redis.Client) {
	t.Helper()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

// The bucket admits exactly its burst at once, then nothing until a token
// has flowed in; remaining and retry-after are exact.
func TestRedisBurstThenDeny(t *testing.T) {
	_, rdb := newRedis(t)
	l, err := newLimiter(t, rdb, "burst", ratelimit.Rate{Limit: 10, Period: time.Minute, Burst: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		d, err := l.AllowN(ctx, "k", 1)
		if err != nil || !d.Allowed || d.Remaining != 4-i || d.Source != ratelimit.SourceRedis || d.Limit != 5 {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
	}
	d, _ := l.AllowN(ctx, "k", 1)
	if d.Allowed || d.Remaining != 0 {
		t.Fatalf("6th request allowed: %+v", d)
	}
	// 10/min: one token every 6 s.
	if d.RetryAfter < 5900*time.Millisecond || d.RetryAfter > 6*time.Second {
		t.Fatalf("retry after %v, want ~6s", d.RetryAfter)
	}
	if d.ResetAfter < 29*time.Second || d.ResetAfter > 30*time.Second {
		t.Fatalf("reset after %v, want ~30s", d.ResetAfter)
	}
	// Another key has its own bucket.
	if d, _ := l.AllowN(ctx, "other", 1); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("other key: %+v", d)
	}
	// The key expires once its bucket would be full again.
	keys, err := rdb.Keys(ctx, "gingov:rl:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "gingov:rl:{burst:") || !strings.HasSuffix(k, "}") {
			t.Errorf("key %q not hash-tagged under the prefix", k)
		}
		ttl, _ := rdb.PTTL(ctx, k).Result()
		if ttl <= 0 || ttl > 31*time.Second {
			t.Errorf("key %q ttl %v", k, ttl)
		}
	}
}

// newLimiter is ratelimit.NewRedis with Close at the end of the test.
func newLimiter(t testing.TB, rdb redis.UniversalClient, name string, r ratelimit.Rate, opts ...ratelimit.RedisOption) (*ratelimit.Redis, error) {
	t.Helper()
	l, err := ratelimit.NewRedis(rdb, name, r, opts...)
	if err == nil {
		t.Cleanup(func() { _ = l.Close() })
	}
	return l, err
}
