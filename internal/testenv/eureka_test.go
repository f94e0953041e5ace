package testenv_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// TestEurekaSmoke starts the fixture Eureka server, registers an instance
// over its REST API the way gingov's client does, reads it back through the
// helpers, and checks that Restart comes back on the same port with an
// empty registry (Eureka keeps it in memory only).
func TestEurekaSmoke(t *testing.T) {
	start := time.Now()
	e := testenv.StartEureka(t)
	t.Logf("Eureka ready on %s after %v", e.Addr, time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(e.URL, "http://127.0.0.1:") || !strings.HasSuffix(e.URL, "/eureka") {
		t.Fatalf("URL = %q", e.URL)
	}
	if got := e.Instances(t, "SMOKE"); len(got) != 0 {
		t.Fatalf("instances before registration: %+v", got)
	}

	body := `{"instance":{"instanceId":"smoke-1","hostName":"127.0.0.1","app":"SMOKE",
		"ipAddr":"127.0.0.1","vipAddress":"smoke","secureVipAddress":"smoke","status":"UP",
		"port":{"$":8080,"@enabled":"true"},
		"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
		"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90},"metadata":{"version":"v1"}}}`
	if status := send(t, http.MethodPost, e.URL+"/apps/SMOKE", body); status != http.StatusNoContent {
		t.Fatalf("register: %d, want 204", status)
	}
	in, ok := e.Instance(t, "SMOKE", "smoke-1")
	if !ok {
		t.Fatalf("smoke-1 not listed: %+v", e.Instances(t, "SMOKE"))
	}
	if in.Status != "UP" || in.VIPAddress != "smoke" || in.Port.Port != 8080 || in.Metadata["version"] != "v1" {
		t.Fatalf("instance = %+v", in)
	}

	port := e.Port
	e.Restart(t)
	if e.Port != port {
		t.Fatalf("port %d after restart, want %d", e.Port, port)
	}
	if got := e.Instances(t, "SMOKE"); len(got) != 0 {
		t.Fatalf("instances after restart: %+v", got)
	}
}

// TestEurekaPeersSmoke starts the two peered servers and checks that they
// replicate to each other: an instance registered with A shows on B, and
// its cancel at B removes it from A.
func TestEurekaPeersSmoke(t *testing.T) {
	start := time.Now()
	peers := testenv.StartEurekaPeers(t)
	t.Logf("peers ready on %s and %s after %v", peers[0].Addr, peers[1].Addr, time.Since(start).Round(time.Millisecond))
	if peers[0].Port == peers[1].Port {
		t.Fatalf("both peers on port %d", peers[0].Port)
	}
	body := `{"instance":{"instanceId":"peer-1","hostName":"127.0.0.1","app":"PEERSMOKE",
		"ipAddr":"127.0.0.1","vipAddress":"peersmoke","status":"UP",
		"port":{"$":8080,"@enabled":"true"},
		"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
		"leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90}}}`
	if status := send(t, http.MethodPost, peers[0].URL+"/apps/PEERSMOKE", body); status != http.StatusNoContent {
		t.Fatalf("register with A: %d, want 204", status)
	}
	waitFor(t, "the instance replicated to B", func() bool {
		_, ok := peers[1].Instance(t, "PEERSMOKE", "peer-1")
		return ok
	})
	if status := send(t, http.MethodDelete, peers[1].URL+"/apps/PEERSMOKE/peer-1", ""); status != http.StatusOK {
		t.Fatalf("cancel at B: %d, want 200", status)
	}
	waitFor(t, "the cancel replicated to A", func() bool {
		_, ok := peers[0].Instance(t, "PEERSMOKE", "peer-1")
		return !ok
	})
}

// waitFor polls cond every 100 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not seen within 10 s", what)
}

// TestEurekaJarCached checks that the jar path is stable: the second call
// reuses the cached jar.
func TestEurekaJarCached(t *testing.T) {
	a := testenv.EurekaJar(t)
	if b := testenv.EurekaJar(t); a != b {
		t.Fatalf("EurekaJar = %s then %s", a, b)
	}
	if !strings.Contains(a, "eureka-server") || !strings.HasSuffix(a, ".jar") {
		t.Fatalf("EurekaJar = %s", a)
	}
}

func send(t *testing.T, method, url, body string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
