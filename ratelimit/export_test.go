package ratelimit

import "time"

// WithClock makes a Redis limiter read time from clock (tests skew it to
// show that no decision depends on an instance's clock).
func WithClock(clock func() time.Time) RedisOption {
	return redisOption(func(c *redisConfig) { c.clock = clock })
}
