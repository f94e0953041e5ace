package ratelimit

import "fmt"

// Option configures [New]. A [Rule] is an Option, and so are the Redis
// settings ([RedisGuardOption], applied to every Redis-backed rule) and
// [WithMaxKeys].
type Option interface{ applyGuard(*guardConfig) }

// LocalOption configures [NewLocal]: only [WithMaxKeys].
type LocalOption interface{ applyLocal(*localConfig) }

// RedisOption configures [NewRedis]: the [RedisGuardOption]s,
// [WithMaxKeys], [WithFailurePolicy] and [WithLease].
type RedisOption interface{ applyRedis(*redisConfig) }

type guardOption func(*guardConfig)

func (f guardOption) applyGuard(c *guardConfig) { f(c) }

type redisOption func(*redisConfig)

func (f redisOption) applyRedis(c *redisConfig) { f(c) }

// RedisGuardOption is a setting of the Redis limiter: an option of
// [NewRedis], and of [New], where it applies to every Redis-backed rule.
// Given to New without a Redis client it is an error
// ("ratelimit: WithDeadline: needs a Redis client"): it would do nothing.
type RedisGuardOption func(*redisConfig)

func (f RedisGuardOption) applyRedis(c *redisConfig) { f(c) }
func (f RedisGuardOption) applyGuard(c *guardConfig) {
	c.redis.name = ""
	f(&c.redis)
	if c.redisOnly == "" {
		c.redisOnly = "Redis option"
		if c.redis.name != "" {
			c.redisOnly = c.redis.name
		}
	}
}

// MaxKeysOption bounds the keys held in process: an option of [NewLocal],
// [NewRedis] (its lease cache and local fallback) and [New] (both, for
// every rule).
type MaxKeysOption func(*int)

func (f MaxKeysOption) applyLocal(c *localConfig) { f(&c.maxKeys) }
func (f MaxKeysOption) applyRedis(c *redisConfig) { f(&c.maxKeys) }
func (f MaxKeysOption) applyGuard(c *guardConfig) { f(&c.local.maxKeys); f(&c.redis.maxKeys) }

// WithMaxKeys bounds the keys a limiter tracks in process (default
// [DefaultMaxKeys]; must be >= 1). Keys whose bucket is full again take no
// room; past the bound, the fullest of a few sampled buckets is forgotten,
// which can give that key a fresh burst.
func WithMaxKeys(n int) MaxKeysOption { return func(m *int) { *m = n } }

// nilOption reports an option that is nil, or a nil function of an
// exported option type (which a caller can write as a zero value).
func nilOption(o any) bool {
	switch f := o.(type) {
	case nil:
		return true
	case RedisGuardOption:
		return f == nil
	case MaxKeysOption:
		return f == nil
	}
	return false
}

func nilOptionError(i int) error { return fmt.Errorf("ratelimit: option %d is nil", i+1) }
