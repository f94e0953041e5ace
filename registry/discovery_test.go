package registry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/registrytest"
)

var quietResolver = registry.WithLogger(logging.New(io.Discard, nil))

func newResolver(t *testing.T, d registry.Discovery, opts ...registry.ResolverOption) *registry.Resolver {
	t.Helper()
	r, err := registry.NewResolver(d, append([]registry.ResolverOption{quietResolver}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func addrsOf(set []*registry.ServiceInstance) string {
	var s []string
	for _, ins := range set {
		s = append(s, ins.Address)
	}
	return strings.Join(s, ",")
}

// eventuallyAddrs waits until the resolver answers want.
func eventuallyAddrs(t *testing.T, r *registry.Resolver, name, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		set, err := r.Instances(t.Context(), name)
		if got = addrsOf(set); err == nil && got == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("Instances(%s) = %q, want %q", name, got, want)
}

func ins(addr string, kv ...string) *registry.ServiceInstance {
	md := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		md[kv[i]] = kv[i+1]
	}
	return &registry.ServiceInstance{Address: addr, Metadata: md}
}

// The resolver follows the watch: instances that appear and disappear
// are seen; a broken watch keeps the last set and is re-established.
func TestResolverFollowsWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := registrytest.New()
		reg.Set("orders", ins("127.0.0.1:1"))
		r := newResolver(t, reg, registry.WithWatchRetry(10*time.Millisecond, 20*time.Millisecond))
		eventuallyAddrs(t, r, "orders", "127.0.0.1:1")
		reg.Set("orders", ins("127.0.0.1:1"), ins("127.0.0.1:2"))
		eventuallyAddrs(t, r, "orders", "127.0.0.1:1,127.0.0.1:2")
		reg.Set("orders", ins("127.0.0.1:2"))
		eventuallyAddrs(t, r, "orders", "127.0.0.1:2")

		// The registry becomes unreachable: the last set stays.
		reg.SetWatchError(errors.New("connection refused"))
		reg.BreakWatchers()
		time.Sleep(100 * time.Millisecond) // several failed re-watches
		eventuallyAddrs(t, r, "orders", "127.0.0.1:2")
		// It comes back: the re-established watch sees changes again.
		reg.SetWatchError(nil)
		reg.Set("orders", ins("127.0.0.1:3"))
		eventuallyAddrs(t, r, "orders", "127.0.0.1:3")
		// An empty set keeps the last instances for the default grace
		// period, then it is taken as is.
		reg.Set("orders")
		time.Sleep(registry.DefaultEmptyProtection - time.Millisecond)
		eventuallyAddrs(t, r, "orders", "127.0.0.1:3")
		time.Sleep(time.Millisecond)
		eventuallyAddrs(t, r, "orders", "")
	})
}

// The first lookup waits for the first answer, bounded; the counter
// reports 1 until it knows better.
func TestResolverFirstLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := registrytest.New()
		reg.SetWatchError(errors.New("connection refused"))
		r := newResolver(t, reg, registry.WithInitTimeout(100*time.Millisecond), registry.WithWatchRetry(10*time.Millisecond, 10*time.Millisecond))
		count := r.Counter("orders")
		if n := count(); n != 1 {
			t.Fatalf("count before any answer = %d", n)
		}
		start := time.Now()
		_, err := r.Instances(t.Context(), "orders")
		if took := time.Since(start); took != 100*time.Millisecond {
			t.Fatalf("first lookup took %s with a 100ms init timeout", took)
		}
		if e := errcode.From(err); e.Code() != errcode.Unavailable || !strings.Contains(err.Error(), `"orders"`) {
			t.Fatalf("first lookup error %v", err)
		}
		reg.SetWatchError(nil)
		reg.Set("orders", ins("127.0.0.1:1"), ins("127.0.0.1:2"), ins("127.0.0.1:3"))
		time.Sleep(10 * time.Millisecond) // the next re-watch
		synctest.Wait()
		if n := count(); n != 3 {
			t.Fatalf("count = %d, want 3", n)
		}
		// A cancelled lookup returns the context's error.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := r.Instances(ctx, "other"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled lookup: %v", err)
		}
		_ = r.Close()
		if _, err := r.Instances(t.Context(), "orders"); !errors.Is(err, registry.ErrResolverClosed) {
			t.Fatalf("lookup after Close: %v", err)
		}
	})
}

