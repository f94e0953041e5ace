package testenv_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// TestNacosSmoke starts a real rnacos and uses the 1.x open API the way the
// registry and config-source tests will check their results: a config
// round trip, and instances registered over HTTP showing up in the list.
func TestNacosSmoke(t *testing.T) {
	start := time.Now()
	n := testenv.StartNacos(t)
	t.Logf("rnacos ready on %s (gRPC %d, console %d) after %v",
		n.HTTPAddr, n.GRPCPort, n.ConsolePort, time.Since(start).Round(time.Millisecond))
	if n.GRPCPort != n.Port+1000 {
		t.Fatalf("gRPC port %d, want HTTP port %d + 1000", n.GRPCPort, n.Port)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+"/nacos/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /nacos/health: %v", err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /nacos/health: %s", resp.Status)
	}

	if _, ok := n.GetConfig(t, "gingov-smoke.json", ""); ok {
		t.Fatal("config exists before it was published")
	}
	n.PublishConfig(t, "gingov-smoke.json", "", `{"qps":100}`)
	if got, ok := n.GetConfig(t, "gingov-smoke.json", "DEFAULT_GROUP"); !ok || got != `{"qps":100}` {
		t.Fatalf("GetConfig = %q, %v; want the published content", got, ok)
	}
	n.PublishConfig(t, "gingov-smoke.json", "GINGOV", "other group")
	if got, ok := n.GetConfig(t, "gingov-smoke.json", "GINGOV"); !ok || got != "other group" {
		t.Fatalf("GetConfig(GINGOV) = %q, %v", got, ok)
	}

	n.RegisterInstance(t, "orders", "", testenv.NacosInstance{
		IP: "127.0.0.1", Port: 9001, Ephemeral: false, Metadata: map[string]string{"version": "v1"},
	})
	n.RegisterInstance(t, "orders", "DEFAULT_GROUP", testenv.NacosInstance{
		IP: "127.0.0.1", Port: 9002, Ephemeral: true, Weight: 2,
	})
	byPort := map[int]testenv.NacosInstance{}
	for _, in := range n.Instances(t, "orders", "DEFAULT_GROUP") {
		byPort[in.Port] = in
	}
	if len(byPort) != 2 {
		t.Fatalf("instances = %+v; want ports 9001 and 9002", byPort)
	}
	if in := byPort[9001]; in.IP != "127.0.0.1" || in.Ephemeral || !in.Healthy || in.Metadata["version"] != "v1" {
		t.Fatalf("persistent instance = %+v", in)
	}
	if in := byPort[9002]; !in.Ephemeral || !in.Healthy || in.Weight != 2 {
		t.Fatalf("ephemeral instance = %+v", in)
	}
	if got := n.Instances(t, "orders", "OTHER_GROUP"); len(got) != 0 {
		t.Fatalf("instances in another group = %+v", got)
	}
}

// TestNacosRestart checks that a restarted rnacos comes back on the same
// ports with its data, configs and persistent instances: after a clean
// stop, and after a crash.
func TestNacosRestart(t *testing.T) {
	n := testenv.StartNacos(t)
	port, grpcPort, dir, pid := n.Port, n.GRPCPort, n.Dir, n.Pid()
	n.PublishConfig(t, "kept", "", "v1")
	n.RegisterInstance(t, "kept", "", testenv.NacosInstance{IP: "127.0.0.1", Port: 9003})
	n.RegisterInstance(t, "gone", "", testenv.NacosInstance{IP: "127.0.0.1", Port: 9004, Ephemeral: true})

	check := func(how string) {
		t.Helper()
		if n.Port != port || n.GRPCPort != grpcPort || n.Dir != dir {
			t.Fatalf("after %s: ports %d/%d→%d/%d, dir %s→%s",
				how, port, grpcPort, n.Port, n.GRPCPort, dir, n.Dir)
		}
		if got, ok := n.GetConfig(t, "kept", ""); !ok || got != "v1" {
			t.Fatalf("config after %s = %q, %v", how, got, ok)
		}
		if got := n.Instances(t, "kept", ""); len(got) != 1 || got[0].Port != 9003 || got[0].Ephemeral {
			t.Fatalf("persistent instance after %s: %+v", how, got)
		}
		if got := n.Instances(t, "gone", ""); len(got) != 0 {
			t.Fatalf("ephemeral instance after %s: %+v", how, got)
		}
	}

	start := time.Now()
	n.Restart(t) // SIGTERM first: rnacos shuts down gracefully
	t.Logf("rnacos stopped and restarted in %v", time.Since(start).Round(time.Millisecond))
	if n.Pid() == pid {
		t.Fatal("restart kept the old process")
	}
	check("a clean restart")

	pid = n.Pid()
	n.Kill()
	start = time.Now()
	n.Restart(t)
	t.Logf("rnacos restarted after a crash in %v", time.Since(start).Round(time.Millisecond))
	if n.Pid() == pid {
		t.Fatal("restart kept the old process")
	}
	check("a crash")
}
