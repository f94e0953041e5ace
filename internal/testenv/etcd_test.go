package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// TestEtcdRestart checks what the etcd registry's recovery tests rely on:
// the server answers on its loopback client URL; after a crash it comes
// back as a new process on the same ports, with its keys when the data dir
// is kept and with none when it is wiped.
func TestEtcdRestart(t *testing.T) {
	start := time.Now()
	e := testenv.StartEtcd(t)
	t.Logf("etcd ready on %s (peer %d) after %v", e.Endpoint, e.PeerPort, time.Since(start).Round(time.Millisecond))
	if e.Endpoint != "http://"+e.ClientAddr || e.ClientPort == e.PeerPort {
		t.Fatalf("endpoint %s, client addr %s, ports %d/%d", e.Endpoint, e.ClientAddr, e.ClientPort, e.PeerPort)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	e.Put(t, "/gingov/a", "1")
	e.Put(t, "/gingov/b", "2")
	e.Put(t, "/other", "3")
	kvs, err := e.Range(ctx, "/gingov/")
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	if len(kvs) != 2 || kvs["/gingov/a"].Value != "1" || kvs["/gingov/b"].Value != "2" {
		t.Fatalf("Range(/gingov/) = %+v; want a=1 and b=2 only", kvs)
	}

	if leases, err := e.Leases(ctx); err != nil || len(leases) != 0 {
		t.Fatalf("Leases = %v, %v; want none", leases, err)
	}

	endpoint, dir, pid := e.Endpoint, e.Dir, e.Pid()
	e.Kill()
	hctx, hcancel := context.WithTimeout(ctx, time.Second)
	err = e.Health(hctx)
	hcancel()
	if err == nil {
		t.Fatal("/health answered after Kill")
	}

	start = time.Now()
	e.Restart(t)
	t.Logf("restarted with its data dir in %v", time.Since(start).Round(time.Millisecond))
	if e.Endpoint != endpoint || e.Dir != dir || e.Exited() || e.Pid() == pid {
		t.Fatalf("after Restart: %s %s exited=%v pid %d (old %d)", e.Endpoint, e.Dir, e.Exited(), e.Pid(), pid)
	}
	kvs, err = e.Range(ctx, "/gingov/")
	if err != nil || len(kvs) != 2 {
		t.Fatalf("after Restart: Range = %+v, %v; want the two keys kept", kvs, err)
	}

	pid = e.Pid()
	start = time.Now()
	e.RestartWiped(t) // a running server is stopped first
	t.Logf("restarted wiped in %v", time.Since(start).Round(time.Millisecond))
	if e.Endpoint != endpoint || e.Pid() == pid {
		t.Fatalf("after RestartWiped: %s pid %d (old %d)", e.Endpoint, e.Pid(), pid)
	}
	kvs, err = e.Range(ctx, "")
	if err != nil || len(kvs) != 0 {
		t.Fatalf("after RestartWiped: Range = %+v, %v; want no keys", kvs, err)
	}
	e.Put(t, "/gingov/c", "4")
	if kvs, err = e.Range(ctx, "/gingov/c"); err != nil || kvs["/gingov/c"].Value != "4" {
		t.Fatalf("after RestartWiped: Range(/gingov/c) = %+v, %v", kvs, err)
	}
}
