package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/gingov/gingov/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRedisSmoke starts a real redis-server and talks to it with go-redis,
// the client gingov's Redis limiter uses.
func TestRedisSmoke(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := rdb.Set(ctx, "gingov:smoke", "ok", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if v, err := rdb.Get(ctx, "gingov:smoke").Result(); err != nil || v != "ok" {
		t.Fatalf("GET = %q, %v; want ok", v, err)
	}
	// Lua and server time are what the limiter relies on.
	v, err := rdb.Eval(ctx, "return redis.call('TIME')[1]", nil).Int64()
	if err != nil {
		t.Fatalf("EVAL TIME: %v", err)
	}
	if now := time.Now().Unix(); v < now-60 || v > now+60 {
		t.Fatalf("redis TIME %d far from local clock %d", v, now)
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		t.Fatalf("INFO: %v", err)
	}
	t.Logf("redis on %s: %d bytes of INFO server", r.Addr, len(info))
}

// TestRedisStopAndKill checks that the harness really ends the server, so
// outage tests can rely on it.
func TestRedisStopAndKill(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Kill()
	if !r.Exited() {
		t.Fatal("process still running after Kill")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := testenv.Ping(ctx, r.Addr); err == nil {
		t.Fatal("PING answered after Kill")
	}
	r.Stop() // no-op after Kill, must not block
}

func TestFreePortIsLoopbackBindable(t *testing.T) {
	p := testenv.FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
}
