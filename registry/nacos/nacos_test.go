package nacos_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
)

// sdkDir holds the SDK's log and cache files for the whole test binary.
var sdkDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gingov-nacos-test")
	if err != nil {
		panic(err)
	}
	sdkDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(sdkLeftovers...); err != nil {
			println(err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// sdkLeftovers are the goroutines nacos-sdk-go v2.3.5 leaves running after
// CloseClient, and nothing else.
// sdkLeftovers are the SDK's documented leftovers after CloseClient.
var sdkLeftovers = testenv.NacosLeftovers()

// recorder keeps the registration events a Registry reports.
type recorder struct {
	mu     sync.Mutex
	events []registry.Event
}

func (r *recorder) on(_ context.Context, e registry.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) count(k registry.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func (r *recorder) last() registry.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return registry.Event{}
	}
	return r.events[len(r.events)-1]
}

func newRegistry(t *testing.T, n *testenv.Nacos, opts ...nacos.Option) (*nacos.Registry, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts = append([]nacos.Option{
		nacos.WithLogDir(sdkDir + "/log"),
		nacos.WithCacheDir(sdkDir + "/cache"),
		nacos.WithTimeout(2 * time.Second),
		nacos.WithOnEvent(rec.on),
		nacos.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))),
	}, opts...)
	r, err := nacos.New([]string{n.HTTPAddr}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r, rec
}

// waitFor polls cond every 20 ms until it holds or limit passes, and
// returns how long that took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func find(list []testenv.NacosInstance, ip string, port int) (testenv.NacosInstance, bool) {
	for _, in := range list {
		if in.IP == ip && in.Port == port {
			return in, true
		}
	}
	return testenv.NacosInstance{}, false
}

