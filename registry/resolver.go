package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
)

// Defaults of [Resolver].
const (
	// DefaultInitTimeout bounds how long the first lookup of a service
	// waits for the registry's first answer.
	DefaultInitTimeout = 5 * time.Second
	// DefaultWatchRetryMin and DefaultWatchRetryMax bound the wait before
	// a failed watch is re-established; it doubles, with jitter.
	DefaultWatchRetryMin = 200 * time.Millisecond
	DefaultWatchRetryMax = 10 * time.Second
)

// ErrResolverClosed is returned by lookups after Close.
var ErrResolverClosed = errors.New("registry: resolver closed")

// ResolverOption configures [NewResolver].
type ResolverOption interface{ applyResolver(*resolverConfig) }

type resolverOption func(*resolverConfig)

func (f resolverOption) applyResolver(c *resolverConfig) { f(c) }

type resolverConfig struct {
	initTimeout time.Duration
	retryMin    time.Duration
	retryMax    time.Duration
	logger      *slog.Logger
}

// newResolverConfig applies opts over the defaults and checks the result.
func newResolverConfig(opts []ResolverOption) (resolverConfig, error) {
	c := resolverConfig{initTimeout: DefaultInitTimeout, retryMin: DefaultWatchRetryMin, retryMax: DefaultWatchRetryMax}
	for i, o := range opts {
		if o == nil {
			return c, fmt.Errorf("registry: option %d is nil", i+1)
		}
		o.applyResolver(&c)
	}
	switch {
	case c.initTimeout <= 0:
		return c, positive("WithInitTimeout", c.initTimeout)
	case c.retryMin <= 0 || c.retryMax < c.retryMin:
		return c, fmt.Errorf("registry: WithWatchRetry: need 0 < min <= max, got %s and %s", c.retryMin, c.retryMax)
	}
	c.logger = logging.OrDefault(c.logger)
	return c, nil
}

// WithInitTimeout bounds how long the first lookup of a service waits for
// the registry's first set of instances (default [DefaultInitTimeout];
// must be > 0).
func WithInitTimeout(d time.Duration) ResolverOption {
	return resolverOption(func(c *resolverConfig) { c.initTimeout = d })
}

// WithWatchRetry sets the wait before re-establishing a failed watch: from
// minWait doubling to maxWait, with jitter, as [Backoff] computes it
// (defaults [DefaultWatchRetryMin], [DefaultWatchRetryMax]; need 0 <
// minWait <= maxWait). The doubling starts again once a watch delivers a
// set.
func WithWatchRetry(minWait, maxWait time.Duration) ResolverOption {
	return resolverOption(func(c *resolverConfig) { c.retryMin, c.retryMax = minWait, maxWait })
}

// Resolver keeps the instances of the services it is asked about, fed by
// one watch per service: a lookup reads memory, never the registry. The
// first lookup of a service starts its watch and waits (bounded) for the
// first set; when a watch fails the last set stays in use while the watch
// is re-established with backoff. An empty set from the registry is taken
// as is: the service has no instances.
//
// A Resolver is safe for concurrent use; Close stops its watches.
type Resolver struct {
	disc   Discovery
	cfg    resolverConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	services map[string]*service
	closed   bool
}

// service is the cached state of one watched service.
type service struct {
	name    string
	ready   chan struct{} // closed at the first set
	once    sync.Once
	set     atomic.Pointer[nodeSet]
	watcher Watcher    // current watcher, guarded by Resolver.mu
	wrrMu   sync.Mutex // guards the weighted round robin state of all its sets
}

