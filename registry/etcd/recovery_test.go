package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/etcd"
)

// recoveryTTL is the lease TTL of the recovery tests: after etcd returns,
// the instance must be back within it.
const recoveryTTL = 3 * time.Second

// TestRecovery crashes etcd (SIGKILL) while an instance is registered and
// brings it back on the same ports, after a short or a long outage, with
// its data dir or without it. In every case the instance must be listed
// again within one TTL after etcd is back, and stay listed.
func TestRecovery(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage time.Duration
		wipe   bool
		// the keep-alive must have failed and registration been retried
		wantFailures bool
	}{
		// Shorter than the TTL with the data kept: the lease survives and
		// the keep-alive simply resumes.
		{name: "short outage, data kept", outage: time.Second},
		// Longer than the TTL: the client gives the lease up; etcd kept it
		// (a restarted etcd renews its leases), the registry grants another.
		{name: "outage over a TTL, data kept", outage: 5 * time.Second, wantFailures: true},
		// etcd lost everything: the keep-alive is answered "no such lease".
		{name: "short outage, data wiped", outage: time.Second, wipe: true, wantFailures: true},
		{name: "outage over a TTL, data wiped", outage: 5 * time.Second, wipe: true, wantFailures: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testenv.StartEtcd(t)
			var evs events
			r := dial(t, e, etcd.WithTTL(recoveryTTL), etcd.WithTimeout(time.Second), etcd.WithOnEvent(evs.hook))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ins := instance("orders-1", "9001")
			if err := r.Register(ctx, ins); err != nil {
				t.Fatal(err)
			}
			waitStored(t, e, keyOf(ins), true, 2*time.Second)

			e.Kill()
			time.Sleep(tc.outage)
			if tc.wipe {
				e.RestartWiped(t)
			} else {
				e.Restart(t)
			}
			took := waitStored(t, e, keyOf(ins), true, recoveryTTL)
			t.Logf("listed again %v after etcd returned (events: %d heartbeat_failed, %d register_failed, %d registered)",
				took.Round(time.Millisecond), evs.count(registry.HeartbeatFailed), evs.count(registry.RegisterFailed),
				evs.count(registry.Registered))

			// It stays: the lease it is on now is renewed (an old lease
			// that expires later does not take the key with it).
			time.Sleep(recoveryTTL + time.Second)
			if _, ok := stored(t, e, keyOf(ins)); !ok {
				t.Fatal("the instance came back but expired again")
			}
			// The lease the client gave up is revoked, not left to expire.
			waitOneLease(t, e, keyOf(ins), 2*time.Second)
			if tc.wantFailures {
				if evs.count(registry.HeartbeatFailed) == 0 || evs.count(registry.Registered) < 2 {
					t.Fatalf("events %+v; want heartbeat_failed and a second registered", evs.all)
				}
			}
			got, err := r.GetService(ctx, "orders")
			if err != nil || len(got) != 1 || got[0].ID != "orders-1" {
				t.Fatalf("GetService = %v, %v", got, err)
			}
			evs.check(t)
		})
	}
}

// TestRecoveryLongOutage keeps etcd down for much longer than five retries'
// worth of backoff (the registry waits at most TTL/3 between attempts, 1 s
// here, each attempt bounded by the 500 ms timeout): the registry keeps
// trying and re-registers once etcd is back, with its data gone.
func TestRecoveryLongOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 15 s outage")
	}
	e := testenv.StartEtcd(t)
	var evs events
	r := dial(t, e, etcd.WithTTL(recoveryTTL), etcd.WithTimeout(500*time.Millisecond), etcd.WithOnEvent(evs.hook))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ins := instance("orders-1", "9001")
	if err := r.Register(ctx, ins); err != nil {
		t.Fatal(err)
	}
	e.Kill()
	time.Sleep(15 * time.Second)
	failed := evs.count(registry.RegisterFailed)
	if failed <= 5 {
		t.Fatalf("%d register_failed events during a 15 s outage; want more than 5 attempts", failed)
	}
	e.RestartWiped(t)
	took := waitStored(t, e, keyOf(ins), true, recoveryTTL)
	t.Logf("after a 15 s outage (%d failed attempts) listed again %v after etcd returned", failed, took.Round(time.Millisecond))
	evs.check(t)
}