// watchCounter records when the resolver (re-)establishes its watches.
type watchCounter struct {
	*registrytest.Registry
	mu  sync.Mutex
	ats []time.Time
}

func (w *watchCounter) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w.mu.Lock()
	w.ats = append(w.ats, time.Now())
	w.mu.Unlock()
	return w.Registry.Watch(ctx, name)
}

func (w *watchCounter) gaps() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(w.ats); i++ {
		out = append(out, w.ats[i].Sub(w.ats[i-1]))
	}
	return out
}

// A failing watch is retried with the jittered doubling of
// registry.Backoff, capped, and the doubling starts over once a watch
// delivers a set.
func TestResolverWatchBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := &watchCounter{Registry: registrytest.New()}
		reg.SetWatchError(errors.New("connection refused"))
		r := newResolver(t, reg, registry.WithWatchRetry(100*time.Millisecond, 400*time.Millisecond),
			registry.WithInitTimeout(time.Hour))
		r.Counter("orders") // starts the watch
		time.Sleep(2 * time.Second)
		gaps := reg.gaps()
		if len(gaps) < 5 {
			t.Fatalf("%d re-watches in 2 s: %v", len(gaps), gaps)
		}
		for i, g := range gaps {
			base := min(100*time.Millisecond<<i, 400*time.Millisecond)
			if g < base/2 || g > base {
				t.Fatalf("wait %d = %s, want in [%s, %s]; all: %v", i, g, base/2, base, gaps)
			}
		}
		// A working watch resets the doubling: the next failure waits
		// the first, shortest wait again.
		reg.SetWatchError(nil)
		reg.Set("orders", ins("127.0.0.1:1"))
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(reg.gaps()); n != len(gaps)+1 {
			t.Fatalf("%d re-watches after recovery, want 1", n-len(gaps))
		}
		reg.mu.Lock()
		reg.ats = []time.Time{time.Now()} // the break
		reg.mu.Unlock()
		reg.SetWatchError(errors.New("connection refused"))
		reg.BreakWatchers()
		time.Sleep(time.Second)
		after := reg.gaps()
		if len(after) < 2 || after[0] < 50*time.Millisecond || after[0] > 100*time.Millisecond ||
			after[1] < 100*time.Millisecond || after[1] > 200*time.Millisecond {
			t.Fatalf("waits after a recovered watch failed again: %v, want them from [50ms, 100ms] again", after)
		}
	})
}

// upstreams are real loopback servers that count their hits.
type upstreams struct {
	servers []*httptest.Server
	hits    []atomic.Int64
}

// newUpstreams starts one server per handler; each answers its index.
func newUpstreams(t *testing.T, handlers ...http.HandlerFunc) *upstreams {
	u := &upstreams{hits: make([]atomic.Int64, len(handlers))}
	for i, h := range handlers {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.hits[i].Add(1)
			h(w, r)
		}))
		t.Cleanup(s.Close)
		u.servers = append(u.servers, s)
	}
	return u
}

func (u *upstreams) addr(i int) string { return strings.TrimPrefix(u.servers[i].URL, "http://") }

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func sleepy(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { time.Sleep(d); ok(w, r) }
}

func failing(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }

