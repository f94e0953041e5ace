package ratelimit_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/benchping"
	"github.com/gingov/gingov/ratelimit"
)

func BenchmarkLocalHotKey(b *testing.B) {
	l := mustLocal(b, ratelimit.Rate{Limit: 1e9, Period: time.Second})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.AllowN(ctx, "hot", 1) //nolint:errcheck // n is valid
		}
	})
}

func BenchmarkLocalManyKeys(b *testing.B) {
	l := mustLocal(b, ratelimit.Rate{Limit: 1e9, Period: time.Second})
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.AllowN(ctx, keys[i%len(keys)], 1) //nolint:errcheck
			i++
		}
	})
}

// BenchmarkMiddleware serves GET /ping -> {"message":"pong"} with a fresh
// recorder per iteration, bare and behind a local PerIP guard.
func BenchmarkMiddleware(b *testing.B) {
	for _, tc := range []struct {
		name string
		mw   []gin.HandlerFunc
	}{
		{"bare", nil},
		{"local-per-ip", []gin.HandlerFunc{mustGuardB(b, ratelimit.PerIP(1e9, time.Second)).Middleware()}},
		{"local-per-ip-no-headers", []gin.HandlerFunc{mustGuardB(b, ratelimit.PerIP(1e9, time.Second),
			ratelimit.WithHeaders(ratelimit.HeadersNone)).Middleware()}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchping.Run(b, tc.mw...) })
	}
}

func mustGuardB(b *testing.B, opts ...ratelimit.Option) *ratelimit.Guard {
	g, err := ratelimit.New(nil, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return g
}
