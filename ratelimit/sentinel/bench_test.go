package sentinel_test

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/benchping"
	"github.com/gingov/gingov/ratelimit/sentinel"
)

// BenchmarkMiddleware serves GET /ping -> {"message":"pong"} with a fresh
// recorder per iteration, bare and behind Sentinel with a flow rule that
// never blocks (so every request takes the full entry and exit path).
func BenchmarkMiddleware(b *testing.B) {
	rules, err := sentinel.ParseRules([]byte(`flow: [{resource: "GET:/ping", threshold: 1e12}]`))
	if err != nil {
		b.Fatal(err)
	}
	if err := sentinel.Load(rules); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sentinel.Load(sentinel.Rules{}) }()
	for _, on := range []bool{false, true} {
		name := "bare"
		if on {
			name = "sentinel"
		}
		b.Run(name, func(b *testing.B) {
			var mw []gin.HandlerFunc
			if on {
				f, err := sentinel.New()
				if err != nil {
					b.Fatal(err)
				}
				mw = append(mw, f.Middleware())
			}
			benchping.Run(b, mw...)
		})
	}
}
