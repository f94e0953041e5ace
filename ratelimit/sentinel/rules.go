package sentinel

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/alibaba/sentinel-golang/core/circuitbreaker"
	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/alibaba/sentinel-golang/core/hotspot"
	"github.com/alibaba/sentinel-golang/core/isolation"
	"github.com/alibaba/sentinel-golang/core/system"
	"gopkg.in/yaml.v2"
)

// Rules is a complete rule set, as code or as a YAML/JSON document:
//
//	flow:
//	  - resource: "GET:/orders/:id"   # method:route template
//	    threshold: 100                # requests per second
//	    behavior: warmup              # reject (default) | warmup | throttle
//	    warmUpPeriodSec: 10
//	isolation:
//	  - {resource: "POST:/orders", maxConcurrency: 20}
//	circuitBreaker:
//	  - {resource: "GET:/orders/:id", strategy: error_ratio, threshold: 0.5,
//	     minRequests: 20, statIntervalMs: 5000, retryTimeoutMs: 3000}
//	hotspot:
//	  - {resource: "GET:/items/:id", param: 0, threshold: 10, durationSec: 1}
//	system:
//	  - {metric: cpu, threshold: 0.8, strategy: bbr}
//
// Loading a set replaces every rule of every kind at once.
type Rules struct {
	Flow           []FlowRule      `yaml:"flow" json:"flow"`
	Hotspot        []HotspotRule   `yaml:"hotspot" json:"hotspot"`
	System         []SystemRule    `yaml:"system" json:"system"`
	Isolation      []IsolationRule `yaml:"isolation" json:"isolation"`
	CircuitBreaker []BreakerRule   `yaml:"circuitBreaker" json:"circuitBreaker"`
}

// FlowRule limits the requests per second of a resource.
type FlowRule struct {
	Resource  string  `yaml:"resource" json:"resource"`
	Threshold float64 `yaml:"threshold" json:"threshold"` // requests per StatIntervalMs (per second by default)
	// Behavior: "reject" (default) answers at once; "warmup" ramps the
	// threshold up from Threshold/WarmUpColdFactor over WarmUpPeriodSec
	// after a quiet period; "throttle" queues requests up to
	// MaxQueueingTimeMs to space them evenly.
	Behavior          string `yaml:"behavior" json:"behavior"`
	WarmUpPeriodSec   uint32 `yaml:"warmUpPeriodSec" json:"warmUpPeriodSec"`
	WarmUpColdFactor  uint32 `yaml:"warmUpColdFactor" json:"warmUpColdFactor"` // default 3
	MaxQueueingTimeMs uint32 `yaml:"maxQueueingTimeMs" json:"maxQueueingTimeMs"`
	StatIntervalMs    uint32 `yaml:"statIntervalMs" json:"statIntervalMs"` // default 1000
}

// HotspotRule limits a resource per value of one request parameter (see
// WithParams: Param is its index).
type HotspotRule struct {
	Resource          string           `yaml:"resource" json:"resource"`
	Param             int              `yaml:"param" json:"param"`
	Threshold         int64            `yaml:"threshold" json:"threshold"` // per value, per DurationSec
	DurationSec       int64            `yaml:"durationSec" json:"durationSec"`
	Burst             int64            `yaml:"burst" json:"burst"`
	Behavior          string           `yaml:"behavior" json:"behavior"` // reject (default) | throttle
	MaxQueueingTimeMs int64            `yaml:"maxQueueingTimeMs" json:"maxQueueingTimeMs"`
	Specific          map[string]int64 `yaml:"specific" json:"specific"` // thresholds for given values
}

// SystemRule sheds load process-wide when a metric passes a threshold.
type SystemRule struct {
	// Metric: "load" (1-minute load average), "cpu" (usage, 0..1),
	// "concurrency", "inbound_qps" or "avg_rt" (ms).
	Metric    string  `yaml:"metric" json:"metric"`
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// Strategy: "bbr" (admit while concurrency is below the estimated
	// capacity, as TCP BBR does) or "" for a plain threshold. Load and
	// cpu only.
	Strategy string `yaml:"strategy" json:"strategy"`
}

// IsolationRule bounds the concurrent requests of a resource.
type IsolationRule struct {
	Resource       string `yaml:"resource" json:"resource"`
	MaxConcurrency uint32 `yaml:"maxConcurrency" json:"maxConcurrency"`
}

// BreakerRule is Sentinel's circuit breaker for a resource.
type BreakerRule struct {
	Resource string `yaml:"resource" json:"resource"`
	// Strategy: "error_ratio" (Threshold in 0..1), "error_count", or
	// "slow_ratio" (share of requests slower than MaxAllowedRtMs).
	Strategy       string  `yaml:"strategy" json:"strategy"`
	Threshold      float64 `yaml:"threshold" json:"threshold"`
	MinRequests    uint64  `yaml:"minRequests" json:"minRequests"`
	StatIntervalMs uint32  `yaml:"statIntervalMs" json:"statIntervalMs"`
	RetryTimeoutMs uint32  `yaml:"retryTimeoutMs" json:"retryTimeoutMs"`
	MaxAllowedRtMs uint64  `yaml:"maxAllowedRtMs" json:"maxAllowedRtMs"`
}

