package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
)

type readyBody struct {
	Status       string
	Registration map[string]string
	Checks       map[string]string
}

func probe(t *testing.T, h http.Handler, path string) (int, readyBody, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	var b readyBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("%s body %q: %v", path, w.Body.String(), err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("%s content type %q", path, ct)
	}
	return w.Code, b, w.Body.String()
}

// Readiness runs every check, bounded; failing, slow and panicking checks
// make it 503 with their names, without their error text (logged instead).
func TestReadinessChecks(t *testing.T) {
	var logs testenv.Buffer
	block := make(chan struct{})
	defer close(block)
	fail := true
	h, err := registry.NewHealth(
		registry.WithCheck("redis", func(context.Context) error { return nil }),
		registry.WithCheck("db", func(context.Context) error {
			if fail {
				return errors.New("dial tcp 10.0.0.9:5432: secret-internal-detail")
			}
			return nil
		}),
		registry.WithCheckTimeout(100*time.Millisecond),
		registry.WithLogger(logging.New(&logs, nil)),
	)
	if err != nil {
		t.Fatal(err)
	}
	h.SetRegistration("eureka", registry.RegistrationPending)
	code, b, raw := probe(t, h.Readiness(), "/readyz")
	if code != 503 || b.Status != "failing" || b.Checks["redis"] != "ok" || b.Checks["db"] != "failing" ||
		b.Registration["eureka"] != "pending" {
		t.Fatalf("readiness %d %s", code, raw)
	}
	if strings.Contains(raw, "secret") {
		t.Fatalf("error text leaked: %s", raw)
	}
	if !strings.Contains(logs.String(), `"check":"db"`) || !strings.Contains(logs.String(), "secret-internal-detail") {
		t.Fatalf("failing check not logged: %s", logs.String())
	}
	fail = false
	if code, b, raw = probe(t, h.Readiness(), "/readyz"); code != 200 || b.Status != "ready" || b.Checks["db"] != "ok" {
		t.Fatalf("readiness %d %s", code, raw)
	}

	// A check that hangs past the timeout, and one that panics.
	slow, err := registry.NewHealth(
		registry.WithCheck("hangs", func(context.Context) error { <-block; return nil }),
		registry.WithCheck("panics", func(context.Context) error { panic("boom") }),
		registry.WithCheckTimeout(100*time.Millisecond),
		registry.WithLogger(logging.New(io.Discard, nil)),
	)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, b, raw = probe(t, slow.Readiness(), "/readyz")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("readiness took %s with a 100ms timeout", took)
	}
	if code != 503 || b.Checks["hangs"] != "failing" || b.Checks["panics"] != "failing" {
		t.Fatalf("readiness %d %s", code, raw)
	}

	// Draining wins over everything, at once, without running checks.
	h.SetDraining()
	if !h.Draining() {
		t.Fatal("Draining() false after SetDraining")
	}
	if code, b, raw = probe(t, h.Readiness(), "/readyz"); code != 503 || b.Status != "draining" || b.Checks["db"] != "skipped" {
		t.Fatalf("readiness while draining %d %s", code, raw)
	}
	// Liveness stays 200.
	if code, b, _ = probe(t, h.Liveness(), "/healthz"); code != 200 || b.Status != "ok" {
		t.Fatalf("liveness %d", code)
	}
}

// The probes mount on a ServeMux, a Gin engine, or in front of a handler,
// under configurable paths.
func TestHealthMount(t *testing.T) {
	h, err := registry.NewHealth(registry.WithPaths("/live", "/ready"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	gin.SetMode(gin.TestMode)
	r := gin.New()
	h.MountGin(r)
	wrapped := h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(418) }))
	for name, handler := range map[string]http.Handler{"mux": mux, "gin": r, "wrap": wrapped} {
		if code, b, _ := probe(t, handler, "/live"); code != 200 || b.Status != "ok" {
			t.Errorf("%s /live: %d", name, code)
		}
		if code, b, _ := probe(t, handler, "/ready"); code != 200 || b.Status != "ready" {
			t.Errorf("%s /ready: %d", name, code)
		}
	}
	w := httptest.NewRecorder()
	wrapped.ServeHTTP(w, httptest.NewRequest("GET", "/other", nil))
	if w.Code != 418 {
		t.Errorf("Wrap passed /other on with %d", w.Code)
	}
	if h.LivenessPath() != "/live" || h.ReadinessPath() != "/ready" {
		t.Error("paths not kept")
	}
}

func TestHealthValidation(t *testing.T) {
	ok := func(context.Context) error { return nil }
	cases := map[string][]registry.HealthOption{
		"WithCheck: empty name": {registry.WithCheck("", ok)},
		"nil function":          {registry.WithCheck("a", nil)},
		"two checks named":      {registry.WithCheck("a", ok), registry.WithCheck("a", ok)},
		"WithCheckTimeout":      {registry.WithCheckTimeout(0)},
		"WithPaths":             {registry.WithPaths("/a", "/a")},
		"option 1 is nil":       {nil},
	}
	for want, opts := range cases {
		if _, err := registry.NewHealth(opts...); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "registry: ") {
			t.Errorf("%s: %v", want, err)
		}
	}
}
