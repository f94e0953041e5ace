package etcd_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/etcd"
)

// next calls w.Next with a bound, failing the test when it takes longer.
func next(t *testing.T, w registry.Watcher, within time.Duration) []*registry.ServiceInstance {
	t.Helper()
	type result struct {
		ins []*registry.ServiceInstance
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ins, err := w.Next()
		ch <- result{ins, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Next: %v", r.err)
		}
		return r.ins
	case <-time.After(within):
		_ = w.Stop() // ends the pending Next
		<-ch
		t.Fatalf("Next returned nothing within %v", within)
		return nil
	}
}

func ids(ins []*registry.ServiceInstance) string {
	s := make([]string, 0, len(ins))
	for _, i := range ins {
		s = append(s, i.ID)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// TestWatch follows a service while a second instance appears and
// disappears, and sees no change for a write that leaves the set as it is.
func TestWatch(t *testing.T) {
	e := testenv.StartEtcd(t)
	r := dial(t, e, etcd.WithTTL(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := instance("orders-1", "9001"), instance("orders-2", "9002")
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	other := &registry.ServiceInstance{ID: "p-1", Name: "payments", Address: "127.0.0.1:9100"}

	w, err := r.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := next(t, w, 2*time.Second); ids(got) != "orders-1" || got[0].Address != "127.0.0.1:9001" || got[0].Metadata["zone"] != "a" {
		t.Fatalf("first Next = %v; want orders-1 with its address and metadata", got)
	}

	// Another service changing is not a change of orders.
	if err := r.Register(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := next(t, w, 2*time.Second); ids(got) != "orders-1,orders-2" {
		t.Fatalf("after registering orders-2: %s", ids(got))
	}
	// Registering orders-2 again writes the same document: no change.
	if err := r.Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := next(t, w, 2*time.Second); ids(got) != "orders-1" {
		t.Fatalf("after deregistering orders-2: %s", ids(got))
	}

	// A crashed instance (its lease expires) disappears too.
	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 2 * time.Second, Logger: zapNop})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	lease, err := raw.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(ctx, testPrefix+"/orders/crashed", `{"address":"127.0.0.1:9009"}`, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if got := next(t, w, 2*time.Second); ids(got) != "crashed,orders-1" {
		t.Fatalf("after a raw put: %s", ids(got))
	}
	if got := next(t, w, 5*time.Second); ids(got) != "orders-1" {
		t.Fatalf("after the lease of crashed expired: %s", ids(got))
	}

	// Stop ends a pending Next.
	errc := make(chan error, 1)
	go func() { _, err := w.Next(); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	_ = w.Stop()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Next after Stop returned no error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next did not return after Stop")
	}
}

// TestWatchAcrossRestarts keeps watchers through etcd crashes: with its
// data kept, the resumed etcd watch reports later changes (the watcher's
// resync is too slow to be what reports them); after etcd lost its data,
// the periodic resync notices and rebuilds the watch.
func TestWatchAcrossRestarts(t *testing.T) {
	e := testenv.StartEtcd(t)
	var logs testenv.Buffer
	resyncing := dial(t, e, etcd.WithResyncInterval(300*time.Millisecond),
		etcd.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	resuming := dial(t, e, etcd.WithResyncInterval(time.Minute))
	registering := dial(t, e, etcd.WithTTL(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// History before the crash, so that the revision after a wipe is below
	// the one the resumed watch waits for.
	for range 20 {
		e.Put(t, "/unrelated", "x")
	}
	if err := registering.Register(ctx, instance("orders-1", "9001")); err != nil {
		t.Fatal(err)
	}
	w1, err := resuming.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	w2, err := resyncing.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	for _, w := range []registry.Watcher{w1, w2} {
		if got := next(t, w, 2*time.Second); ids(got) != "orders-1" {
			t.Fatalf("first Next: %s", ids(got))
		}
	}

	e.Kill()
	time.Sleep(500 * time.Millisecond)
	e.Restart(t)
	if err := registering.Register(ctx, instance("orders-2", "9002")); err != nil {
		t.Fatal(err)
	}
	for _, w := range []registry.Watcher{w1, w2} {
		if got := next(t, w, 3*time.Second); ids(got) != "orders-1,orders-2" {
			t.Fatalf("after a restart with data: %s", ids(got))
		}
	}

	e.Kill()
	time.Sleep(500 * time.Millisecond)
	e.RestartWiped(t)
	// The registry puts its two instances back and a third one appears, at
	// revisions of the new etcd below those the old watch waits for.
	if err := registering.Register(ctx, instance("orders-3", "9003")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := next(t, w2, time.Until(deadline))
		if ids(got) == "orders-1,orders-2,orders-3" {
			break
		}
	}
	if !strings.Contains(logs.String(), "watch out of date") {
		t.Fatalf("the watcher caught up without a resync rebuild; logs:\n%s", logs.String())
	}
}

// TestWatchWaitsForEtcd starts a watcher while etcd is down: its first
// Next keeps trying and returns once etcd is up.
func TestWatchWaitsForEtcd(t *testing.T) {
	e := testenv.StartEtcd(t)
	e.Put(t, testPrefix+"/orders/orders-1", `{"id":"orders-1","name":"orders","address":"127.0.0.1:9001"}`)
	e.Stop()
	r := dial(t, e, etcd.WithTimeout(300*time.Millisecond))
	w, err := r.Watch(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	type result struct {
		ins []*registry.ServiceInstance
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ins, err := w.Next()
		ch <- result{ins, err}
	}()
	time.Sleep(time.Second)
	select {
	case r := <-ch:
		t.Fatalf("Next returned %v, %v while etcd was down", r.ins, r.err)
	default:
	}
	e.Restart(t)
	select {
	case r := <-ch:
		if r.err != nil || ids(r.ins) != "orders-1" {
			t.Fatalf("first Next once etcd is up: %v, %v", r.ins, r.err)
		}
	case <-time.After(5 * time.Second):
		_ = w.Stop()
		<-ch
		t.Fatal("Next returned nothing within 5 s of etcd coming up")
	}
}

// TestClose: Close stops watchers and keep-alives, closes a client it
// created, and leaves a caller's client open; the Registry refuses work
// afterwards.
func TestClose(t *testing.T) {
	e := testenv.StartEtcd(t)
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 2 * time.Second, Logger: zapNop})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	r, err := etcd.NewFromClient(client, etcd.WithTTL(2*time.Second), etcd.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ins := instance("orders-1", "9001")
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w, 2*time.Second)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Next(); err == nil {
		t.Fatal("Next after Close returned no error")
	}
	if err := r.Register(ctx, ins); err != etcd.ErrClosed { //nolint:errorlint // returned as is
		t.Fatalf("Register after Close = %v; want ErrClosed", err)
	}
	if _, err := r.GetService(ctx, "orders"); err != etcd.ErrClosed { //nolint:errorlint // returned as is
		t.Fatalf("GetService after Close = %v; want ErrClosed", err)
	}
	// The caller's client still works; the instance was not deregistered,
	// so it expires with its lease (no keep-alive any more).
	if _, err := client.Get(ctx, "x"); err != nil {
		t.Fatalf("the caller's client after Close: %v", err)
	}
	waitStored(t, e, keyOf(ins), false, 4*time.Second)
}
