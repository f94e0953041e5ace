package ratelimit_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/errcode"
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
	// The key expires once its bucket would be full again. (The limiter's
	// membership set, gingov:rl:{burst}:instances, is no bucket.)
	keys, err := rdb.Keys(ctx, "gingov:rl:{burst:*").Result()
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

// AllowN honours the caller's context: a context already done takes no
// token, and one that ends while Redis is slow ends the call then, with
// its error, not after the limiter's deadline; neither is a Redis outage.
func TestRedisAllowNHonoursContext(t *testing.T) {
	_, rdb := newRedis(t)
	l, err := newLimiter(t, rdb, "ctx", ratelimit.PerSecond(10),
		ratelimit.WithCoalescing(false), ratelimit.WithDeadline(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	gone, cancel := context.WithCancel(bg)
	cancel()
	if d, err := l.AllowN(gone, "k", 1); !errors.Is(err, context.Canceled) || d.Allowed {
		t.Fatalf("cancelled context: %+v, %v", d, err)
	}
	if n, err := rdb.Exists(bg, "gingov:rl:{ctx:k}").Result(); err != nil || n != 0 {
		t.Fatalf("a cancelled caller took a token (exists %d, %v)", n, err)
	}

	if err := rdb.Do(bg, "CLIENT", "PAUSE", "400", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	d, err := l.AllowN(short, "k", 1)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || took > 300*time.Millisecond {
		t.Fatalf("caller's 50ms timeout with Redis paused: %+v, %v after %v", d, err, took)
	}
	if !l.Healthy() {
		t.Fatal("the caller's timeout was taken as a Redis outage")
	}
	time.Sleep(400 * time.Millisecond) // the pause ends
	if d, err := l.AllowN(bg, "k", 1); err != nil || !d.Allowed || d.Source != ratelimit.SourceRedis {
		t.Fatalf("after the pause: %+v, %v", d, err)
	}
}

// The middleware ends a request whose client has gone before a Redis
// decision as 499, without running the handler.
func TestGuardClientGoneIs499(t *testing.T) {
	_, rdb := newRedis(t)
	g := mustGuard(t, rdb, ratelimit.PerIP(5, time.Second))
	r := gin.New()
	errcode.Handle(r)
	r.Use(g.Middleware())
	ran := false
	r.GET("/x", func(c *gin.Context) { ran = true })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
	if w.Code != 499 || ran {
		t.Fatalf("client gone: %d, handler ran %v", w.Code, ran)
	}
}

func TestOptionValidation(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	rule := ratelimit.PerIP(1, time.Second)
	var zero ratelimit.RedisGuardOption
	var zeroKeys ratelimit.MaxKeysOption
	newGuard := func(rdb redis.UniversalClient, opts ...ratelimit.Option) func() error {
		return func() error { _, err := ratelimit.New(rdb, opts...); return err }
	}
	newRedis := func(opts ...ratelimit.RedisOption) func() error {
		return func() error { _, err := ratelimit.NewRedis(rdb, "n", ratelimit.PerSecond(1), opts...); return err }
	}
	for _, c := range []struct {
		want string
		f    func() error
	}{
		{"ratelimit: option 2 is nil", newGuard(nil, rule, nil)},
		{"ratelimit: option 3 is nil", newGuard(rdb, rule, ratelimit.WithLogger(nil), zero)},
		{"ratelimit: option 1 is nil", func() error { _, err := ratelimit.NewLocal(ratelimit.PerSecond(1), zeroKeys); return err }},
		{"ratelimit: option 1 is nil", newRedis(nil)},
		{"ratelimit: WithOnDecision: nil function", newGuard(nil, rule, ratelimit.WithOnDecision(nil))},
		{"ratelimit: WithOnHealthChange: nil function", newGuard(nil, rule, ratelimit.WithOnHealthChange(nil))},
		{"ratelimit: WithOnHealthChange: nil function", newRedis(ratelimit.WithOnHealthChange(nil))},
		{"ratelimit: WithMaxKeys: must be >= 1, got 0", newGuard(nil, rule, ratelimit.WithMaxKeys(0))},
		{"ratelimit: WithMaxKeys: must be >= 1, got 0", newRedis(ratelimit.WithMaxKeys(0))},
		{"ratelimit: WithDeadline: must be > 0, got -1s", newGuard(rdb, rule, ratelimit.WithDeadline(-time.Second))},
		{"ratelimit: WithFailurePolicy: FailLocal needs instances >= 1, got 0", newRedis(ratelimit.WithFailurePolicy(ratelimit.FailLocal(0)))},
		{`ratelimit: rule "ip": WithLease: fields must not be negative`, newGuard(rdb, rule.WithLease(ratelimit.LeaseOptions{TTL: -1}))},
		{"ratelimit: WithHeaders: unknown headers 8", newGuard(nil, rule, ratelimit.WithHeaders(8))},
	} {
		if err := c.f(); err == nil || err.Error() != c.want {
			t.Errorf("want %q, got %v", c.want, err)
		}
	}
	// A Redis setting without a Redis client would do nothing: an error
	// naming the first one.
	if err := newGuard(nil, rule, ratelimit.WithDeadline(time.Second), ratelimit.WithLogger(nil))(); err == nil ||
		err.Error() != "ratelimit: WithDeadline: needs a Redis client" {
		t.Errorf("Redis settings on an in-process guard: %v", err)
	}
}
