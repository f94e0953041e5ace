package testenv_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// TestConsulRestart checks what the Consul registry's tests rely on: the
// agent answers on its loopback HTTP port with a leader and its node in the
// catalog; a service registered with it is listed; paused, it answers
// nothing; after a crash it comes back as a new process on the same ports
// and, being a -dev agent, without the service.
func TestConsulRestart(t *testing.T) {
	start := time.Now()
	c := testenv.StartConsul(t)
	t.Logf("consul ready on %s after %v", c.Addr, time.Since(start).Round(time.Millisecond))
	ports := map[int]bool{c.HTTPPort: true, c.SerfLAN: true, c.SerfWAN: true, c.Server: true}
	if len(ports) != 4 || !strings.HasPrefix(c.Addr, "127.0.0.1:") {
		t.Fatalf("addr %s, ports %d/%d/%d/%d", c.Addr, c.HTTPPort, c.SerfLAN, c.SerfWAN, c.Server)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var cfg struct {
		Config      struct{ Version string }
		DebugConfig struct {
			DNSPort, GRPCPort, GRPCTLSPort int
			DisableUpdateCheck             bool
		}
	}
	if err := c.Get(ctx, "/v1/agent/self", &cfg); err != nil {
		t.Fatalf("GET /v1/agent/self: %v", err)
	}
	if cfg.Config.Version != testenv.ConsulVersion || cfg.DebugConfig.DNSPort != -1 || cfg.DebugConfig.GRPCPort != -1 ||
		cfg.DebugConfig.GRPCTLSPort != -1 || !cfg.DebugConfig.DisableUpdateCheck {
		t.Fatalf("agent config %+v; want version %s, DNS and gRPC off, no update check", cfg, testenv.ConsulVersion)
	}

	register := func() {
		t.Helper()
		body := `{"ID":"orders-1","Name":"orders","Address":"127.0.0.1","Port":9001}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+c.Addr+"/v1/agent/service/register", strings.NewReader(body))
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("register: %s", resp.Status)
		}
	}
	register()
	got, err := c.Services(ctx, "orders", true)
	if err != nil || len(got) != 1 || got[0].ID != "orders-1" || got[0].Port != 9001 || got[0].Status != "passing" {
		t.Fatalf("Services = %+v, %v; want orders-1 on 9001, passing", got, err)
	}

	c.Pause(t)
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = c.Ready(pctx)
	pcancel()
	if err == nil {
		t.Fatal("a paused agent answered")
	}
	c.Resume()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready after Resume: %v", err)
	}

	addr, pid := c.Addr, c.Pid()
	c.Kill()
	hctx, hcancel := context.WithTimeout(ctx, time.Second)
	err = c.Ready(hctx)
	hcancel()
	if err == nil {
		t.Fatal("the agent answered after Kill")
	}
	start = time.Now()
	c.Restart(t)
	t.Logf("restarted in %v", time.Since(start).Round(time.Millisecond))
	if c.Addr != addr || c.Exited() || c.Pid() == pid {
		t.Fatalf("after Restart: %s exited=%v pid %d (old %d)", c.Addr, c.Exited(), c.Pid(), pid)
	}
	if got, err := c.Services(ctx, "orders", false); err != nil || len(got) != 0 {
		t.Fatalf("after Restart: Services = %+v, %v; want none (a -dev agent keeps no state)", got, err)
	}
	register()
	if got, err := c.Services(ctx, "orders", true); err != nil || len(got) != 1 {
		t.Fatalf("after Restart: Services = %+v, %v; want the service registered again", got, err)
	}
}

// TestConsulACL checks the ACL mode: the agent is ready (its own node
// synced with the agent token), Get sends the management token, and a
// request without a token is denied.
func TestConsulACL(t *testing.T) {
	c := testenv.StartConsulACL(t, "5f3c8a21-3c1e-4c7b-9a56-0d7e1b2f4a10")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var self map[string]any
	if err := c.Get(ctx, "/v1/agent/self", &self); err != nil {
		t.Fatalf("GET /v1/agent/self with the token: %v", err)
	}
	anon := *c
	anon.Token = ""
	if err := anon.Get(ctx, "/v1/agent/self", &self); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("GET /v1/agent/self without a token = %v; want 403", err)
	}
}
