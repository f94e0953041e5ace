package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/ratelimit"
)

// Many goroutines on one key: exactly the burst passes, and the allowed
// decisions report every Remaining value from burst-1 down to 0 once —
// the same answers as one call per decision — whether or not decisions
// share round trips.
func TestHotKeyExactWithAndWithoutCoalescing(t *testing.T) {
	_, rdb := newRedis(t)
	for _, coalesce := range []bool{true, false} {
		calls := &scriptCounter{}
		client := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, ContextTimeoutEnabled: true})
		client.AddHook(calls)
		name := "hot-coalesce"
		if !coalesce {
			name = "hot-single"
		}
		l, err := newLimiter(t, client, name, ratelimit.Rate{Limit: 1, Period: time.Hour, Burst: 500},
			ratelimit.WithCoalescing(coalesce), ratelimit.WithClientAsIs(), // as is: the hook counts
			// Exactness is under test, not the deadline: a loaded machine
			// under -race must not turn a slow round trip into a fallback.
			ratelimit.WithDeadline(5*time.Second),
			ratelimit.WithMembership(false)) // only decisions' round trips
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[int]int{}
		denied := 0
		var wg sync.WaitGroup
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 40; i++ {
					d, err := l.AllowN(context.Background(), "hot", 1)
					if err != nil || d.Source != ratelimit.SourceRedis {
						t.Errorf("decision %+v %v", d, err)
						return
					}
					mu.Lock()
					if d.Allowed {
						seen[d.Remaining]++
					} else {
						denied++
						if d.RetryAfter < 59*time.Minute || d.RetryAfter > time.Hour {
							t.Errorf("denied with RetryAfter %v, want just under 1h (one token per hour)", d.RetryAfter)
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		client.Close()
		allowed := 0
		for rem, n := range seen {
			allowed += n
			if n != 1 || rem < 0 || rem >= 500 {
				t.Errorf("coalesce=%v: remaining %d reported %d times", coalesce, rem, n)
			}
		}
		if allowed != 500 || denied != 32*40-500 {
			t.Fatalf("coalesce=%v: allowed %d denied %d, want 500 and %d", coalesce, allowed, denied, 32*40-500)
		}
		t.Logf("coalesce=%v: %d decisions in %d script calls", coalesce, 32*40, calls.n.Load())
		if coalesce && calls.n.Load() >= 32*40/2 {
			t.Errorf("coalescing made %d calls for %d decisions", calls.n.Load(), 32*40)
		}
		if !coalesce && calls.n.Load() != 32*40 {
			t.Errorf("without coalescing: %d calls for %d decisions", calls.n.Load(), 32*40)
		}
	}
}
