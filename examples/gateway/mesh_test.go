package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// reply is what a client sees of an answer, minus what differs from run to
// run (instance addresses, request and trace ids).
type reply struct {
	Status int
	Body   any
	// SameTrace: orders saw the trace the gateway answered with.
	SameTrace bool
}

func ask(t *testing.T, base, method, path string, hdr map[string]string) (reply, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, base+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Body: string(raw)}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		if tid, ok := m["trace_id"].(string); ok && m["served_by"] != nil {
			r.SameTrace = tid == resp.Header.Get("Trace-Id")
		}
		delete(m, "served_by")
		delete(m, "trace_id")
		delete(m, "request_id")
		r.Body = m
	}
	return r, resp.Header
}

// startSidecar runs Envoy with docs/mesh/envoy.yaml in front of the app at
// appPort, its egress listener at egressPort sending to upstreamPort, and
// returns its ingress address and admin address. Nothing listens at the
// rate-limit and Zipkin ports: the rate-limit filter admits
// (failure_mode_deny: false), and the gateway's per-user limit stays in
// the app (enforce: app).
func startSidecar(t *testing.T, appPort, egressPort, upstreamPort int) (ingress, admin string) {
	t.Helper()
	adminPort, in := testenv.FreePort(t), testenv.FreePort(t)
	e := testenv.StartEnvoy(t, testenv.ExpandEnvoyConfig(t, "../../docs/mesh/envoy.yaml", map[string]string{
		"ADMIN_PORT": strconv.Itoa(adminPort), "INGRESS_PORT": strconv.Itoa(in), "APP_PORT": strconv.Itoa(appPort),
		"EGRESS_PORT": strconv.Itoa(egressPort), "UPSTREAM_ADDR": "127.0.0.1", "UPSTREAM_PORT": strconv.Itoa(upstreamPort),
		"RATELIMIT_PORT": strconv.Itoa(testenv.FreePort(t)), "RATELIMIT_TIMEOUT": "1s", "ZIPKIN_PORT": strconv.Itoa(testenv.FreePort(t)),
		"TRACE_SAMPLING": "100",
	}), adminPort)
	return "http://127.0.0.1:" + strconv.Itoa(in), e.AdminAddr
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		t.Fatal(addr)
	}
	return p
}

// TestGatewayMeshed: the gateway → orders example behind Envoy sidecars
// (gateway with -sidecar, orders with -mesh, one Envoy each, from
// docs/mesh/envoy.yaml) answers a table of requests as the example does
// through Nacos without them: status and body, minus ids; one trace
// across both services either way.
func TestGatewayMeshed(t *testing.T) {
	testenv.EnvoyBinary(t)
	n := testenv.StartNacos(t)
	startOrders(t, "v1", false, "-nacos", n.HTTPAddr)
	plain := startGateway(t, discoverFlags{nacos: n.HTTPAddr})

	orders := startOrders(t, "v1", false, "-mesh")
	ordersIn, _ := startSidecar(t, portOf(t, orders), testenv.FreePort(t), testenv.FreePort(t))
	egress := testenv.FreePort(t)
	gateway := startGateway(t, discoverFlags{sidecar: "http://127.0.0.1:" + strconv.Itoa(egress)})
	meshed, gwAdmin := startSidecar(t, portOf(t, strings.TrimPrefix(gateway, "http://")), egress, portOf(t, ordersIn))

	// Discovery catches up without sidecars; Envoy's clusters are static.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r, _ := ask(t, plain, "GET", "/api/orders/1", map[string]string{"X-User-Id": "warmup"}); r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway found no orders instance in 15 s")
		}
	}

	table := []struct {
		name, method, path string
		hdr                map[string]string
	}{
		{"an order", "GET", "/api/orders/42", map[string]string{"X-User-Id": "alice"}},
		{"another order", "GET", "/api/orders/abc", map[string]string{"X-User-Id": "carol"}},
		{"no user", "GET", "/api/orders/7", nil},
		{"a request id given", "GET", "/api/orders/8", map[string]string{"X-User-Id": "dan", "X-Request-ID": "req-1"}},
		{"unknown route", "GET", "/nope", nil},
		{"wrong method", "POST", "/api/orders/42", map[string]string{"X-User-Id": "erin"}},
	}
	for _, tc := range table {
		want, _ := ask(t, plain, tc.method, tc.path, tc.hdr)
		got, hdr := ask(t, meshed, tc.method, tc.path, tc.hdr)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: through the sidecars %+v, without them %+v", tc.name, got, want)
		}
		if hdr.Get("X-Envoy-Upstream-Service-Time") == "" {
			t.Errorf("%s: the answer did not come through Envoy: %v", tc.name, hdr)
		}
		t.Logf("%-18s %s %-16s → %d %v (same trace: %v)", tc.name, tc.method, tc.path, got.Status, got.Body, got.SameTrace)
	}
	if r, _ := ask(t, meshed, "GET", "/api/orders/42", map[string]string{"X-User-Id": "alice"}); !r.SameTrace {
		t.Error("through the sidecars, orders did not see the gateway's trace")
	}

	// The per-user limit (5/s, in the app): the first refusal, and how many
	// got through before it.
	limit := func(base string) (int, reply) {
		for i := 1; i <= 30; i++ {
			if r, _ := ask(t, base, "GET", "/api/orders/1", map[string]string{"X-User-Id": "bob"}); r.Status != 200 {
				return i - 1, r
			}
		}
		t.Fatalf("%s: bob was never limited", base)
		return 0, reply{}
	}
	okPlain, refusedPlain := limit(plain)
	okMeshed, refusedMeshed := limit(meshed)
	if !reflect.DeepEqual(refusedMeshed, refusedPlain) || okPlain < 5 || okMeshed < 5 {
		t.Errorf("limited: through the sidecars after %d: %+v; without them after %d: %+v", okMeshed, refusedMeshed, okPlain, refusedPlain)
	}
	t.Logf("bob limited after %d (sidecars) and %d (none): %v", okMeshed, okPlain, refusedMeshed.Body)

	// The gateway's calls went through its sidecar's egress listener.
	resp, err := http.Get("http://" + gwAdmin + "/stats?filter=^cluster.upstream.upstream_rq_total$")
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	total, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(stats)), "cluster.upstream.upstream_rq_total:")))
	if total < len(table) {
		t.Errorf("the gateway's sidecar sent %d requests to orders: %q", total, stats)
	}
}
