package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/internal/benchping"
	"github.com/gingov/gingov/metrics"
)

// BenchmarkMiddleware serves GET /ping -> {"message":"pong"} bare and
// behind the RED middleware on a fresh registry.
func BenchmarkMiddleware(b *testing.B) {
	b.Run("bare", func(b *testing.B) { benchping.Run(b) })
	b.Run("metrics", func(b *testing.B) {
		m, err := metrics.New(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		benchping.Run(b, m.Middleware())
	})
}
