package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit"
)

// fleetProbe is the probe interval of the membership tests: members refresh
// every 20 ms and are pruned after 200 ms.
const fleetProbe = 40 * time.Millisecond

// waitInstances drives every limiter (one decision each per 10 ms, which
// keeps their membership fresh) until each reports want instances, and
// fails the test after timeout.
func waitInstances(t *testing.T, ls []*ratelimit.Redis, want int, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, l := range ls {
			if _, err := l.AllowN(ctx, "k", 1); err != nil {
				t.Fatal(err)
			}
			ok = ok && l.Instances() == want
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			got := make([]int, len(ls))
			for i, l := range ls {
				got[i] = l.Instances()
			}
			t.Fatalf("instances seen %v after %v, want %d each", got, timeout, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fleetOf(t *testing.T, n int, newClient func() redis.UniversalClient, name string, opts ...ratelimit.RedisOption) []*ratelimit.Redis {
	t.Helper()
	ls := make([]*ratelimit.Redis, n)
	for i := range ls {
		rdb := newClient()
		t.Cleanup(func() { rdb.Close() })
		o := append([]ratelimit.RedisOption{ratelimit.WithProbeInterval(fleetProbe), ratelimit.WithLogger(testLogger(t))}, opts...)
		l, err := newLimiter(t, rdb, name, ratelimit.PerSecond(1000), o...)
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
	}
	return ls
}

// Limiters sharing a Redis each learn how many they are, per limiter name;
// one that stops deciding drops out after the TTL, one that closes at once.
func TestFleetMembership(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		testFleetMembership(t, func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr}) })
	})
	t.Run("cluster", func(t *testing.T) {
		c := testenv.StartRedisCluster(t, 3)
		testFleetMembership(t, func() redis.UniversalClient { return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addr()}) })
	})
}

func testFleetMembership(t *testing.T, newClient func() redis.UniversalClient) {
	ls := fleetOf(t, 4, newClient, "fleet")
	other := fleetOf(t, 1, newClient, "other")
	if n := ls[0].Instances(); n != 0 {
		t.Fatalf("instances before any decision = %d, want 0", n)
	}
	waitInstances(t, ls, 4, 5*time.Second)
	lastDecision := time.Now() // ls[3]'s last; its last refresh was at most a refresh interval before
	waitInstances(t, other, 1, 5*time.Second)
	off := fleetOf(t, 1, newClient, "fleet", ratelimit.WithMembership(false))
	if _, err := off[0].AllowN(context.Background(), "k", 1); err != nil {
		t.Fatal(err)
	}

	// One set, in one slot, holding exactly the four members.
	rdb := newClient()
	defer rdb.Close()
	ctx := context.Background()
	if n, err := rdb.ZCard(ctx, "gingov:rl:{fleet}:instances").Result(); err != nil || n != 4 {
		t.Fatalf("ZCARD of the membership set = %d, %v; want 4", n, err)
	}

	// ls[3] stops deciding, as a crashed instance would: pruned once its
	// entry is older than the TTL (5 probe intervals), not before.
	waitInstances(t, ls[:3], 3, 2*time.Second)
	took := time.Since(lastDecision)
	t.Logf("silent member pruned %v after its last decision (TTL %v)", took, 5*fleetProbe)
	if took < 5*fleetProbe-fleetProbe/2-10*time.Millisecond {
		t.Fatalf("a silent member was pruned %v after its last decision, before the TTL %v", took, 5*fleetProbe)
	}

	// ls[2] closes: removed at once, well before the TTL.
	if err := ls[2].Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitInstances(t, ls[:2], 2, 2*time.Second)
	if took := time.Since(start); took >= 4*fleetProbe {
		t.Fatalf("a closed member left after %v; want at once (before the TTL %v)", took, 5*fleetProbe)
	}
}

