package registry_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/registrytest"
)

// syncBuffer is a log sink safe for the resolver's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

// emptyFixture is a resolver over the in-memory registry, with its log
// and events recorded.
type emptyFixture struct {
	reg    *registrytest.Registry
	r      *registry.Resolver
	log    *syncBuffer
	events registrytest.Events
}

func newEmptyFixture(t *testing.T, opts ...registry.ResolverOption) *emptyFixture {
	t.Helper()
	f := &emptyFixture{reg: registrytest.New(), log: &syncBuffer{}}
	opts = append([]registry.ResolverOption{registry.WithLogger(logging.New(f.log, nil)),
		registry.WithOnEvent(f.events.OnEvent)}, opts...)
	r, err := registry.NewResolver(f.reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	f.r = r
	return f
}

// addrs returns what the resolver answers now, once the watch has
// delivered what the registry holds.
func (f *emptyFixture) addrs(t *testing.T) string {
	t.Helper()
	synctest.Wait()
	set, err := f.r.Instances(t.Context(), "orders")
	if err != nil {
		t.Fatalf("Instances: %v", err)
	}
	return addrsOf(set)
}

func (f *emptyFixture) kinds() string {
	var s []string
	for _, e := range f.events.All() {
		if e.Service != "orders" || e.Backend != "memory" || e.Instance != nil || e.Time.IsZero() {
			return "bad event " + e.Kind.String()
		}
		s = append(s, e.Kind.String())
	}
	return strings.Join(s, ",")
}

const (
	heldLine    = "keeping the last ones"
	expiredLine = "the service has none"
)

// An empty set for a service that had instances keeps the last ones for
// the grace period, however many empty sets follow (one WARN, one event,
// the deadline not pushed back); then it is taken as is.
func TestResolverEmptyProtectionExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFixture(t, registry.WithEmptyProtection(10*time.Second))
		f.reg.Set("orders", ins("127.0.0.1:1"), ins("127.0.0.1:2"))
		count := f.r.Counter("orders")
		if got := f.addrs(t); got != "127.0.0.1:1,127.0.0.1:2" {
			t.Fatalf("before: %q", got)
		}
		f.reg.Set("orders") // the registry restarted
		if got := f.addrs(t); got != "127.0.0.1:1,127.0.0.1:2" {
			t.Fatalf("empty set taken at once: %q", got)
		}
		time.Sleep(5 * time.Second)
		f.reg.Set("orders", &registry.ServiceInstance{Name: "orders"}) // no address: as empty
		f.reg.Set("orders")
		time.Sleep(5*time.Second - time.Millisecond)
		if got := f.addrs(t); got != "127.0.0.1:1,127.0.0.1:2" || count() != 2 {
			t.Fatalf("1 ms before the grace ends: %q, count %d", got, count())
		}
		if n := f.log.count(heldLine); n != 1 {
			t.Fatalf("%d WARN lines for the protection, want 1:\n%s", n, f.log.b.String())
		}
		if k := f.kinds(); k != "empty_held" {
			t.Fatalf("events %q", k)
		}
		time.Sleep(time.Millisecond)
		if got := f.addrs(t); got != "" || count() != 1 {
			t.Fatalf("after the grace: %q, count %d", got, count())
		}
		if k := f.kinds(); k != "empty_held,empty_accepted" {
			t.Fatalf("events %q", k)
		}
		if n := f.log.count(expiredLine); n != 1 {
			t.Fatalf("%d WARN lines for the expiry, want 1:\n%s", n, f.log.b.String())
		}
		// Empty again: nothing to protect.
		f.reg.Set("orders")
		time.Sleep(time.Minute)
		if got, k := f.addrs(t), f.kinds(); got != "" || k != "empty_held,empty_accepted" {
			t.Fatalf("empty after empty: %q, events %q", got, k)
		}
		// Instances again, then empty: a new protection.
		f.reg.Set("orders", ins("127.0.0.1:3"))
		if got := f.addrs(t); got != "127.0.0.1:3" {
			t.Fatalf("instances back: %q", got)
		}
		f.reg.Set("orders")
		if got, k := f.addrs(t), f.kinds(); got != "127.0.0.1:3" || k != "empty_held,empty_accepted,empty_held" {
			t.Fatalf("second protection: %q, events %q", got, k)
		}
	})
}

