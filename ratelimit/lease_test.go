package ratelimit_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/ratelimit"
)

// scriptCounter is a go-redis hook counting the script calls (EVAL,
// EVALSHA and their read-only forms) a client sends, so a test can see how
// many round trips the limiter made.
type scriptCounter struct{ n atomic.Int64 }

func (c *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
				c.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

var _ redis.Hook = (*scriptCounter)(nil)

// Lease mode on four instances: batches are taken from the one bucket
// before they are spent, so admission never exceeds it, and little is lost
// to leases expiring unspent.
func TestLeaseAccuracyFourInstances(t *testing.T) {
	srv, _ := newRedis(t)
	counters := make([]*scriptCounter, accInstances)
	i := 0
	ins := newInstances(t, accInstances, func() redis.UniversalClient {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
		counters[i] = &scriptCounter{}
		rdb.AddHook(counters[i])
		i++
		return rdb
	}, "acc", accRate, func(int) []ratelimit.RedisOption {
		// As is: the counting hook sits on this client.
		return []ratelimit.RedisOption{ratelimit.WithLease(ratelimit.LeaseOptions{}), ratelimit.WithClientAsIs()}
	})
	// The first decision takes 1 token, not the burst: a request for more
	// than the lease batch is TestLeaseLargeRequest's concern.
	res := hammer(t, ins, load{perInstance: accPerInstance, keys: []string{"k"}, d: accDuration, firstN: 1})

	k := res["k"]
	ideal, idealMax := k.ideal(accRate), k.idealMax(accRate)
	ratio := float64(k.allowed) / ideal
	var scripts int64
	for _, c := range counters {
		scripts += c.n.Load()
	}
	t.Logf("lease, 4 instances: admitted %d, ideal %.1f, ratio %.4f (bound %.1f); %s; %d script calls",
		k.allowed, ideal, ratio, idealMax, k, scripts)
	if k.errors > 0 || k.bySource[ratelimit.SourceFallback] > 0 {
		t.Errorf("%d errors and %d fallback decisions; want none", k.errors, k.bySource[ratelimit.SourceFallback])
	}
	// Rounding allows one token more than the bucket, never more.
	if float64(k.allowed) > idealMax+1 {
		t.Errorf("admitted %d > %.1f + 1: lease mode let more through than the bucket holds", k.allowed, idealMax)
	}
	if ratio < 0.97 {
		t.Errorf("admitted %d, ideal %.1f: ratio %.4f < 0.97", k.allowed, ideal, ratio)
	}
	if float64(k.calls) < 1.5*ideal {
		t.Errorf("only %d calls for an ideal of %.0f; the load was not well above the limit", k.calls, ideal)
	}
	if k.bySource[ratelimit.SourceLease] == 0 {
		t.Errorf("no decision from leased tokens: %s", k)
	}
}

// A key known to be over its limit is answered in process until it could
// be allowed again: no round trip per denial.
func TestLeaseAnswersKnownDenialLocally(t *testing.T) {
	_, rdb := newRedis(t)
	counter := &scriptCounter{}
	rdb.AddHook(counter)
	rate := ratelimit.Rate{Limit: 5, Period: time.Minute, Burst: 5}
	l, err := newLimiter(t, rdb, "deny", rate, ratelimit.WithLease(ratelimit.LeaseOptions{}), ratelimit.WithClientAsIs())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 5 {
		d, err := l.AllowN(ctx, "k", 1)
		if err != nil || !d.Allowed || d.Source == ratelimit.SourceFallback {
			t.Fatalf("request %d of the burst: %+v, %v; want allowed", i+1, d, err)
		}
	}
	before := counter.n.Load()
	const denials = 100
	interval := rate.Period / time.Duration(rate.Limit) // 12 s per token
	for i := range denials {
		d, err := l.AllowN(ctx, "k", 1)
		if err != nil || d.Allowed {
			t.Fatalf("request %d past the burst: %+v, %v; want denied", i+1, d, err)
		}
		if d.RetryAfter <= 0 || d.RetryAfter > interval {
			t.Fatalf("request %d past the burst: RetryAfter %v; want in (0, %v]", i+1, d.RetryAfter, interval)
		}
		if i == 0 && d.Source != ratelimit.SourceRedis {
			t.Fatalf("first denial from %s; want redis (it learns the denial)", d.Source)
		}
		if i > 0 && d.Source != ratelimit.SourceLease {
			t.Fatalf("denial %d from %s; want lease (answered locally)", i+1, d.Source)
		}
	}
	scripts := counter.n.Load() - before
	t.Logf("%d denials cost %d script calls (%d for the burst)", denials, scripts, before)
	if scripts > 2 {
		t.Fatalf("%d denials cost %d script calls; want at most 2", denials, scripts)
	}
	if before < 5 {
		t.Fatalf("the burst of 5 cost %d script calls; the hook does not count them", before)
	}
}

// With high demand from one goroutine, leases grow to the batch cap, so
// round trips are a small fraction of decisions.
func TestLeaseBatchAdapts(t *testing.T) {
	_, rdb := newRedis(t)
	counter := &scriptCounter{}
	rdb.AddHook(counter)
	// Burst/4 is above the default batch cap, so the cap binds.
	rate := ratelimit.Rate{Limit: 100_000, Period: time.Second, Burst: 100_000}
	l, err := newLimiter(t, rdb, "batch", rate, ratelimit.WithLease(ratelimit.LeaseOptions{}), ratelimit.WithClientAsIs())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const decisions = 10_000
	bySource := map[ratelimit.Source]int{}
	start := time.Now()
	for i := range decisions {
		d, err := l.AllowN(ctx, "k", 1)
		if err != nil || !d.Allowed {
			t.Fatalf("decision %d: %+v, %v; want allowed", i, d, err)
		}
		bySource[d.Source]++
	}
	took := time.Since(start)
	scripts := counter.n.Load()
	t.Logf("%d decisions in %v: %d script calls (%.1f decisions each); sources %v",
		decisions, took.Round(time.Millisecond), scripts, float64(decisions)/float64(scripts), bySource)
	if scripts*8 >= decisions {
		t.Errorf("%d script calls for %d decisions; want fewer than 1/8", scripts, decisions)
	}
	// A lease never holds more than the cap: at least decisions/cap trips.
	if minTrips := int64(decisions / ratelimit.DefaultMaxLeaseBatch); scripts < minTrips {
		t.Errorf("%d script calls for %d decisions; a batch of at most %d needs at least %d",
			scripts, decisions, ratelimit.DefaultMaxLeaseBatch, minTrips)
	}
	if bySource[ratelimit.SourceFallback] > 0 {
		t.Errorf("%d fallback decisions; want none", bySource[ratelimit.SourceFallback])
	}
}

// A request for more tokens than one lease batch (a weighted request,
// AllowN with a large n) takes all of its tokens from the bucket: the
// bucket's burst bounds what lease mode admits, whatever the sizes asked
// and however the requests are spaced. Here they come further apart than
// the lease TTL, as sparse weighted requests do.
func TestLeaseLargeRequest(t *testing.T) {
	_, rdb := newRedis(t)
	// The batch is at most a quarter of the burst: 25 here, below n = 30.
	// One token flows in every 6 s: at most one while the test runs.
	rate := ratelimit.Rate{Limit: 100, Period: 10 * time.Minute, Burst: 100}
	l, err := newLimiter(t, rdb, "large", rate, ratelimit.WithLease(ratelimit.LeaseOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gap := ratelimit.DefaultLeaseTTL + 50*time.Millisecond
	for i := range 3 {
		if d, err := l.AllowN(ctx, "k", 30); err != nil || !d.Allowed {
			t.Fatalf("request %d of 30 tokens from a full bucket of 100: %+v, %v; want allowed", i+1, d, err)
		}
		time.Sleep(gap)
	}
	// 10 tokens are left: take single ones until the bucket says no.
	singles := 0
	for range 200 {
		d, err := l.AllowN(ctx, "k", 1)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed {
			break
		}
		singles++
	}
	t.Logf("burst %d: admitted 3 requests of 30 (%v apart), then %d of 1: %d tokens", rate.Burst, gap, singles, 90+singles)
	if 90+singles > rate.Burst+1 {
		t.Errorf("lease mode admitted %d tokens from a bucket of %d (+1 flowing in): "+
			"the requests of 30 took fewer tokens from Redis than they were granted", 90+singles, rate.Burst)
	}
	if singles < 10 {
		t.Errorf("admitted %d single tokens after 90 of 100; want 10", singles)
	}
}

// A denial of a large request does not deny the smaller requests the
// bucket still holds tokens for, as the same bucket without lease mode
// would not.
func TestLeaseLargeDenialSparesSmallRequests(t *testing.T) {
	_, rdb := newRedis(t)
	rate := ratelimit.Rate{Limit: 100, Period: time.Minute, Burst: 100}
	for _, tc := range []struct {
		name string
		opts []ratelimit.RedisOption
	}{
		{"sync", nil},
		{"lease", []ratelimit.RedisOption{ratelimit.WithLease(ratelimit.LeaseOptions{MaxBatch: 50})}},
	} {
		// MaxBatch 50 is capped at 25; requests of 20 fit in a batch.
		l, err := newLimiter(t, rdb, "spare-"+tc.name, rate, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for i := range 4 {
			if d, err := l.AllowN(ctx, "k", 20); err != nil || !d.Allowed {
				t.Fatalf("%s: request %d of 20 tokens from a full bucket of 100: %+v, %v; want allowed", tc.name, i+1, d, err)
			}
		}
		// 20 left: 50 cannot be had for 18 s, 1 can now.
		if d, err := l.AllowN(ctx, "k", 50); err != nil || d.Allowed {
			t.Fatalf("%s: 50 tokens with 20 left: %+v, %v; want denied", tc.name, d, err)
		}
		d, err := l.AllowN(ctx, "k", 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: 1 token with 20 left after a denial of 50: allowed=%v source=%s retry=%v", tc.name, d.Allowed, d.Source, d.RetryAfter)
		if !d.Allowed {
			t.Errorf("%s: 1 token with 20 left was denied (retry after %v, from %s): the denial of 50 tokens was applied to it",
				tc.name, d.RetryAfter.Round(time.Millisecond), d.Source)
		}
	}
}