// NewResolver returns a Resolver over disc.
func NewResolver(disc Discovery, opts ...ResolverOption) (*Resolver, error) {
	if disc == nil {
		return nil, errors.New("registry: NewResolver: nil Discovery")
	}
	cfg, err := newResolverConfig(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Resolver{disc: disc, cfg: cfg, ctx: ctx, cancel: cancel, services: map[string]*service{}}, nil
}

// Close stops every watch and waits for them to end.
func (r *Resolver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cancel()
	for _, s := range r.services {
		if s.watcher != nil {
			_ = s.watcher.Stop()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// Instances returns the instances of the named service from the cache.
// The first call for a service waits for the registry's first answer, at
// most the init timeout or until ctx ends. The slice and the instances are
// shared: do not modify them. An error is an *errcode.Error (503
// UNAVAILABLE) whose cause says what failed.
func (r *Resolver) Instances(ctx context.Context, name string) ([]*ServiceInstance, error) {
	ns, err := r.nodes(ctx, name)
	if err != nil {
		return nil, err
	}
	return ns.instances, nil
}

// Counter returns a function that reports how many instances the named
// service has, at least 1, without blocking: before the first answer it
// reports 1. It starts watching the service at once. Use it to share a
// fleet-wide budget, e.g. ratelimit.FailLocalFunc(res.Counter("orders")).
func (r *Resolver) Counter(name string) func() int {
	s, err := r.service(name)
	if err != nil {
		return func() int { return 1 }
	}
	return func() int {
		if ns := s.set.Load(); ns != nil {
			return max(1, len(ns.nodes))
		}
		return 1
	}
}

// service returns the state of name, starting its watch on first use.
func (r *Resolver) service(name string) (*service, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrResolverClosed
	}
	s := r.services[name]
	if s == nil {
		s = &service{name: name, ready: make(chan struct{})}
		r.services[name] = s
		r.wg.Add(1)
		go r.watch(s)
	}
	return s, nil
}

// nodes returns the current node set of name, waiting for the first one.
func (r *Resolver) nodes(ctx context.Context, name string) (*nodeSet, error) {
	s, err := r.service(name)
	if err != nil {
		return nil, errcode.Unavailable.Wrap(err)
	}
	if ns := s.set.Load(); ns != nil {
		return ns, nil
	}
	if err := ctx.Err(); err != nil { // decided before the wait, where select would pick at random
		return nil, err
	}
	t := time.NewTimer(r.cfg.initTimeout)
	defer t.Stop()
	select {
	case <-s.ready:
		return s.set.Load(), nil
	case <-t.C:
		return nil, errcode.Unavailable.Wrap(fmt.Errorf("registry: no answer from the registry about %q within %s", name, r.cfg.initTimeout))
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.ctx.Done():
		return nil, errcode.Unavailable.Wrap(ErrResolverClosed)
	}
}

// watch follows one service until the resolver closes.
func (r *Resolver) watch(s *service) {
	defer r.wg.Done()
	bo := Backoff{Min: r.cfg.retryMin, Max: r.cfg.retryMax}
	failures := 0 // since the last set received
	for {
		w, err := r.disc.Watch(r.ctx, s.name)
		if err == nil {
			if !r.setWatcher(s, w) {
				_ = w.Stop()
				return
			}
			for {
				var set []*ServiceInstance
				if set, err = w.Next(); err != nil {
					break
				}
				s.update(set)
				failures = 0
			}
			_ = w.Stop()
			r.setWatcher(s, nil)
		}
		if r.ctx.Err() != nil {
			return
		}
		sleep := bo.Delay(failures)
		failures++
		r.cfg.logger.LogAttrs(r.ctx, slog.LevelWarn, "registry: watch failed, keeping the last instances",
			slog.String("service", s.name), slog.Duration("retry_in", sleep), slog.String("error", err.Error()))
		t := time.NewTimer(sleep)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// setWatcher records s's current watcher; false once the resolver closed.
func (r *Resolver) setWatcher(s *service, w Watcher) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed && w != nil {
		return false
	}
	s.watcher = w
	return true
}

// update installs a new set of instances, keeping the load statistics of
// the instances that stay. Instances without an address, and repeated
// addresses, are dropped.
func (s *service) update(instances []*ServiceInstance) {
	old := map[string]*stats{}
	if prev := s.set.Load(); prev != nil {
		for _, n := range prev.nodes {
			old[n.addr] = n.stats
		}
	}
	ns := &nodeSet{wrrMu: &s.wrrMu}
	seen := make(map[string]bool, len(instances))
	for _, ins := range instances {
		if ins == nil || ins.Address == "" || seen[ins.Address] {
			continue
		}
		seen[ins.Address] = true
		st := old[ins.Address]
		if st == nil {
			st = &stats{}
		}
		ns.instances = append(ns.instances, ins)
		ns.nodes = append(ns.nodes, &node{ins: ins, addr: ins.Address, weight: int64(ins.EffectiveWeight()), stats: st})
	}
	s.set.Store(ns)
	s.once.Do(func() { close(s.ready) })
}
