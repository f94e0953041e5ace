package consul_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is a logger for tests that expect failures.
var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// events records registration events.
type events struct {
	mu  sync.Mutex
	all []registry.Event
}

func (e *events) hook(ctx context.Context, ev registry.Event) {
	if ctx == nil {
		panic("event hook called with a nil context")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) count(kind registry.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.all))
	for _, ev := range e.all {
		out = append(out, ev.Kind.String())
	}
	return out
}

// check fails the test on an event without backend "consul", an instance
// and a time, or whose error does not match its kind.
func (e *events) check(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Backend != "consul" || ev.Instance == nil || ev.Time.IsZero() {
			t.Errorf("event %+v: want backend consul, an instance and a time", ev)
		}
		failed := ev.Kind == registry.RegisterFailed || ev.Kind == registry.HeartbeatFailed || ev.Kind == registry.DeregisterFailed
		if failed != (ev.Err != nil) {
			t.Errorf("event %v with error %v", ev.Kind, ev.Err)
		}
	}
}

// newRegistry returns a Registry on the test agent, closed at cleanup.
func newRegistry(t *testing.T, c *testenv.Consul, opts ...consul.Option) *consul.Registry {
	t.Helper()
	lg := quiet
	if os.Getenv("CONSUL_TEST_LOG") != "" {
		lg = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	r, err := consul.New(c.Addr, append([]consul.Option{consul.WithLogger(lg)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// listed reports whether the agent lists the instance among the passing
// instances of its service (read over HTTP, without a client library).
func listed(t *testing.T, c *testenv.Consul, name, id string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := c.Services(ctx, name, true)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(got, func(s testenv.ConsulService) bool { return s.ID == id })
}

// waitListed waits until the instance is (or is not) listed as passing and
// returns how long that took; it fails the test after within.
func waitListed(t *testing.T, c *testenv.Consul, name, id string, want bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if listed(t, c, name, id) == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("instance %s listed=%v not reached within %v", id, want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
