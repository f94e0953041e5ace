package consul_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/consul"
)

// readyServer is an instance's HTTP server on loopback answering the
// readiness route with 200.
func readyServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != registry.DefaultReadinessPath {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// nextResults runs w.Next in a goroutine and delivers its answers until
// the test ends.
func nextResults(t *testing.T, w registry.Watcher) <-chan []*registry.ServiceInstance {
	t.Helper()
	ch := make(chan []*registry.ServiceInstance)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			set, err := w.Next()
			if err != nil {
				return
			}
			select {
			case ch <- set:
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		_ = w.Stop()
		<-ended
	})
	return ch
}

func hasID(set []*registry.ServiceInstance, id string) bool {
	return slices.ContainsFunc(set, func(ins *registry.ServiceInstance) bool { return ins.ID == id })
}

// TestAgentRestart kills the agent (SIGKILL) while an instance is
// registered and watched, keeps it down for two check intervals, and
// starts it again on the same ports: a -dev agent comes back without the
// service and with its raft index starting over. The instance must be
// listed again within one check interval (HTTP check) or TTL (TTL check)
// after the agent is back; meanwhile the watcher returns nothing (it keeps
// the last set), and afterwards it follows the new agent.
func TestAgentRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opt      consul.Option
		interval time.Duration
	}{
		{name: "HTTP check", opt: consul.WithHTTPCheck(registry.DefaultReadinessPath, checkInterval, 500*time.Millisecond), interval: checkInterval},
		{name: "TTL check", opt: consul.WithTTLCheck(2 * time.Second), interval: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.StartConsul(t)
			srv := readyServer(t)
			var evs events
			r := newRegistry(t, c, tc.opt, consul.WithTimeout(500*time.Millisecond),
				consul.WithWatchWait(5*time.Second), consul.WithOnEvent(evs.hook))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ins := &registry.ServiceInstance{ID: "orders-1", Name: "orders", Version: "v1", Address: srv.Listener.Addr().String()}
			if err := r.Register(ctx, ins); err != nil {
				t.Fatal(err)
			}
			waitListed(t, c, "orders", "orders-1", true, tc.interval)
			w, err := r.Watch(ctx, "orders")
			if err != nil {
				t.Fatal(err)
			}
			nexts := nextResults(t, w)
			if set := <-nexts; !hasID(set, "orders-1") {
				t.Fatalf("first Next = %v; want orders-1", set)
			}

			c.Kill()
			select {
			case set := <-nexts:
				t.Fatalf("Next returned %v while the agent was down; want the last set kept", set)
			case <-time.After(2 * tc.interval):
			}
			c.Restart(t)
			back := time.Now()
			took := waitListed(t, c, "orders", "orders-1", true, tc.interval)
			t.Logf("agent restart → re-registered and listed %v after the agent was ready (check interval %v; events %v)",
				took.Round(time.Millisecond), tc.interval, evs.kinds())
			// The watcher follows the new agent: it may have returned a set
			// without the instance (the agent back, the instance not yet),
			// and it returns a second instance registered now.
			ins2 := &registry.ServiceInstance{ID: "orders-2", Name: "orders", Version: "v1", Address: srv.Listener.Addr().String()}
			if err := r.Register(ctx, ins2); err != nil {
				t.Fatal(err)
			}
			deadline := time.After(consul.MaxBackoff + 2*time.Second)
			for found := false; !found; {
				select {
				case set := <-nexts:
					found = hasID(set, "orders-1") && hasID(set, "orders-2")
				case <-deadline:
					t.Fatal("the watcher did not follow the restarted agent")
				}
			}
			t.Logf("agent restart → watcher returns a new registration %v after the agent was ready", time.Since(back).Round(time.Millisecond))
			if evs.count(registry.HeartbeatFailed) == 0 || evs.count(registry.Registered) < 2 {
				t.Fatalf("events %v; want heartbeat_failed and a second registered", evs.kinds())
			}
			// It stays.
			time.Sleep(tc.interval + 500*time.Millisecond)
			if !listed(t, c, "orders", "orders-1") {
				t.Fatal("re-registered, then unlisted again")
			}
			evs.check(t)
		})
	}
}

// TestHungAgent freezes the agent (SIGSTOP): it accepts connections and
// answers nothing. Every call of the registry must return an error within
// its timeout, and a blocked Next must end at Stop.
func TestHungAgent(t *testing.T) {
	const timeout = 500 * time.Millisecond
	const slack = 400 * time.Millisecond // scheduling on a loaded machine
	c := testenv.StartConsul(t)
	srv := readyServer(t)
	var evs events
	r := newRegistry(t, c, consul.WithHTTPCheck(registry.DefaultReadinessPath, checkInterval, 500*time.Millisecond),
		consul.WithTimeout(timeout), consul.WithWatchWait(time.Second), consul.WithOnEvent(evs.hook))
	ctx := context.Background()
	ins := &registry.ServiceInstance{ID: "orders-1", Name: "orders", Address: srv.Listener.Addr().String()}
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	nexts := nextResults(t, w)
	<-nexts

	c.Pause(t)
	ins2 := &registry.ServiceInstance{ID: "orders-2", Name: "orders", Address: srv.Listener.Addr().String()}
	for _, call := range []struct {
		name string
		fn   func() error
	}{
		{"Register", func() error { return r.Register(ctx, ins2) }},
		{"GetService", func() error { _, err := r.GetService(ctx, "orders"); return err }},
		{"Deregister", func() error { return r.Deregister(ctx, ins) }},
	} {
		start := time.Now()
		err := call.fn()
		took := time.Since(start)
		t.Logf("%s against a hung agent: %v after %v", call.name, err, took.Round(time.Millisecond))
		if err == nil || took > timeout+slack {
			t.Errorf("%s = %v after %v; want an error within the %v timeout", call.name, err, took, timeout)
		}
	}
	select {
	case set := <-nexts:
		t.Fatalf("Next returned %v while the agent hung; want the last set kept", set)
	case <-time.After(time.Second + timeout + slack):
	}
	if evs.count(registry.RegisterFailed) == 0 || evs.count(registry.DeregisterFailed) != 1 {
		t.Fatalf("events %v; want register_failed and deregister_failed", evs.kinds())
	}
	c.Resume()
	evs.check(t)
}