// The protection ends as soon as a non-empty set arrives: that set is
// used at once, and the grace period's end changes nothing.
func TestResolverEmptyProtectionDroppedOnInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFixture(t) // the default grace
		f.reg.Set("orders", ins("127.0.0.1:1"), ins("127.0.0.1:2"))
		if got := f.addrs(t); got != "127.0.0.1:1,127.0.0.1:2" {
			t.Fatalf("before: %q", got)
		}
		f.reg.Set("orders")
		time.Sleep(registry.DefaultEmptyProtection / 2)
		if got := f.addrs(t); got != "127.0.0.1:1,127.0.0.1:2" {
			t.Fatalf("within the default grace: %q", got)
		}
		f.reg.Set("orders", ins("127.0.0.1:2")) // re-registered; :1 went away meanwhile
		if got := f.addrs(t); got != "127.0.0.1:2" {
			t.Fatalf("instances back: %q", got)
		}
		time.Sleep(registry.DefaultEmptyProtection)
		if got, k := f.addrs(t), f.kinds(); got != "127.0.0.1:2" || k != "empty_held" {
			t.Fatalf("after the grace: %q, events %q", got, k)
		}
		if n := f.log.count(expiredLine); n != 0 {
			t.Fatalf("expiry logged after the instances came back:\n%s", f.log.b.String())
		}
		// The next empty set starts a full grace period again.
		f.reg.Set("orders")
		time.Sleep(registry.DefaultEmptyProtection - time.Millisecond)
		if got := f.addrs(t); got != "127.0.0.1:2" {
			t.Fatalf("second protection: %q", got)
		}
		time.Sleep(time.Millisecond)
		if got, k := f.addrs(t), f.kinds(); got != "" || k != "empty_held,empty_held,empty_accepted" {
			t.Fatalf("second protection expired: %q, events %q", got, k)
		}
	})
}

// A watch that fails and comes back with an empty set (the registry
// restarted) is protected too.
func TestResolverEmptyProtectionAfterWatchError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFixture(t, registry.WithWatchRetry(10*time.Millisecond, 20*time.Millisecond),
			registry.WithEmptyProtection(5*time.Second))
		f.reg.Set("orders", ins("127.0.0.1:1"))
		if got := f.addrs(t); got != "127.0.0.1:1" {
			t.Fatalf("before: %q", got)
		}
		f.reg.SetWatchError(errors.New("connection refused"))
		f.reg.BreakWatchers()
		f.reg.Set("orders")
		time.Sleep(time.Second) // down for longer than the retry wait
		f.reg.SetWatchError(nil)
		time.Sleep(100 * time.Millisecond) // the re-watch, which answers the empty set
		if got, k := f.addrs(t), f.kinds(); got != "127.0.0.1:1" || k != "empty_held" {
			t.Fatalf("registry back empty: %q, events %q", got, k)
		}
		time.Sleep(5 * time.Second)
		if got := f.addrs(t); got != "" {
			t.Fatalf("after the grace: %q", got)
		}
	})
}

// 0 disables the protection: an empty set is taken at once. A first
// answer that is empty is taken as is whatever the setting.
func TestResolverEmptyProtectionDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFixture(t, registry.WithEmptyProtection(0))
		f.reg.Set("orders", ins("127.0.0.1:1"))
		if got := f.addrs(t); got != "127.0.0.1:1" {
			t.Fatalf("before: %q", got)
		}
		f.reg.Set("orders")
		if got, k := f.addrs(t), f.kinds(); got != "" || k != "" || f.log.count(heldLine) != 0 {
			t.Fatalf("disabled: %q, events %q, log %s", got, k, f.log.b.String())
		}

		g := newEmptyFixture(t)
		if got, k := g.addrs(t), g.kinds(); got != "" || k != "" {
			t.Fatalf("first answer empty: %q, events %q", got, k)
		}
	})
}

// Close stops a protection in progress; its timer does nothing after.
func TestResolverEmptyProtectionClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newEmptyFixture(t, registry.WithEmptyProtection(time.Second))
		f.reg.Set("orders", ins("127.0.0.1:1"))
		f.addrs(t)
		f.reg.Set("orders")
		f.addrs(t)
		_ = f.r.Close()
		time.Sleep(2 * time.Second)
		if k := f.kinds(); k != "empty_held" {
			t.Fatalf("events after Close: %q", k)
		}
	})
}

func TestResolverOptionErrors(t *testing.T) {
	reg := registrytest.New()
	for _, tc := range []struct {
		opt  registry.ResolverOption
		want string
	}{
		{registry.WithEmptyProtection(-time.Second), "registry: WithEmptyProtection: duration must be >= 0, got -1s"},
		{registry.WithOnEvent(nil), "registry: WithOnEvent: nil function"},
	} {
		if _, err := registry.NewResolver(reg, tc.opt); err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// While the protection holds, an instance of the kept set that went away
// meanwhile refuses its connections: an idempotent call is retried on
// another instance and succeeds (TestTransportRetriesIdempotent covers
// the retry itself).
func TestResolverEmptyProtectionStaleInstance(t *testing.T) {
	u := newUpstreams(t, ok)
	reg := registrytest.New()
	reg.Set("orders", ins(deadAddr(t)), ins(u.addr(0)))
	res := newResolver(t, reg, registry.WithEmptyProtection(time.Minute))
	tr, err := registry.NewTransport(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := tr.Client()
	if good, errs := hammer(t, c, "http://orders/ping", 10, 1, nil); good != 10 || len(errs) != 0 {
		t.Fatalf("before: %d ok, errors %v", good, errs)
	}
	reg.Set("orders") // the registry restarted
	time.Sleep(50 * time.Millisecond)
	if good, errs := hammer(t, c, "http://orders/ping", 40, 2, nil); good != 40 || len(errs) != 0 {
		t.Fatalf("protected: %d of 40 ok, errors %v", good, errs)
	}
}
