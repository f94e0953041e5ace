package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// DefaultMaxKeys is how many keys a local limiter tracks at most.
const DefaultMaxKeys = 100_000

const localShards = 64

// LocalOption configures [NewLocal].
type LocalOption func(*Local)

// WithMaxKeys bounds the keys a local limiter tracks (default
// [DefaultMaxKeys]). Keys whose bucket is full again take no room; past the
// bound, the fullest of a few sampled buckets is forgotten, which can give
// that key a fresh burst.
func WithMaxKeys(n int) LocalOption { return func(l *Local) { l.maxKeys = n } }

// Local is an in-process Limiter: one token bucket per key, in 64 shards
// each with its own lock, so keys do not contend with each other. Time is
// the process's monotonic clock. Memory is bounded by WithMaxKeys.
type Local struct {
	rate     Rate
	interval int64 // ns per token
	capacity int64 // ns of burst
	epoch    time.Time
	seed     maphash.Seed
	maxKeys  int
	perShard int
	shards   [localShards]localShard
}

type localShard struct {
	mu sync.Mutex
	m  map[string]int64 // key -> tat, in ns since epoch
	_  [40]byte         // keep shards on separate cache lines
}

// NewLocal returns a local limiter for rate. It fails for an invalid rate or option.
func NewLocal(rate Rate, opts ...LocalOption) (*Local, error) {
	if err := rate.Validate(); err != nil {
		return nil, err
	}
	l := &Local{
		rate:     rate,
		interval: rate.intervalInt(),
		epoch:    time.Now(),
		seed:     maphash.MakeSeed(),
		maxKeys:  DefaultMaxKeys,
	}
	l.capacity = int64(rate.burst()) * l.interval
	for _, o := range opts {
		o(l)
	}
	if l.maxKeys < 1 {
		return nil, fmt.Errorf("ratelimit: max keys must be >= 1, got %d", l.maxKeys)
	}
	l.perShard = max(1, (l.maxKeys+localShards-1)/localShards)
	for i := range l.shards {
		l.shards[i].m = make(map[string]int64)
	}
	return l, nil
}

// Rate returns the limiter's rate.
func (l *Local) Rate() Rate { return l.rate }

// AllowN implements Limiter. It never fails for n >= 1.
func (l *Local) AllowN(_ context.Context, key string, n int) (Decision, error) {
	if n < 1 {
		return Decision{}, fmt.Errorf("ratelimit: n must be >= 1, got %d", n)
	}
	return l.allowAt(key, n, int64(time.Since(l.epoch))), nil
}

func (l *Local) allowAt(key string, n int, now int64) Decision {
	s := &l.shards[maphash.String(l.seed, key)%localShards]
	s.mu.Lock()
	tat, ok := s.m[key]
	newTAT, o := gcra(tat, now, l.interval, l.capacity, n)
	if o.allowed {
		if !ok && len(s.m) >= l.perShard {
			s.evict(now)
		}
		s.m[key] = newTAT
	}
	s.mu.Unlock()
	return o.decision(l.rate, 1, SourceLocal)
}

// evict makes room: buckets that are full again go at no cost; otherwise
// the fullest of a sample is forgotten. Called with s.mu held.
func (s *localShard) evict(now int64) {
	const sample = 16
	victim, victimTAT, seen := "", int64(0), 0
	for k, tat := range s.m {
		if tat <= now {
			delete(s.m, k)
			return
		}
		if seen == 0 || tat < victimTAT {
			victim, victimTAT = k, tat
		}
		if seen++; seen == sample {
			break
		}
	}
	delete(s.m, victim)
}

// Len returns how many keys the limiter tracks now.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
