package metrics

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/internal/cowmap"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/registry"
)

// DefaultRedisBuckets are the buckets of the Redis rate-limit latency
// histogram, in seconds: from 100 µs to the limiter's default 250 ms
// deadline and a little past it.
var DefaultRedisBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5}

// WithRedisBuckets sets the buckets of the Redis rate-limit latency
// histogram, in seconds (default [DefaultRedisBuckets]); they must be
// strictly increasing.
func WithRedisBuckets(b ...float64) GovernanceOption {
	return governanceOption(func(c *config) { c.redisBuckets = b })
}

// Governance holds the metrics of the kit's governance middlewares and
// backends, fed by their hooks:
//
//	ratelimit.WithOnDecision(gov.OnDecision)
//	ratelimit.WithOnHealthChange(gov.RedisHealthHook("api"))
//	sentinel.WithOnBlock(func(ctx context.Context, e sentinel.Event) { // ratelimit/sentinel
//		gov.OnSentinelBlock(ctx, e.Resource, e.BlockType)
//	})
//	circuitbreaker.WithOnStateChange(gov.OnBreakerChange)
//	registry.WithOnEvent(gov.OnRegistryEvent)
//	deadline.WithOnTimeout(gov.OnDeadline)
//	gov.OnConfigReload(ctx, "etcd", err) // from a reload hook (setup wires it)
//
// The series (names prefixed by the namespace, if any):
//
//   - gingov_ratelimit_decisions_total{rule, result, source}: every
//     decision of every rule; result is "allowed" or "limited", source
//     is what decided: "local", "redis", "lease" or "fallback" (the failure
//     policy while Redis is unreachable).
//   - gingov_ratelimit_redis_duration_seconds{rule}: time of the decisions
//     answered by a Redis round trip ([DefaultRedisBuckets]).
//   - gingov_ratelimit_redis_up{limiter}: 1 while the limiter's Redis
//     answers, 0 while its failure policy answers instead. It and the two
//     series below exist only for limiters that have a Redis (see
//     [Governance.RedisHealthHook]).
//   - gingov_ratelimit_redis_health_changes_total{limiter, state}: Redis
//     going "down" and coming back "up".
//   - gingov_ratelimit_fallback_activations_total{limiter}: times the
//     failure policy took over from Redis (once per Redis-backed rule of
//     the limiter per outage).
//   - gingov_ratelimit_instances{limiter, rule}: the fleet size a
//     Redis-backed rule last saw in its membership refresh (the instances
//     sharing its buckets; FailLocal divides the rate by it during an
//     outage). A rule's series appears at its first refresh.
//   - gingov_sentinel_blocks_total{resource, block_type}: requests blocked
//     by Sentinel, by resource ("GET:/orders/:id") and block type ("flow",
//     "hotspot", "system", "isolation", "circuit_breaking").
//   - gingov_circuitbreaker_state{breaker}: the breaker's state as a
//     number, the value of [circuitbreaker.State]: 0 closed, 1 half-open,
//     2 open. A breaker's series appears at its first change; breakers are
//     named by route template (server) or host (client).
//   - gingov_circuitbreaker_transitions_total{breaker, state}: changes,
//     by the state entered ("closed", "half-open", "open").
//   - gingov_registry_registered{backend, service}: 1 while the registry
//     holds the service's instance, 0 after it was deregistered or a
//     registration attempt failed.
//   - gingov_registry_events_total{backend, service, event}: every
//     registry event ("registered", "register_failed", "heartbeat_failed",
//     "deregistered", "deregister_failed"; from a registry.Resolver,
//     "empty_held" and "empty_accepted", labelled with the discovered
//     service).
//   - gingov_deadline_exceeded_total{method, route, source}: requests
//     answered 504 because their deadline passed, by method, route
//     template and what set the deadline: "route" (the middleware's
//     timeout for the route) or "caller" (the caller's shorter budget).
//   - gingov_config_reloads_total{source, result}: reload attempts of a
//     watched configuration or rule document, by kind of source ("file",
//     "nacos", "etcd", "consul") and result ("accepted", "rejected"). A
//     document equal to the last accepted or the last rejected one is not
//     an attempt, so a bad document that stays in place counts once.
//
// The hooks are safe for concurrent use and never panic; OnDecision, on
// every request's path, does not allocate once a label set has been seen.
type Governance struct {
	decisions    *prometheus.CounterVec
	redisLatency *prometheus.HistogramVec
	redisUp      *prometheus.GaugeVec
	healthChange *prometheus.CounterVec
	fallbacks    *prometheus.CounterVec
	instances    *prometheus.GaugeVec
	blocks       *prometheus.CounterVec
	breakerState *prometheus.GaugeVec
	transitions  *prometheus.CounterVec
	registered   *prometheus.GaugeVec
	regEvents    *prometheus.CounterVec
	deadlines    *prometheus.CounterVec
	reloads      *prometheus.CounterVec

	decisionSeries cowmap.Map[decisionKey, *decisionSeries]
	redisLimiters  cowmap.Map[string, *redisSeries]
}

