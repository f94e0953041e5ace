// Package registrytest helps test code that uses the registry package: an
// in-memory registry ([Registry], both a registry.Registrar and a
// registry.Discovery, with switches to make it fail or hang), and a
// conformance suite ([Run]) that every backend runs against its real server.
package registrytest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gingov/gingov/registry"
)

// ErrStopped is returned by a watcher's Next after Stop.
var ErrStopped = errors.New("registrytest: watcher stopped")

// Call is one Register or Deregister call the in-memory registry received.
type Call struct {
	Op       string // "register" or "deregister"
	Instance registry.ServiceInstance
	Err      error // what the call returned
	At       time.Time
}

// Hook runs at the start of a Register or Deregister call; an error fails
// the call (nothing changes). A hook may block: it gets the call's context.
type Hook func(ctx context.Context, ins *registry.ServiceInstance) error

// Registry is an in-memory registry. The zero value is not usable; use
// [New]. It is safe for concurrent use. Instances are keyed by service
// name and InstanceID; GetService and watchers return copies.
type Registry struct {
	mu         sync.Mutex
	services   map[string]map[string]*registry.ServiceInstance
	versions   map[string]uint64
	changed    map[string]chan struct{} // closed and replaced on every change
	onRegister Hook
	onDereg    Hook
	watchErr   error
	broken     chan struct{} // closed by BreakWatchers
	calls      []Call
}

// New returns an empty in-memory registry.
func New() *Registry {
	return &Registry{
		services: map[string]map[string]*registry.ServiceInstance{},
		versions: map[string]uint64{},
		changed:  map[string]chan struct{}{},
		broken:   make(chan struct{}),
	}
}

// Backend names the backend in events: "memory".
func (r *Registry) Backend() string { return "memory" }

// Close does nothing and returns nil: the in-memory registry holds no
// connection. It makes Registry a [registry.Registry].
func (r *Registry) Close() error { return nil }

// SetRegisterHook installs fn (nil removes it) in front of Register.
func (r *Registry) SetRegisterHook(fn Hook) {
	r.mu.Lock()
	r.onRegister = fn
	r.mu.Unlock()
}

// SetDeregisterHook installs fn (nil removes it) in front of Deregister.
func (r *Registry) SetDeregisterHook(fn Hook) {
	r.mu.Lock()
	r.onDereg = fn
	r.mu.Unlock()
}

// SetWatchError makes Watch and GetService fail with err (nil: work again),
// as an unreachable registry would.
func (r *Registry) SetWatchError(err error) {
	r.mu.Lock()
	r.watchErr = err
	r.mu.Unlock()
}

// BreakWatchers makes every open watcher's Next fail, as a lost connection
// would; watchers made afterwards work.
func (r *Registry) BreakWatchers() {
	r.mu.Lock()
	close(r.broken)
	r.broken = make(chan struct{})
	r.mu.Unlock()
}

// Calls returns the Register and Deregister calls so far, in order.
func (r *Registry) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Register implements registry.Registrar.
func (r *Registry) Register(ctx context.Context, ins *registry.ServiceInstance) error {
	err := r.call(ctx, "register", ins)
	if err == nil {
		r.mu.Lock()
		set := r.services[ins.Name]
		if set == nil {
			set = map[string]*registry.ServiceInstance{}
			r.services[ins.Name] = set
		}
		set[ins.InstanceID()] = Clone(ins)
		r.notifyLocked(ins.Name)
		r.mu.Unlock()
	}
	return err
}

// Deregister implements registry.Registrar.
func (r *Registry) Deregister(ctx context.Context, ins *registry.ServiceInstance) error {
	err := r.call(ctx, "deregister", ins)
	if err == nil {
		r.mu.Lock()
		if set := r.services[ins.Name]; set != nil {
			delete(set, ins.InstanceID())
			r.notifyLocked(ins.Name)
		}
		r.mu.Unlock()
	}
	return err
}

