package circuitbreaker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/redisutil"
)

// Defaults of shared state.
const (
	// DefaultSyncInterval is how often the breakers' shared state is read
	// from Redis (one round trip for all of them).
	DefaultSyncInterval = 250 * time.Millisecond
	// DefaultSharedPrefix starts the Redis keys of shared breakers.
	DefaultSharedPrefix = "gingov:cb:"
)

// Shared makes breakers trip for every instance: when an instance's
// breaker opens, it writes "open until T" to Redis (one write per trip),
// and every instance reads all its breakers' shared state every
// SyncInterval in one round trip, rejecting locally while a peer's trip
// lasts. No request waits for Redis and no lock is held around requests
// (gobreaker's distributed breaker holds a Redis lock around each one);
// while Redis is unreachable each instance keeps its own breakers.
type Shared struct {
	Client       redis.UniversalClient
	Prefix       string        // DefaultSharedPrefix; instances sharing state need the same
	SyncInterval time.Duration // DefaultSyncInterval
}

// sharedState is the running state of a Shared.
type sharedState struct {
	cfg    Shared
	mu     sync.Mutex
	keys   map[string]*sharedBreaker // Redis key -> breaker
	cancel context.CancelFunc
	done   chan struct{}
	errs   atomic.Int64 // failed syncs, for tests and metrics
}

// sharedBreaker wraps a local breaker with the peers' verdict.
type sharedBreaker struct {
	breaker
	name      string
	key       string
	openUntil atomic.Int64 // unix ns until which a peer has it open
	s         *sharedState
	timeout   time.Duration
}

// withDefaults fills in the defaults and reports what is wrong.
func (cfg Shared) withDefaults() (Shared, error) {
	if cfg.Client == nil {
		return cfg, errors.New("needs a Redis client")
	}
	if redisutil.IsNil(cfg.Client) {
		return cfg, errors.New("nil Redis client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultSharedPrefix
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.SyncInterval < 0 {
		return cfg, fmt.Errorf("sync interval must be > 0, got %s", cfg.SyncInterval)
	}
	return cfg, nil
}

// startShared starts the sync loop of a checked Shared.
func startShared(cfg Shared) *sharedState {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sharedState{cfg: cfg, keys: map[string]*sharedBreaker{}, cancel: cancel, done: make(chan struct{})}
	go s.loop(ctx)
	return s
}

func (s *sharedState) close() {
	s.cancel()
	<-s.done
}

// wrap makes b shared under name.
func (s *sharedState) wrap(name string, b breaker, openTimeout time.Duration) breaker {
	sb := &sharedBreaker{breaker: b, name: name, key: s.cfg.Prefix + "{" + name + "}", s: s, timeout: openTimeout}
	s.mu.Lock()
	s.keys[sb.key] = sb
	s.mu.Unlock()
	return sb
}

func (b *sharedBreaker) allow(ctx context.Context) (ticket, error) {
	if until := b.openUntil.Load(); until != 0 {
		if left := time.Until(time.Unix(0, until)); left > 0 {
			return ticket{}, &OpenError{Name: b.name, State: StateOpen, RetryAfter: left}
		}
	}
	return b.breaker.allow(ctx)
}

func (b *sharedBreaker) state() State {
	if until := b.openUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return StateOpen
	}
	return b.breaker.state()
}

// tripped publishes the local trip of the named breaker to the peers;
// called from the state hook, outside the breaker's lock.
func (s *sharedState) tripped(name string, at time.Time) {
	s.mu.Lock()
	b := s.keys[s.cfg.Prefix+"{"+name+"}"]
	s.mu.Unlock()
	if b != nil {
		b.tripped(at)
	}
}

// tripped writes "open until" with its own short deadline.
func (b *sharedBreaker) tripped(at time.Time) {
	if b.timeout <= 0 {
		return
	}
	until := at.Add(b.timeout)
	ctx, cancel := context.WithTimeout(context.Background(), b.s.cfg.SyncInterval)
	defer cancel()
	if err := b.s.cfg.Client.Set(ctx, b.key, strconv.FormatInt(until.UnixNano(), 10), b.timeout).Err(); err != nil {
		b.s.errs.Add(1)
	}
}

// loop reads every breaker's shared state each interval.
func (s *sharedState) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sync(ctx)
		}
	}
}

func (s *sharedState) sync(ctx context.Context) {
	s.mu.Lock()
	breakers := make([]*sharedBreaker, 0, len(s.keys))
	for _, b := range s.keys {
		breakers = append(breakers, b)
	}
	s.mu.Unlock()
	if len(breakers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SyncInterval)
	defer cancel()
	// One GET per key in one pipeline: keys have their own hash tags, so
	// on a cluster they may live on different nodes (go-redis splits the
	// pipeline by node).
	cmds := make([]*redis.StringCmd, len(breakers))
	_, err := s.cfg.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, b := range breakers {
			cmds[i] = p.Get(ctx, b.key)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		s.errs.Add(1)
		return // keep the last known verdicts; they expire on their own
	}
	for i, b := range breakers {
		v, err := cmds[i].Result()
		if err != nil {
			b.openUntil.Store(0)
			continue
		}
		until, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		b.openUntil.Store(until)
	}
}
