package envoy_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/gingov/gingov/ratelimit"
)

// latencies collects per-decision latencies from parallel goroutines and
// reports their p50 and p99.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) { l.mu.Lock(); l.all = append(l.all, d...); l.mu.Unlock() }

func (l *latencies) report(b *testing.B) {
	slices.Sort(l.all)
	if len(l.all) == 0 {
		return
	}
	b.ReportMetric(float64(l.all[len(l.all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.all[len(l.all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

const benchDoc = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1000, name: bench}"

// BenchmarkService: ShouldRateLimit over loopback gRPC, one descriptor,
// 64 keys, parallel callers.
func BenchmarkService(b *testing.B) {
	_, rdb := startRedis(b)
	c, _ := serve(b, rdb, benchDoc)
	var lat latencies
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := strconv.FormatInt(next.Add(1)%64, 10)
		req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", key)}}
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if _, err := c.ShouldRateLimit(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		lat.add(mine)
	})
	lat.report(b)
}

// BenchmarkInApp: the same decisions by ratelimit.Redis in process (the
// limiter an in-app Guard rule uses), without coalescing as the service.
func BenchmarkInApp(b *testing.B) {
	_, rdb := startRedis(b)
	l, err := ratelimit.NewRedis(rdb, "bench", ratelimit.PerSecond(1000), ratelimit.WithCoalescing(false))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var lat latencies
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := strconv.FormatInt(next.Add(1)%64, 10)
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if _, err := l.AllowN(context.Background(), key, 1); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		lat.add(mine)
	})
	lat.report(b)
}
