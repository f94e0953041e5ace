package ratelimit_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit"
)

// The outage tests drive a limiter with 8 goroutines, each calling about
// once a millisecond (8000/s, far above the rates limited), while the
// server dies or hangs.
const (
	outGoroutines = 8
	outPace       = time.Millisecond
	outMaxCalls   = 10_000 // per goroutine, a bound besides the duration
	outDeadline   = 100 * time.Millisecond
	// outMargin is what scheduling on a loaded 2-core machine may add to
	// the deadline.
	outMargin = 50 * time.Millisecond
)

// call is one decision as a caller saw it.
type call struct {
	start   time.Time
	latency time.Duration
	ratelimit.Decision
}

// paced drives l on key from outGoroutines goroutines for d, and runs event
// on the calling goroutine after `after`. It returns every call and when
// event returned.
func paced(t *testing.T, l *ratelimit.Redis, key string, d, after time.Duration, event func()) ([]call, time.Time) {
	t.Helper()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		calls []call
		errs  []error
	)
	end := time.Now().Add(d)
	for range outGoroutines {
		wg.Go(func() {
			ctx := context.Background()
			var mine []call
			for i := 0; i < outMaxCalls; i++ {
				start := time.Now()
				if !start.Before(end) {
					break
				}
				dec, err := l.AllowN(ctx, key, 1)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					break
				}
				mine = append(mine, call{start: start, latency: time.Since(start), Decision: dec})
				time.Sleep(outPace)
			}
			mu.Lock()
			calls = append(calls, mine...)
			mu.Unlock()
		})
	}
	time.Sleep(after)
	event()
	at := time.Now()
	wg.Wait()
	for _, err := range errs {
		t.Errorf("AllowN: %v", err)
	}
	slices.SortFunc(calls, func(a, b call) int { return a.start.Compare(b.start) })
	return calls, at
}

// latencies summarises the calls' latencies.
type latencies struct {
	n             int
	p50, p99, max time.Duration
}

func latencyOf(calls []call) latencies {
	ls := make([]time.Duration, len(calls))
	for i, c := range calls {
		ls[i] = c.latency
	}
	slices.Sort(ls)
	if len(ls) == 0 {
		return latencies{}
	}
	at := func(q float64) time.Duration { return ls[min(len(ls)-1, int(q*float64(len(ls))))] }
	return latencies{n: len(ls), p50: at(0.50), p99: at(0.99), max: ls[len(ls)-1]}
}

func (l latencies) String() string {
	return fmt.Sprintf("%d calls: p50 %v, p99 %v, max %v", l.n, l.p50, l.p99, l.max.Round(time.Microsecond))
}

// since returns the calls that started at or after t (calls is sorted).
func since(calls []call, t time.Time) []call {
	i, _ := slices.BinarySearchFunc(calls, t, func(c call, t time.Time) int { return c.start.Compare(t) })
	return calls[i:]
}

// between returns the calls that started in [from, to).
func between(calls []call, from, to time.Time) []call {
	c := since(calls, from)
	j, _ := slices.BinarySearchFunc(c, to, func(c call, t time.Time) int { return c.start.Compare(t) })
	return c[:j]
}

func countAllowed(calls []call) int {
	n := 0
	for _, c := range calls {
		if c.Allowed {
			n++
		}
	}
	return n
}

func countSource(calls []call, s ratelimit.Source) int {
	n := 0
	for _, c := range calls {
		if c.Source == s {
			n++
		}
	}
	return n
}

