package ratelimit

import (
	"context"
	"sync/atomic"
	"time"
)

// markDown records a failed Redis call; the first after Redis was up logs
// and reports EventRedisDown, with the context of the request that saw it.
func (r *Redis) markDown(ctx context.Context, err error) {
	defer r.renewClient()
	if r.health.down.CompareAndSwap(0, r.cfg.clock().UnixNano()) {
		var n int
		if r.cfg.policy.kind == failLocal || r.cfg.policy.kind == failDefault {
			n = r.fallbackInstances()
		}
		r.cfg.logger.WarnContext(ctx, "rate limiter: Redis unreachable, failure policy answers",
			"limiter", r.name, "policy", r.cfg.policy.String(), "instances", n, "error", err.Error())
		if r.cfg.onHealth != nil {
			r.cfg.onHealth(ctx, Event{Kind: EventRedisDown, Rule: r.name, Policy: r.cfg.policy, Instances: n, Err: err})
		}
	}
	r.health.nextProbe.Store(r.cfg.clock().Add(r.cfg.probeInterval).UnixNano())
}

// markUp records an answer from Redis; the first after an outage logs and
// reports EventRedisUp.
func (r *Redis) markUp(ctx context.Context) {
	if since := r.health.down.Swap(0); since != 0 {
		downFor := r.cfg.clock().Sub(time.Unix(0, since))
		r.cfg.logger.InfoContext(ctx, "rate limiter: Redis answers again",
			"limiter", r.name, "down_for", downFor.String())
		if r.cfg.onHealth != nil {
			r.cfg.onHealth(ctx, Event{Kind: EventRedisUp, Rule: r.name, DownFor: downFor})
		}
	}
}

// health gates Redis calls while Redis is down: one call per probe
// interval goes through, the others take the failure policy at once.
type health struct {
	down      atomic.Int64 // unix ns when Redis went down; 0 while up
	nextProbe atomic.Int64 // unix ns
	clock     func() time.Time
}

func (h *health) tryRedis(interval time.Duration) bool {
	if h.down.Load() == 0 {
		return true
	}
	next := h.nextProbe.Load()
	now := h.clock().UnixNano()
	return now >= next && h.nextProbe.CompareAndSwap(next, now+int64(interval))
}
