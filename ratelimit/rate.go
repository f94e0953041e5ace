package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Rate is a token bucket: Limit tokens per Period flow in, up to Burst held.
// A request takes one token (AllowN takes n). The zero Burst means Limit.
type Rate struct {
	Limit  int
	Period time.Duration
	Burst  int
}

// PerSecond returns a Rate of n per second with a burst of n.
func PerSecond(n int) Rate { return Rate{Limit: n, Period: time.Second} }

// PerMinute returns a Rate of n per minute with a burst of n.
func PerMinute(n int) Rate { return Rate{Limit: n, Period: time.Minute} }

// WithBurst returns r with its burst set.
func (r Rate) WithBurst(b int) Rate { r.Burst = b; return r }

func (r Rate) burst() int {
	if r.Burst == 0 {
		return r.Limit
	}
	return r.Burst
}

// String is "100/1s burst 200".
func (r Rate) String() string {
	return fmt.Sprintf("%d/%s burst %d", r.Limit, r.Period, r.burst())
}

// Validate reports what is wrong with r, if anything.
func (r Rate) Validate() error {
	if err := r.check(); err != nil {
		return errors.New("ratelimit: " + err.Error())
	}
	return nil
}

func (r Rate) check() error {
	switch {
	case r.Limit <= 0:
		return fmt.Errorf("rate limit must be > 0, got %d", r.Limit)
	case r.Period <= 0:
		return fmt.Errorf("rate period must be > 0, got %s", r.Period)
	case r.Burst < 0:
		return fmt.Errorf("burst must be >= 1 (or 0 for the limit), got %d", r.Burst)
	case int64(r.Period)/int64(r.Limit) < 1:
		return fmt.Errorf("rate %d/%s is above one token per nanosecond", r.Limit, r.Period)
	}
	if float64(r.burst())*float64(r.intervalInt()) > math.MaxInt64/4 {
		return fmt.Errorf("burst %d at %d/%s spans more time than the limiter can track", r.burst(), r.Limit, r.Period)
	}
	return nil
}

// intervalNanos is the time one token takes to flow in.
func (r Rate) intervalNanos() float64 { return float64(r.Period) / float64(r.Limit) }

// intervalInt is intervalNanos rounded to whole nanoseconds (>= 1 for a
// valid rate); the rounding changes the rate by under 1e-8 for any rate
// slower than 20 million per second.
func (r Rate) intervalInt() int64 { return max(1, int64(math.Round(r.intervalNanos()))) }

// Decision is the answer to one AllowN.
type Decision struct {
	Allowed bool
	// Limit is the bucket size: the most requests allowed at once.
	Limit int
	// Remaining is how many tokens are left after this decision.
	Remaining int
	// ResetAfter is the time until the bucket is full again.
	ResetAfter time.Duration
	// RetryAfter is, when not allowed, the time until the request could be.
	RetryAfter time.Duration
	// Source says what made the decision.
	Source Source
}

// Source says what made a decision.
type Source uint8

// Sources of decisions.
const (
	SourceLocal    Source = iota // an in-process bucket
	SourceRedis                  // a Redis round trip
	SourceLease                  // tokens leased earlier from Redis, or a known denial
	SourceFallback               // the failure policy, while Redis is unreachable
)

func (s Source) String() string {
	switch s {
	case SourceLocal:
		return "local"
	case SourceRedis:
		return "redis"
	case SourceLease:
		return "lease"
	case SourceFallback:
		return "fallback"
	}
	return "unknown"
}

// Limiter decides whether a request for key may proceed. Implementations
// are safe for concurrent use.
type Limiter interface {
	// AllowN takes n tokens from key's bucket when it holds them.
	// The error is non-nil only when no decision could be made at all
	// (n < 1, or ctx done before the decision); the Redis limiter
	// answers Redis failures by its failure policy instead.
	AllowN(ctx context.Context, key string, n int) (Decision, error)
}

// Allow is AllowN(ctx, key, 1).
func Allow(ctx context.Context, l Limiter, key string) (Decision, error) {
	return l.AllowN(ctx, key, 1)
}

// gcra is the generic cell rate algorithm, the token bucket kept as one
// number: tat, the time at which the bucket will be full. Times are integer
// nanoseconds, so a request that exactly fits is never lost to rounding;
// interval is the time per token and capacity burst*interval. It returns
// the new tat and the decision.
func gcra(tat, now, interval, capacity int64, n int) (int64, outcome) {
	if tat < now {
		tat = now
	}
	newTAT := tat + int64(n)*interval
	if newTAT-now > capacity {
		return tat, outcome{allowed: false, retry: float64(newTAT - capacity - now), reset: float64(tat - now)}
	}
	return newTAT, outcome{allowed: true, reset: float64(newTAT - now)}
}

// outcome is a decision in the time unit of the bucket.
type outcome struct {
	allowed      bool
	reset, retry float64
}

// decision converts an outcome to a Decision; unit is the outcome's time
// unit in nanoseconds.
func (o outcome) decision(r Rate, unit float64, src Source) Decision {
	interval := r.intervalNanos() / unit
	burst := r.burst()
	remaining := int(math.Floor((float64(burst)*interval-o.reset)/interval + 1e-9))
	remaining = max(0, min(remaining, burst))
	d := Decision{
		Allowed:    o.allowed,
		Limit:      burst,
		Remaining:  remaining,
		ResetAfter: time.Duration(math.Ceil(o.reset * unit)),
		Source:     src,
	}
	if !o.allowed {
		d.RetryAfter = time.Duration(math.Ceil(o.retry * unit))
	}
	return d
}
