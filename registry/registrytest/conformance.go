package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
)

// DefaultTimeout bounds how long [Run] waits for a change to become visible.
const DefaultTimeout = 30 * time.Second

// Options tunes [Run] to what a backend can store. The zero value checks
// everything with [DefaultTimeout].
type Options struct {
	// Timeout bounds how long a registration or removal may take to show
	// in GetService and watchers (0: DefaultTimeout).
	Timeout time.Duration
	// NamePrefix starts every service name (default "gingov-conformance");
	// a random suffix keeps runs against one server apart. Names are
	// lower case; returned names are compared case-insensitively.
	NamePrefix string
	// SkipID skips the check that an instance comes back with the ID it
	// was registered with.
	SkipID bool
	// SkipWeight skips the check that Weight round-trips.
	SkipWeight bool
	// Backend is the name the backend must return from Backend() ("nacos",
	// "etcd", ...). Empty: any non-empty lower-case name.
	Backend string
	// Events, when set, must receive the backend's events (pass
	// Events.OnEvent to the backend's WithOnEvent): Run then checks that a
	// registration reports Registered and a deregistration Deregistered,
	// and that every event the backend reported during the run is of a
	// known kind, names the backend, carries its instance and time, and
	// has an error exactly when its kind is a failure. Every backend's own
	// conformance test sets it.
	Events *Events
}

// Events records the events of a backend, for [Run]. The zero value is
// ready to use; it is safe for concurrent use.
type Events struct {
	mu     sync.Mutex
	events []registry.Event
}

// OnEvent records e; pass it to the backend's WithOnEvent.
func (e *Events) OnEvent(_ context.Context, ev registry.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
}

// All returns the events recorded so far, oldest first.
func (e *Events) All() []registry.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// Run checks that reg and disc (usually one backend pointed at one real
// server) behave as the registry package expects:
//
//   - a registered instance is returned by GetService with its ID, Name
//     (case-insensitively), Address, Version, Metadata and Weight;
//   - registering the same instance twice leaves one instance;
//   - a deregistered instance disappears; an unknown service has no
//     instances and no error;
//   - a watcher's Next first returns the current set, then follows
//     registrations and removals with whole sets;
//   - Stop, and cancelling Watch's context, end a blocked Next with an error;
//   - reg has a Backend() string method that names it (Options.Backend),
//     and, with Options.Events, reports the events described there.
//
// Each check is a subtest with its own service name; every instance is
// deregistered at cleanup.
func Run(t *testing.T, reg registry.Registrar, disc registry.Discovery, opts Options) {
	t.Helper()
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.NamePrefix == "" {
		opts.NamePrefix = "gingov-conformance"
	}
	c := &conformance{reg: reg, disc: disc, opts: opts, run: randomSuffix(t)}
	t.Run("Backend", c.backend)
	t.Run("RegisterGet", c.registerGet)
	t.Run("RegisterTwice", c.registerTwice)
	t.Run("Deregister", c.deregister)
	t.Run("UnknownService", c.unknownService)
	t.Run("Watch", c.watch)
	t.Run("WatchStop", c.watchStop)
	t.Run("WatchContext", c.watchContext)
	t.Run("Events", c.events)
}

// backendName is reg's Backend(), or "" when it has no such method.
func (c *conformance) backendName() string {
	if b, ok := c.reg.(interface{ Backend() string }); ok {
		return b.Backend()
	}
	return ""
}

func (c *conformance) backend(t *testing.T) {
	if _, ok := c.reg.(interface{ Backend() string }); !ok {
		t.Fatalf("%T has no Backend() string method: registry.Server would label it by its Go type", c.reg)
	}
	name := c.backendName()
	switch {
	case c.opts.Backend != "" && name != c.opts.Backend:
		t.Errorf("Backend() = %q, want %q", name, c.opts.Backend)
	case name == "" || name != strings.ToLower(name) || strings.ContainsAny(name, " *./"):
		t.Errorf("Backend() = %q; want a lower-case name such as \"nacos\"", name)
	}
}

