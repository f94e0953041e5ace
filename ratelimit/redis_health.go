package ratelimit

import (
	"context"
	"sync"
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

// redisUp reports whether a decision may ask Redis. While Redis is down it
// answers false, so that every decision takes the failure policy at once,
// and once per probe interval it starts a probe in the background: a call
// of the decision script taking no token from the request's bucket (so on
// Redis Cluster it asks the master of that bucket), bounded by the
// deadline. Its answer ends the outage (EventRedisUp, with the request's
// context values); its failure renews the limiter's pool. No request waits
// for a probe.
func (r *Redis) redisUp(ctx context.Context, rkey string) bool {
	if r.health.down.Load() == 0 {
		return true
	}
	if r.health.tryRedis(r.cfg.probeInterval) && r.bg.add() {
		ctx = context.WithoutCancel(ctx)
		go func() {
			defer r.bg.done()
			err := syncScript.Run(r.deadline.ctx(), r.rdb(), []string{rkey}, r.interval, r.capacity, 0).Err()
			if err != nil {
				r.markDown(ctx, err)
				return
			}
			r.markUp(ctx)
		}()
	}
	return false
}

// background tracks the limiter's goroutines (probes, membership
// refreshes), so that Close waits for them.
type background struct {
	mu     sync.Mutex // orders add against close's Wait
	closed bool
	wg     sync.WaitGroup
}

// add counts a goroutine about to start; false once closed.
func (b *background) add() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	return true
}

func (b *background) done() { b.wg.Done() }

// close lets no more goroutines start and waits for the running ones
// (each bounded by the deadline).
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// health records whether Redis is down and when the next probe is due.
type health struct {
	down      atomic.Int64 // unix ns when Redis went down; 0 while up
	nextProbe atomic.Int64 // unix ns
	clock     func() time.Time
}

// tryRedis reports whether Redis is up, or else whether a probe is due
// (then the next is one interval away).
func (h *health) tryRedis(interval time.Duration) bool {
	if h.down.Load() == 0 {
		return true
	}
	next := h.nextProbe.Load()
	now := h.clock().UnixNano()
	return now >= next && h.nextProbe.CompareAndSwap(next, now+int64(interval))
}