// checkBoundedLatency asserts that calls after the failure waited at most
// the deadline (p99, plus margin; max within twice the deadline) and were
// answered by the failure policy.
func checkBoundedLatency(t *testing.T, what string, after []call) {
	t.Helper()
	lat := latencyOf(after)
	t.Logf("%s, after: %s (deadline %v)", what, lat, outDeadline)
	if lat.p99 > outDeadline+outMargin {
		t.Errorf("%s: p99 latency %v > deadline %v + %v", what, lat.p99, outDeadline, outMargin)
	}
	if lat.max > 2*outDeadline {
		t.Errorf("%s: max latency %v > 2 × deadline %v", what, lat.max, outDeadline)
	}
	if n := countSource(after, ratelimit.SourceFallback); n != len(after) {
		t.Errorf("%s: %d of %d calls after the failure answered by fallback; want all", what, n, len(after))
	}
	// 8 goroutines pacing at 1 ms make thousands of calls in the 2-3 s
	// after the failure unless calls hang.
	if lat.n < 1000 {
		t.Errorf("%s: only %d calls after the failure; calls hung", what, lat.n)
	}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// When Redis dies, FailLocal answers within the deadline, and each of the
// 2 instances keeps half the rate, starting from the empty bucket Redis had.
func TestOutageFailLocalBoundedLatency(t *testing.T) {
	srv, rdb := newRedis(t)
	rate := ratelimit.Rate{Limit: 100, Period: time.Second, Burst: 100}
	l, err := newLimiter(t, rdb, "outage", rate,
		ratelimit.WithFailurePolicy(ratelimit.FailLocal(2)), ratelimit.WithDeadline(outDeadline),
		ratelimit.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	calls, killed := paced(t, l, "k", 4*time.Second, time.Second, srv.Kill)

	before := between(calls, time.Time{}, killed)
	t.Logf("before the kill: %s; %d from redis, %d admitted", latencyOf(before), countSource(before, ratelimit.SourceRedis), countAllowed(before))
	if countSource(before, ratelimit.SourceRedis) < len(before)/2 {
		t.Fatalf("before the kill only %d of %d decisions came from Redis", countSource(before, ratelimit.SourceRedis), len(before))
	}
	after := since(calls, killed)
	checkBoundedLatency(t, "kill", after)

	// The fallback bucket is 50/s with a burst of 50. The key was at its
	// limit (Redis was denying it), so its local bucket starts the outage
	// as empty as Redis's was: 50/s from the kill on, no fresh burst.
	// Demand (8000/s) keeps it empty, so it admits about that much, not
	// less.
	first := countAllowed(between(after, killed, killed.Add(time.Second)))
	steadyFrom, steadyTo := killed.Add(time.Second), killed.Add(2500*time.Millisecond)
	steady := countAllowed(between(after, steadyFrom, steadyTo))
	// On a loaded machine some calls before the kill already miss the
	// deadline and take tokens from the same fallback bucket; what they took
	// in the second before the kill is missing from the first second after it.
	drained := 0
	for _, c := range between(before, killed.Add(-time.Second), killed) {
		if c.Allowed && c.Source == ratelimit.SourceFallback {
			drained++
		}
	}
	t.Logf("fallback admitted %d in the first second after the kill (max 50/s, no burst; %d taken from it just before), %d in the next 1.5 s (ideal 75)", first, drained, steady)
	if first > 50+2 || first < 40-drained {
		t.Errorf("fallback admitted %d in the first second; want 50/s and no burst = 50 (at most 52, at least 40 less the %d taken before the kill)", first, drained)
	}
	if steady > 75+2 || steady < 65 {
		t.Errorf("fallback admitted %d in 1.5 s of steady outage; want 50/s = 75 (65..77)", steady)
	}
}

// hungServer drives a limiter on rdb while srv is paused (SIGSTOP): its
// connections stay open and its kernel accepts new ones, but nothing
// answers.
func hungServer(t *testing.T, srv *testenv.Redis, rdb redis.UniversalClient) {
	l, err := newLimiter(t, rdb, "hung", ratelimit.Rate{Limit: 100, Period: time.Second, Burst: 100},
		ratelimit.WithFailurePolicy(ratelimit.FailLocal(2)), ratelimit.WithDeadline(outDeadline),
		ratelimit.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	calls, paused := paced(t, l, "k", 3*time.Second, time.Second, func() { srv.Pause(t) })
	before := between(calls, time.Time{}, paused)
	t.Logf("before the pause: %s; %d from redis", latencyOf(before), countSource(before, ratelimit.SourceRedis))
	checkBoundedLatency(t, "pause", since(calls, paused))
}

// When Redis hangs, decisions still wait at most the deadline.
//
// The first subtest uses a client with go-redis's defaults (only Addr set),
// as the other tests here and most services build one; the second turns on
// go-redis's ContextTimeoutEnabled, without which go-redis sets socket
// deadlines from ReadTimeout (5 s by default) and ignores the context's.
func TestOutageHungServer(t *testing.T) {
	t.Run("default client", func(t *testing.T) {
		srv, rdb := newRedis(t)
		hungServer(t, srv, rdb)
	})
	t.Run("ContextTimeoutEnabled client", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		hungServer(t, srv, rdb)
	})
}

// FailOpen admits everything and FailClosed nothing while Redis is down,
// both answering at once.
func TestOutageFailOpenAndClosed(t *testing.T) {
	srv, rdb := newRedis(t)
	rate := ratelimit.Rate{Limit: 5, Period: time.Minute, Burst: 5}
	open, err := newLimiter(t, rdb, "open", rate, ratelimit.WithFailurePolicy(ratelimit.FailOpen),
		ratelimit.WithDeadline(outDeadline), ratelimit.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	closed, err := newLimiter(t, rdb, "closed", rate, ratelimit.WithFailurePolicy(ratelimit.FailClosed),
		ratelimit.WithDeadline(outDeadline), ratelimit.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// While Redis is up both limit: 5 allowed, then denied, by Redis.
	for _, l := range []*ratelimit.Redis{open, closed} {
		for i := range 6 {
			d, err := l.AllowN(ctx, "k", 1)
			if err != nil || d.Allowed != (i < 5) || d.Source != ratelimit.SourceRedis {
				t.Fatalf("%s, Redis up, request %d: %+v, %v", l.Name(), i+1, d, err)
			}
		}
	}

	srv.Kill()
	const n = 50
	for _, tc := range []struct {
		l     *ratelimit.Redis
		allow bool
	}{{open, true}, {closed, false}} {
		var worst time.Duration
		for i := range n {
			start := time.Now()
			d, err := tc.l.AllowN(ctx, "k", 1)
			worst = max(worst, time.Since(start))
			if err != nil || d.Allowed != tc.allow || d.Source != ratelimit.SourceFallback {
				t.Fatalf("%s, Redis down, request %d: %+v, %v; want allowed=%v by fallback", tc.l.Name(), i+1, d, err, tc.allow)
			}
			if !tc.allow && d.RetryAfter <= 0 {
				t.Fatalf("%s, Redis down, request %d: RetryAfter %v; want > 0", tc.l.Name(), i+1, d.RetryAfter)
			}
		}
		t.Logf("%s: %d calls while Redis is down, slowest %v", tc.l.Name(), n, worst)
		if worst > outDeadline+outMargin {
			t.Errorf("%s: a call took %v while Redis was down; deadline %v", tc.l.Name(), worst, outDeadline)
		}
		if tc.l.Healthy() {
			t.Errorf("%s: Healthy() with Redis down", tc.l.Name())
		}
	}
}

// After Redis comes back, on the same address, decisions come from Redis
// again within a second, without anything but traffic to notice it.
func TestRecoveryWithinOneSecond(t *testing.T) {
	srv, rdb := newRedis(t)
	type ctxKey struct{}
	var (
		mu     sync.Mutex
		events []ratelimit.Event
	)
	l, err := newLimiter(t, rdb, "recovery", ratelimit.Rate{Limit: 100, Period: time.Second, Burst: 100},
		ratelimit.WithDeadline(outDeadline), ratelimit.WithLogger(testLogger(t)),
		ratelimit.WithOnHealthChange(func(ctx context.Context, e ratelimit.Event) {
			if e.Kind == ratelimit.EventInstances { // the membership refresh's, from the background
				return
			}
			if ctx.Value(ctxKey{}) != "caller" {
				t.Errorf("health hook without the caller's context: %+v", e)
			}
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, "caller")
	if d, err := l.AllowN(ctx, "k", 1); err != nil || d.Source != ratelimit.SourceRedis {
		t.Fatalf("Redis up: %+v, %v", d, err)
	}
	srv.Kill()
	for i := range 5 {
		if d, err := l.AllowN(ctx, "k", 1); err != nil || d.Source != ratelimit.SourceFallback || !d.Allowed {
			t.Fatalf("Redis down, request %d: %+v, %v; want allowed by fallback", i+1, d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	srv.Restart(t) // returns once the server answers PING
	up := time.Now()
	var d ratelimit.Decision
	polls := 0
	for time.Since(up) < 3*time.Second && d.Source != ratelimit.SourceRedis {
		d, err = l.AllowN(ctx, "k", 1)
		if err != nil {
			t.Fatal(err)
		}
		polls++
		if d.Source != ratelimit.SourceRedis {
			time.Sleep(10 * time.Millisecond)
		}
	}
	took := time.Since(up)
	t.Logf("first decision from Redis %v after it answered PING again (%d polls)", took.Round(time.Millisecond), polls)
	if d.Source != ratelimit.SourceRedis {
		t.Fatalf("no decision from Redis within 3 s of the restart; last %+v", d)
	}
	if took > time.Second {
		t.Errorf("recovery took %v; want within 1 s", took)
	}
	if !l.Healthy() {
		t.Errorf("Healthy() false after a decision from Redis")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].Kind != ratelimit.EventRedisDown || events[0].Err == nil ||
		events[0].Rule != "recovery" || events[0].Policy.String() != "local" ||
		events[1].Kind != ratelimit.EventRedisUp || events[1].DownFor <= 0 {
		t.Errorf("health events %+v, want down then up", events)
	}
}

// A limiter can be built while Redis is down and answers by its failure
// policy within the deadline (here FailLocal(1), the default: the full
// rate in process).
func TestConstructWhileRedisDown(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	l, err := newLimiter(t, rdb, "down", ratelimit.Rate{Limit: 10, Period: time.Minute, Burst: 10},
		ratelimit.WithDeadline(outDeadline), ratelimit.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("NewRedis with Redis down: %v", err)
	}
	ctx := context.Background()
	var worst time.Duration
	for i := range 11 {
		start := time.Now()
		d, err := l.AllowN(ctx, "k", 1)
		took := time.Since(start)
		worst = max(worst, took)
		if err != nil || d.Source != ratelimit.SourceFallback || d.Allowed != (i < 10) {
			t.Fatalf("request %d: %+v, %v; want allowed=%v by fallback", i+1, d, err, i < 10)
		}
		if i == 10 && d.RetryAfter <= 0 {
			t.Fatalf("request 11 denied with RetryAfter %v; want > 0", d.RetryAfter)
		}
		if took > outDeadline+outMargin {
			t.Errorf("request %d took %v; deadline %v", i+1, took, outDeadline)
		}
	}
	t.Logf("11 decisions with Redis down, slowest %v", worst)
	if l.Healthy() {
		t.Error("Healthy() with nothing listening")
	}
}

// TestRecoveryAfterLongOutage: after an outage long enough that a go-redis
// pool would have stopped dialling for callers (it then redials once a
// second), decisions still return to Redis within the probe interval,
// because the limiter replaces its own pool after each failed probe.
func TestRecoveryAfterLongOutage(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 4})
	t.Cleanup(func() { rdb.Close() })
	l, err := newLimiter(t, rdb, "recovery", ratelimit.Rate{Limit: 100, Period: time.Second, Burst: 100},
		ratelimit.WithDeadline(outDeadline), ratelimit.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	ctx := context.Background()
	if d, err := l.AllowN(ctx, "k", 1); err != nil || d.Source != ratelimit.SourceRedis {
		t.Fatalf("Redis up: %+v, %v", d, err)
	}

	srv.Kill()
	down := time.Now()
	// 3 s of outage: 15 failed probes, far past PoolSize failed dials.
	for time.Since(down) < 3*time.Second {
		if d, err := l.AllowN(ctx, "k", 1); err != nil || d.Source != ratelimit.SourceFallback {
			t.Fatalf("Redis down: %+v, %v; want a fallback decision", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	srv.Restart(t) // returns once the server answers PING
	up := time.Now()
	var d ratelimit.Decision
	for time.Since(up) < 3*time.Second && d.Source != ratelimit.SourceRedis {
		if d, err = l.AllowN(ctx, "k", 1); err != nil {
			t.Fatal(err)
		}
		if d.Source != ratelimit.SourceRedis {
			time.Sleep(10 * time.Millisecond)
		}
	}
	took := time.Since(up)
	t.Logf("first decision from Redis %v after it answered PING again, after a %v outage",
		took.Round(time.Millisecond), up.Sub(down).Round(time.Millisecond))
	if d.Source != ratelimit.SourceRedis {
		t.Fatalf("no decision from Redis within 3 s of the restart; last %+v", d)
	}
	// 100 ms for polling every 10 ms and scheduling.
	if want := ratelimit.DefaultProbeInterval + 100*time.Millisecond; took > want {
		t.Errorf("recovery took %v after a long outage; want within the probe interval %v (+100 ms)",
			took, ratelimit.DefaultProbeInterval)
	}
}

// While Redis is down, no decision waits for it: the probes that look for
// its recovery run in the background. With Redis hung (every call to it
// would wait the whole deadline), after the decision that found it down,
// 2 s of decisions — ten probe intervals — all answer in well under the
// deadline; yet once Redis answers again, a probe sees it.
func TestProbesDoNotHoldRequests(t *testing.T) {
	srv, rdb := newRedis(t)
	const deadline = 500 * time.Millisecond
	l, err := newLimiter(t, rdb, "probe", ratelimit.PerSecond(1000), ratelimit.WithDeadline(deadline),
		ratelimit.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d, err := l.AllowN(ctx, "k", 1); err != nil || d.Source != ratelimit.SourceRedis {
		t.Fatalf("Redis up: %+v, %v", d, err)
	}
	srv.Pause(t)
	if d, _ := l.AllowN(ctx, "k", 1); d.Source != ratelimit.SourceFallback {
		t.Fatalf("Redis hung: %+v, want the fallback after the deadline", d)
	}
	var worst time.Duration
	calls := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); calls++ {
		start := time.Now()
		d, err := l.AllowN(ctx, "k", 1)
		worst = max(worst, time.Since(start))
		if err != nil || d.Source != ratelimit.SourceFallback {
			t.Fatalf("Redis hung: %+v, %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d decisions with Redis hung, slowest %v (deadline %v)", calls, worst, deadline)
	if worst >= deadline/2 {
		t.Errorf("a decision took %v with Redis hung: it waited for a probe (deadline %v)", worst, deadline)
	}
	srv.Resume()
	var d ratelimit.Decision
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && d.Source != ratelimit.SourceRedis; {
		d, _ = l.AllowN(ctx, "k", 1)
		time.Sleep(10 * time.Millisecond)
	}
	if d.Source != ratelimit.SourceRedis {
		t.Fatalf("no decision from Redis within 3 s of it answering again: %+v", d)
	}
}
