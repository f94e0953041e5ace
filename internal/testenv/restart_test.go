package testenv_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/testenv"
)

// TestRedisRestart checks what recovery tests rely on: after a crash the
// server comes back as a new process on the same port, in the same
// directory, with the same settings, and a client that knew the old one
// reaches it again.
func TestRedisRestart(t *testing.T) {
	r := testenv.StartRedis(t, "--maxmemory", "10mb")
	addr, port, dir, pid := r.Addr, r.Port, r.Dir, r.Pid()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	r.Kill()
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	err := testenv.Ping(pctx, addr)
	pcancel()
	if err == nil {
		t.Fatal("PING answered after Kill")
	}

	start := time.Now()
	r.Restart(t)
	t.Logf("restarted on %s in %v", r.Addr, time.Since(start).Round(time.Millisecond))
	if r.Addr != addr || r.Port != port || r.Dir != dir {
		t.Fatalf("after Restart: %s %d %s; want %s %d %s", r.Addr, r.Port, r.Dir, addr, port, dir)
	}
	if r.Exited() || r.Pid() == pid {
		t.Fatalf("after Restart: exited %v, pid %d (old %d); want a new running process", r.Exited(), r.Pid(), pid)
	}
	// Persistence is off: the new process starts empty.
	if err := rdb.Get(ctx, "before").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET before = %v; want redis.Nil from a fresh server", err)
	}
	// The same command line: same directory and extra flags.
	cfg, err := rdb.ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatalf("CONFIG GET: %v", err)
	}
	if cfg["dir"] != dir || cfg["maxmemory"] != "10485760" || cfg["bind"] != "127.0.0.1" {
		t.Fatalf("after Restart: dir=%q maxmemory=%q bind=%q; want %q, 10485760, 127.0.0.1",
			cfg["dir"], cfg["maxmemory"], cfg["bind"], dir)
	}

	// Restart of a running server stops it first.
	pid = r.Pid()
	r.Restart(t)
	if r.Pid() == pid || r.Addr != addr {
		t.Fatalf("second Restart: pid %d (old %d), addr %s", r.Pid(), pid, r.Addr)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after second Restart: %v", err)
	}
}

// TestRedisPauseResumeRestart checks that a paused server accepts
// connections but answers nothing, as a hung one would, answers again after
// Resume, and restarts at once while paused.
func TestRedisPauseResumeRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Pause(t)

	var d net.Dialer
	dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
	conn, err := d.DialContext(dctx, "tcp", r.Addr)
	dcancel()
	if err != nil {
		t.Fatalf("dial a paused server: %v; want the kernel to accept", err)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = testenv.Ping(ctx, r.Addr)
	cancel()
	if err == nil {
		t.Fatal("a paused server answered PING")
	}

	r.Resume()
	r.Resume() // idempotent
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := testenv.Ping(ctx, r.Addr); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}

	// Paused in a subtest and left so: the subtest's cleanup resumes it.
	t.Run("cleanup resumes", func(t *testing.T) { r.Pause(t) })
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if err := testenv.Ping(ctx2, r.Addr); err != nil {
		t.Fatalf("PING after the pausing test's cleanup: %v", err)
	}

	// Restart while paused: Stop would wait 5 s for a frozen process to
	// handle SIGTERM; Restart resumes it first.
	r.Pause(t)
	start := time.Now()
	r.Restart(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Restart of a paused server took %v", d)
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel3()
	if err := testenv.Ping(ctx3, r.Addr); err != nil {
		t.Fatalf("PING after Restart of a paused server: %v", err)
	}
	start = time.Now()
	r.Stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Stop took %v", d)
	}
	r.Resume() // after exit: a no-op
}
