package sentinel_test

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/gingov/gingov/ratelimit/sentinel"
)

// validationError is the shape of a rule's validation error: the kind, the
// index, the resource, and the document key at fault (or Sentinel's own
// account of the rule).
var validationError = regexp.MustCompile(`^sentinel: (flow|hotspot|system|isolation|circuitBreaker) rule \d+ \(".*"\): `)

// FuzzParseRules: any input is either parsed into rules that are valid, or
// rejected with a "sentinel: " error — never a panic; a rule's validation
// error names the rule (and the field, where one field is at fault).
func FuzzParseRules(f *testing.F) {
	for _, seed := range []string{
		`flow: [{resource: "GET:/orders/:id", threshold: 100, behavior: warmup, warmUpPeriodSec: 10}]`,
		`flow: [{resource: "GET:/inv/:id", threshold: 1}]`,
		`flow: [{resource: "x", threshold: 5, behavior: throttle, maxQueueingTimeMs: 500, statIntervalMs: 2000}]`,
		`isolation: [{resource: "POST:/orders", maxConcurrency: 20}]`,
		`circuitBreaker: [{resource: "GET:/orders/:id", strategy: error_ratio, threshold: 0.5, minRequests: 20, statIntervalMs: 5000, retryTimeoutMs: 3000}]`,
		`circuitBreaker: [{resource: x, strategy: slow_ratio, threshold: 0.5, maxAllowedRtMs: 100}]`,
		`hotspot: [{resource: "GET:/items/:id", param: 0, threshold: 10, durationSec: 1, specific: {vip: 100}}]`,
		`system: [{metric: cpu, threshold: 0.8, strategy: bbr}]`,
		`system: [{metric: inbound_qps, threshold: 1000}]`,
		`{"flow": [{"resource": "GET:/x", "threshold": 3}]}`,
		`flow: [{resource: "GET:/inv/:id", threshold: 0}]`,
		`flow: [{resource: "x", threshold: 5, behavior: sometimes}]`,
		`system: [{metric: avg_rt, threshold: 10, strategy: bbr}]`,
		`hotspot: [{resource: x, param: -1, threshold: 1}]`,
		`flow: [{resource: x, threshold: 5, colour: red}]`,
		`flow: {not: a list}`,
		`flow: [{resource: x, threshold: .nan}]`,
		`system: [{metric: load, threshold: .inf}]`,
		`circuitBreaker: [{resource: x, strategy: error_count, threshold: -.inf}]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := sentinel.ParseRules(data)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "sentinel: parse rules: ") {
				for _, line := range strings.Split(msg, "\n") { // errors.Join: one line each
					if !validationError.MatchString(line) {
						t.Fatalf("validation error %q does not name the rule", line)
					}
				}
			}
			return
		}
		if err := rules.Validate(); err != nil {
			t.Fatalf("parsed rules do not validate: %v", err)
		}
		for _, r := range rules.Flow {
			finite(t, r.Threshold)
		}
		for _, r := range rules.System {
			finite(t, r.Threshold)
		}
		for _, r := range rules.CircuitBreaker {
			finite(t, r.Threshold)
		}
	})
}

func finite(t *testing.T, v float64) {
	t.Helper()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		t.Fatalf("threshold %v accepted", v)
	}
}
