package ratelimit

import (
	"context"
	"time"
)

// EventKind says what an [Event] reports.
type EventKind uint8

// Kinds of events.
const (
	// EventDecision is one decision of a rule (WithOnDecision): Rule,
	// Decision and Latency are set.
	EventDecision EventKind = iota
	// EventRedisDown is a Redis-backed limiter finding Redis unreachable or
	// slower than its deadline (WithOnHealthChange): Rule, Policy and Err
	// are set. The failure policy answers from now on.
	EventRedisDown
	// EventRedisUp is Redis answering again (WithOnHealthChange): Rule and
	// DownFor are set.
	EventRedisUp
	// EventInstances is a Redis-backed limiter seeing a new fleet size in
	// its membership refresh (WithOnHealthChange): Rule and Instances are
	// set. It comes from the limiter's refresh goroutine, with a background
	// context.
	EventInstances
)

func (k EventKind) String() string {
	switch k {
	case EventDecision:
		return "decision"
	case EventRedisDown:
		return "redis_down"
	case EventRedisUp:
		return "redis_up"
	case EventInstances:
		return "instances"
	}
	return "unknown"
}

// Event is what the package's hooks receive.
type Event struct {
	Kind EventKind
	// Rule names the rule (for a limiter built by NewRedis, its name).
	Rule string
	// Decision is the decision (EventDecision).
	Decision Decision
	// Latency is how long the decision took (EventDecision).
	Latency time.Duration
	// Policy is the failure policy that answers while Redis is down
	// (EventRedisDown).
	Policy FailurePolicy
	// Instances is the fleet size: the instances sharing the limiter's
	// buckets seen by its membership refresh (EventInstances), or the count
	// FailLocal divides the rate by (EventRedisDown, under FailLocal).
	Instances int
	// Err is why Redis is taken as down (EventRedisDown).
	Err error
	// DownFor is how long Redis was down (EventRedisUp).
	DownFor time.Duration
}

// hook is a WithOn... function; nil means none.
type hook = func(context.Context, Event)