// ParseRules reads a YAML (or JSON) rule document; unknown fields are errors.
func ParseRules(data []byte) (Rules, error) {
	var r Rules
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return Rules{}, fmt.Errorf("sentinel: parse rules: %w", err)
	}
	if _, err := r.compile(); err != nil {
		return Rules{}, err
	}
	return r, nil
}

// Validate reports every problem of the set, each naming the rule.
func (r Rules) Validate() error {
	_, err := r.compile()
	return err
}

type compiled struct {
	flow      []*flow.Rule
	hotspot   []*hotspot.Rule
	system    []*system.Rule
	isolation []*isolation.Rule
	breaker   []*circuitbreaker.Rule
}

func (r Rules) compile() (compiled, error) {
	var c compiled
	var errs []error
	// bad records a problem of rule i of a kind, naming the field (its
	// document key) when one field is at fault.
	bad := func(kind string, i int, res, field string, err error) {
		if field != "" {
			err = fmt.Errorf("%s: %w", field, err)
		}
		errs = append(errs, fmt.Errorf("sentinel: %s rule %d (%q): %w", kind, i, res, err))
	}
	for i, fr := range r.Flow {
		if fr.Resource == "" {
			bad("flow", i, fr.Resource, "resource", errors.New("empty"))
			continue
		}
		out := &flow.Rule{Resource: fr.Resource, Threshold: fr.Threshold, StatIntervalInMs: fr.StatIntervalMs,
			RelationStrategy: flow.CurrentResource}
		if out.StatIntervalInMs == 0 {
			out.StatIntervalInMs = 1000
		}
		switch strings.ToLower(fr.Behavior) {
		case "", "reject":
			out.TokenCalculateStrategy, out.ControlBehavior = flow.Direct, flow.Reject
		case "warmup":
			out.TokenCalculateStrategy, out.ControlBehavior = flow.WarmUp, flow.Reject
			out.WarmUpPeriodSec, out.WarmUpColdFactor = fr.WarmUpPeriodSec, fr.WarmUpColdFactor
			if out.WarmUpColdFactor == 0 {
				out.WarmUpColdFactor = 3
			}
			if out.WarmUpPeriodSec == 0 {
				bad("flow", i, fr.Resource, "warmUpPeriodSec", errors.New("must be > 0 for behavior warmup"))
				continue
			}
		case "throttle":
			out.TokenCalculateStrategy, out.ControlBehavior = flow.Direct, flow.Throttling
			out.MaxQueueingTimeMs = fr.MaxQueueingTimeMs
		default:
			bad("flow", i, fr.Resource, "behavior", fmt.Errorf("%q is not reject, warmup or throttle", fr.Behavior))
			continue
		}
		if math.IsNaN(fr.Threshold) || math.IsInf(fr.Threshold, 0) || fr.Threshold <= 0 {
			bad("flow", i, fr.Resource, "threshold", fmt.Errorf("must be > 0, got %v", fr.Threshold))
			continue
		}
		if err := flow.IsValidRule(out); err != nil {
			bad("flow", i, fr.Resource, "", err)
			continue
		}
		c.flow = append(c.flow, out)
	}
	for i, hr := range r.Hotspot {
		out := &hotspot.Rule{Resource: hr.Resource, MetricType: hotspot.QPS, ParamIndex: hr.Param,
			Threshold: hr.Threshold, DurationInSec: hr.DurationSec, BurstCount: hr.Burst,
			MaxQueueingTimeMs: hr.MaxQueueingTimeMs, ParamsMaxCapacity: 20000}
		if out.DurationInSec == 0 {
			out.DurationInSec = 1
		}
		switch strings.ToLower(hr.Behavior) {
		case "", "reject":
			out.ControlBehavior = hotspot.Reject
		case "throttle":
			out.ControlBehavior = hotspot.Throttling
		default:
			bad("hotspot", i, hr.Resource, "behavior", fmt.Errorf("%q is not reject or throttle", hr.Behavior))
			continue
		}
		if hr.Param < 0 {
			bad("hotspot", i, hr.Resource, "param", fmt.Errorf("index %d is negative", hr.Param))
			continue
		}
		if len(hr.Specific) > 0 {
			out.SpecificItems = make(map[interface{}]int64, len(hr.Specific))
			for k, v := range hr.Specific {
				out.SpecificItems[k] = v
			}
		}
		switch {
		case hr.Resource == "":
			bad("hotspot", i, hr.Resource, "resource", errors.New("empty"))
			continue
		case hr.Threshold <= 0:
			bad("hotspot", i, hr.Resource, "threshold", fmt.Errorf("must be > 0, got %d", hr.Threshold))
			continue
		}
		if err := hotspot.IsValidRule(out); err != nil {
			bad("hotspot", i, hr.Resource, "", err)
			continue
		}
		c.hotspot = append(c.hotspot, out)
	}
	for i, sr := range r.System {
		out := &system.Rule{TriggerCount: sr.Threshold, Strategy: system.NoAdaptive}
		switch strings.ToLower(sr.Metric) {
		case "load":
			out.MetricType = system.Load
		case "cpu":
			out.MetricType = system.CpuUsage
		case "concurrency":
			out.MetricType = system.Concurrency
		case "inbound_qps":
			out.MetricType = system.InboundQPS
		case "avg_rt":
			out.MetricType = system.AvgRT
		default:
			bad("system", i, sr.Metric, "metric", fmt.Errorf("%q is not load, cpu, concurrency, inbound_qps or avg_rt", sr.Metric))
			continue
		}
		switch strings.ToLower(sr.Strategy) {
		case "", "none":
		case "bbr":
			if out.MetricType != system.Load && out.MetricType != system.CpuUsage {
				bad("system", i, sr.Metric, "strategy", errors.New("bbr applies to load and cpu only"))
				continue
			}
			out.Strategy = system.BBR
		default:
			bad("system", i, sr.Metric, "strategy", fmt.Errorf("%q is not bbr or none", sr.Strategy))
			continue
		}
		if math.IsNaN(sr.Threshold) || math.IsInf(sr.Threshold, 0) || sr.Threshold <= 0 ||
			(out.MetricType == system.CpuUsage && sr.Threshold > 1) {
			bad("system", i, sr.Metric, "threshold", fmt.Errorf("%v out of range", sr.Threshold))
			continue
		}
		c.system = append(c.system, out)
	}
	for i, ir := range r.Isolation {
		out := &isolation.Rule{Resource: ir.Resource, MetricType: isolation.Concurrency, Threshold: ir.MaxConcurrency}
		switch {
		case ir.Resource == "":
			bad("isolation", i, ir.Resource, "resource", errors.New("empty"))
			continue
		case ir.MaxConcurrency == 0:
			bad("isolation", i, ir.Resource, "maxConcurrency", errors.New("must be > 0"))
			continue
		}
		if err := isolation.IsValidRule(out); err != nil {
			bad("isolation", i, ir.Resource, "", err)
			continue
		}
		c.isolation = append(c.isolation, out)
	}
	for i, br := range r.CircuitBreaker {
		out := &circuitbreaker.Rule{Resource: br.Resource, Threshold: br.Threshold, MinRequestAmount: br.MinRequests,
			StatIntervalMs: br.StatIntervalMs, RetryTimeoutMs: br.RetryTimeoutMs, MaxAllowedRtMs: br.MaxAllowedRtMs}
		if out.StatIntervalMs == 0 {
			out.StatIntervalMs = 1000
		}
		if out.RetryTimeoutMs == 0 {
			out.RetryTimeoutMs = 5000
		}
		if math.IsNaN(br.Threshold) || math.IsInf(br.Threshold, 0) {
			bad("circuitBreaker", i, br.Resource, "threshold", fmt.Errorf("%v is not a number", br.Threshold))
			continue
		}
		switch strings.ToLower(br.Strategy) {
		case "error_ratio":
			out.Strategy = circuitbreaker.ErrorRatio
		case "error_count":
			out.Strategy = circuitbreaker.ErrorCount
		case "slow_ratio":
			out.Strategy = circuitbreaker.SlowRequestRatio
			if br.MaxAllowedRtMs == 0 {
				bad("circuitBreaker", i, br.Resource, "maxAllowedRtMs", errors.New("must be > 0 for strategy slow_ratio"))
				continue
			}
		default:
			bad("circuitBreaker", i, br.Resource, "strategy", fmt.Errorf("%q is not error_ratio, error_count or slow_ratio", br.Strategy))
			continue
		}
		if err := circuitbreaker.IsValidRule(out); err != nil {
			bad("circuitBreaker", i, br.Resource, "", err)
			continue
		}
		c.breaker = append(c.breaker, out)
	}
	return c, errors.Join(errs...)
}

// loadMu serialises loads: Sentinel's rule managers are process-wide.
var loadMu sync.Mutex

// Load validates the whole set and, only if every rule is valid, replaces
// Sentinel's rules of every kind with it. A set with any invalid rule
// changes nothing.
func Load(r Rules) error {
	c, err := r.compile()
	if err != nil {
		return err
	}
	loadMu.Lock()
	defer loadMu.Unlock()
	for _, load := range []func() error{
		func() error { _, err := flow.LoadRules(c.flow); return err },
		func() error { _, err := hotspot.LoadRules(c.hotspot); return err },
		func() error { _, err := system.LoadRules(c.system); return err },
		func() error { _, err := isolation.LoadRules(c.isolation); return err },
		func() error { _, err := circuitbreaker.LoadRules(c.breaker); return err },
	} {
		if err := load(); err != nil {
			return fmt.Errorf("sentinel: load rules: %w", err)
		}
	}
	return nil
}
