package setup_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gingov/gingov/ratelimit/sentinel"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/setup"
)

// accessLogged counts the access-log lines of path.
func accessLogged(t *testing.T, logs string, path string) int {
	t.Helper()
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if rec["path"] == path || rec["route"] == path {
			n++
		}
	}
	return n
}

func TestMetricsAndProbesAreExempt(t *testing.T) {
	cfg := mustParse(t, `
service: {name: orders}
ratelimit:
  rules: [{by: ip, limit: 1, period: 1m}]
circuitbreaker: {enabled: true, min_requests: 1, failure_ratio: 0.1, open_timeout: 1m}
sentinel:
  enabled: true
  rules:
    flow: [{resource: "GET:/healthz", threshold: 1}, {resource: "GET:/readyz", threshold: 1}]
`)
	r, _, logs := use(t, cfg)
	defer func() { _ = sentinel.Load(sentinel.Rules{}) }()
	h, err := registry.NewHealth()
	if err != nil {
		t.Fatal(err)
	}
	h.MountGin(r)

	for i := range 5 {
		for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
			if w := get(r, p); w.Code != 200 {
				t.Fatalf("%s #%d: %d %s", p, i+1, w.Code, w.Body)
			}
		}
	}
	if w := get(r, "/ping"); w.Code != 200 {
		t.Fatalf("first /ping: %d", w.Code)
	}
	if w := get(r, "/ping"); w.Code != 429 || reason(t, w) != "RATE_LIMITED" {
		t.Fatalf("second /ping: %d %s, want 429: the scrapes and probes spent no budget of their own", w.Code, w.Body)
	}
	out := logs.String()
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		if n := accessLogged(t, out, p); n != 0 {
			t.Errorf("%s: %d access-log lines, want none", p, n)
		}
	}
	if n := accessLogged(t, out, "/ping"); n != 2 {
		t.Errorf("/ping: %d access-log lines, want 2", n)
	}
}

func TestExemptConfigurable(t *testing.T) {
	const limit = "service: {name: orders}\nratelimit: {rules: [{by: ip, limit: 1, period: 1m}]}\n"
	type check struct {
		path   string
		exempt bool
	}
	for _, tc := range []struct {
		name, doc string
		checks    []check
	}{
		{"disabled", limit + "exempt: {disabled: true}", []check{{"/metrics", false}, {"/ping", false}}},
		{"own list", limit + "exempt: {paths: [/ping, \"/orders/:id\"]}", []check{{"/metrics", false}, {"/ping", true}, {"/orders/7", true}}},
		{"own metrics path", limit + "metrics: {path: /prom}", []check{{"/prom", true}, {"/ping", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, logs := use(t, mustParse(t, tc.doc))
			for i, c := range tc.checks {
				ip := fmt.Sprintf("198.51.100.%d", i+1) // a budget of its own
				first, second := getFrom(r, c.path, ip).Code, getFrom(r, c.path, ip).Code
				if first != 200 || (second == 200) != c.exempt {
					t.Errorf("%s: %d then %d; exempt: %v", c.path, first, second, c.exempt)
				}
				if n := accessLogged(t, logs.String(), c.path); (n == 0) != c.exempt {
					t.Errorf("%s: %d access-log lines; exempt: %v", c.path, n, c.exempt)
				}
			}
		})
	}
}

func TestExemptPathsValidated(t *testing.T) {
	cfg, err := setup.Parse([]byte("service: {name: a}\nexempt: {paths: [metrics]}"))
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "setup: exempt.paths[0]:") {
		t.Fatalf("got %v, want an error naming exempt.paths[0]", err)
	}
}