func (r *Registry) call(ctx context.Context, op string, ins *registry.ServiceInstance) error {
	r.mu.Lock()
	hook := r.onRegister
	if op == "deregister" {
		hook = r.onDereg
	}
	r.mu.Unlock()
	var err error
	if ins == nil {
		err = errors.New("registrytest: nil instance")
	} else if err = ins.Validate(); err == nil {
		if hook != nil {
			err = hook(ctx, ins)
		}
		if err == nil {
			err = ctx.Err()
		}
	}
	c := Call{Op: op, Err: err, At: time.Now()}
	if ins != nil {
		c.Instance = *Clone(ins)
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return err
}

// Set replaces the instances of the named service (none: the service has
// no instances) and wakes its watchers.
func (r *Registry) Set(name string, instances ...*registry.ServiceInstance) {
	set := make(map[string]*registry.ServiceInstance, len(instances))
	for _, ins := range instances {
		c := Clone(ins)
		c.Name = name
		set[c.InstanceID()] = c
	}
	r.mu.Lock()
	r.services[name] = set
	r.notifyLocked(name)
	r.mu.Unlock()
}

func (r *Registry) notifyLocked(name string) {
	r.versions[name]++
	if ch := r.changed[name]; ch != nil {
		close(ch)
		delete(r.changed, name)
	}
}

// snapshotLocked returns a sorted copy of the named service's instances,
// its version, and a channel closed at the next change.
func (r *Registry) snapshotLocked(name string) ([]*registry.ServiceInstance, uint64, chan struct{}) {
	out := make([]*registry.ServiceInstance, 0, len(r.services[name]))
	for _, id := range slices.Sorted(maps.Keys(r.services[name])) {
		out = append(out, Clone(r.services[name][id]))
	}
	ch := r.changed[name]
	if ch == nil {
		ch = make(chan struct{})
		r.changed[name] = ch
	}
	return out, r.versions[name], ch
}

// GetService implements registry.Discovery.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.ServiceInstance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watchErr != nil {
		return nil, r.watchErr
	}
	out, _, _ := r.snapshotLocked(name)
	return out, nil
}

// Watch implements registry.Discovery.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watchErr != nil {
		return nil, r.watchErr
	}
	return &watcher{r: r, ctx: ctx, name: name, stop: make(chan struct{}), broken: r.broken, first: true}, nil
}

type watcher struct {
	r      *Registry
	ctx    context.Context
	name   string
	stop   chan struct{}
	once   sync.Once
	broken chan struct{}
	first  bool
	seen   uint64
}

// Next implements registry.Watcher. Call it from one goroutine at a time.
func (w *watcher) Next() ([]*registry.ServiceInstance, error) {
	for {
		select {
		case <-w.stop:
			return nil, ErrStopped
		case <-w.broken:
			return nil, errors.New("registrytest: watch broken")
		default:
		}
		if err := w.ctx.Err(); err != nil {
			return nil, err
		}
		w.r.mu.Lock()
		set, ver, ch := w.r.snapshotLocked(w.name)
		w.r.mu.Unlock()
		if w.first || ver != w.seen {
			w.first, w.seen = false, ver
			return set, nil
		}
		select {
		case <-ch:
		case <-w.stop:
		case <-w.broken:
		case <-w.ctx.Done():
		}
	}
}

// Stop implements registry.Watcher.
func (w *watcher) Stop() error {
	w.once.Do(func() { close(w.stop) })
	return nil
}

// Clone returns a deep copy of ins (nil for nil).
func Clone(ins *registry.ServiceInstance) *registry.ServiceInstance {
	if ins == nil {
		return nil
	}
	c := *ins
	c.Metadata = maps.Clone(ins.Metadata)
	return &c
}

var (
	_ registry.Registry  = (*Registry)(nil)
	_ registry.Registrar = (*Registry)(nil)
	_ registry.Discovery = (*Registry)(nil)
)
