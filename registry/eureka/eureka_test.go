package eureka_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/eureka"
	"github.com/gingov/gingov/registry/registrytest"
)

// Short intervals so that the tests see heartbeats, evictions and polls in
// seconds: renew every second, lease 3 s (the test server evicts every
// second), watch every 200 ms.
const (
	testRenew = time.Second
	testLease = 3 * time.Second
	testPoll  = 200 * time.Millisecond
)

// eurekaEvents records what a Registry reports through WithOnEvent.
type eurekaEvents struct {
	mu   sync.Mutex
	list []registry.Event
}

func (ev *eurekaEvents) add(_ context.Context, e registry.Event) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.list = append(ev.list, e)
}

func (ev *eurekaEvents) count(kind registry.EventKind) int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	for _, e := range ev.list {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func (ev *eurekaEvents) last(kind registry.EventKind) (registry.Event, bool) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for i := len(ev.list) - 1; i >= 0; i-- {
		if ev.list[i].Kind == kind {
			return ev.list[i], true
		}
	}
	return registry.Event{}, false
}

// newEureka returns a client of urls with the short test intervals, closed
// at cleanup, and the events it reports.
func newEureka(t *testing.T, urls []string, opts ...eureka.Option) (*eureka.Registry, *eurekaEvents) {
	t.Helper()
	ev := &eurekaEvents{}
	all := append([]eureka.Option{
		eureka.WithRenewalInterval(testRenew),
		eureka.WithLeaseDuration(testLease),
		eureka.WithPollInterval(testPoll),
		eureka.WithTimeout(2 * time.Second),
		eureka.WithOnEvent(ev.add),
		eureka.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	e, err := eureka.New(urls, all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, ev
}

func eurekaCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eurekaWait polls cond every 50 ms until it holds or d passes, and returns
// how long it took.
func eurekaWait(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s not seen within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eurekaService is a lower-case service name unique to the test.
func eurekaService(t *testing.T) string {
	n := strings.ToLower(t.Name())
	n = strings.NewReplacer("/", "-", "_", "-").Replace(n)
	return "gingov-" + n
}

// TestEureka runs the checks that can share one server (the JVM takes
// seconds to start).
func TestEureka(t *testing.T) {
	srv := testenv.StartEureka(t)

	t.Run("Conformance", func(t *testing.T) {
		var events registrytest.Events
		e, _ := newEureka(t, []string{srv.URL}, eureka.WithOnEvent(events.OnEvent))
		registrytest.Run(t, e, e, registrytest.Options{
			Timeout: 10 * time.Second, NamePrefix: "gingov-eureka", Backend: "eureka", Events: &events,
		})
	})
	t.Run("RegisterVisible", func(t *testing.T) { testRegisterVisible(t, srv) })
	t.Run("Heartbeat", func(t *testing.T) { testHeartbeat(t, srv) })
	t.Run("SetStatus", func(t *testing.T) { testSetStatus(t, srv) })
	t.Run("Deregister", func(t *testing.T) { testDeregister(t, srv) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, srv) })
	t.Run("Failover", func(t *testing.T) { testFailover(t, srv) })
	t.Run("Close", func(t *testing.T) { testClose(t, srv) })
}

// testRegisterVisible: a registered instance shows up in the server's own
// API within 2 s, the way Spring Cloud looks at it.
func testRegisterVisible(t *testing.T, srv *testenv.Eureka) {
	e, ev := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	ins := &registry.ServiceInstance{
		ID: name + "-1", Name: name, Version: "v1.2.3", Address: "127.0.0.1:18080",
		Metadata: map[string]string{"zone": "a"}, Weight: 30,
	}
	if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = e.Deregister(context.Background(), ins) })
	app := strings.ToUpper(name)
	var got testenv.EurekaInstance
	took := eurekaWait(t, 2*time.Second, "the instance in GET /eureka/apps/"+app, func() bool {
		var ok bool
		got, ok = srv.Instance(t, app, ins.ID)
		return ok
	})
	t.Logf("visible after %v", took)
	checks := []struct{ field, got, want string }{
		{"app", got.App, app},
		{"vipAddress", got.VIPAddress, name},
		{"secureVipAddress", got.SecureVIPAddress, name},
		{"status", got.Status, "UP"},
		{"hostName", got.HostName, "127.0.0.1"},
		{"ipAddr", got.IPAddr, "127.0.0.1"},
		{"port", strconv.Itoa(got.Port.Port), "18080"},
		{"port @enabled", got.Port.Enabled, "true"},
		{"homePageUrl", got.HomePageURL, "http://127.0.0.1:18080/"},
		{"healthCheckUrl", got.HealthCheckURL, "http://127.0.0.1:18080/healthz"},
		{"dataCenterInfo.name", got.DataCenterInfo.Name, "MyOwn"},
		{"metadata.version", got.Metadata["version"], "v1.2.3"},
		{"metadata.weight", got.Metadata["weight"], "30"},
		{"metadata.zone", got.Metadata["zone"], "a"},
		{"leaseInfo.renewalIntervalInSecs", strconv.Itoa(got.LeaseInfo.RenewalIntervalInSecs), "1"},
		{"leaseInfo.durationInSecs", strconv.Itoa(got.LeaseInfo.DurationInSecs), "3"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if ev.count(registry.Registered) != 1 {
		t.Errorf("Registered events = %d, want 1", ev.count(registry.Registered))
	}
	if e, ok := ev.last(registry.Registered); ok && (e.Backend != "eureka" || e.Instance.ID != ins.ID || e.Time.IsZero()) {
		t.Errorf("Registered event = %+v", e)
	}
}

// testHeartbeat: heartbeats arrive (lastRenewalTimestamp advances) and keep
// the instance past its lease, while an instance registered without
// heartbeats is evicted.
func testHeartbeat(t *testing.T, srv *testenv.Eureka) {
	e, ev := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	app := strings.ToUpper(name)
	ins := &registry.ServiceInstance{ID: name + "-live", Name: name, Address: "127.0.0.1:18081"}
	if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = e.Deregister(context.Background(), ins) })

	// A second client registers a control instance with the same lease,
	// then stops its heartbeats (Close does not deregister).
	ctl, _ := newEureka(t, []string{srv.URL})
	dead := &registry.ServiceInstance{ID: name + "-dead", Name: name, Address: "127.0.0.1:18082"}
	if err := ctl.Register(eurekaCtx(t, 5*time.Second), dead); err != nil {
		t.Fatalf("Register control: %v", err)
	}
	_ = ctl.Close()

	first, ok := srv.Instance(t, app, ins.ID)
	if !ok {
		t.Fatal("instance not registered")
	}
	eurekaWait(t, 15*time.Second, "the eviction of the instance without heartbeats", func() bool {
		_, ok := srv.Instance(t, app, dead.ID)
		return !ok
	})
	now, ok := srv.Instance(t, app, ins.ID)
	if !ok {
		t.Fatal("the instance with heartbeats was evicted too")
	}
	if now.LeaseInfo.LastRenewalTimestamp <= first.LeaseInfo.LastRenewalTimestamp {
		t.Errorf("lastRenewalTimestamp %d did not advance from %d", now.LeaseInfo.LastRenewalTimestamp, first.LeaseInfo.LastRenewalTimestamp)
	}
	if n := ev.count(registry.HeartbeatFailed); n != 0 {
		t.Errorf("HeartbeatFailed events = %d with a healthy server", n)
	}
}

// testSetStatus: OUT_OF_SERVICE shows on the server and takes the instance
// out of discovery; UP brings it back.
func testSetStatus(t *testing.T, srv *testenv.Eureka) {
	e, _ := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	app := strings.ToUpper(name)
	a := &registry.ServiceInstance{ID: name + "-a", Name: name, Address: "127.0.0.1:18083"}
	b := &registry.ServiceInstance{ID: name + "-b", Name: name, Address: "127.0.0.1:18084"}
	for _, ins := range []*registry.ServiceInstance{a, b} {
		if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err != nil {
			t.Fatalf("Register: %v", err)
		}
		t.Cleanup(func() { _ = e.Deregister(context.Background(), ins) })
	}
	ids := func() []string {
		list, err := e.GetService(eurekaCtx(t, 5*time.Second), name)
		if err != nil {
			t.Fatalf("GetService: %v", err)
		}
		var out []string
		for _, s := range list {
			out = append(out, s.ID)
		}
		return out
	}
	eurekaWait(t, 2*time.Second, "both instances", func() bool { return len(ids()) == 2 })

	if err := e.SetStatus(eurekaCtx(t, 5*time.Second), a, eureka.OutOfService); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	eurekaWait(t, 2*time.Second, "OUT_OF_SERVICE on the server", func() bool {
		in, ok := srv.Instance(t, app, a.ID)
		return ok && in.Status == "OUT_OF_SERVICE"
	})
	if got := ids(); len(got) != 1 || got[0] != b.ID {
		t.Fatalf("GetService after OUT_OF_SERVICE = %v, want [%s]", got, b.ID)
	}
	// Heartbeats do not bring it back.
	time.Sleep(2 * testRenew)
	if got := ids(); len(got) != 1 {
		t.Fatalf("GetService two heartbeats later = %v, want [%s]", got, b.ID)
	}
	if err := e.SetStatus(eurekaCtx(t, 5*time.Second), a, eureka.Up); err != nil {
		t.Fatalf("SetStatus UP: %v", err)
	}
	eurekaWait(t, 2*time.Second, "both instances again", func() bool { return len(ids()) == 2 })
	if err := e.SetStatus(eurekaCtx(t, 5*time.Second), a, "MAYBE"); err == nil {
		t.Error("SetStatus(MAYBE) accepted")
	}
}

// testDeregister: the instance is gone within 2 s and its heartbeat does
// not bring it back.
func testDeregister(t *testing.T, srv *testenv.Eureka) {
	e, ev := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	app := strings.ToUpper(name)
	ins := &registry.ServiceInstance{ID: name + "-1", Name: name, Address: "127.0.0.1:18085"}
	if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Fatalf("Register: %v", err)
	}
	eurekaWait(t, 2*time.Second, "the instance", func() bool { _, ok := srv.Instance(t, app, ins.ID); return ok })
	if err := e.Deregister(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	took := eurekaWait(t, 2*time.Second, "the removal", func() bool { _, ok := srv.Instance(t, app, ins.ID); return !ok })
	t.Logf("gone after %v", took)
	time.Sleep(2*testRenew + 500*time.Millisecond)
	if _, ok := srv.Instance(t, app, ins.ID); ok {
		t.Fatal("the instance came back after Deregister (heartbeat still running?)")
	}
	if ev.count(registry.Deregistered) != 1 || ev.count(registry.Registered) != 1 {
		t.Errorf("events: %d registered, %d deregistered; want 1 and 1", ev.count(registry.Registered), ev.count(registry.Deregistered))
	}
	// Removing it again is not an error: the server no longer knows it.
	if err := e.Deregister(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Errorf("second Deregister: %v", err)
	}
}

// testWatch: a watcher sees a second instance appear, go out of service and
// disappear, each as one whole set, and nothing while nothing changes.
func testWatch(t *testing.T, srv *testenv.Eureka) {
	e, _ := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	a := &registry.ServiceInstance{ID: name + "-a", Name: name, Address: "127.0.0.1:18086", Version: "v1"}
	b := &registry.ServiceInstance{ID: name + "-b", Name: name, Address: "127.0.0.1:18087", Version: "v2"}
	if err := e.Register(eurekaCtx(t, 5*time.Second), a); err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = e.Deregister(context.Background(), a) })
	w, err := e.Watch(eurekaCtx(t, time.Minute), name)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	type result struct {
		ids []string
		err error
	}
	results := make(chan result)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			list, err := w.Next()
			var ids []string
			for _, s := range list {
				ids = append(ids, s.ID+"@"+s.Address+"/"+s.Version)
			}
			select {
			case results <- result{ids, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(done); _ = w.Stop(); wg.Wait() })
	next := func(want ...string) {
		t.Helper()
		select {
		case r := <-results:
			if r.err != nil || strings.Join(r.ids, ",") != strings.Join(want, ",") {
				t.Fatalf("Next = %v, %v; want %v", r.ids, r.err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Next did not return %v within 5s", want)
		}
	}
	aID, bID := a.ID+"@127.0.0.1:18086/v1", b.ID+"@127.0.0.1:18087/v2"
	next(aID)
	// Polls that find the same set return nothing.
	select {
	case r := <-results:
		t.Fatalf("Next returned %v, %v without a change", r.ids, r.err)
	case <-time.After(5 * testPoll):
	}
	if err := e.Register(eurekaCtx(t, 5*time.Second), b); err != nil {
		t.Fatalf("Register: %v", err)
	}
	next(aID, bID)
	if err := e.SetStatus(eurekaCtx(t, 5*time.Second), b, eureka.OutOfService); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	next(aID)
	if err := e.SetStatus(eurekaCtx(t, 5*time.Second), b, eureka.Up); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	next(aID, bID)
	if err := e.Deregister(eurekaCtx(t, 5*time.Second), b); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	next(aID)
	if err := w.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case r := <-results:
		if r.err == nil {
			t.Fatalf("Next after Stop = %v, nil error", r.ids)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after Stop")
	}
}

// testFailover: with a server answering 503 and a dead one before the live
// one, calls fail over to the live one, which is asked first afterwards.
func testFailover(t *testing.T, srv *testenv.Eureka) {
	dead := "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/eureka"
	// A server that answers 503 to everything, as one still starting does.
	var unavailable atomic.Int32
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		unavailable.Add(1)
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	e, ev := newEureka(t, []string{busy.URL + "/eureka", dead, srv.URL + "/"})
	name := eurekaService(t)
	ins := &registry.ServiceInstance{ID: name + "-1", Name: name, Address: "127.0.0.1:18088"}
	if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Fatalf("Register through the second server: %v", err)
	}
	if unavailable.Load() != 1 {
		t.Fatalf("the 503 server got %d requests, want 1", unavailable.Load())
	}
	list, err := e.GetService(eurekaCtx(t, 5*time.Second), name)
	if err != nil || len(list) != 1 || list[0].ID != ins.ID {
		t.Fatalf("GetService = %v, %v", list, err)
	}
	time.Sleep(2*testRenew + 500*time.Millisecond)
	if unavailable.Load() != 1 {
		t.Errorf("the 503 server got %d requests; the live server should be preferred once it answered", unavailable.Load())
	}
	if n := ev.count(registry.HeartbeatFailed); n != 0 {
		t.Errorf("HeartbeatFailed = %d: heartbeats did not fail over", n)
	}
	if err := e.Deregister(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if _, ok := srv.Instance(t, strings.ToUpper(name), ins.ID); ok {
		t.Fatal("still registered after Deregister")
	}

	// With no live server, calls fail and name the servers tried.
	only, _ := newEureka(t, []string{dead})
	err = only.Register(eurekaCtx(t, 5*time.Second), ins)
	if err == nil || !strings.Contains(err.Error(), dead) {
		t.Fatalf("Register with no live server = %v", err)
	}
}

// testClose: Close stops the heartbeats without deregistering (the lease
// then expires), and Register after Close fails.
func testClose(t *testing.T, srv *testenv.Eureka) {
	e, _ := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	app := strings.ToUpper(name)
	ins := &registry.ServiceInstance{ID: name + "-1", Name: name, Address: "127.0.0.1:18089"}
	if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err != nil {
		t.Fatalf("Register: %v", err)
	}
	w, err := e.Watch(eurekaCtx(t, time.Minute), name)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if _, err := w.Next(); err != nil {
		t.Fatalf("first Next: %v", err)
	}
	_ = e.Close()
	if _, ok := srv.Instance(t, app, ins.ID); !ok {
		t.Fatal("Close deregistered the instance")
	}
	if _, err := w.Next(); err == nil {
		t.Fatal("Next after Close returned no error")
	}
	if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err == nil {
		t.Fatal("Register after Close succeeded")
	}
	eurekaWait(t, 15*time.Second, "the lease to expire after Close", func() bool {
		_, ok := srv.Instance(t, app, ins.ID)
		return !ok
	})
}

// TestServerRestart: when the server dies, heartbeats fail and are
// reported; when it comes back empty, the instance is registered again
// within one renewal interval, with the status it had.
func TestServerRestart(t *testing.T) {
	srv := testenv.StartEureka(t)
	e, ev := newEureka(t, []string{srv.URL})
	name := eurekaService(t)
	app := strings.ToUpper(name)
	up := &registry.ServiceInstance{ID: name + "-up", Name: name, Address: "127.0.0.1:18090"}
	oos := &registry.ServiceInstance{ID: name + "-oos", Name: name, Address: "127.0.0.1:18091"}
	for _, ins := range []*registry.ServiceInstance{up, oos} {
		if err := e.Register(eurekaCtx(t, 5*time.Second), ins); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	if err := e.SetStatus(eurekaCtx(t, 5*time.Second), oos, eureka.OutOfService); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}

	srv.Kill()
	eurekaWait(t, 5*testRenew, "a HeartbeatFailed event", func() bool { return ev.count(registry.HeartbeatFailed) > 0 })
	if hb, _ := ev.last(registry.HeartbeatFailed); hb.Err == nil || hb.Backend != "eureka" {
		t.Errorf("HeartbeatFailed event = %+v", hb)
	}
	// It keeps trying every interval: two more rounds for both instances.
	failed := ev.count(registry.HeartbeatFailed)
	eurekaWait(t, 4*testRenew, "heartbeats retried every interval", func() bool {
		return ev.count(registry.HeartbeatFailed) >= failed+4
	})
	registered := ev.count(registry.Registered)

	srv.Restart(t)
	took := eurekaWait(t, testRenew+2*time.Second, "the instance back after the restart", func() bool {
		_, ok := srv.Instance(t, app, up.ID)
		return ok
	})
	t.Logf("registered again %v after the server was ready", took)
	if took > testRenew+time.Second {
		t.Errorf("back after %v, want within one renewal interval (%v) and a second of slack", took, testRenew)
	}
	eurekaWait(t, testRenew+2*time.Second, "the out-of-service instance back", func() bool {
		_, ok := srv.Instance(t, app, oos.ID)
		return ok
	})
	if in, _ := srv.Instance(t, app, oos.ID); in.Status != "OUT_OF_SERVICE" {
		t.Errorf("status after re-registration = %s, want OUT_OF_SERVICE", in.Status)
	}
	if in, _ := srv.Instance(t, app, up.ID); in.Status != "UP" {
		t.Errorf("status after re-registration = %s, want UP", in.Status)
	}
	if ev.count(registry.Registered) < registered+2 {
		t.Errorf("Registered events %d, want at least %d", ev.count(registry.Registered), registered+2)
	}
	list, err := e.GetService(eurekaCtx(t, 5*time.Second), name)
	if err != nil || len(list) != 1 || list[0].ID != up.ID {
		t.Fatalf("GetService after restart = %v, %v; want only %s", list, err, up.ID)
	}
	for _, ins := range []*registry.ServiceInstance{up, oos} {
		if err := e.Deregister(eurekaCtx(t, 5*time.Second), ins); err != nil {
			t.Errorf("Deregister: %v", err)
		}
	}
}

// TestNewValidation: bad configuration fails at construction with an
// error naming what is wrong.
func TestNewValidation(t *testing.T) {
	ok := "http://127.0.0.1:8761/eureka"
	cases := []struct {
		name string
		urls []string
		opts []eureka.Option
		want string
	}{
		{"no URL", nil, nil, "eureka: no server URL"},
		{"bad scheme", []string{"ftp://x/eureka"}, nil, "scheme must be http or https"},
		{"no host", []string{"http:///eureka"}, nil, "has no host"},
		{"unparsable", []string{"http://[::1"}, nil, "server URL 0"},
		{"second bad", []string{ok, "127.0.0.1:8761"}, nil, "server URL 1"},
		{"query", []string{ok + "?x=1"}, nil, "query or fragment"},
		{"nil option", []string{ok}, []eureka.Option{eureka.WithTimeout(time.Second), nil}, "eureka: option 2 is nil"},
		{"renewal", []string{ok}, []eureka.Option{eureka.WithRenewalInterval(0)}, "eureka: WithRenewalInterval: "},
		{"lease", []string{ok}, []eureka.Option{eureka.WithLeaseDuration(500 * time.Millisecond)}, "eureka: WithLeaseDuration: "},
		{"lease below renewal", []string{ok}, []eureka.Option{
			eureka.WithRenewalInterval(10 * time.Second), eureka.WithLeaseDuration(10 * time.Second),
		}, "must be longer than the renewal interval"},
		{"poll", []string{ok}, []eureka.Option{eureka.WithPollInterval(-1)}, "eureka: WithPollInterval: "},
		{"timeout", []string{ok}, []eureka.Option{eureka.WithTimeout(0)}, "eureka: WithTimeout: "},
		{"client", []string{ok}, []eureka.Option{eureka.WithHTTPClient(nil)}, "eureka: WithHTTPClient: nil client"},
		{"health path", []string{ok}, []eureka.Option{eureka.WithHealthPath("healthz")}, "eureka: WithHealthPath: "},
		{"nil hook", []string{ok}, []eureka.Option{eureka.WithOnEvent(nil)}, "eureka: WithOnEvent: nil function"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := eureka.New(c.urls, c.opts...)
			if err == nil {
				_ = e.Close()
				t.Fatal("New accepted it")
			}
			if !strings.HasPrefix(err.Error(), "eureka: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want one containing %q", err, c.want)
			}
		})
	}
	e, err := eureka.New([]string{ok, "https://eureka.example:8443/eureka/"})
	if err != nil {
		t.Fatalf("New with defaults: %v", err)
	}
	if e.Backend() != "eureka" {
		t.Errorf("Backend() = %q", e.Backend())
	}
	// Invalid instances are refused before any request.
	ctx := context.Background()
	if err := e.Register(ctx, &registry.ServiceInstance{Name: "x", Address: "0.0.0.0:80"}); err == nil {
		t.Error("Register accepted 0.0.0.0")
	}
	if err := e.Deregister(ctx, &registry.ServiceInstance{}); err == nil {
		t.Error("Deregister accepted an instance without a name")
	}
	if _, err := e.GetService(ctx, ""); err == nil {
		t.Error("GetService accepted an empty name")
	}
	if err := e.Close(); err != nil || e.Close() != nil {
		t.Errorf("Close: %v", err)
	}
	if err := e.Register(ctx, &registry.ServiceInstance{Name: "x", Address: "127.0.0.1:80"}); !errors.Is(err, eureka.ErrClosed) {
		t.Errorf("Register after Close = %v", err)
	}
}

// TestContext: calls end when the caller's context does, even
// against a server that accepts connections and never answers.
func TestContext(t *testing.T) {
	hang := make(chan struct{})
	srv := &http.Server{
		ReadHeaderTimeout: time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}),
	}
	ln := eurekaListen(t)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { close(hang); _ = srv.Close() })
	e, _ := newEureka(t, []string{"http://" + ln.Addr().String() + "/eureka"}, eureka.WithTimeout(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.Register(ctx, &registry.ServiceInstance{Name: "slow", Address: "127.0.0.1:1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Register = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Register returned after %v", d)
	}
}

func eurekaListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