// When Redis dies, FailLocal divides the rate by the fleet size last seen
// (or by its own count when larger); FailLocalFunc's count wins; without
// membership FailLocal(1) keeps the whole rate. The health hook reports
// the fleet size and the count the failure policy divides by.
func TestFleetOutageDividesByLastCount(t *testing.T) {
	srv := testenv.StartRedis(t)
	newClient := func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr}) }
	var (
		mu     sync.Mutex
		events []ratelimit.Event
	)
	hook := ratelimit.WithOnHealthChange(func(_ context.Context, e ratelimit.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	rate := ratelimit.Rate{Limit: 100, Period: time.Minute, Burst: 100}
	mk := func(opts ...ratelimit.RedisOption) *ratelimit.Redis {
		rdb := newClient()
		t.Cleanup(func() { rdb.Close() })
		o := append([]ratelimit.RedisOption{ratelimit.WithProbeInterval(fleetProbe), ratelimit.WithDeadline(100 * time.Millisecond),
			ratelimit.WithLogger(testLogger(t))}, opts...)
		l, err := newLimiter(t, rdb, "fleet", rate, o...)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	def := mk(hook)
	fixed := mk(ratelimit.WithFailurePolicy(ratelimit.FailLocal(8)))
	fn := mk(ratelimit.WithFailurePolicy(ratelimit.FailLocalFunc(func() int { return 2 })))
	plain := mk()
	off := mk(ratelimit.WithMembership(false))
	members := []*ratelimit.Redis{def, fixed, fn, plain}
	waitInstances(t, members, 4, 5*time.Second)
	if n := off.Instances(); n != 0 {
		t.Fatalf("a limiter without membership reports %d instances", n)
	}

	srv.Kill()
	for _, c := range []struct {
		name string
		l    *ratelimit.Redis
		want int // the burst of its local bucket
	}{
		{"FailLocal(1), 4 instances seen", def, 25},
		{"FailLocal(8), 4 instances seen", fixed, 12},
		{"FailLocalFunc (2)", fn, 50},
		{"membership off", off, 100},
	} {
		allowed := 0
		for range 150 {
			d, err := c.l.AllowN(context.Background(), "outage-key", 1)
			if err != nil {
				t.Fatal(err)
			}
			if d.Source != ratelimit.SourceFallback && d.Allowed {
				t.Fatalf("%s: allowed by %v with Redis dead", c.name, d.Source)
			}
			if d.Allowed {
				allowed++
			}
		}
		if allowed != c.want {
			t.Errorf("%s: fallback admitted %d of 150 at once, want %d", c.name, allowed, c.want)
		}
	}
	if n := def.Instances(); n != 4 {
		t.Errorf("instances during the outage = %d, want the last seen, 4", n)
	}
	mu.Lock()
	defer mu.Unlock()
	var sawFleet, sawDown bool
	for _, e := range events {
		switch e.Kind {
		case ratelimit.EventInstances:
			sawFleet = sawFleet || (e.Instances == 4 && e.Rule == "fleet")
		case ratelimit.EventRedisDown:
			sawDown = true
			if e.Instances != 4 {
				t.Errorf("EventRedisDown.Instances = %d, want 4", e.Instances)
			}
		}
	}
	if !sawFleet || !sawDown {
		t.Errorf("events %+v: want an EventInstances of 4 and an EventRedisDown", events)
	}
}

// A key Redis was denying when it died starts the outage with an empty
// local bucket that refills at the local rate, not with a fresh burst; a
// key Redis never denied gets its local burst. (Membership off and
// FailLocal(2): the local bucket is 50 a minute with a burst of 50.)
func TestOutageDeniedKeyStartsEmpty(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []ratelimit.RedisOption
	}{
		{"sync", []ratelimit.RedisOption{ratelimit.WithCoalescing(false)}},
		{"coalesced", nil},
		{"lease", []ratelimit.RedisOption{ratelimit.WithLease(ratelimit.LeaseOptions{})}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			srv, rdb := newRedis(t)
			opts := append([]ratelimit.RedisOption{ratelimit.WithMembership(false), ratelimit.WithFailurePolicy(ratelimit.FailLocal(2)),
				ratelimit.WithDeadline(100 * time.Millisecond), ratelimit.WithLogger(testLogger(t))}, mode.opts...)
			l, err := newLimiter(t, rdb, "hot", ratelimit.Rate{Limit: 100, Period: time.Minute, Burst: 100}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			count := func(key string, calls int, src ratelimit.Source) int {
				allowed := 0
				for range calls {
					d, err := l.AllowN(ctx, key, 1)
					if err != nil {
						t.Fatal(err)
					}
					if d.Allowed {
						leased := src == ratelimit.SourceRedis && d.Source == ratelimit.SourceLease
						if d.Source != src && !leased {
							t.Fatalf("%s: allowed by %v, want %v", key, d.Source, src)
						}
						allowed++
					}
				}
				return allowed
			}
			if n := count("hot", 150, ratelimit.SourceRedis); n != 100 {
				t.Fatalf("Redis admitted %d of 150 for the hot key, want its burst 100", n)
			}
			srv.Kill()
			// Past the time a lease's known denial lasts (0.6 s, one token
			// of 100 a minute), and short of the local bucket's 1.2 s per token.
			time.Sleep(700 * time.Millisecond)
			if n := count("hot", 50, ratelimit.SourceFallback); n > 1 {
				t.Errorf("the hot key got %d from the fallback at once, want none (its Redis bucket was empty)", n)
			}
			if n := count("cold", 80, ratelimit.SourceFallback); n != 50 {
				t.Errorf("the cold key got %d of 80 from the fallback, want its local burst 50", n)
			}
		})
	}
}

// In a Guard, every Redis-backed rule keeps the instance's membership while
// the Guard serves requests, also a rule that applies to none of them (so
// that its count is right when the traffic it limits arrives during an
// outage).
func TestGuardRulesKeepMembership(t *testing.T) {
	_, rdb := newRedis(t)
	g := mustGuard(t, rdb, ratelimit.PerIP(100, time.Second),
		ratelimit.PerHeader("X-Api-Key", 100, time.Second).WithName("by-key"),
		ratelimit.WithProbeInterval(fleetProbe))
	r := engine(t, g)
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for {
		do(r, "/x") // no X-Api-Key: the second rule never applies
		ip, _ := rdb.ZCard(ctx, "gingov:rl:{ip}:instances").Result()
		key, _ := rdb.ZCard(ctx, "gingov:rl:{by-key}:instances").Result()
		if ip == 1 && key == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members: ip %d, by-key %d; want 1 each", ip, key)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Close removes the instance from both.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"gingov:rl:{ip}:instances", "gingov:rl:{by-key}:instances"} {
		if n, err := rdb.ZCard(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("%s after Close: %d members, %v; want none", k, n, err)
		}
	}
}
