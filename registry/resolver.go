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
	// DefaultEmptyProtection is how long a service that had instances
	// keeps its last ones when the registry answers an empty set (see
	// [WithEmptyProtection]): a restarted registry knows no instance until
	// each registers again, which takes up to a renewal interval plus a
	// poll (Eureka's defaults: 30 s each, but the watch sees the set again
	// within one poll of the restart's empty answer), a reconnection for
	// Nacos, a keep-alive for etcd and Consul.
	DefaultEmptyProtection = 30 * time.Second
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
	emptyGrace  time.Duration
	onEvent     func(context.Context, Event)
	onEventSet  bool
	logger      *slog.Logger
}

// newResolverConfig applies opts over the defaults and checks the result.
func newResolverConfig(opts []ResolverOption) (resolverConfig, error) {
	c := resolverConfig{initTimeout: DefaultInitTimeout, retryMin: DefaultWatchRetryMin, retryMax: DefaultWatchRetryMax,
		emptyGrace: DefaultEmptyProtection}
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
	case c.emptyGrace < 0:
		return c, fmt.Errorf("registry: WithEmptyProtection: duration must be >= 0, got %s", c.emptyGrace)
	case c.onEventSet && c.onEvent == nil:
		return c, errors.New("registry: WithOnEvent: nil function")
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

// WithEmptyProtection sets how long a watched service that had instances
// keeps serving its last ones when the registry answers an empty set
// (default [DefaultEmptyProtection]; 0 disables the protection; negative
// is an error). A registry that restarts, or fails over to a node that
// has not caught up, answers an empty set until the instances register
// again; without the protection every call to the service fails with 503
// UNAVAILABLE meanwhile. The protection starts at the first empty set (one
// WARN line, one [EmptyHeld] event), ends as soon as a non-empty set
// arrives, and expires after d: the service then has no instances (one
// WARN line, one [EmptyAccepted] event), so a service whose instances
// really all went away answers 503 again within d. Instances that went
// away meanwhile fail their calls: the transport's retries and
// per-instance breakers route around them while others answer. An empty
// first answer, or one after the protection expired, is taken as is.
// The same holds when every instance fails its health check (a registry
// that lists only passing instances, such as Consul, then answers an
// empty set): the last instances keep their traffic, as a proxy's panic
// threshold would, rather than the service having none.
func WithEmptyProtection(d time.Duration) ResolverOption {
	return resolverOption(func(c *resolverConfig) { c.emptyGrace = d })
}

// Resolver keeps the instances of the services it is asked about, fed by
// one watch per service: a lookup reads memory, never the registry. The
// first lookup of a service starts its watch and waits (bounded) for the
// first set; when a watch fails the last set stays in use while the watch
// is re-established with backoff. An empty set from the registry, for a
// service that had instances, is not taken at once: the last instances
// stay in use for a bounded time ([WithEmptyProtection]), since that is
// what a restarted registry answers until the instances register again.
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

	protMu sync.Mutex  // guards the empty-set protection below
	held   *time.Timer // ends the protection; nil while none
	epoch  uint64      // counts protections, so that a stale timer does nothing
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
		s.protMu.Lock()
		if s.held != nil {
			s.held.Stop()
			s.held = nil
		}
		s.protMu.Unlock()
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
				r.receive(s, set)
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

// receive installs a set from the watch, unless it is empty while the
// service has instances: then the last ones stay for the protection's
// grace period, or until a non-empty set arrives.
func (r *Resolver) receive(s *service, set []*ServiceInstance) {
	s.protMu.Lock()
	defer s.protMu.Unlock()
	if usable(set) {
		if s.held != nil {
			s.held.Stop()
			s.held = nil
			s.epoch++
			r.cfg.logger.LogAttrs(r.ctx, slog.LevelInfo, "registry: the registry lists instances again, empty-set protection ended",
				slog.String("service", s.name), slog.Int("instances", len(set)))
		}
		s.update(set)
		return
	}
	if s.held != nil {
		return // protected already: the deadline stays
	}
	prev := s.set.Load()
	if r.cfg.emptyGrace <= 0 || prev == nil || len(prev.nodes) == 0 || r.ctx.Err() != nil {
		s.update(set)
		return
	}
	s.epoch++
	epoch, grace := s.epoch, r.cfg.emptyGrace
	r.cfg.logger.LogAttrs(r.ctx, slog.LevelWarn, "registry: the registry answered no instances, keeping the last ones",
		slog.String("service", s.name), slog.Int("instances", len(prev.nodes)), slog.Duration("for", grace))
	r.event(s.name, EmptyHeld)
	s.held = time.AfterFunc(grace, func() {
		s.protMu.Lock()
		defer s.protMu.Unlock()
		if s.held == nil || s.epoch != epoch {
			return
		}
		s.held = nil
		s.epoch++
		s.update(nil)
		r.cfg.logger.LogAttrs(r.ctx, slog.LevelWarn, "registry: the registry still answers no instances, the service has none",
			slog.String("service", s.name), slog.Duration("after", grace))
		r.event(s.name, EmptyAccepted)
	})
}

// usable reports whether set has an instance update would keep.
func usable(set []*ServiceInstance) bool {
	for _, ins := range set {
		if ins != nil && ins.Address != "" {
			return true
		}
	}
	return false
}

// event reports a discovery event to the WithOnEvent hook.
func (r *Resolver) event(service string, kind EventKind) {
	if r.cfg.onEvent == nil {
		return
	}
	r.cfg.onEvent(r.ctx, Event{Backend: backendName(r.disc), Kind: kind, Service: service, Time: time.Now()})
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
