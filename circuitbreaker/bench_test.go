package circuitbreaker_test

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/internal/benchping"
)

// BenchmarkMiddleware serves GET /ping -> {"message":"pong"} with a fresh
// recorder per iteration, bare and behind a closed breaker of each policy.
func BenchmarkMiddleware(b *testing.B) {
	for _, tc := range []struct {
		name   string
		policy circuitbreaker.Policy
	}{{"bare", nil}, {"classic", circuitbreaker.Classic{}}, {"sre", circuitbreaker.SRE{}}} {
		b.Run(tc.name, func(b *testing.B) {
			var mw []gin.HandlerFunc
			if tc.policy != nil {
				s, err := circuitbreaker.New(quiet, circuitbreaker.WithPolicy(tc.policy))
				if err != nil {
					b.Fatal(err)
				}
				mw = append(mw, s.Middleware())
			}
			benchping.Run(b, mw...)
		})
	}
}
