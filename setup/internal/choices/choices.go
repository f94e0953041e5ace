// Package choices holds the fixed sets of values that fields of gingov.yaml
// take. setup's validation checks values against them and the JSON Schema
// generator (internal/schemagen) lists them as the fields' enums, so that
// the schema and the validation cannot drift apart.
package choices

import (
	"strings"

	"github.com/gingov/gingov/tracing"
)

// Set is the values one field accepts.
type Set struct {
	// Values are the accepted names, in their documented spelling.
	Values []string
	// Fold accepts any letter case ("DEBUG" as "debug").
	Fold bool
	// Trim ignores surrounding white space (" b3 ").
	Trim bool
	// Empty accepts "" (and an absent field) as the default.
	Empty bool
}

// Has reports whether s accepts v.
func (s Set) Has(v string) bool {
	if s.Trim {
		v = strings.TrimSpace(v)
	}
	if v == "" && s.Empty {
		return true
	}
	for _, x := range s.Values {
		if x == v || s.Fold && strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// String lists the values for an error message: "a, b or c".
func (s Set) String() string {
	v := s.Values
	if len(v) < 2 {
		return strings.Join(v, "")
	}
	return strings.Join(v[:len(v)-1], ", ") + " or " + v[len(v)-1]
}

// The sets of setup's own fields.
var (
	// LogLevel is log.level.
	LogLevel = Set{Values: []string{"debug", "info", "warn", "error"}, Fold: true, Empty: true}
	// TraceExporter is tracing.exporter.
	TraceExporter = Set{Values: []string{"none", "stdout", "otlp-grpc", "otlp-http"}, Empty: true}
	// Propagator is an entry of tracing.propagators, as tracing.NewPropagator
	// reads it (a test holds the two together).
	Propagator = Set{Values: []string{tracing.PropagatorTraceContext, tracing.PropagatorBaggage,
		tracing.PropagatorB3, tracing.PropagatorB3Multi}, Fold: true, Trim: true}
	// FailurePolicy is ratelimit.redis.failure_policy.
	FailurePolicy = Set{Values: []string{"local", "open", "closed"}, Empty: true}
	// BreakerPolicy is circuitbreaker.policy.
	BreakerPolicy = Set{Values: []string{"classic", "sre"}, Empty: true}
	// Mesh is mesh (setup.MeshNone, setup.MeshSidecar).
	Mesh = Set{Values: []string{"none", "sidecar"}, Empty: true}
	// Enforce is ratelimit.rules[].enforce (setup.EnforceApp,
	// setup.EnforceSidecar).
	Enforce = Set{Values: []string{"app", "sidecar"}, Empty: true}
)

// The sets of the Sentinel rule fields, as package sentinel validates them
// (it is another module: a test of setup checks these against
// sentinel.Rules.Validate, value by value and through its error messages).
var (
	// FlowBehavior is a flow rule's behavior.
	FlowBehavior = Set{Values: []string{"reject", "warmup", "throttle"}, Fold: true, Empty: true}
	// HotspotBehavior is a hotspot rule's behavior.
	HotspotBehavior = Set{Values: []string{"reject", "throttle"}, Fold: true, Empty: true}
	// SystemMetric is a system rule's metric.
	SystemMetric = Set{Values: []string{"load", "cpu", "concurrency", "inbound_qps", "avg_rt"}, Fold: true}
	// SystemStrategy is a system rule's strategy.
	SystemStrategy = Set{Values: []string{"bbr", "none"}, Fold: true, Empty: true}
	// BreakerStrategy is a Sentinel circuit-breaker rule's strategy.
	BreakerStrategy = Set{Values: []string{"error_ratio", "error_count", "slow_ratio"}, Fold: true}
)

// ByField maps a Go field ("setup.Log.Level": the type as reflect names it,
// then the field) to its set: the fields the schema gives an enum.
var ByField = map[string]Set{
	"setup.Log.Level":               LogLevel,
	"setup.Tracing.Exporter":        TraceExporter,
	"setup.Tracing.Propagators":     Propagator,
	"setup.Redis.FailurePolicy":     FailurePolicy,
	"setup.Breaker.Policy":          BreakerPolicy,
	"setup.Config.Mesh":             Mesh,
	"setup.LimitRule.Enforce":       Enforce,
	"sentinel.FlowRule.Behavior":    FlowBehavior,
	"sentinel.HotspotRule.Behavior": HotspotBehavior,
	"sentinel.SystemRule.Metric":    SystemMetric,
	"sentinel.SystemRule.Strategy":  SystemStrategy,
	"sentinel.BreakerRule.Strategy": BreakerStrategy,
}