// hammer sends n GET requests to url from workers goroutines; it returns
// how many got a 2xx and the errors.
func hammer(t *testing.T, c *http.Client, url string, n, workers int, hdr http.Header) (okCount int64, errs []error) {
	t.Helper()
	var mu sync.Mutex
	var good atomic.Int64
	var wg sync.WaitGroup
	per := n / workers
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
				for k, v := range hdr {
					req.Header[k] = v
				}
				resp, err := c.Do(req)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 300 {
					good.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return good.Load(), errs
}

// clientFor builds a discovery client for the instances.
func clientFor(t *testing.T, next http.RoundTripper, set []*registry.ServiceInstance, opts ...registry.TransportOption) *http.Client {
	t.Helper()
	reg := registrytest.New()
	reg.Set("orders", set...)
	if next == nil {
		tr := &http.Transport{MaxIdleConnsPerHost: 16}
		t.Cleanup(tr.CloseIdleConnections)
		next = tr
	}
	tr, err := registry.NewTransport(newResolver(t, reg), next, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Client()
}

// P2C spreads equal instances' load.
func TestTransportP2CSpreads(t *testing.T) {
	u := newUpstreams(t, ok, ok, ok)
	c := clientFor(t, nil, []*registry.ServiceInstance{ins(u.addr(0)), ins(u.addr(1)), ins(u.addr(2))})
	good, errs := hammer(t, c, "http://orders/ping", 900, 8, nil)
	if good != 896 || len(errs) != 0 { // 8 workers x 112
		t.Fatalf("%d ok, errors %v", good, errs)
	}
	for i := range u.hits {
		if h := u.hits[i].Load(); h < 896/10 {
			t.Errorf("instance %d got %d of 896 requests", i, h)
		}
	}
	t.Logf("P2C spread: %d %d %d", u.hits[0].Load(), u.hits[1].Load(), u.hits[2].Load())
}

// P2C steers away from a slow instance.
func TestTransportP2CAvoidsSlow(t *testing.T) {
	u := newUpstreams(t, ok, ok, sleepy(40*time.Millisecond))
	c := clientFor(t, nil, []*registry.ServiceInstance{ins(u.addr(0)), ins(u.addr(1)), ins(u.addr(2))})
	good, errs := hammer(t, c, "http://orders/ping", 400, 4, nil)
	if good != 400 || len(errs) != 0 {
		t.Fatalf("%d ok, errors %v", good, errs)
	}
	slow := u.hits[2].Load()
	t.Logf("P2C with one 40ms instance: %d %d %d", u.hits[0].Load(), u.hits[1].Load(), slow)
	if slow > 400/10 {
		t.Fatalf("the slow instance got %d of 400 requests", slow)
	}
}

// Smooth weighted round robin gives each instance its weight's share.
func TestTransportWeightedRoundRobin(t *testing.T) {
	u := newUpstreams(t, ok, ok, ok)
	set := []*registry.ServiceInstance{ins(u.addr(0)), ins(u.addr(1)), ins(u.addr(2))}
	set[0].Weight, set[1].Weight, set[2].Weight = 10, 20, 30
	c := clientFor(t, nil, set, registry.WithBalancer(registry.WeightedRoundRobin()))
	if good, errs := hammer(t, c, "http://orders/ping", 600, 1, nil); good != 600 || len(errs) != 0 {
		t.Fatalf("%d ok, errors %v", good, errs)
	}
	for i, want := range []int64{100, 200, 300} {
		if h := u.hits[i].Load(); h != want {
			t.Errorf("instance %d (weight %d) got %d, want %d", i, set[i].Weight, h, want)
		}
	}
}

// An instance whose breaker is open is avoided; when every breaker is
// open, the breaker's error comes back, mapped to 503 CIRCUIT_OPEN.
func TestTransportAvoidsOpenBreaker(t *testing.T) {
	var allFail atomic.Bool
	maybe := func(w http.ResponseWriter, r *http.Request) {
		if allFail.Load() {
			failing(w, r)
			return
		}
		ok(w, r)
	}
	u := newUpstreams(t, maybe, maybe, failing)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	cb, err := circuitbreaker.NewTransport(base, circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5, OpenTimeout: time.Minute}),
		circuitbreaker.WithLogger(logging.New(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	// Round robin: without breaker avoidance the failing instance would
	// get a third of the requests.
	c := clientFor(t, cb, []*registry.ServiceInstance{ins(u.addr(0)), ins(u.addr(1)), ins(u.addr(2))},
		registry.WithBalancer(registry.WeightedRoundRobin()))
	good, errs := hammer(t, c, "http://orders/ping", 300, 1, nil)
	if len(errs) != 0 {
		t.Fatalf("errors %v", errs)
	}
	bad := u.hits[2].Load()
	if !cb.Open(u.addr(2)) || bad > 10 || good != 300-bad {
		t.Fatalf("failing instance got %d requests (open %v), %d ok", bad, cb.Open(u.addr(2)), good)
	}

	allFail.Store(true)
	hammer(t, c, "http://orders/ping", 300, 1, nil)
	if !cb.Open(u.addr(0)) || !cb.Open(u.addr(1)) {
		t.Fatal("breakers did not open")
	}
	_, errs = hammer(t, c, "http://orders/ping", 1, 1, nil)
	if len(errs) != 1 || !errors.Is(errs[0], circuitbreaker.ErrOpen) || errcode.From(errs[0]).Code() != errcode.CircuitOpen {
		t.Fatalf("all open: errors %v", errs)
	}
}

// Canary routing: the header selects the labelled subset, falling back
// to the stable set.
func TestTransportCanary(t *testing.T) {
	u := newUpstreams(t, ok, ok, ok)
	set := []*registry.ServiceInstance{ins(u.addr(0)), ins(u.addr(1)), ins(u.addr(2), "lane", "blue")}
	set[0].Version, set[1].Version, set[2].Version = "v1", "v1", "v2"
	hits := func() [3]int64 {
		var h [3]int64
		for i := range h {
			h[i] = u.hits[i].Swap(0)
		}
		return h
	}
	stable := clientFor(t, nil, set, registry.WithCanary(registry.Canary{Stable: "v1"}))
	send := func(c *http.Client, hdr http.Header) [3]int64 {
		if good, errs := hammer(t, c, "http://orders/ping", 60, 2, hdr); good != 60 || len(errs) != 0 {
			t.Fatalf("%d ok, errors %v", good, errs)
		}
		return hits()
	}
	if h := send(stable, http.Header{"X-Canary": {"v2"}}); h[2] != 60 {
		t.Errorf("X-Canary: v2 went to %v", h)
	}
	if h := send(stable, nil); h[2] != 0 || h[0] == 0 || h[1] == 0 {
		t.Errorf("no header went to %v, want the stable v1 instances", h)
	}
	if h := send(stable, http.Header{"X-Canary": {"v9"}}); h[2] != 0 {
		t.Errorf("X-Canary: v9 (no such instance) went to %v, want the stable set", h)
	}
	// Without a stable label, unlabelled traffic goes everywhere; any
	// metadata label can be the selector.
	lanes := clientFor(t, nil, set, registry.WithCanary(registry.Canary{Header: "x-lane", Label: "lane"}),
		registry.WithBalancer(registry.WeightedRoundRobin()))
	if h := send(lanes, http.Header{"X-Lane": {"blue"}}); h[2] != 60 {
		t.Errorf("X-Lane: blue went to %v", h)
	}
	if h := send(lanes, nil); h != [3]int64{20, 20, 20} {
		t.Errorf("no header went to %v, want all instances", h)
	}
	// A filter keeps only matching instances.
	v2only := clientFor(t, nil, set, registry.WithFilter(registry.MatchMetadata("version", "v2")))
	if h := send(v2only, nil); h[2] != 60 {
		t.Errorf("filtered to v2 went to %v", h)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A GET that cannot reach its instance is retried on another; a POST is
// not.
func TestTransportRetriesIdempotent(t *testing.T) {
	u := newUpstreams(t, ok)
	set := []*registry.ServiceInstance{ins(deadAddr(t)), ins(u.addr(0))}
	c := clientFor(t, nil, set, registry.WithBalancer(registry.WeightedRoundRobin()))
	if good, errs := hammer(t, c, "http://orders/ping", 20, 1, nil); good != 20 || len(errs) != 0 {
		t.Fatalf("GET: %d ok, errors %v", good, errs)
	}
	// A PUT with a replayable body too.
	for range 4 {
		req, _ := http.NewRequestWithContext(t.Context(), "PUT", "http://orders/x", strings.NewReader("body"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("PUT: %v", err)
		}
		resp.Body.Close()
	}
	var failed int
	for range 4 {
		resp, err := c.Post("http://orders/x", "text/plain", strings.NewReader("body"))
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
	}
	if failed != 2 {
		t.Fatalf("%d of 4 POSTs failed, want 2 (not retried)", failed)
	}
	// Retries off: GETs to the dead instance fail.
	noRetry := clientFor(t, nil, set, registry.WithBalancer(registry.WeightedRoundRobin()), registry.WithRetries(0))
	if _, errs := hammer(t, noRetry, "http://orders/ping", 4, 1, nil); len(errs) != 2 {
		t.Fatalf("without retries %d of 4 failed, want 2", len(errs))
	}
}

// No instance: 503 UNAVAILABLE naming the service in the cause only. IP
// hosts pass through.
func TestTransportNoInstance(t *testing.T) {
	u := newUpstreams(t, ok)
	c := clientFor(t, nil, nil)
	_, err := c.Get("http://orders/ping")
	if e := errcode.From(err); e.Code() != errcode.Unavailable || !strings.Contains(err.Error(), `"orders"`) ||
		strings.Contains(e.Message(), "orders") {
		t.Fatalf("no instance: %v", err)
	}
	resp, err := c.Get(u.servers[0].URL + "/direct")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("IP host: %v", err)
	}
	resp.Body.Close()
	filtered := clientFor(t, nil, []*registry.ServiceInstance{ins(u.addr(0))}, registry.WithFilter(registry.MatchMetadata("zone", "eu")))
	if _, err := filtered.Get("http://orders/ping"); errcode.From(err).Code() != errcode.Unavailable {
		t.Fatalf("all filtered out: %v", err)
	}
}

func TestDiscoveryValidation(t *testing.T) {
	reg := registrytest.New()
	r := newResolver(t, reg)
	cases := map[string]func() error{
		"NewResolver: nil Discovery": func() error { _, err := registry.NewResolver(nil); return err },
		"WithInitTimeout":            func() error { _, err := registry.NewResolver(reg, registry.WithInitTimeout(0)); return err },
		"WithWatchRetry":             func() error { _, err := registry.NewResolver(reg, registry.WithWatchRetry(0, 1)); return err },
		"option 1 is nil":            func() error { _, err := registry.NewResolver(reg, nil); return err },
		"NewTransport: nil Resolver": func() error { _, err := registry.NewTransport(nil, nil); return err },
		"WithBalancer":               func() error { _, err := registry.NewTransport(r, nil, registry.WithBalancer(nil)); return err },
		"WithFilter":                 func() error { _, err := registry.NewTransport(r, nil, registry.WithFilter(nil)); return err },
		"WithRetries":                func() error { _, err := registry.NewTransport(r, nil, registry.WithRetries(-1)); return err },
		"WithCanary": func() error {
			_, err := registry.NewTransport(r, nil, registry.WithCanary(registry.Canary{Header: "bad header"}))
			return err
		},
	}
	for want, fn := range cases {
		if err := fn(); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "registry: ") {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// A balancer from outside the package: BalancerFunc sees every candidate
// with its weight, and the one whose index it returns gets the request; for
// an index out of range P2C chooses.
func TestTransportBalancerFunc(t *testing.T) {
	u := newUpstreams(t, ok, ok, ok)
	set := []*registry.ServiceInstance{ins(u.addr(0)), ins(u.addr(1)), ins(u.addr(2))}
	set[0].Weight, set[1].Weight, set[2].Weight = 10, 20, 30
	var seen atomic.Int64
	heaviest := registry.BalancerFunc(func(cands []registry.Candidate) int {
		seen.Store(int64(len(cands)))
		best := 0
		for i, c := range cands {
			if c.Instance == nil || c.InFlight < 0 || c.Latency < 0 {
				t.Errorf("candidate %d: %+v", i, c)
			}
			if c.Weight > cands[best].Weight {
				best = i
			}
		}
		return best
	})
	c := clientFor(t, nil, set, registry.WithBalancer(heaviest))
	if good, errs := hammer(t, c, "http://orders/ping", 30, 1, nil); good != 30 || len(errs) != 0 {
		t.Fatalf("%d ok, errors %v", good, errs)
	}
	if h := u.hits[2].Load(); h != 30 || seen.Load() != 3 {
		t.Fatalf("the weight-30 instance got %d of 30 requests, the balancer saw %d candidates", h, seen.Load())
	}
	none := clientFor(t, nil, set, registry.WithBalancer(registry.BalancerFunc(func([]registry.Candidate) int { return -1 })))
	if good, errs := hammer(t, none, "http://orders/ping", 30, 1, nil); good != 30 || len(errs) != 0 {
		t.Fatalf("balancer choosing none: %d ok, errors %v", good, errs)
	}
	if h := u.hits[0].Load() + u.hits[1].Load(); h == 0 {
		t.Fatal("balancer choosing none: P2C sent nothing to the other instances")
	}
}
