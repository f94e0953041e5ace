package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gingov/gingov/internal/shard"
)

// Defaults of lease mode.
const (
	// DefaultMaxLeaseBatch caps the tokens one round trip leases (further
	// capped at a quarter of the burst).
	DefaultMaxLeaseBatch = 256
	// DefaultLeaseTTL is how long leased tokens may be spent; unspent ones
	// are dropped then, so admission never drifts far in time.
	DefaultLeaseTTL = 100 * time.Millisecond
	// DefaultLeaseWindow is how much of a key's recent demand one lease aims to cover.
	DefaultLeaseWindow = 20 * time.Millisecond
)

// LeaseOptions tunes lease mode; zero fields take the defaults, negative
// ones are errors.
type LeaseOptions struct {
	// MaxBatch caps the tokens leased per round trip (default
	// DefaultMaxLeaseBatch, and never more than a quarter of the burst).
	MaxBatch int
	// TTL is how long leased tokens stay spendable (default DefaultLeaseTTL).
	TTL time.Duration
	// Window is how much of the key's recent demand a lease covers
	// (default DefaultLeaseWindow): the batch follows the key's rate.
	Window time.Duration
}

// WithLease turns on lease mode: an instance takes a batch of tokens from
// the same Redis bucket in one round trip and spends them locally, so most
// decisions need no round trip. The batch adapts to the key's demand;
// total admission never exceeds the bucket, because tokens are taken from
// it before they are spent (unspent ones expire after the TTL and are
// lost, so lease mode errs towards admitting slightly less). A key known to
// be over its limit is answered locally until it could be allowed again.
//
// Decisions from leased tokens report Remaining and ResetAfter as of the
// last round trip.
func WithLease(o LeaseOptions) RedisOption {
	return redisOption(func(c *redisConfig) { c.lease = &o })
}

func (o LeaseOptions) withDefaults() LeaseOptions {
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxLeaseBatch
	}
	if o.TTL == 0 {
		o.TTL = DefaultLeaseTTL
	}
	if o.Window == 0 {
		o.Window = DefaultLeaseWindow
	}
	return o
}

// validate reports negative fields and a window longer than the TTL.
func (o LeaseOptions) validate() error {
	if o.MaxBatch < 0 || o.TTL < 0 || o.Window < 0 {
		return errors.New("fields must not be negative")
	}
	if o = o.withDefaults(); o.Window > o.TTL {
		return fmt.Errorf("window %s is longer than the TTL %s", o.Window, o.TTL)
	}
	return nil
}

type leaser struct {
	maxBatch int
	ttl      float64 // ns
	window   float64 // ns
	epoch    time.Time
	clock    func() time.Time
	perShard int
	entries  *shard.Map[*leaseEntry]
}

// leaseEntry is one key's local state. Its mutex is held across a fetch, so
// concurrent requests for the key wait for the batch instead of each making
// a round trip.
type leaseEntry struct {
	mu          sync.Mutex
	tokens      int
	expires     float64 // ns since epoch
	deniedUntil float64
	deniedNeed  int // the request size deniedUntil was computed for
	fetchedAt   float64
	served      int     // tokens spent since the last fetch
	bucketLeft  int     // the bucket's remaining tokens at the last fetch
	resetAt     float64 // when the bucket is full, as of the last fetch
	rateEst     float64 // tokens per ns of recent demand
}

// newLeaser builds lease state from validated options.
func newLeaser(o LeaseOptions, rate Rate, maxKeys int, clock func() time.Time) *leaser {
	o = o.withDefaults()
	return &leaser{
		maxBatch: max(1, min(o.MaxBatch, rate.burst()/4)),
		ttl:      float64(o.TTL),
		window:   float64(o.Window),
		epoch:    clock(),
		clock:    clock,
		perShard: shard.PerShard(maxKeys),
		entries:  shard.New[*leaseEntry](),
	}
}

func (l *leaser) now() float64 { return float64(l.clock().Sub(l.epoch)) }

