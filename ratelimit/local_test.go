package ratelimit_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gingov/gingov/ratelimit"
)

func mustLocal(t testing.TB, r ratelimit.Rate, opts ...ratelimit.LocalOption) *ratelimit.Local {
	t.Helper()
	l, err := ratelimit.NewLocal(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocalBurstRefillAndCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLocal(t, ratelimit.Rate{Limit: 10, Period: time.Second, Burst: 5})
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			d, err := l.AllowN(ctx, "k", 1)
			if err != nil || !d.Allowed || d.Remaining != 4-i || d.Limit != 5 || d.Source != ratelimit.SourceLocal {
				t.Fatalf("request %d: %+v %v", i, d, err)
			}
		}
		d, _ := l.AllowN(ctx, "k", 1)
		if d.Allowed || d.RetryAfter != 100*time.Millisecond || d.ResetAfter != 500*time.Millisecond {
			t.Fatalf("over burst: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
		if d, _ := l.AllowN(ctx, "k", 1); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("after one interval: %+v", d)
		}
		time.Sleep(10 * time.Second) // refills to the burst, not beyond
		for i := 0; i < 5; i++ {
			if d, _ := l.AllowN(ctx, "k", 1); !d.Allowed {
				t.Fatalf("refilled request %d denied", i)
			}
		}
		if d, _ := l.AllowN(ctx, "k", 1); d.Allowed {
			t.Fatal("bucket held more than its burst")
		}
		// n > 1 takes n tokens or none.
		time.Sleep(300 * time.Millisecond)
		if d, _ := l.AllowN(ctx, "k", 4); d.Allowed || d.RetryAfter != 100*time.Millisecond {
			t.Fatalf("AllowN(4) with 3 tokens: %+v", d)
		}
		if d, _ := l.AllowN(ctx, "k", 3); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("AllowN(3) with 3 tokens: %+v", d)
		}
		if _, err := l.AllowN(ctx, "k", 0); err == nil {
			t.Fatal("AllowN(0) accepted")
		}
	})
}

// Over a long run at a demand above the rate, admission is burst + rate*t.
func TestLocalAdmissionOverTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLocal(t, ratelimit.Rate{Limit: 100, Period: time.Second, Burst: 10})
		admitted := 0
		for i := 0; i < 10_000; i++ { // one request per ms for 10 s
			if d, _ := l.AllowN(context.Background(), "k", 1); d.Allowed {
				admitted++
			}
			time.Sleep(time.Millisecond)
		}
		// 10 at once, then 100/s for the 9.999 s after the first request.
		if admitted < 1008 || admitted > 1010 {
			t.Fatalf("admitted %d, want 1009±1", admitted)
		}
	})
}

func TestLocalConcurrentExact(t *testing.T) {
	l := mustLocal(t, ratelimit.Rate{Limit: 1, Period: time.Hour, Burst: 500})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if d, _ := l.AllowN(context.Background(), "hot", 1); d.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != 500 {
		t.Fatalf("allowed %d of 8000, want exactly the burst of 500", got)
	}
}

func TestLocalMaxKeysBound(t *testing.T) {
	l := mustLocal(t, ratelimit.Rate{Limit: 1, Period: time.Hour}, ratelimit.WithMaxKeys(128))
	for i := 0; i < 10_000; i++ {
		if d, _ := l.AllowN(context.Background(), "key-"+strconv.Itoa(i), 1); !d.Allowed {
			t.Fatalf("fresh key %d denied", i)
		}
	}
	if n := l.Len(); n > 128 {
		t.Fatalf("tracking %d keys, bound 128", n)
	}
}

// Keys whose bucket is full again are dropped first, so the bound costs no
// accuracy for keys that are still limited.
func TestLocalEvictsFullBucketsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLocal(t, ratelimit.Rate{Limit: 1, Period: time.Second}, ratelimit.WithMaxKeys(64)) // one key per shard
		ctx := context.Background()
		for i := 0; i < 1000; i++ {
			l.AllowN(ctx, "idle-"+strconv.Itoa(i), 1) //nolint:errcheck // n is valid
		}
		time.Sleep(2 * time.Second) // every bucket is full again
		l.AllowN(ctx, "busy", 1)    //nolint:errcheck
		if d, _ := l.AllowN(ctx, "busy", 1); d.Allowed {
			t.Fatal("busy key lost its state to an eviction")
		}
	})
}

func TestRateValidate(t *testing.T) {
	bad := map[string]ratelimit.Rate{
		"limit must be > 0":      {Limit: 0, Period: time.Second},
		"period must be > 0":     {Limit: 1},
		"burst must be >= 1":     {Limit: 1, Period: time.Second, Burst: -1},
		"one token per nanosec":  {Limit: 10, Period: 5},
		"spans more time":        {Limit: 1, Period: time.Hour * 24 * 365, Burst: 1 << 30},
		"limit must be > 0 (-1)": {Limit: -1, Period: time.Second},
	}
	for want, r := range bad {
		err := r.Validate()
		if err == nil {
			t.Errorf("%v accepted", r)
			continue
		}
		if !strings.HasPrefix(err.Error(), "ratelimit: ") || !strings.Contains(err.Error(), strings.Split(want, " (")[0]) {
			t.Errorf("%v: error %q, want it to say %q", r, err, want)
		}
		if _, err := ratelimit.NewLocal(r); err == nil {
			t.Errorf("NewLocal(%v) accepted", r)
		}
	}
	if err := ratelimit.PerSecond(5).WithBurst(9).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := ratelimit.NewLocal(ratelimit.PerSecond(1), ratelimit.WithMaxKeys(0)); err == nil {
		t.Fatal("max keys 0 accepted")
	}
}

// FuzzLocalNeverOverAdmits drives a bucket with arbitrary gaps and costs:
// what it admits never exceeds burst + rate * elapsed.
func FuzzLocalNeverOverAdmits(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 200, 3, 0, 9}, uint8(7), uint8(3))
	f.Add([]byte{255, 255, 1, 1, 1, 1}, uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, steps []byte, limit, burst uint8) {
		if limit == 0 || len(steps) > 400 {
			return
		}
		r := ratelimit.Rate{Limit: int(limit), Period: time.Second, Burst: int(burst)}
		synctest.Test(t, func(t *testing.T) {
			l := mustLocal(t, r)
			start := time.Now()
			admitted := 0
			for i := 0; i+1 < len(steps); i += 2 {
				time.Sleep(time.Duration(steps[i]) * time.Millisecond)
				n := int(steps[i+1]%8) + 1
				d, err := l.AllowN(context.Background(), "k", n)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed {
					admitted += n
				} else if d.RetryAfter <= 0 {
					t.Fatalf("denied with RetryAfter %v", d.RetryAfter)
				}
				b := r.Burst
				if b == 0 {
					b = r.Limit
				}
				maxAdmit := float64(b) + float64(r.Limit)*time.Since(start).Seconds()
				if float64(admitted) > maxAdmit+1e-6 {
					t.Fatalf("admitted %d > burst %d + rate*elapsed = %.3f", admitted, b, maxAdmit)
				}
				if d.Remaining < 0 || d.Remaining > b {
					t.Fatalf("remaining %d outside 0..%d", d.Remaining, b)
				}
			}
		})
	})
}
