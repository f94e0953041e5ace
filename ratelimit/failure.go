package ratelimit

import (
	"errors"
	"fmt"
)

// FailurePolicy says how decisions are made while Redis is unreachable or
// slower than the deadline.
type FailurePolicy struct {
	kind  failKind
	fixed int        // FailLocal's instance count
	fn    func() int // FailLocalFunc's
}

type failKind uint8

const (
	failDefault failKind = iota // the zero FailurePolicy: FailLocal(1)
	failLocal
	failOpen
	failClosed
)

var (
	// FailOpen allows every request while Redis is unreachable.
	FailOpen = FailurePolicy{kind: failOpen}
	// FailClosed rejects every request while Redis is unreachable (the
	// middleware answers 503 UNAVAILABLE).
	FailClosed = FailurePolicy{kind: failClosed}
)

// FailLocal limits each instance locally to rate/N and burst/N (rounded
// down, at least 1) while Redis is unreachable, so that the fleet as a
// whole keeps about the configured rate. N is the larger of instances and
// the fleet size the limiter last saw in Redis ([Redis.Instances]): with
// membership on (the default), FailLocal(1) divides by the live fleet
// without a registry. instances must be >= 1.
func FailLocal(instances int) FailurePolicy {
	return FailurePolicy{kind: failLocal, fixed: instances}
}

// FailLocalFunc is FailLocal with the instance count asked for when needed
// (for example, the live count from the service registry). The function's
// count is used as it is, instead of the fleet size seen in Redis; counts
// below 1 are taken as 1.
func FailLocalFunc(instances func() int) FailurePolicy {
	return FailurePolicy{kind: failLocal, fn: instances, fixed: -1}
}

func (p FailurePolicy) String() string {
	switch p.kind {
	case failOpen:
		return "open"
	case failClosed:
		return "closed"
	}
	return "local"
}

// validate reports a FailLocal without a usable instance count.
func (p FailurePolicy) validate() error {
	if p.kind != failLocal {
		return nil
	}
	if p.fixed == -1 && p.fn == nil {
		return errors.New("FailLocalFunc needs a function")
	}
	if p.fn == nil && p.fixed < 1 {
		return fmt.Errorf("FailLocal needs instances >= 1, got %d", p.fixed)
	}
	return nil
}

// fail answers by the failure policy.
func (r *Redis) fail(key string, n int) Decision {
	switch r.cfg.policy.kind {
	case failOpen:
		return Decision{Allowed: true, Limit: r.rate.burst(), Remaining: r.rate.burst(), Source: SourceFallback}
	case failClosed:
		return Decision{Limit: r.rate.burst(), RetryAfter: r.cfg.probeInterval, Source: SourceFallback}
	}
	l := r.localFallback()
	floor := int64(0)
	if at, ok := r.lastDenied(key); ok {
		// Empty when Redis denied it: its share has refilled since.
		floor = at - int64(l.epoch.Sub(r.epoch)) + l.capacity
	}
	d := l.allowAtFloor(key, n, int64(r.cfg.clock().Sub(l.epoch)), floor)
	d.Source = SourceFallback
	return d
}

// noteDenied records when Redis last denied key (under FailLocal), so that
// the key's local bucket starts an outage as empty as Redis's was instead
// of full: a key at its limit gets no extra burst from an outage.
func (r *Redis) noteDenied(key string) {
	if r.denied == nil {
		return
	}
	now := int64(r.cfg.clock().Sub(r.epoch))
	s := r.denied.Shard(key)
	s.Lock()
	if _, ok := s.M[key]; !ok && len(s.M) >= r.deniedPerShard {
		evictDenied(s.M, now-int64(r.rate.burst())*r.rate.intervalInt())
	}
	s.M[key] = now
	s.Unlock()
}

// lastDenied returns when (ns since r.epoch) Redis last denied key.
func (r *Redis) lastDenied(key string) (int64, bool) {
	if r.denied == nil {
		return 0, false
	}
	s := r.denied.Shard(key)
	s.Lock()
	at, ok := s.M[key]
	s.Unlock()
	return at, ok
}

// evictDenied makes room: a denial before stale (whose bucket has refilled
// since) goes first, else the oldest of a sample. Called with the shard
// locked.
func evictDenied(m map[string]int64, stale int64) {
	const sample = 16
	victim, oldest, seen := "", int64(0), 0
	for k, at := range m {
		if at < stale {
			delete(m, k)
			return
		}
		if seen == 0 || at < oldest {
			victim, oldest = k, at
		}
		if seen++; seen == sample {
			break
		}
	}
	delete(m, victim)
}

// localFallback returns the local limiter at rate/instances, rebuilt when
// the instance count changes.
func (r *Redis) localFallback() *Local {
	n := r.fallbackInstances()
	if f := r.fallback.Load(); f != nil && f.instances == n {
		return f.Local
	}
	r.fallbackMu.Lock()
	defer r.fallbackMu.Unlock()
	if f := r.fallback.Load(); f != nil && f.instances == n {
		return f.Local
	}
	share := Rate{
		Limit:  max(1, r.rate.Limit/n),
		Period: r.rate.Period,
		Burst:  max(1, r.rate.burst()/n),
	}
	l := newLocal(share, localConfig{maxKeys: r.cfg.maxKeys}) // share is valid whenever rate is
	l.epoch = r.cfg.clock()
	r.fallback.Store(&fallbackLimiter{Local: l, instances: n})
	return l
}

type fallbackLimiter struct {
	*Local
	instances int
}
