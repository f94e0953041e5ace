package setup

import (
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/reqinfo"
)

// Exempt lists the requests that the rate limiter, Sentinel, the circuit
// breaker and the access log pass over: by default the metrics endpoint
// and the health probes, so that a Prometheus scrape or a kubelet probe is
// never rejected, never spends a client's budget, never trips a breaker
// and never fills the log. Tracing and the HTTP metrics have their own
// skip lists (Tracing.SkipPaths, and the metrics path).
type Exempt struct {
	// Disabled exempts nothing: every request goes through every
	// middleware (default false).
	Disabled bool `yaml:"disabled"`
	// Paths are URL paths or route templates ("/debug/pprof/*any"). The
	// default (nil or empty) is [DefaultExemptPaths] plus the metrics path
	// when metrics are served; a list given replaces it.
	Paths []string `yaml:"paths"`
}

// DefaultExemptPaths are exempt unless Exempt.Paths says otherwise: the
// liveness and readiness probes of registry.Health (and registry.Serve).
// The metrics path is added to them.
var DefaultExemptPaths = []string{registry.DefaultLivenessPath, registry.DefaultReadinessPath}

// exemptPaths is the list of exempt paths in force (nil: none).
func (c *Config) exemptPaths(metricsPath string) []string {
	if c.Exempt.Disabled {
		return nil
	}
	if len(c.Exempt.Paths) > 0 {
		return c.Exempt.Paths
	}
	var paths []string
	if !c.Metrics.Disabled && metricsPath != "-" {
		paths = append(paths, metricsPath)
	}
	return append(paths, DefaultExemptPaths...)
}

// logSkipPaths is what the access log skips: Log.SkipPaths, else the
// exempt paths.
func (c *Config) logSkipPaths(metricsPath string) []string {
	if c.Log.SkipPaths != nil {
		return c.Log.SkipPaths
	}
	return c.exemptPaths(metricsPath)
}

func (c *Config) validateExempt() error {
	for i, p := range c.Exempt.Paths {
		if !strings.HasPrefix(p, "/") {
			return fieldErr(fmt.Sprintf("exempt.paths[%d]", i), "%q is not a path or route template", p)
		}
	}
	return nil
}

// exempting returns the handlers with every one of them passed over for
// requests on the exempt paths (Gin then goes on with the next handler).
func exempting(paths []string, handlers []gin.HandlerFunc) []gin.HandlerFunc {
	if len(paths) == 0 {
		return handlers
	}
	set := reqinfo.NewPathSet(paths...)
	out := make([]gin.HandlerFunc, len(handlers))
	for i, h := range handlers {
		out[i] = func(c *gin.Context) {
			if !set.Match(c) {
				h(c)
			}
		}
	}
	return out
}