// events registers and deregisters one instance and checks what the
// backend reported, then every event of the run.
func (c *conformance) events(t *testing.T) {
	if c.opts.Events == nil {
		t.Skip("no Options.Events")
	}
	name := c.name(t)
	ins := c.instance(name, 1)
	c.register(t, ins)
	ctx := c.ctx(t)
	if err := c.reg.Deregister(ctx, ins); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	backend := c.backendName()
	var registered, deregistered bool
	for _, e := range c.opts.Events.All() {
		if e.Instance != nil && e.Instance.InstanceID() == ins.InstanceID() {
			switch e.Kind {
			case registry.Registered:
				registered = true
			case registry.Deregistered:
				deregistered = registered
			}
		}
	}
	if !registered || !deregistered {
		t.Errorf("events of %s: registered %v, then deregistered %v; want both (events %s)",
			ins.InstanceID(), registered, deregistered, kinds(c.opts.Events.All()))
	}
	for i, e := range c.opts.Events.All() {
		failure := false
		switch e.Kind {
		case registry.Registered, registry.Deregistered:
		case registry.RegisterFailed, registry.HeartbeatFailed, registry.DeregisterFailed:
			failure = true
		default:
			t.Errorf("event %d: unknown kind %d", i, e.Kind)
		}
		if e.Backend != backend {
			t.Errorf("event %d (%s): Backend %q, want %q as Backend() says", i, e.Kind, e.Backend, backend)
		}
		if e.Instance == nil || e.Instance.Name == "" {
			t.Errorf("event %d (%s): no instance", i, e.Kind)
		}
		if e.Time.IsZero() {
			t.Errorf("event %d (%s): zero Time", i, e.Kind)
		}
		if failure != (e.Err != nil) {
			t.Errorf("event %d (%s): Err %v", i, e.Kind, e.Err)
		}
	}
}

func kinds(evs []registry.Event) string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Kind.String()
	}
	return fmt.Sprint(out)
}

type conformance struct {
	reg  registry.Registrar
	disc registry.Discovery
	opts Options
	run  string
}

func randomSuffix(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("registrytest: random name: %v", err)
	}
	return hex.EncodeToString(b[:])
}

// name is the service name of one subtest.
func (c *conformance) name(t *testing.T) string {
	sub := t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]
	return strings.ToLower(c.opts.NamePrefix + "-" + sub + "-" + c.run)
}

// instance returns instance i of service name, with every field set.
func (c *conformance) instance(name string, i int) *registry.ServiceInstance {
	ins := &registry.ServiceInstance{
		ID:       name + "-" + strconv.Itoa(i),
		Name:     name,
		Version:  "v1." + strconv.Itoa(i),
		Address:  "127.0.0.1:" + strconv.Itoa(20000+i),
		Metadata: map[string]string{"zone": "zone-" + strconv.Itoa(i), "canary": "false"},
		Weight:   10 * (i + 1),
	}
	return ins
}