type decisionKey struct {
	rule    string
	allowed bool
	source  ratelimit.Source
}

type decisionSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer // nil unless the source is Redis
}

// NewGovernance creates the governance collectors (see [Governance]) and
// registers them on reg. It fails when reg is nil, an option is nil or
// invalid, or registration fails.
func NewGovernance(reg prometheus.Registerer, opts ...GovernanceOption) (*Governance, error) {
	if nilRegisterer(reg) {
		return nil, errors.New("metrics: nil Registerer")
	}
	cfg, err := newConfig(opts, GovernanceOption.applyGovernance)
	if err != nil {
		return nil, err
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: cfg.namespace, Subsystem: "gingov", Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: cfg.namespace, Subsystem: "gingov", Name: name, Help: help}, labels)
	}
	latency := cfg.histogram("ratelimit_redis_duration_seconds",
		"Time of rate-limit decisions answered by a Redis round trip, by rule.", cfg.redisBuckets)
	latency.Subsystem = "gingov"
	g := &Governance{
		decisions: counter("ratelimit_decisions_total",
			"Rate-limit decisions, by rule, result (allowed, limited) and source (local, redis, lease, fallback).",
			"rule", "result", "source"),
		redisLatency: prometheus.NewHistogramVec(latency, []string{"rule"}),
		redisUp: gauge("ratelimit_redis_up",
			"Whether the rate limiter's Redis answers (1) or its failure policy answers instead (0), by limiter.", "limiter"),
		healthChange: counter("ratelimit_redis_health_changes_total",
			"Rate-limiter Redis health changes, by limiter and state entered (up, down).", "limiter", "state"),
		fallbacks: counter("ratelimit_fallback_activations_total",
			"Times the rate limiter's failure policy took over from an unreachable Redis, by limiter.", "limiter"),
		instances: gauge("ratelimit_instances",
			"Instances sharing a Redis-backed rule's buckets, as last seen in Redis, by limiter and rule.", "limiter", "rule"),
		blocks: counter("sentinel_blocks_total",
			"Requests blocked by Sentinel, by resource and block type.", "resource", "block_type"),
		breakerState: gauge("circuitbreaker_state",
			"Circuit breaker state: 0 closed, 1 half-open, 2 open, by breaker.", "breaker"),
		transitions: counter("circuitbreaker_transitions_total",
			"Circuit breaker state changes, by breaker and state entered.", "breaker", "state"),
		registered: gauge("registry_registered",
			"Whether the service's instance is registered (1) or not (0), by backend and service.", "backend", "service"),
		regEvents: counter("registry_events_total",
			"Service registry events, by backend, service and event.", "backend", "service", "event"),
		deadlines: counter("deadline_exceeded_total",
			"Requests answered 504 because their deadline passed, by method, route template and what set the deadline (route, caller).",
			"method", "route", "source"),
		reloads: counter("config_reloads_total",
			"Reload attempts of watched configuration documents, by kind of source (file, nacos, etcd, consul) and result (accepted, rejected).",
			"source", "result"),
	}
	g.decisionSeries.Limit = maxCachedSeries
	if err := register(reg, g.decisions, g.redisLatency, g.redisUp, g.healthChange, g.fallbacks,
		g.instances, g.blocks, g.breakerState, g.transitions, g.registered, g.regEvents, g.deadlines, g.reloads); err != nil {
		return nil, err
	}
	return g, nil
}

// OnDecision records a rate-limit decision; pass it to
// ratelimit.WithOnDecision. Events of other kinds are ignored.
func (g *Governance) OnDecision(_ context.Context, e ratelimit.Event) {
	if e.Kind != ratelimit.EventDecision {
		return
	}
	k := decisionKey{e.Rule, e.Decision.Allowed, e.Decision.Source}
	s, ok := g.decisionSeries.Load(k)
	if !ok {
		if s = g.newDecisionSeries(k); s == nil {
			return
		}
	}
	s.count.Inc()
	if s.latency != nil {
		s.latency.Observe(e.Latency.Seconds())
	}
}

func (g *Governance) newDecisionSeries(k decisionKey) *decisionSeries {
	result := "limited"
	if k.allowed {
		result = "allowed"
	}
	c, err := g.decisions.GetMetricWithLabelValues(k.rule, result, k.source.String())
	if err != nil {
		return nil
	}
	s := &decisionSeries{count: c}
	if k.source == ratelimit.SourceRedis {
		if s.latency, err = g.redisLatency.GetMetricWithLabelValues(k.rule); err != nil {
			return nil
		}
	}
	s, _ = g.decisionSeries.LoadOrStore(k, s)
	return s
}

