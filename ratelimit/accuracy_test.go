package ratelimit_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit"
)

// The accuracy tests share one bucket between four limiter instances, as
// four replicas of a service would, each with its own client and pool.
const (
	accInstances   = 4
	accPerInstance = 8 // goroutines per instance: moderate for -race on 2 cores
	accDuration    = 5 * time.Second
	accMaxCalls    = 200_000 // per goroutine, a bound besides the duration
	// accDenyPause is how long a goroutine waits after a denial. It bounds
	// CPU while keeping demand far above the limit (32 goroutines polling
	// every ~0.5 ms), and loses no tokens: a bucket keeps what flows in
	// until someone takes it.
	accDenyPause = 500 * time.Microsecond
)

var accRate = ratelimit.Rate{Limit: 1000, Period: time.Second, Burst: 1000}

// keyLoad is what the load saw on one key.
type keyLoad struct {
	calls, allowed, errors int
	bySource               map[ratelimit.Source]int
	// Client times of the decisions that bound the run: when the
	// earliest call started and when the earliest returned, and when the
	// latest admitting call returned.
	firstStart, firstReturn, last time.Time
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func (k *keyLoad) add(o *keyLoad) {
	k.calls += o.calls
	k.allowed += o.allowed
	k.errors += o.errors
	if k.bySource == nil {
		k.bySource = map[ratelimit.Source]int{}
	}
	for s, n := range o.bySource {
		k.bySource[s] += n
	}
	k.firstStart = earliest(k.firstStart, o.firstStart)
	k.firstReturn = earliest(k.firstReturn, o.firstReturn)
	if o.last.After(k.last) {
		k.last = o.last
	}
}

// A token bucket admits at most its burst at the first decision plus what
// flows in from then until the last admission (plus one, for rounding);
// under demand that keeps it empty it admits exactly that. The decisions
// are made on Redis's clock, somewhere inside the calls the client times:
//
//   - ideal takes the span from the return of the earliest call to the
//     return of the latest admitting one. Both ends lag the server's
//     decision by about half a round trip, so the span is the server's
//     within a token or so: the figure the ±1% checks compare with.
//   - idealMax takes the span from the start of the earliest call instead,
//     which is surely no later than the server's first decision, so it
//     bounds what an exact bucket can admit: admission above idealMax+1
//     is a bucket letting through more than it holds.
//
// (Ending at the last admission rather than the last call leaves out the
// tail where goroutines are stopping and nobody takes what flows in.)
func (k *keyLoad) ideal(r ratelimit.Rate) float64 { return idealOver(r, k.last.Sub(k.firstReturn)) }

func (k *keyLoad) idealMax(r ratelimit.Rate) float64 { return idealOver(r, k.last.Sub(k.firstStart)) }

func idealOver(r ratelimit.Rate, span time.Duration) float64 {
	return float64(r.Burst) + float64(r.Limit)*span.Seconds()/r.Period.Seconds()
}

func (k *keyLoad) String() string {
	var src []string
	for _, s := range []ratelimit.Source{ratelimit.SourceLocal, ratelimit.SourceRedis, ratelimit.SourceLease, ratelimit.SourceFallback} {
		if n := k.bySource[s]; n > 0 {
			src = append(src, fmt.Sprintf("%s=%d", s, n))
		}
	}
	return fmt.Sprintf("%d calls over %v, first reply after %v (%s)", k.calls, k.last.Sub(k.firstStart).Round(time.Millisecond),
		k.firstReturn.Sub(k.firstStart).Round(10*time.Microsecond), strings.Join(src, " "))
}

// instance is one limiter instance and its own client.
type instance struct {
	*ratelimit.Redis
	rdb redis.UniversalClient
}

// warm opens a connection to every master, so that the first timed
// decision costs one round trip and not a dial or a topology fetch.
func (in instance) warm(ctx context.Context) error {
	if cc, ok := in.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() })
	}
	return in.rdb.Ping(ctx).Err()
}

// load describes a run of hammer.
type load struct {
	perInstance int           // goroutines per instance
	keys        []string      // goroutine g of every instance uses keys[g%len(keys)]
	d           time.Duration // how long the goroutines run
	// firstN is what instance 0 alone takes from each key before the
	// others start (AllowN(key, firstN), at least 1), so a test chooses
	// whose clock a bucket would start on were it on the callers' clocks.
	firstN int
	mid    func() // if not nil, runs on the calling goroutine halfway through
}

