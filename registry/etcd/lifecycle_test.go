package etcd_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/etcd"
)

// TestLifecycle runs a service through the registry package's Server with
// etcd as its registry: once it serves, it is in etcd with the address it
// listens on; it stays through an etcd crash that loses the data; when its
// context ends it is gone from etcd before the server stops.
func TestLifecycle(t *testing.T) {
	e := testenv.StartEtcd(t)
	r := dial(t, e, etcd.WithTTL(recoveryTTL))
	var evs events
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pong")) })
	s, err := registry.NewServer(mux, "127.0.0.1:0", r,
		registry.ServiceInstance{ID: "orders-1", Name: "orders", Version: "v1"},
		registry.WithDrainDelay(100*time.Millisecond),
		registry.WithOnEvent(evs.hook),
		registry.WithLogger(quiet))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	addr := s.Instance().Address
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	key := testPrefix + "/orders/orders-1"
	waitStored(t, e, key, true, 5*time.Second)
	kv, _ := stored(t, e, key)
	var doc struct{ Address, Version string }
	if err := json.Unmarshal([]byte(kv.Value), &doc); err != nil || doc.Address != addr || doc.Version != "v1" {
		t.Fatalf("stored %s (%v); want address %s, version v1", kv.Value, err, addr)
	}
	// The address registered is the one serving.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+doc.Address+"/ping", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /ping at the registered address: %v", err)
	}
	resp.Body.Close()

	e.Kill()
	time.Sleep(500 * time.Millisecond)
	e.RestartWiped(t)
	waitStored(t, e, key, true, recoveryTTL)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, ok := stored(t, e, key); ok {
		t.Fatal("still in etcd after the server stopped")
	}
	if evs.count(registry.Registered) != 1 || evs.count(registry.Deregistered) != 1 {
		t.Fatalf("server events %+v; want one registered, one deregistered", evs.all)
	}
	for _, ev := range evs.all {
		if ev.Backend != "etcd" {
			t.Fatalf("server event backend %q; want etcd", ev.Backend)
		}
	}
}
