package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gingov/gingov/logging"
)

// Defaults of the Redis limiter.
const (
	// DefaultDeadline bounds how long a decision waits for Redis before the
	// failure policy answers instead.
	DefaultDeadline = 250 * time.Millisecond
	// DefaultProbeInterval is how often, while Redis is unreachable, a
	// background probe started by a decision tries Redis again (so recovery
	// is seen within it).
	DefaultProbeInterval = 200 * time.Millisecond
	// DefaultKeyPrefix starts every Redis key of the limiter.
	DefaultKeyPrefix = "gingov:rl:"
	// MinRedisInterval is the shortest time per token of a Redis bucket
	// (at most a million tokens per second per key): the scripts keep time
	// in microseconds.
	MinRedisInterval = time.Microsecond
	// MaxRawKeyLen is the longest key used as it is in a Redis key; longer
	// keys, and keys with bytes outside [A-Za-z0-9._:/@-], are hashed.
	MaxRawKeyLen = 64
)

type redisConfig struct {
	deadline      time.Duration
	probeInterval time.Duration
	policy        FailurePolicy
	prefix        string
	lease         *LeaseOptions
	logger        *slog.Logger
	onHealth      hook
	nilOnHealth   bool
	maxKeys       int
	clock         func() time.Time // time.Now; tests skew it
	noCoalesce    bool
	noMembership  bool
	asIs          bool
	name          string // the option applied last, for New's errors
}

func defaultRedisConfig() redisConfig {
	return redisConfig{
		deadline:      DefaultDeadline,
		probeInterval: DefaultProbeInterval,
		prefix:        DefaultKeyPrefix,
		maxKeys:       DefaultMaxKeys,
		clock:         time.Now,
	}
}

// newRedisConfig applies opts over the defaults and checks the result.
func newRedisConfig(opts []RedisOption) (redisConfig, error) {
	cfg := defaultRedisConfig()
	for i, o := range opts {
		if nilOption(o) {
			return cfg, nilOptionError(i)
		}
		o.applyRedis(&cfg)
	}
	return cfg, cfg.check()
}

// check validates the settings and fills in the default logger.
func (c *redisConfig) check() error {
	switch {
	case c.deadline <= 0:
		return fmt.Errorf("ratelimit: WithDeadline: must be > 0, got %s", c.deadline)
	case c.probeInterval <= 0:
		return fmt.Errorf("ratelimit: WithProbeInterval: must be > 0, got %s", c.probeInterval)
	case c.maxKeys < 1:
		return fmt.Errorf("ratelimit: WithMaxKeys: must be >= 1, got %d", c.maxKeys)
	case c.nilOnHealth:
		return fmt.Errorf("ratelimit: WithOnHealthChange: nil function")
	}
	if err := c.policy.validate(); err != nil {
		return fmt.Errorf("ratelimit: WithFailurePolicy: %w", err)
	}
	if c.lease != nil {
		if err := c.lease.validate(); err != nil {
			return fmt.Errorf("ratelimit: WithLease: %w", err)
		}
	}
	c.logger = logging.OrDefault(c.logger)
	return nil
}

// WithDeadline bounds how long a decision waits for Redis (default
// [DefaultDeadline]; must be > 0); past it the failure policy answers.
func WithDeadline(d time.Duration) RedisGuardOption {
	return func(c *redisConfig) { c.deadline = d; c.name = "WithDeadline" }
}

// WithProbeInterval sets how often, while Redis is unreachable, a decision
// starts a background probe of Redis (default [DefaultProbeInterval]; must
// be > 0). It also sets the membership's timing ([WithMembership]).
func WithProbeInterval(d time.Duration) RedisGuardOption {
	return func(c *redisConfig) { c.probeInterval = d; c.name = "WithProbeInterval" }
}

// WithKeyPrefix sets the start of every Redis key (default
// [DefaultKeyPrefix]; "" means none).
func WithKeyPrefix(p string) RedisGuardOption {
	return func(c *redisConfig) { c.prefix = p; c.name = "WithKeyPrefix" }
}

// WithLogger logs Redis becoming unreachable and coming back, and a client
// that will not honour the deadline (default, and for nil, the kit's JSON
// logger, logging.Default()).
func WithLogger(l *slog.Logger) RedisGuardOption {
	return func(c *redisConfig) { c.logger = l; c.name = "WithLogger" }
}

// WithOnHealthChange calls fn when Redis becomes unreachable
// ([EventRedisDown]) and when it answers again ([EventRedisUp]), once per
// Redis-backed limiter (in a Guard: per rule), and when the limiter's
// membership refresh sees a new fleet size ([EventInstances]). fn runs on
// the goroutine of the decision that saw the change, with that request's
// context (EventInstances: on the refresh goroutine, with a background
// context), and must not block. metrics.Governance.RedisHealthHook fits.
// Default none; a nil fn is an error.
func WithOnHealthChange(fn func(ctx context.Context, e Event)) RedisGuardOption {
	return func(c *redisConfig) { c.onHealth, c.nilOnHealth = fn, fn == nil; c.name = "WithOnHealthChange" }
}

// WithClientAsIs makes the limiter use the given client itself (its pool
// and hooks) instead of opening its own pool. The deadline then holds only
// if the client has ContextTimeoutEnabled, and recovery after a long outage
// follows go-redis's own redial schedule (up to a second more).
func WithClientAsIs() RedisGuardOption {
	return func(c *redisConfig) { c.asIs = true; c.name = "WithClientAsIs" }
}

// WithCoalescing sets whether concurrent sync-mode decisions for one key
// share a round trip (default true; see the Redis type). Off, every
// decision is its own round trip.
func WithCoalescing(on bool) RedisGuardOption {
	return func(c *redisConfig) { c.noCoalesce = !on; c.name = "WithCoalescing" }
}

// WithMembership sets whether the limiter keeps a membership entry in
// Redis (default true): a sorted set per key prefix and limiter name, one
// member per instance, refreshed in the background at most every probe
// interval / [MembershipRefreshFraction] while decisions are made and
// Redis answers, pruned after [MembershipTTLProbes] probe intervals. It
// gives [Redis.Instances], the fleet size FailLocal divides the rate by
// during an outage. Off, FailLocal divides by its own count only.
func WithMembership(on bool) RedisGuardOption {
	return func(c *redisConfig) { c.noMembership = !on; c.name = "WithMembership" }
}

// WithFailurePolicy sets what answers while Redis is unreachable (default
// FailLocal(1): each instance limits locally at rate/N, N the fleet size
// last seen in Redis, see [WithMembership]). In a
// Guard, each rule carries its own (Rule.WithFailurePolicy).
func WithFailurePolicy(p FailurePolicy) RedisOption {
	return redisOption(func(c *redisConfig) { c.policy = p })
}