func (c *conformance) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// register registers ins and deregisters it at cleanup.
func (c *conformance) register(t *testing.T, ins *registry.ServiceInstance) {
	t.Helper()
	if err := c.reg.Register(c.ctx(t), ins); err != nil {
		t.Fatalf("Register(%s): %v", ins.InstanceID(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		defer cancel()
		_ = c.reg.Deregister(ctx, ins)
	})
}

// eventually polls GetService until ok accepts the set, or fails the test.
func (c *conformance) eventually(t *testing.T, name, what string, ok func([]*registry.ServiceInstance) bool) []*registry.ServiceInstance {
	t.Helper()
	deadline := time.Now().Add(c.opts.Timeout)
	var last []*registry.ServiceInstance
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
		last, lastErr = c.disc.GetService(ctx, name)
		cancel()
		if lastErr == nil && ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GetService(%s): %s not seen within %s; last answer %s, error %v", name, what, c.opts.Timeout, describe(last), lastErr)
	return nil
}

// check reports the differences between a returned instance and the
// registered one.
func (c *conformance) check(t *testing.T, got, want *registry.ServiceInstance) {
	t.Helper()
	if got == nil {
		t.Errorf("instance %s: nil", want.InstanceID())
		return
	}
	if !c.opts.SkipID && got.ID != want.ID {
		t.Errorf("instance %s: ID %q", want.InstanceID(), got.ID)
	}
	if !strings.EqualFold(got.Name, want.Name) {
		t.Errorf("instance %s: Name %q, want %q", want.InstanceID(), got.Name, want.Name)
	}
	if got.Version != want.Version {
		t.Errorf("instance %s: Version %q, want %q", want.InstanceID(), got.Version, want.Version)
	}
	for k, v := range want.Metadata {
		if got.Metadata[k] != v {
			t.Errorf("instance %s: Metadata[%q] = %q, want %q (metadata %v)", want.InstanceID(), k, got.Metadata[k], v, got.Metadata)
		}
	}
	if !c.opts.SkipWeight && got.EffectiveWeight() != want.EffectiveWeight() {
		t.Errorf("instance %s: Weight %d, want %d", want.InstanceID(), got.Weight, want.Weight)
	}
}

func byAddress(set []*registry.ServiceInstance, addr string) *registry.ServiceInstance {
	for _, ins := range set {
		if ins != nil && ins.Address == addr {
			return ins
		}
	}
	return nil
}

// addresses returns the sorted addresses of set.
func addresses(set []*registry.ServiceInstance) []string {
	out := make([]string, 0, len(set))
	for _, ins := range set {
		if ins != nil {
			out = append(out, ins.Address)
		}
	}
	slices.Sort(out)
	return out
}

func describe(set []*registry.ServiceInstance) string {
	return fmt.Sprint(addresses(set))
}

func same(want ...*registry.ServiceInstance) func([]*registry.ServiceInstance) bool {
	w := addresses(want)
	return func(set []*registry.ServiceInstance) bool { return slices.Equal(addresses(set), w) }
}

func (c *conformance) registerGet(t *testing.T) {
	name := c.name(t)
	a, b := c.instance(name, 0), c.instance(name, 1)
	c.register(t, a)
	c.register(t, b)
	set := c.eventually(t, name, "both instances", same(a, b))
	c.check(t, byAddress(set, a.Address), a)
	c.check(t, byAddress(set, b.Address), b)
	if !maps.Equal(a.Metadata, map[string]string{"zone": "zone-0", "canary": "false"}) {
		t.Errorf("Register changed the caller's Metadata: %v", a.Metadata)
	}
}

func (c *conformance) registerTwice(t *testing.T) {
	name := c.name(t)
	a := c.instance(name, 0)
	c.register(t, a)
	c.register(t, a)
	set := c.eventually(t, name, "the instance", same(a))
	c.check(t, set[0], a)
	// It stays one instance.
	time.Sleep(min(time.Second, c.opts.Timeout/10))
	c.eventually(t, name, "one instance", same(a))
}

func (c *conformance) deregister(t *testing.T) {
	name := c.name(t)
	a, b := c.instance(name, 0), c.instance(name, 1)
	c.register(t, a)
	c.register(t, b)
	c.eventually(t, name, "both instances", same(a, b))
	if err := c.reg.Deregister(c.ctx(t), a); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	c.eventually(t, name, "the removal of "+a.Address, same(b))
	if err := c.reg.Deregister(c.ctx(t), b); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	c.eventually(t, name, "no instances (empty set, nil error)", same())
}

func (c *conformance) unknownService(t *testing.T) {
	set, err := c.disc.GetService(c.ctx(t), c.name(t))
	if err != nil || len(set) != 0 {
		t.Fatalf("GetService(unknown) = %s, %v; want no instances and no error", describe(set), err)
	}
}

// nexts runs w.Next in a goroutine and delivers its answers.
type nexts struct {
	ch   chan nextResult
	done chan struct{}
}

type nextResult struct {
	set []*registry.ServiceInstance
	err error
}

func follow(t *testing.T, w registry.Watcher) *nexts {
	n := &nexts{ch: make(chan nextResult), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			set, err := w.Next()
			select {
			case n.ch <- nextResult{set, err}:
			case <-n.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(n.done)
		_ = w.Stop()
		wg.Wait()
	})
	return n
}

// until reads Next answers until ok accepts one, or fails the test.
func (c *conformance) until(t *testing.T, n *nexts, what string, ok func([]*registry.ServiceInstance) bool) []*registry.ServiceInstance {
	t.Helper()
	timer := time.NewTimer(c.opts.Timeout)
	defer timer.Stop()
	var last []*registry.ServiceInstance
	for {
		select {
		case r := <-n.ch:
			if r.err != nil {
				t.Fatalf("Next: %v (waiting for %s)", r.err, what)
			}
			if ok(r.set) {
				return r.set
			}
			last = r.set
		case <-timer.C:
			t.Fatalf("watcher: %s not seen within %s; last set %s", what, c.opts.Timeout, describe(last))
			return nil
		}
	}
}

func (c *conformance) watch(t *testing.T) {
	name := c.name(t)
	a, b := c.instance(name, 0), c.instance(name, 1)
	c.register(t, a)
	c.eventually(t, name, "the instance", same(a))
	w, err := c.disc.Watch(c.ctx(t), name)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	n := follow(t, w)
	// The first Next is the current set.
	select {
	case r := <-n.ch:
		if r.err != nil || !same(a)(r.set) {
			t.Fatalf("first Next = %s, %v; want %s", describe(r.set), r.err, a.Address)
		}
		c.check(t, r.set[0], a)
	case <-time.After(c.opts.Timeout):
		t.Fatalf("first Next did not return within %s", c.opts.Timeout)
	}
	c.register(t, b)
	set := c.until(t, n, "the registration of "+b.Address, same(a, b))
	c.check(t, byAddress(set, b.Address), b)
	if err := c.reg.Deregister(c.ctx(t), a); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	c.until(t, n, "the removal of "+a.Address, same(b))
	if err := c.reg.Deregister(c.ctx(t), b); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	c.until(t, n, "an empty set", same())
}

// blockedNext starts a watcher on a service with one instance, reads the
// first set, and returns a channel with the result of the next Next.
func (c *conformance) blockedNext(t *testing.T, ctx context.Context) (registry.Watcher, chan error) {
	name := c.name(t)
	a := c.instance(name, 0)
	c.register(t, a)
	c.eventually(t, name, "the instance", same(a))
	w, err := c.disc.Watch(ctx, name)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	first := make(chan error, 1)
	go func() { _, err := w.Next(); first <- err }()
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("first Next: %v", err)
		}
	case <-time.After(c.opts.Timeout):
		_ = w.Stop()
		<-first
		t.Fatalf("first Next did not return within %s", c.opts.Timeout)
	}
	blocked := make(chan error, 1)
	go func() {
		for {
			_, err := w.Next()
			if err != nil {
				blocked <- err
				return
			}
		}
	}()
	return w, blocked
}

func (c *conformance) watchStop(t *testing.T) {
	w, blocked := c.blockedNext(t, c.ctx(t))
	time.Sleep(100 * time.Millisecond)
	if err := w.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("Next after Stop returned no error")
		}
	case <-time.After(c.opts.Timeout):
		t.Fatalf("Next still blocked %s after Stop", c.opts.Timeout)
	}
	if err := w.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func (c *conformance) watchContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, blocked := c.blockedNext(t, ctx)
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("Next after the context ended returned no error")
		}
	case <-time.After(c.opts.Timeout):
		t.Fatalf("Next still blocked %s after the context ended", c.opts.Timeout)
	}
}
