package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/gingov/gingov/internal/shard"
)

// DefaultMaxKeys is how many keys a limiter tracks in process at most
// ([WithMaxKeys]).
const DefaultMaxKeys = 100_000

type localConfig struct {
	maxKeys int
}

func defaultLocalConfig() localConfig { return localConfig{maxKeys: DefaultMaxKeys} }

// newLocalConfig applies opts over the defaults and checks the result.
func newLocalConfig(opts []LocalOption) (localConfig, error) {
	cfg := defaultLocalConfig()
	for i, o := range opts {
		if nilOption(o) {
			return cfg, nilOptionError(i)
		}
		o.applyLocal(&cfg)
	}
	return cfg, cfg.check()
}

func (c localConfig) check() error {
	if c.maxKeys < 1 {
		return fmt.Errorf("ratelimit: WithMaxKeys: must be >= 1, got %d", c.maxKeys)
	}
	return nil
}

// Local is an in-process Limiter: one token bucket per key, in 64 shards
// each with its own lock, so keys do not contend with each other. Time is
// the process's monotonic clock. Memory is bounded by WithMaxKeys.
type Local struct {
	rate     Rate
	interval int64 // ns per token
	capacity int64 // ns of burst
	epoch    time.Time
	perShard int
	buckets  *shard.Map[int64] // key -> tat, in ns since epoch
}

// NewLocal returns a local limiter for rate. It fails for an invalid rate or option.
func NewLocal(rate Rate, opts ...LocalOption) (*Local, error) {
	cfg, err := newLocalConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := rate.Validate(); err != nil {
		return nil, err
	}
	return newLocal(rate, cfg), nil
}

// newLocal builds the limiter from a valid rate and a checked configuration.
func newLocal(rate Rate, cfg localConfig) *Local {
	l := &Local{
		rate:     rate,
		interval: rate.intervalInt(),
		epoch:    time.Now(),
		perShard: shard.PerShard(cfg.maxKeys),
		buckets:  shard.New[int64](),
	}
	l.capacity = int64(rate.burst()) * l.interval
	return l
}

// Rate returns the limiter's rate.
func (l *Local) Rate() Rate { return l.rate }

// AllowN implements Limiter. It never fails for n >= 1; the context is not
// used (a decision takes no time worth cancelling).
func (l *Local) AllowN(_ context.Context, key string, n int) (Decision, error) {
	if n < 1 {
		return Decision{}, fmt.Errorf("ratelimit: n must be >= 1, got %d", n)
	}
	return l.allowAt(key, n, int64(time.Since(l.epoch))), nil
}

func (l *Local) allowAt(key string, n int, now int64) Decision {
	return l.allowAtFloor(key, n, now, 0)
}

// allowAtFloor is allowAt for a bucket known to be no fuller than one
// whose theoretical arrival time is floor (ns since the epoch).
func (l *Local) allowAtFloor(key string, n int, now, floor int64) Decision {
	s := l.buckets.Shard(key)
	s.Lock()
	tat, ok := s.M[key]
	tat = max(tat, floor)
	newTAT, o := gcra(tat, now, l.interval, l.capacity, n)
	if o.allowed {
		if !ok && len(s.M) >= l.perShard {
			evictLocal(s.M, now)
		}
		s.M[key] = newTAT
	}
	s.Unlock()
	return o.decision(l.rate, 1, SourceLocal)
}

// evictLocal makes room: buckets that are full again go at no cost;
// otherwise the fullest of a sample is forgotten. Called with the shard
// locked.
func evictLocal(m map[string]int64, now int64) {
	const sample = 16
	victim, victimTAT, seen := "", int64(0), 0
	for k, tat := range m {
		if tat <= now {
			delete(m, k)
			return
		}
		if seen == 0 || tat < victimTAT {
			victim, victimTAT = k, tat
		}
		if seen++; seen == sample {
			break
		}
	}
	delete(m, victim)
}

// Len returns how many keys the limiter tracks now.
func (l *Local) Len() int { return l.buckets.Len() }