// hammer runs the load on the instances, each goroutine calling
// AllowN(key, 1) in a loop, and returns what each key saw. Every goroutine
// first warms its connection; when all are ready, instance 0 makes the
// first decision on every key, then all start together.
func hammer(t *testing.T, ins []instance, ld load) map[string]*keyLoad {
	t.Helper()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		ready sync.WaitGroup
		out   = map[string]*keyLoad{}
		end   time.Time
		start = make(chan struct{})
	)
	warmErrs := make(chan error, len(ins)*ld.perInstance)
	for _, in := range ins {
		for g := range ld.perInstance {
			key := ld.keys[g%len(ld.keys)]
			ready.Add(1)
			wg.Go(func() {
				ctx := context.Background()
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := in.warm(wctx); err != nil {
					warmErrs <- err
				}
				cancel()
				ready.Done()
				<-start
				st := &keyLoad{bySource: map[ratelimit.Source]int{}}
				for i := 0; i < accMaxCalls; i++ {
					begin := time.Now()
					if !begin.Before(end) {
						break
					}
					dec, err := in.AllowN(ctx, key, 1)
					st.record(begin, time.Now(), 1, dec, err)
					if err == nil && !dec.Allowed {
						time.Sleep(accDenyPause)
					}
				}
				mu.Lock()
				out[key].add(st)
				mu.Unlock()
			})
		}
	}
	ready.Wait()
	n := max(1, ld.firstN)
	for _, key := range ld.keys {
		st := &keyLoad{bySource: map[ratelimit.Source]int{}}
		begin := time.Now()
		dec, err := ins[0].AllowN(context.Background(), key, n)
		st.record(begin, time.Now(), n, dec, err)
		if err != nil || !dec.Allowed {
			t.Errorf("the first decision on %s, AllowN(%d): %+v, %v; want allowed", key, n, dec, err)
		}
		out[key] = st
	}
	end = time.Now().Add(ld.d) // written before start is closed: no race
	close(start)
	if ld.mid != nil {
		time.Sleep(ld.d / 2)
		ld.mid()
	}
	wg.Wait()
	close(warmErrs)
	for err := range warmErrs {
		t.Errorf("warming a connection: %v", err)
	}
	return out
}

// record counts one call of AllowN(key, n) made from begin to done.
func (k *keyLoad) record(begin, done time.Time, n int, dec ratelimit.Decision, err error) {
	if k.firstStart.IsZero() {
		k.firstStart, k.firstReturn = begin, done
	}
	k.calls++
	if err != nil {
		k.errors++
		return
	}
	k.bySource[dec.Source]++
	if dec.Allowed {
		k.allowed += n
		k.last = done
	}
}

// checkExact asserts that a key admitted within ±1% of the ideal and never
// more than the bucket holds, all by Redis (no fallback, no error), and
// logs the figures.
func checkExact(t *testing.T, name string, k *keyLoad, r ratelimit.Rate) {
	t.Helper()
	ideal, idealMax := k.ideal(r), k.idealMax(r)
	ratio := float64(k.allowed) / ideal
	t.Logf("%s: admitted %d, ideal %.1f, ratio %.4f (bound %.1f); %s", name, k.allowed, ideal, ratio, idealMax, k)
	if float64(k.allowed) > idealMax+1 {
		t.Errorf("%s: admitted %d > %.1f + 1, more than the bucket can hold over the run", name, k.allowed, idealMax)
	}
	if k.errors > 0 || k.bySource[ratelimit.SourceFallback] > 0 {
		t.Errorf("%s: %d errors and %d fallback decisions; want every decision from Redis", name, k.errors, k.bySource[ratelimit.SourceFallback])
	}
	if math.Abs(ratio-1) > 0.01 {
		t.Errorf("%s: admitted %d, ideal %.1f: ratio %.4f is outside 1 ± 1%%", name, k.allowed, ideal, ratio)
	}
	// The demand must be well above the limit, or an exact count would not
	// show that the limiter holds back: at 1.5 × the ideal, a limiter that
	// let half as much again through would be seen.
	if float64(k.calls) < 1.5*ideal {
		t.Errorf("%s: only %d calls for an ideal of %.0f; the load was not well above the limit", name, k.calls, ideal)
	}
}

