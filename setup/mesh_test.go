package setup_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/registrytest"
	"github.com/gingov/gingov/setup"
	"github.com/gingov/gingov/setup/internal/choices"
)

func TestMeshValidation(t *testing.T) {
	// Invalid values: invalidDocs (config_test.go), which the schema test
	// reads too.
	for _, doc := range []string{"mesh: none", "mesh: sidecar", "mesh: \"\""} {
		cfg := mustParse(t, "service: {name: s}\n"+doc)
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
	var cfg setup.Config
	if err := setup.ApplyEnv(&cfg, []string{"GINGOV_MESH=sidecar"}); err != nil || cfg.Mesh != setup.MeshSidecar {
		t.Fatalf("GINGOV_MESH: %v, %q", err, cfg.Mesh)
	}
}

// In a mesh, rules with enforce: sidecar are left to Envoy; out of it the
// app enforces every rule, so one file serves both kinds of instances.
func TestMeshDelegatesRules(t *testing.T) {
	const rules = "ratelimit:\n  rules:\n    - {name: app, by: header:X-A, limit: 1, period: 1m}\n    - {name: edge, by: header:X-B, limit: 1, period: 1m, enforce: sidecar}\n"
	for _, tc := range []struct {
		mesh         string
		wantA, wantB int // status of the second request
	}{
		{"none", 429, 429},
		{"sidecar", 429, 200},
	} {
		r, ch, _ := use(t, mustParse(t, "service: {name: s}\nmesh: "+tc.mesh+"\n"+rules))
		send := func(h string) int {
			req := httptest.NewRequest(http.MethodGet, "/ping", nil)
			req.Header.Set(h, "u")
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			return w.Code
		}
		if a, b := send("X-A"), send("X-A"); a != 200 || b != tc.wantA {
			t.Errorf("mesh %s, rule app: %d %d", tc.mesh, a, b)
		}
		if a, b := send("X-B"), send("X-B"); a != 200 || b != tc.wantB {
			t.Errorf("mesh %s, rule enforce: sidecar: %d %d", tc.mesh, a, b)
		}
		// A reload keeps the mode in force.
		if err := ch.Reload([]byte("service: {name: s}\nmesh: " + tc.mesh + "\n" + strings.ReplaceAll(rules, "limit: 1,", "limit: 2,"))); err != nil {
			t.Fatal(err)
		}
	}
	// Only sidecar rules, in a mesh: no in-app limiter at all.
	r, _, _ := use(t, mustParse(t, "service: {name: s}\nmesh: sidecar\nratelimit: {rules: [{by: ip, limit: 1, period: 1m, enforce: sidecar}]}"))
	for range 3 {
		if w := get(r, "/ping"); w.Code != 200 {
			t.Fatalf("a rule left to the sidecar limited in the app: %d", w.Code)
		}
	}
}

// recorder is an upstream that records the requests it gets.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	srv  *httptest.Server
}

func newRecorder(t *testing.T, status int) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r)
		rec.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) last(t *testing.T) *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("the upstream got no request")
	}
	return r.reqs[len(r.reqs)-1]
}

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.reqs) }

// NewClient in a mesh: a plain request to the service's name, sent to the
// sidecar, with the trace (B3 included) and the request ID; no breaker,
// no retry, no discovery even when they are configured.
func TestNewClientMeshed(t *testing.T) {
	sidecar := newRecorder(t, http.StatusServiceUnavailable)
	r, ch, _ := use(t, mustParse(t, "service: {name: gateway}\nmesh: sidecar"))
	res, err := registry.NewResolver(registrytest.New())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	client, err := ch.NewClient(setup.WithSidecar(sidecar.srv.URL), setup.WithResolver(res),
		setup.WithDiscoveryOptions(registry.WithRetries(3)),
		setup.WithBreakerOptions(circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 1, FailureRatio: 0.1})))
	if err != nil {
		t.Fatal(err)
	}
	r.GET("/call", func(c *gin.Context) {
		req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, "http://orders/orders/7", nil)
		resp, err := client.Do(req)
		if err != nil {
			c.String(599, err.Error())
			return
		}
		resp.Body.Close()
		c.Status(resp.StatusCode)
	})
	for i := range 5 {
		req := httptest.NewRequest(http.MethodGet, "/call", nil)
		req.Header.Set("X-Request-ID", "5f1c6f0e-3d5b-4a7e-9f7e-2b1d6c1e8a11")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("call %d: %d %s (a breaker or discovery in the way?)", i, w.Code, w.Body.String())
		}
	}
	if n := sidecar.count(); n != 5 {
		t.Fatalf("the sidecar got %d requests for 5 calls (retries in the app?)", n)
	}
	got := sidecar.last(t)
	if got.Host != "orders" || got.URL.Path != "/orders/7" {
		t.Errorf("sidecar got Host %q path %q", got.Host, got.URL.Path)
	}
	for _, h := range []string{"Traceparent", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Sampled"} {
		if got.Header.Get(h) == "" {
			t.Errorf("no %s header: %v", h, got.Header)
		}
	}
	if got.Header.Get("X-Request-Id") != "5f1c6f0e-3d5b-4a7e-9f7e-2b1d6c1e8a11" {
		t.Errorf("x-request-id %q", got.Header.Get("X-Request-Id"))
	}
}