// Registered right after New (the client is still connecting), the
// instance shows up in rnacos's own HTTP API under its plain name, with
// its weight, metadata and version, as an ephemeral instance of the
// DEFAULT cluster; deregistered, it is gone.
func TestRegisterVisibleThenDeregister(t *testing.T) {
	n := testenv.StartNacos(t)
	r, rec := newRegistry(t, n)
	ins := &registry.ServiceInstance{
		ID: "orders-1", Name: "orders", Version: "v1.4.2", Address: "127.0.0.1:18080",
		Metadata: map[string]string{"zone": "eu-1"}, Weight: 150,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	t.Logf("Register right after New returned after %v (%d failed attempts)",
		time.Since(start).Round(time.Millisecond), rec.count(registry.RegisterFailed))
	if e := rec.last(); e.Kind != registry.Registered || e.Backend != "nacos" || e.Instance != ins || e.Err != nil || e.Time.IsZero() {
		t.Fatalf("last event %+v, want Registered", e)
	}

	var got testenv.NacosInstance
	took := waitFor(t, 2*time.Second, "instance visible in rnacos", func() bool {
		var ok bool
		got, ok = find(n.Instances(t, "orders", ""), "127.0.0.1", 18080)
		return ok
	})
	t.Logf("visible through the HTTP API %v after Register returned", took.Round(time.Millisecond))
	if got.Weight != 1.5 || !got.Ephemeral || !got.Healthy || !got.Enabled || got.ClusterName != "DEFAULT" {
		t.Fatalf("instance %+v: want weight 1.5, ephemeral, healthy, enabled, cluster DEFAULT", got)
	}
	if got.Metadata["version"] != "v1.4.2" || got.Metadata["zone"] != "eu-1" || got.Metadata["instance_id"] != "orders-1" {
		t.Fatalf("metadata %v", got.Metadata)
	}
	if _, ok := got.Metadata["kind"]; ok {
		t.Fatalf("kind set outside Kratos mode: %v", got.Metadata)
	}
	if l := n.Instances(t, "orders.http", ""); len(l) != 0 {
		t.Fatalf("registered under a suffixed name: %+v", l)
	}

	// Discovery reads the same instance back, weight and ID round-tripped.
	list, err := r.GetService(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "orders-1" || list[0].Weight != 150 || list[0].Version != "v1.4.2" ||
		list[0].Address != "127.0.0.1:18080" || list[0].Metadata["zone"] != "eu-1" || list[0].Name != "orders" {
		t.Fatalf("GetService = %+v", list)
	}

	if err := r.Deregister(ctx, ins); err != nil {
		t.Fatal(err)
	}
	if e := rec.last(); e.Kind != registry.Deregistered || e.Instance != ins {
		t.Fatalf("last event %+v, want Deregistered", e)
	}
	took = waitFor(t, 2*time.Second, "instance gone from rnacos", func() bool {
		_, ok := find(n.Instances(t, "orders", ""), "127.0.0.1", 18080)
		return !ok
	})
	t.Logf("gone from the HTTP API %v after Deregister returned", took.Round(time.Millisecond))
}

// In Kratos-compatible mode the name stays plain and the metadata carries
// kind=http and version (even when empty), as Kratos clients expect.
func TestKratosMode(t *testing.T) {
	n := testenv.StartNacos(t)
	r, _ := newRegistry(t, n, nacos.WithKratos(), nacos.WithGroup("kratos"), nacos.WithCluster("c1"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Register(ctx, &registry.ServiceInstance{Name: "helloworld", Address: "127.0.0.1:8000"}); err != nil {
		t.Fatal(err)
	}
	var got testenv.NacosInstance
	waitFor(t, 2*time.Second, "instance visible", func() bool {
		var ok bool
		got, ok = find(n.Instances(t, "helloworld", "kratos"), "127.0.0.1", 8000)
		return ok
	})
	if got.Metadata["kind"] != "http" || got.Metadata["version"] != "" || got.Weight != 1 || got.ClusterName != "c1" {
		t.Fatalf("instance %+v", got)
	}
	if _, ok := got.Metadata["version"]; !ok {
		t.Fatal("Kratos mode registered no version key")
	}
	if l := n.Instances(t, "helloworld.http", "kratos"); len(l) != 0 {
		t.Fatalf("registered under a suffixed name: %+v", l)
	}
}

// nextWithin calls w.Next, failing the test after limit.
func nextWithin(t *testing.T, w registry.Watcher, limit time.Duration) []*registry.ServiceInstance {
	t.Helper()
	type result struct {
		list []*registry.ServiceInstance
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := w.Next()
		ch <- result{l, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res.list
	case <-time.After(limit):
		_ = w.Stop() // ends the Next still waiting
		<-ch
		t.Fatalf("Next returned nothing within %v", limit)
		return nil
	}
}

func addrs(list []*registry.ServiceInstance) string {
	s := make([]string, len(list))
	for i, in := range list {
		s[i] = in.Address
	}
	return strings.Join(s, ",")
}

// A watcher sees the current set first, then a second instance (another
// client's) appear and go, then the last one go.
func TestWatch(t *testing.T) {
	n := testenv.StartNacos(t)
	r1, _ := newRegistry(t, n)
	r2, _ := newRegistry(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := &registry.ServiceInstance{Name: "catalog", Address: "127.0.0.1:19001", Version: "v1"}
	b := &registry.ServiceInstance{Name: "catalog", Address: "127.0.0.1:19002", Version: "v2", Metadata: map[string]string{"canary": "true"}}
	if err := r1.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	w, err := r1.Watch(ctx, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := addrs(nextWithin(t, w, 5*time.Second)); got != "127.0.0.1:19001" {
		t.Fatalf("first Next = %s", got)
	}

	start := time.Now()
	if err := r2.Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	list := nextWithin(t, w, 5*time.Second)
	t.Logf("second instance seen %v after its Register began", time.Since(start).Round(time.Millisecond))
	if addrs(list) != "127.0.0.1:19001,127.0.0.1:19002" || list[1].Version != "v2" || list[1].Metadata["canary"] != "true" {
		t.Fatalf("after the second Register: %+v", list)
	}

	start = time.Now()
	if err := r2.Deregister(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := addrs(nextWithin(t, w, 5*time.Second)); got != "127.0.0.1:19001" {
		t.Fatalf("after the second Deregister: %s", got)
	}
	t.Logf("its removal seen %v after Deregister began", time.Since(start).Round(time.Millisecond))

	if err := r1.Deregister(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := nextWithin(t, w, 5*time.Second); len(got) != 0 {
		t.Fatalf("after the last Deregister: %s", addrs(got))
	}

	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(); !errors.Is(err, nacos.ErrWatcherStopped) {
		t.Fatalf("Next after Stop = %v", err)
	}
}

// A watch ends with its context, and Close ends the watches left.
func TestWatchEnds(t *testing.T) {
	n := testenv.StartNacos(t)
	r, _ := newRegistry(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	w1, err := r.Watch(ctx, "nobody")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if got := nextWithin(t, w1, 5*time.Second); len(got) != 0 {
		t.Fatalf("first Next of an unknown service = %s", addrs(got))
	}
	cancel()
	if _, err := w1.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after the context ended = %v", err)
	}

	w2, err := r.Watch(context.Background(), "nobody")
	if err != nil {
		t.Fatal(err)
	}
	nextWithin(t, w2, 5*time.Second)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Next(); !errors.Is(err, nacos.ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
	if err := r.Register(context.Background(), &registry.ServiceInstance{Name: "x", Address: "127.0.0.1:1"}); !errors.Is(err, nacos.ErrClosed) {
		t.Fatalf("Register after Close = %v", err)
	}
	if _, err := r.GetService(context.Background(), "x"); !errors.Is(err, nacos.ErrClosed) {
		t.Fatalf("GetService after Close = %v", err)
	}
}

// GetService returns only the instances that should get traffic: healthy,
// enabled, with a positive weight; it follows the server's pushes, so an
// instance that turns unhealthy leaves it. Watch filters the same way.
func TestGetServiceFilters(t *testing.T) {
	// Ephemeral instances registered over HTTP get no heartbeat: rnacos
	// marks them unhealthy after 2 s here. Persistent ones are probed with
	// a TCP connection: the two below listen so that they stay healthy.
	n := testenv.StartNacos(t, "RNACOS_NAMING_HEALTH_TIMEOUT_SECOND=2")
	other, zero := listen(t), listen(t)
	r, _ := newRegistry(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Register(ctx, &registry.ServiceInstance{Name: "mixed", Address: "127.0.0.1:19201"}); err != nil {
		t.Fatal(err)
	}
	setInstance(t, n, "mixed", "127.0.0.1", "19202", false, "1")                                             // disabled: rnacos hides it
	n.RegisterInstance(t, "mixed", "", testenv.NacosInstance{IP: "127.0.0.1", Port: 19203, Ephemeral: true}) // soon unhealthy
	setInstance(t, n, "mixed", "127.0.0.1", strconv.Itoa(zero), true, "0")                                   // weight 0
	setInstance(t, n, "mixed", "127.0.0.1", strconv.Itoa(other), true, "2.5")                                // another client's
	want := "127.0.0.1:19201," + "127.0.0.1:" + strconv.Itoa(other)
	list, err := r.GetService(ctx, "mixed")
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(list); got != "127.0.0.1:19201,127.0.0.1:19203,127.0.0.1:"+strconv.Itoa(other) {
		t.Fatalf("GetService = %s", got)
	}
	if o := list[2]; o.Weight != 250 || o.ID == "" || o.Version != "" || o.Metadata != nil {
		t.Fatalf("instance registered by another client: %+v", o)
	}

	var unhealthy time.Time
	waitFor(t, 15*time.Second, "rnacos marking the instance without heartbeats unhealthy", func() bool {
		in, ok := find(n.Instances(t, "mixed", ""), "127.0.0.1", 19203)
		unhealthy = time.Now()
		return ok && !in.Healthy
	})
	waitFor(t, 5*time.Second, "GetService dropping the unhealthy instance", func() bool {
		list, err := r.GetService(ctx, "mixed")
		return err == nil && addrs(list) == want
	})
	t.Logf("GetService dropped the unhealthy instance %v after rnacos listed it unhealthy",
		time.Since(unhealthy).Round(time.Millisecond))
	for _, in := range n.Instances(t, "mixed", "") {
		if in.Port == zero && !in.Healthy {
			t.Fatal("the weight-0 instance is unhealthy: the test no longer shows the weight filter")
		}
	}

	w, err := r.Watch(ctx, "mixed")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := addrs(nextWithin(t, w, 5*time.Second)); got != want {
		t.Fatalf("Watch = %s", got)
	}
	if _, err := r.GetService(ctx, ""); err == nil {
		t.Fatal("GetService accepted an empty name")
	}
}

// listen accepts (and closes) TCP connections on a free loopback port until
// the test ends, as a live instance would for rnacos's health probes.
func listen(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// setInstance registers a persistent instance through rnacos's HTTP open
// API with an explicit enabled flag and weight.
func setInstance(t *testing.T, n *testenv.Nacos, service, ip, port string, enabled bool, weight string) {
	t.Helper()
	form := url.Values{
		"serviceName": {service}, "groupName": {"DEFAULT_GROUP"}, "ip": {ip}, "port": {port},
		"ephemeral": {"false"}, "enabled": {strconv.FormatBool(enabled)}, "weight": {weight},
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+n.HTTPAddr+"/nacos/v1/ns/instance", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("register %s:%s: %d %s", ip, port, resp.StatusCode, body)
	}
}

// One Registry registers several instances of a service (a batch
// registration for the SDK), and deregistering one leaves the others.
func TestSeveralInstancesOfOneService(t *testing.T) {
	n := testenv.StartNacos(t)
	r, rec := newRegistry(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := &registry.ServiceInstance{Name: "multi", Address: "127.0.0.1:19301", Version: "v1"}
	b := &registry.ServiceInstance{Name: "multi", Address: "127.0.0.1:19302", Version: "v1", Weight: 300}
	c := &registry.ServiceInstance{Name: "multi", Address: "127.0.0.1:19303", Version: "v1"}
	for _, ins := range []*registry.ServiceInstance{a, b, c} {
		if err := r.Register(ctx, ins); err != nil {
			t.Fatal(err)
		}
	}
	ports := func() string {
		var p []string
		for _, in := range n.Instances(t, "multi", "") {
			p = append(p, strconv.Itoa(in.Port))
		}
		slices.Sort(p)
		return strings.Join(p, ",")
	}
	waitFor(t, 2*time.Second, "three instances", func() bool { return ports() == "19301,19302,19303" })
	// Updating one (same address) keeps the others.
	b2 := *b
	b2.Weight = 50
	if err := r.Register(ctx, &b2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the new weight", func() bool {
		in, ok := find(n.Instances(t, "multi", ""), "127.0.0.1", 19302)
		return ok && in.Weight == 0.5
	})
	if got := ports(); got != "19301,19302,19303" {
		t.Fatalf("after the update: %s", got)
	}
	if err := r.Deregister(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "two instances left", func() bool { return ports() == "19302,19303" })
	if err := r.Deregister(ctx, &b2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "one instance left", func() bool { return ports() == "19303" })
	time.Sleep(300 * time.Millisecond)
	if got := ports(); got != "19303" {
		t.Fatalf("later: %s", got)
	}
	if rec.count(registry.Registered) != 4 || rec.count(registry.Deregistered) != 2 {
		t.Fatalf("events %+v", rec.events)
	}
}