// newInstances returns n limiters named name, each on its own client made
// by newClient; opts(i), if not nil, gives instance i's options.
func newInstances(t *testing.T, n int, newClient func() redis.UniversalClient, name string, r ratelimit.Rate, opts func(i int) []ratelimit.RedisOption) []instance {
	t.Helper()
	ins := make([]instance, n)
	for i := range ins {
		rdb := newClient()
		t.Cleanup(func() { rdb.Close() })
		var o []ratelimit.RedisOption
		if opts != nil {
			o = opts(i)
		}
		l, err := ratelimit.NewRedis(rdb, name, r, o...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		ins[i] = instance{Redis: l, rdb: rdb}
	}
	return ins
}

// Four instances with separate pools share one bucket exactly: together
// they admit the burst plus the rate over the run, within 1%.
func TestSyncAccuracyFourInstances(t *testing.T) {
	srv, _ := newRedis(t)
	ins := newInstances(t, accInstances, func() redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: srv.Addr})
	}, "acc", accRate, nil)
	res := hammer(t, ins, load{perInstance: accPerInstance, keys: []string{"k"}, d: accDuration, firstN: accRate.Burst})
	checkExact(t, "sync, 4 instances", res["k"], accRate)
}

// Instance clocks up to 500 ms apart change nothing: the bucket runs on
// Redis's clock. The instance 250 ms behind takes the whole burst first; a
// bucket on the callers' clocks would then look 500 ms fuller to the
// instance 250 ms ahead, which would admit rate × 500 ms (500, 8%) more.
func TestSyncAccuracySkewedClocks(t *testing.T) {
	srv, _ := newRedis(t)
	skews := []time.Duration{-250 * time.Millisecond, -80 * time.Millisecond, 80 * time.Millisecond, 250 * time.Millisecond}
	ins := newInstances(t, len(skews), func() redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: srv.Addr})
	}, "acc", accRate, func(i int) []ratelimit.RedisOption {
		skew := skews[i]
		return []ratelimit.RedisOption{ratelimit.WithClock(func() time.Time { return time.Now().Add(skew) })}
	})
	res := hammer(t, ins, load{perInstance: accPerInstance, keys: []string{"k"}, d: accDuration, firstN: accRate.Burst})
	checkExact(t, fmt.Sprintf("sync, skews %v", skews), res["k"], accRate)
}

// On a 3-master Redis Cluster, four instances on four keys: each key is
// one exact bucket on one master, and the keys spread over the masters.
func TestSyncAccuracyCluster(t *testing.T) {
	c := testenv.StartRedisCluster(t, 3)
	ins := newInstances(t, accInstances, func() redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addr()})
	}, "acc", accRate, nil)
	keys := []string{"k0", "k1", "k2", "k3"}

	// Halfway through, every bucket exists: find which master holds each.
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addr()})
	defer admin.Close()
	var (
		mu      sync.Mutex
		holder  = map[string][]string{} // Redis key -> masters holding it
		scanErr error
	)
	scan := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		scanErr = admin.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			ks, err := m.Keys(ctx, "gingov:rl:{acc:*").Result()
			mu.Lock()
			defer mu.Unlock()
			for _, k := range ks {
				holder[k] = append(holder[k], m.Options().Addr)
			}
			return err
		})
	}
	res := hammer(t, ins, load{perInstance: accPerInstance, keys: keys, d: accDuration, firstN: accRate.Burst, mid: scan})

	total := &keyLoad{}
	for _, k := range keys {
		checkExact(t, "cluster, key "+k, res[k], accRate)
		total.add(res[k])
	}
	t.Logf("cluster, 4 keys: admitted %d in all; %s", total.allowed, total)

	if scanErr != nil {
		t.Fatalf("KEYS on the masters: %v", scanErr)
	}
	masters := map[string]bool{}
	var where []string
	for k, ms := range holder {
		slot, err := admin.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %s: %v", k, err)
		}
		where = append(where, fmt.Sprintf("%s slot %d on %v", k, slot, ms))
		if len(ms) != 1 {
			t.Errorf("key %s is on %d masters %v; want 1", k, len(ms), ms)
		}
		masters[ms[0]] = true
	}
	sort.Strings(where)
	t.Logf("bucket keys: %s", strings.Join(where, "; "))
	if len(holder) != len(keys) {
		t.Errorf("found %d bucket keys on the masters, want %d: %v", len(holder), len(keys), where)
	}
	if len(masters) < 2 {
		t.Errorf("the %d keys sit on %d master(s); want them spread over at least 2", len(keys), len(masters))
	}
}