// NewClient out of a mesh finds the instances itself.
func TestNewClientUnmeshed(t *testing.T) {
	up := newRecorder(t, http.StatusOK)
	_, ch, _ := use(t, mustParse(t, "service: {name: gateway}"))
	if _, err := ch.NewClient(); err == nil || !strings.Contains(err.Error(), "setup: WithResolver: required") {
		t.Fatalf("NewClient without a resolver: %v", err)
	}
	mem := registrytest.New()
	ins := registry.ServiceInstance{ID: "o1", Name: "orders", Address: strings.TrimPrefix(up.srv.URL, "http://")}
	if err := mem.Register(context.Background(), &ins); err != nil {
		t.Fatal(err)
	}
	res, err := registry.NewResolver(mem)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	client, err := ch.NewClient(setup.WithResolver(res), setup.WithSidecar("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get("http://orders/orders/7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || up.count() != 1 {
		t.Fatalf("status %d, upstream got %d", resp.StatusCode, up.count())
	}
}

func TestNewClientErrors(t *testing.T) {
	_, ch, _ := use(t, mustParse(t, "service: {name: gateway}\nmesh: sidecar"))
	for _, tc := range []struct {
		opts []setup.ClientOption
		want string
	}{
		{[]setup.ClientOption{nil}, "setup: NewClient: option 1 is nil"},
		{[]setup.ClientOption{setup.WithResolver(nil)}, "setup: WithResolver: nil Resolver"},
		{[]setup.ClientOption{setup.WithSidecar("127.0.0.1:15001")}, `setup: WithSidecar: "127.0.0.1:15001" is not http://host:port`},
		{[]setup.ClientOption{setup.WithSidecar("http://127.0.0.1:15001/x")}, `setup: WithSidecar: "http://127.0.0.1:15001/x" is not http://host:port`},
		{[]setup.ClientOption{setup.WithDiscoveryOptions(nil)}, "setup: WithDiscoveryOptions: option 1 is nil"},
		{[]setup.ClientOption{setup.WithBreakerOptions(nil)}, "setup: WithBreakerOptions: option 1 is nil"},
	} {
		if _, err := ch.NewClient(tc.opts...); err == nil || err.Error() != tc.want {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	if _, err := setup.Use(context.Background(), gin.New(), mustParse(t, "service: {name: s}"), setup.WithTracingOptions(nil)); err == nil ||
		err.Error() != "setup: WithTracingOptions: option 1 is nil" {
		t.Errorf("WithTracingOptions(nil): %v", err)
	}
}

// The sets validation checks mesh and enforce against (and the schema
// lists) are the constants' values.
func TestMeshChoicesAreTheConstants(t *testing.T) {
	if got, want := choices.Mesh.Values, []string{setup.MeshNone, setup.MeshSidecar}; !slices.Equal(got, want) {
		t.Errorf("choices.Mesh = %q, want %q", got, want)
	}
	if got, want := choices.Enforce.Values, []string{setup.EnforceApp, setup.EnforceSidecar}; !slices.Equal(got, want) {
		t.Errorf("choices.Enforce = %q, want %q", got, want)
	}
}