// entry returns the key's state, creating it (and making room) if needed.
func (l *leaser) entry(key string, now float64) *leaseEntry {
	s := l.entries.Shard(key)
	s.Lock()
	e := s.M[key]
	if e == nil {
		if len(s.M) >= l.perShard {
			evictLease(s.M, now)
		}
		e = &leaseEntry{}
		s.M[key] = e
	}
	s.Unlock()
	return e
}

// evict drops an entry with nothing worth keeping (no live tokens, no live
// denial), else the first sampled one. Called with the shard locked.
func evictLease(m map[string]*leaseEntry, now float64) {
	const sample = 16
	victim, seen := "", 0
	for k, e := range m {
		if e.mu.TryLock() {
			idle := (e.tokens == 0 || e.expires <= now) && e.deniedUntil <= now
			e.mu.Unlock()
			if idle {
				delete(m, k)
				return
			}
		}
		if victim == "" {
			victim = k
		}
		if seen++; seen == sample {
			break
		}
	}
	delete(m, victim)
}

// allowLease decides from leased tokens when it can, else leases a batch.
// The fetch serves later requests too, so the limiter's deadline alone
// bounds it; ctx is the health hook's.
func (r *Redis) allowLease(ctx context.Context, rkey, key string, n int) Decision {
	l := r.lease
	now := l.now()
	e := l.entry(rkey, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if now < e.deniedUntil && n >= e.deniedNeed { // a smaller request may still fit
		return r.leaseDecision(e, now, false, e.deniedUntil-now)
	}
	if e.tokens >= n && now < e.expires {
		e.tokens -= n
		e.served += n
		return r.leaseDecision(e, now, true, 0)
	}
	if !r.redisUp(ctx, rkey) {
		return r.fail(key, n)
	}
	// Estimate demand from what was served since the last fetch.
	if e.fetchedAt > 0 && now > e.fetchedAt {
		rate := float64(e.served+n) / (now - e.fetchedAt)
		if e.rateEst == 0 {
			e.rateEst = rate
		} else {
			e.rateEst = 0.5*e.rateEst + 0.5*rate
		}
	}
	want := max(n, min(l.maxBatch, int(e.rateEst*l.window))) // never fewer than n
	taken, us, err := r.takeUpTo(rkey, want, n)
	if err != nil {
		r.markDown(ctx, err)
		return r.fail(key, n)
	}
	r.markUp(ctx)
	now = l.now()
	e.fetchedAt, e.served = now, 0
	if taken == 0 {
		r.noteDenied(key)
		e.tokens = 0
		e.deniedUntil, e.deniedNeed = now+us*1e3, n
		e.bucketLeft = 0
		return r.leaseDecisionFrom(SourceRedis, e, now, false, e.deniedUntil-now)
	}
	interval := r.rate.intervalNanos()
	if e.expires <= now {
		e.tokens = 0 // expired leftovers are lost, never spent late
	}
	e.tokens += taken - n
	e.served = n
	e.expires = now + l.ttl
	e.resetAt = now + us*1e3
	e.bucketLeft = max(0, int((float64(r.rate.burst())*interval-us*1e3)/interval+1e-9))
	return r.leaseDecisionFrom(SourceRedis, e, now, true, 0)
}

func (r *Redis) leaseDecision(e *leaseEntry, now float64, allowed bool, retry float64) Decision {
	return r.leaseDecisionFrom(SourceLease, e, now, allowed, retry)
}

func (r *Redis) leaseDecisionFrom(src Source, e *leaseEntry, now float64, allowed bool, retry float64) Decision {
	d := Decision{
		Allowed:   allowed,
		Limit:     r.rate.burst(),
		Remaining: min(r.rate.burst(), e.bucketLeft+e.tokens),
		Source:    src,
	}
	if e.resetAt > now {
		d.ResetAfter = time.Duration(e.resetAt - now)
	}
	if !allowed {
		d.RetryAfter = time.Duration(retry)
		d.Remaining = 0
		if d.ResetAfter < d.RetryAfter {
			d.ResetAfter = d.RetryAfter
		}
	}
	return d
}
