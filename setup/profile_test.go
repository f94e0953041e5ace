package setup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/setup"
)

// writeProfile writes gingov.yaml and, unless overlay is "", the overlay of
// profile next to it, and returns the file's path.
func writeProfile(t *testing.T, base, profile, overlay string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "gingov.yaml")
	writeFile(t, path, base)
	if overlay != "" {
		writeFile(t, filepath.Join(dir, "gingov."+profile+".yaml"), overlay)
	}
	return path
}

// The documented precedence, each level over the one below: defaults <
// file < profile overlay < config centre < GINGOV_ environment; maps merge,
// lists and null replace.
func TestProfilePrecedence(t *testing.T) {
	path := writeProfile(t, `
service: {name: orders, version: v1}
log: {level: debug, request_id_header: X-Req}
metrics: {namespace: base, path: /m}
ratelimit:
  rules:
    - {by: ip, limit: 1, period: 1m}
    - {name: r2, by: route, limit: 2, period: 1m}
deadline: {default: 2s, routes: {"GET /a": 3s, "GET /b": 4s}}
`, "prod", `
service: {version: v2}
log: {level: warn}
metrics: {namespace: ~}
ratelimit:
  rules:
    - {by: global, limit: 7, period: 1s}
deadline: {routes: {"GET /b": 5s}}
`)
	t.Setenv("GINGOV_LOG_REQUEST_ID_HEADER", "X-Env")
	cfg, err := setup.LoadProfile(path, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Profile() != "prod" {
		t.Fatalf("profile %q", cfg.Profile())
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"default (set nowhere): tracing.exporter", cfg.Tracing.Exporter, ""},
		{"file (the overlay leaves it): service.name", cfg.Service.Name, "orders"},
		{"file (merged map): metrics.path", cfg.Metrics.Path, "/m"},
		{"overlay over file: service.version", cfg.Service.Version, "v2"},
		{"overlay over file: log.level", cfg.Log.Level, "warn"},
		{"overlay null resets to the default: metrics.namespace", cfg.Metrics.Namespace, ""},
		{"overlay list replaces the file's: rules", len(cfg.RateLimit.Rules), 1},
		{"overlay list replaces the file's: rule", cfg.RateLimit.Rules[0].By, "global"},
		{"maps merge key by key: deadline.routes[GET /a]", cfg.Deadline.Routes["GET /a"].String(), "3s"},
		{"maps merge key by key: deadline.routes[GET /b]", cfg.Deadline.Routes["GET /b"].String(), "5s"},
		{"environment over all: log.request_id_header", cfg.Log.RequestIDHeader, "X-Env"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}

	// Without the profile the overlay is not read.
	plain, err := setup.LoadProfile(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Service.Version != "v1" || len(plain.RateLimit.Rules) != 2 || plain.Profile() != "" {
		t.Fatalf("without a profile: %+v", plain.Service)
	}
	// GINGOV_PROFILE picks it for Load, and is no configuration field.
	t.Setenv(setup.ProfileEnv, "prod")
	env, err := setup.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if env.Profile() != "prod" || env.Service.Version != "v2" {
		t.Fatalf("GINGOV_PROFILE=prod: profile %q, version %q", env.Profile(), env.Service.Version)
	}
	// A profile without an overlay file is fine (it may only pick
	// namespaces).
	if cfg, err := setup.LoadProfile(path, "staging"); err != nil || cfg.Service.Version != "v1" {
		t.Fatalf("profile without an overlay: %v %q", err, cfg.Service.Version)
	}
}

// The program's Reload replaces the base document: the overlay and the
// environment still apply over it (the centres' documents too: see
// TestReloadFromEtcd).
func TestReloadKeepsOverlayAndEnvironment(t *testing.T) {
	path := writeProfile(t, "service: {name: orders}\nlog: {level: info}\nratelimit:\n  rules:\n    - {by: ip, limit: 1, period: 1m}\n",
		"prod", "log: {level: warn}\n")
	for _, env := range []string{"", "debug"} {
		if env != "" {
			t.Setenv("GINGOV_LOG_LEVEL", env)
		}
		cfg, err := setup.LoadProfile(path, "prod")
		if err != nil {
			t.Fatal(err)
		}
		_, ch, logs := use(t, cfg)
		if err := ch.Reload([]byte("service: {name: orders}\nlog: {level: error}\nratelimit:\n  rules:\n    - {by: ip, limit: 4, period: 1m}\n")); err != nil {
			t.Fatal(err)
		}
		if got := limitInForce(ch); got != 4 {
			t.Fatalf("limit %d after Reload", got)
		}
		// log.level: the new base says error, but the overlay (warn), or
		// the environment over it, still decides: nothing to restart.
		if strings.Contains(logs.String(), `"sections":"log"`) {
			t.Fatalf("GINGOV_LOG_LEVEL=%q: the base document won over the overlay or the environment:\n%s", env, logs)
		}
		// The control: a change the layers above do not cover is seen.
		if err := ch.Reload([]byte("service: {name: orders, version: v9}\nratelimit:\n  rules:\n    - {by: ip, limit: 4, period: 1m}\n")); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), `"sections":"service"`) {
			t.Fatalf("a section change was not logged:\n%s", logs)
		}
	}
}

func TestProfileErrors(t *testing.T) {
	path := writeProfile(t, "service: {name: orders}\nreload: {etcd: {endpoints: [\"127.0.0.1:2379\"], key: \"/gingov/{profile}/doc\"}}\n",
		"prod", "service: {name: orders}\nratelimit: {rules: [{by: ip, limit: 1, period: never}]}\n")
	if _, err := setup.LoadProfile(path, "../etc"); err == nil || !strings.Contains(err.Error(), "setup: profile") {
		t.Fatalf("a profile with a path in it: %v", err)
	}
	if _, err := setup.LoadProfile(path, ""); err == nil || !strings.Contains(err.Error(), "setup: reload.etcd.key:") {
		t.Fatalf("{profile} without a profile: %v", err)
	}
	// An error in the overlay names the overlay file and the field.
	overlay := filepath.Join(filepath.Dir(path), "gingov.prod.yaml")
	if _, err := setup.LoadProfile(path, "prod"); err == nil || !strings.Contains(err.Error(), "setup: "+overlay+": ratelimit.rules[0].period") {
		t.Fatalf("an invalid overlay: %v", err)
	}
	if got := setup.OverlayPath("/etc/gingov/gingov.yaml", "prod"); got != "/etc/gingov/gingov.prod.yaml" {
		t.Fatalf("OverlayPath = %q", got)
	}
	if err := os.Remove(overlay); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.LoadProfile(path, "prod"); err != nil {
		t.Fatal(err)
	}
	// A configuration built in code has no profile: {profile} is an error.
	if _, err := setup.Use(context.Background(), gin.New(), mustParse(t, "service: {name: a}\nreload: {consul: {addr: \"127.0.0.1:1\", key: \"{profile}/doc\"}}\n")); err == nil ||
		!strings.Contains(err.Error(), "setup: reload.consul.key:") {
		t.Fatalf("{profile} in a configuration without a profile: %v", err)
	}
}
