package etcd_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/etcd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// zapNop keeps the etcd clients the tests create themselves quiet.
var zapNop = zap.NewNop()

// quiet is a logger for tests that expect failures.
var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// events records registration events.
type events struct {
	mu  sync.Mutex
	all []registry.Event
}

func (e *events) hook(_ context.Context, ev registry.Event) {
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

func (e *events) check(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Backend != "etcd" || ev.Instance == nil || ev.Time.IsZero() {
			t.Errorf("event %+v: want backend etcd, an instance and a time", ev)
		}
		failed := ev.Kind == registry.RegisterFailed || ev.Kind == registry.HeartbeatFailed || ev.Kind == registry.DeregisterFailed
		if failed != (ev.Err != nil) {
			t.Errorf("event %v with error %v", ev.Kind, ev.Err)
		}
	}
}

// dial returns a Registry on the test server with a short TTL, closed at
// cleanup.
func dial(t *testing.T, e *testenv.Etcd, opts ...etcd.Option) *etcd.Registry {
	t.Helper()
	r, err := etcd.New([]string{e.Endpoint}, append([]etcd.Option{etcd.WithLogger(quiet)}, opts...)...)
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

func instance(id, port string) *registry.ServiceInstance {
	return &registry.ServiceInstance{
		ID: id, Name: "orders", Version: "v1.2.0", Address: "127.0.0.1:" + port,
		Metadata: map[string]string{"zone": "a"}, Weight: 50,
	}
}

const testPrefix = "/gingov/services"

func keyOf(ins *registry.ServiceInstance) string {
	return testPrefix + "/" + ins.Name + "/" + ins.InstanceID()
}

// stored reads a key through etcd's own JSON gateway (no Go client).
func stored(t *testing.T, e *testenv.Etcd, key string) (testenv.EtcdKV, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	kvs, err := e.Range(ctx, key)
	if err != nil {
		return testenv.EtcdKV{}, false
	}
	kv, ok := kvs[key]
	return kv, ok
}

// waitStored waits until the key is present (or absent) in etcd, and
// returns how long that took; it fails the test after within.
func waitStored(t *testing.T, e *testenv.Etcd, key string, present bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if _, ok := stored(t, e, key); ok == present {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("key %s present=%v not reached within %v", key, present, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOneLease waits until the only lease etcd holds is the one key is
// on: a registration leaves no stale lease behind.
func waitOneLease(t *testing.T, e *testenv.Etcd, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		kv, ok := stored(t, e, key)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		leases, err := e.Leases(ctx)
		cancel()
		if ok && err == nil && len(leases) == 1 && leases[0] == kv.Lease {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases %v (%v); want only %x, the lease of %s", leases, err, kv.Lease, key)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRegisterDeregister(t *testing.T) {
	e := testenv.StartEtcd(t)
	var evs events
	r := dial(t, e, etcd.WithTTL(3*time.Second), etcd.WithOnEvent(evs.hook))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ins := instance("orders-1", "9001")
	if err := r.Register(ctx, ins); err != nil {
		t.Fatalf("Register: %v", err)
	}
	took := waitStored(t, e, keyOf(ins), true, 2*time.Second)
	t.Logf("visible in etcd after %v", took)

	kv, _ := stored(t, e, keyOf(ins))
	if kv.Lease == 0 {
		t.Fatal("the key has no lease: a crashed instance would stay listed")
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(kv.Value), &doc); err != nil {
		t.Fatalf("stored value %q is not JSON: %v", kv.Value, err)
	}
	if doc["id"] != "orders-1" || doc["name"] != "orders" || doc["version"] != "v1.2.0" ||
		doc["address"] != "127.0.0.1:9001" || doc["weight"] != float64(50) {
		t.Fatalf("stored document %v", doc)
	}
	md, _ := doc["metadata"].(map[string]any)
	if md["zone"] != "a" || md["version"] != "v1.2.0" {
		t.Fatalf("stored metadata %v; want zone and version", md)
	}
	if eps, _ := doc["endpoints"].([]any); len(eps) != 1 || eps[0] != "http://127.0.0.1:9001" {
		t.Fatalf("stored endpoints %v", doc["endpoints"])
	}

	// The keep-alive renews the lease: the key outlives two TTLs.
	time.Sleep(6500 * time.Millisecond)
	if _, ok := stored(t, e, keyOf(ins)); !ok {
		t.Fatal("the key expired although the instance is registered")
	}

	got, err := r.GetService(ctx, "orders")
	if err != nil || len(got) != 1 {
		t.Fatalf("GetService = %v, %v", got, err)
	}
	if g := got[0]; g.ID != "orders-1" || g.Address != "127.0.0.1:9001" || g.Version != "v1.2.0" ||
		g.Weight != 50 || g.Metadata["zone"] != "a" {
		t.Fatalf("GetService = %+v", g)
	}
	if got, err := r.GetService(ctx, "payments"); err != nil || len(got) != 0 {
		t.Fatalf("GetService(payments) = %v, %v; want none", got, err)
	}

	if err := r.Deregister(ctx, ins); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	took = waitStored(t, e, keyOf(ins), false, 2*time.Second)
	t.Logf("gone from etcd after %v", took)
	if got, err := r.GetService(ctx, "orders"); err != nil || len(got) != 0 {
		t.Fatalf("GetService after Deregister = %v, %v", got, err)
	}
	if evs.count(registry.Registered) != 1 || evs.count(registry.Deregistered) != 1 || evs.count(registry.HeartbeatFailed) != 0 {
		t.Fatalf("events %+v; want one registered, one deregistered", evs.all)
	}
	evs.check(t)
}

// TestRegisterReplaces registers the same instance twice with new
// metadata: one key, the new document, still kept alive.
func TestRegisterReplaces(t *testing.T) {
	e := testenv.StartEtcd(t)
	r := dial(t, e, etcd.WithTTL(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ins := instance("orders-1", "9001")
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	kv1, _ := stored(t, e, keyOf(ins))
	ins.Metadata["zone"] = "b"
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	kv2, ok := stored(t, e, keyOf(ins))
	if !ok || !strings.Contains(kv2.Value, `"zone":"b"`) || kv2.Lease == kv1.Lease {
		t.Fatalf("after the second Register: %+v (first %+v); want zone b on a new lease", kv2, kv1)
	}
	waitOneLease(t, e, keyOf(ins), 2*time.Second) // the first lease was revoked
	time.Sleep(4500 * time.Millisecond)           // two TTLs: the first lease is gone, the second renewed
	if kv, ok := stored(t, e, keyOf(ins)); !ok || kv.Lease != kv2.Lease {
		t.Fatalf("after two TTLs: %+v, %v; want the key on lease %x", kv, ok, kv2.Lease)
	}
}

// TestRegisterReplaceFails: a replacement that fails (etcd down until its
// context ends) leaves the earlier registration going on.
func TestRegisterReplaceFails(t *testing.T) {
	e := testenv.StartEtcd(t)
	r := dial(t, e, etcd.WithTTL(2*time.Second), etcd.WithTimeout(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ins := instance("orders-1", "9001")
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	e.Kill()
	changed := instance("orders-1", "9001")
	changed.Metadata["zone"] = "b"
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	err := r.Register(rctx, changed)
	rcancel()
	if err == nil {
		t.Fatal("Register with etcd down succeeded")
	}
	e.Restart(t)
	waitStored(t, e, keyOf(ins), true, 2*time.Second)
	time.Sleep(3 * time.Second) // longer than the TTL: kept alive
	kv, ok := stored(t, e, keyOf(ins))
	if !ok || !strings.Contains(kv.Value, `"zone":"a"`) {
		t.Fatalf("after the failed replacement: %+v, %v; want the first document, kept alive", kv, ok)
	}
	waitOneLease(t, e, keyOf(ins), 2*time.Second)
}

// TestRegisterWaitsForEtcd registers while etcd is down: Register retries
// until its context ends and reports each failure; once etcd is up, it
// succeeds.
func TestRegisterWaitsForEtcd(t *testing.T) {
	e := testenv.StartEtcd(t)
	e.Stop()
	var evs events
	r := dial(t, e, etcd.WithTTL(2*time.Second), etcd.WithTimeout(300*time.Millisecond), etcd.WithOnEvent(evs.hook))
	ins := instance("orders-1", "9001")

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	start := time.Now()
	err := r.Register(ctx, ins)
	cancel()
	if err == nil || !strings.HasPrefix(err.Error(), "etcd: register") {
		t.Fatalf("Register with etcd down = %v; want an etcd: register error", err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("Register took %v; its context allowed 1.5 s", d)
	}
	if evs.count(registry.RegisterFailed) < 2 {
		t.Fatalf("%d register_failed events; want one per attempt", evs.count(registry.RegisterFailed))
	}

	// etcd comes up while Register is waiting.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- r.Register(ctx, ins)
	}()
	time.Sleep(500 * time.Millisecond)
	e.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("Register once etcd is up: %v", err)
	}
	if _, ok := stored(t, e, keyOf(ins)); !ok {
		t.Fatal("Register returned but the key is not in etcd")
	}
	evs.check(t)
}

// TestDeregisterBounded: with etcd down, Deregister returns within its
// context, with an error and a deregister_failed event, and the keep-alive
// is stopped.
func TestDeregisterBounded(t *testing.T) {
	e := testenv.StartEtcd(t)
	var evs events
	r := dial(t, e, etcd.WithTTL(2*time.Second), etcd.WithOnEvent(evs.hook))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ins := instance("orders-1", "9001")
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	e.Kill()
	dctx, dcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	start := time.Now()
	err := r.Deregister(dctx, ins)
	dcancel()
	if err == nil || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("Deregister with etcd down = %v after %v; want an error within its context", err, time.Since(start))
	}
	if evs.count(registry.DeregisterFailed) != 1 {
		t.Fatalf("events %+v; want one deregister_failed", evs.all)
	}
	// The keep-alive was stopped: etcd coming back with its data does not
	// see the instance renewed, and it expires with its lease.
	e.Restart(t)
	waitStored(t, e, keyOf(ins), false, 5*time.Second)
	if n := evs.count(registry.Registered); n != 1 {
		t.Fatalf("%d registered events; want no re-registration after Deregister", n)
	}
	evs.check(t)
}

func TestInvalid(t *testing.T) {
	if _, err := etcd.NewFromClient(nil); err == nil || !strings.Contains(err.Error(), "nil client") {
		t.Fatalf("NewFromClient(nil) = %v", err)
	}
	if _, err := etcd.NewFromClient(&clientv3.Client{}, etcd.WithTimeout(time.Second), nil); err == nil || !strings.Contains(err.Error(), "etcd: option 2 is nil") {
		t.Fatalf("NewFromClient with a nil option = %v", err)
	}
	for _, tc := range []struct {
		name string
		eps  []string
		opts []etcd.Option
		want string
	}{
		{"no endpoints", nil, nil, "no endpoints"},
		{"empty endpoint", []string{" "}, nil, "empty endpoint"},
		{"relative prefix", []string{"127.0.0.1:1"}, []etcd.Option{etcd.WithPrefix("svc")}, "WithPrefix"},
		{"root prefix", []string{"127.0.0.1:1"}, []etcd.Option{etcd.WithPrefix("/")}, "WithPrefix"},
		{"short TTL", []string{"127.0.0.1:1"}, []etcd.Option{etcd.WithTTL(time.Second)}, "WithTTL"},
		{"zero timeout", []string{"127.0.0.1:1"}, []etcd.Option{etcd.WithTimeout(0)}, "WithTimeout"},
		{"short resync", []string{"127.0.0.1:1"}, []etcd.Option{etcd.WithResyncInterval(time.Millisecond)}, "WithResyncInterval"},
		{"nil hook", []string{"127.0.0.1:1"}, []etcd.Option{etcd.WithOnEvent(nil)}, "WithOnEvent: nil function"},
		{"nil option", []string{"127.0.0.1:1"}, []etcd.Option{etcd.WithTTL(etcd.MinTTL), nil}, "option 2 is nil"},
	} {
		r, err := etcd.New(tc.eps, tc.opts...)
		if err == nil {
			r.Close()
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "etcd: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q; want it to name %s", tc.name, err, tc.want)
		}
	}

	// A port nobody listens on: the client dials in the background, so
	// New succeeds; the instance checks need no server.
	r, err := etcd.New([]string{"127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}, etcd.WithLogger(quiet))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer r.Close()
	if got := r.Backend(); got != "etcd" {
		t.Errorf("Backend() = %q, want etcd", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, ins := range []*registry.ServiceInstance{
		nil,
		{Name: "", Address: "127.0.0.1:1"},
		{Name: "orders", Address: "0.0.0.0:1"},
		{Name: "a/b", Address: "127.0.0.1:1"},
		{ID: "x/y", Name: "orders", Address: "127.0.0.1:1"},
	} {
		if err := r.Register(ctx, ins); err == nil {
			t.Errorf("Register(%+v) succeeded", ins)
		}
	}
	if _, err := r.GetService(ctx, "a/b"); err == nil {
		t.Error("GetService(a/b) succeeded")
	}
	if _, err := r.Watch(ctx, ""); err == nil {
		t.Error("Watch(\"\") succeeded")
	}
}