// RedisHealthHook returns the health hook of a Redis-backed limiter named
// limiter, for ratelimit.WithOnHealthChange. Give it only to a limiter
// that has a Redis: the limiter's Redis series (gingov_ratelimit_redis_up,
// its health changes and fallback activations) appear when it is called,
// redis_up at 1 (a limiter starts healthy), then follow its
// ratelimit.EventRedisDown and EventRedisUp events;
// gingov_ratelimit_instances follows its ratelimit.EventInstances (others
// are ignored). A Governance no Redis limiter reported to exports none of
// them.
func (g *Governance) RedisHealthHook(limiter string) func(context.Context, ratelimit.Event) {
	s := g.redisLimiter(limiter)
	if s == nil {
		return func(context.Context, ratelimit.Event) {}
	}
	return func(_ context.Context, e ratelimit.Event) {
		switch e.Kind {
		case ratelimit.EventRedisUp:
			s.up.Set(1)
			s.upChanges.Inc()
		case ratelimit.EventRedisDown:
			s.up.Set(0)
			s.downChanges.Inc()
			s.fallbacks.Inc()
		case ratelimit.EventInstances:
			if gv, err := g.instances.GetMetricWithLabelValues(limiter, e.Rule); err == nil {
				gv.Set(float64(e.Instances))
			}
		}
	}
}

// redisSeries are the series of one Redis-backed limiter.
type redisSeries struct {
	up                     prometheus.Gauge
	upChanges, downChanges prometheus.Counter
	fallbacks              prometheus.Counter
}

// redisLimiter returns the series of the Redis-backed limiter named
// limiter, creating them at its first report: redis_up at 1, the counters
// at 0. It returns nil when limiter is not a valid label value.
func (g *Governance) redisLimiter(limiter string) *redisSeries {
	if s, ok := g.redisLimiters.Load(limiter); ok {
		return s
	}
	var s redisSeries
	var err error
	if s.up, err = g.redisUp.GetMetricWithLabelValues(limiter); err != nil {
		return nil
	}
	if s.upChanges, err = g.healthChange.GetMetricWithLabelValues(limiter, "up"); err != nil {
		return nil
	}
	if s.downChanges, err = g.healthChange.GetMetricWithLabelValues(limiter, "down"); err != nil {
		return nil
	}
	if s.fallbacks, err = g.fallbacks.GetMetricWithLabelValues(limiter); err != nil {
		return nil
	}
	p, loaded := g.redisLimiters.LoadOrStore(limiter, &s)
	if !loaded {
		p.up.Set(1)
	}
	return p
}

// OnSentinelBlock counts a request blocked by Sentinel, from the
// ratelimit/sentinel module's WithOnBlock hook: that module's Event cannot
// be named here (it would link Sentinel into every user of metrics), so
// the hook passes its Resource and BlockType.
func (g *Governance) OnSentinelBlock(_ context.Context, resource, blockType string) {
	if c, err := g.blocks.GetMetricWithLabelValues(resource, blockType); err == nil {
		c.Inc()
	}
}

// OnBreakerChange records a breaker's state change; pass it to
// circuitbreaker.WithOnStateChange (server or client breakers).
func (g *Governance) OnBreakerChange(_ context.Context, ch circuitbreaker.Event) {
	if s, err := g.breakerState.GetMetricWithLabelValues(ch.Name); err == nil {
		s.Set(float64(ch.To))
	}
	if c, err := g.transitions.GetMetricWithLabelValues(ch.Name, ch.To.String()); err == nil {
		c.Inc()
	}
}

// OnRegistryEvent records a registry event; pass it to registry.WithOnEvent
// (for a Server or a Resolver) or a backend's own WithOnEvent.
func (g *Governance) OnRegistryEvent(_ context.Context, e registry.Event) {
	service := e.Service
	if service == "" && e.Instance != nil {
		service = e.Instance.Name
	}
	if c, err := g.regEvents.GetMetricWithLabelValues(e.Backend, service, e.Kind.String()); err == nil {
		c.Inc()
	}
	var v float64
	switch e.Kind {
	case registry.Registered:
		v = 1
	case registry.Deregistered, registry.RegisterFailed:
	default:
		return
	}
	if gauge, err := g.registered.GetMetricWithLabelValues(e.Backend, service); err == nil {
		gauge.Set(v)
	}
}

// OnDeadline records a request answered 504 because its deadline passed;
// pass it to deadline.WithOnTimeout.
func (g *Governance) OnDeadline(_ context.Context, e deadline.Event) {
	source := "route"
	if e.Caller {
		source = "caller"
	}
	if c, err := g.deadlines.GetMetricWithLabelValues(e.Method, e.Route, source); err == nil {
		c.Inc()
	}
}

// OnConfigReload counts one reload attempt of a watched document: source is
// the kind of source ("file", "nacos", "etcd", "consul"; keep it to a few
// values, it is a label), err nil when the document was accepted. setup
// calls it from its reload path; a program watching its own documents
// calls it from its hooks (sentinel.WithOnReload, envoy's WithOnReload).
func (g *Governance) OnConfigReload(_ context.Context, source string, err error) {
	result := "accepted"
	if err != nil {
		result = "rejected"
	}
	if c, e := g.reloads.GetMetricWithLabelValues(source, result); e == nil {
		c.Inc()
	}
}
