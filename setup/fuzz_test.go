package setup_test

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/gingov/gingov/setup"
)

// seedDocs are the documents of the other tests and examples.
var seedDocs = []string{
	"",
	"service: {name: orders, version: v1}\nratelimit:\n  rules:\n    - {by: ip, limit: 2, period: 1m}\n    - {name: orders, by: route, limit: 100, period: 1s, routes: [\"/orders/:id\"]}\n",
	"service: {name: orders}\nmetrics: {disabled: true}\ncircuitbreaker: {enabled: true, min_requests: 4, failure_ratio: 0.5, open_timeout: 1m}\n",
	"service: {name: orders}\nsentinel:\n  enabled: true\n  rules:\n    flow: [{resource: \"GET:/orders/:id\", threshold: 1}]\n",
	"service: {name: orders}\nreload: {file: true, interval: 20ms}\nratelimit:\n  rules:\n    - {by: ip, limit: 2, period: 1m}\n",
	"service: {name: orders}\nratelimit:\n  redis: {addrs: [\"127.0.0.1:6379\"]}\n  rules:\n    - {by: global, limit: 5, period: 1m}\n",
	"service: {name: orders, version: v1}\ntracing: {exporter: stdout, sample_ratio: 1, response_header: Trace-Id}\nratelimit:\n  rules: [{by: ip, limit: 1, period: 1m}]\n",
	"service: {name: orders, version: v2}\ntracing: {exporter: otlp-http, endpoint: \"127.0.0.1:4318\", sample_ratio: 0.25}\nratelimit:\n  redis: {addrs: [\"127.0.0.1:6379\"], failure_policy: closed, deadline: 50ms}\n  rules: [{by: \"header:X-User-Id\", limit: 10, period: 1s, burst: 20}]\n",
	"service: {name: a}\ncircuitbreaker: {policy: sre, k: 0.5}",
	"service: {name: a}\nsentinel: {enabled: true, rules_file: x.yaml, nacos: {addr: \"127.0.0.1:8848\", data_id: d}}",
	"service: {name: a}\nsentinel: {enabled: true, params: [ip, \"header:X-User\", \"query:q\", \"path:id\"]}",
	"service: {name: a}\nreload: {nacos: {addr: \"127.0.0.1:8848\", data_id: gingov.yaml}, interval: 200ms}",
	"service: {name: a}\nexempt: {paths: [/metrics, \"/debug/:x\"]}\nlog: {level: debug, skip_paths: [], request_id_header: X-Req, max_field_bytes: 512, max_line_bytes: 4096}",
	"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: soon}]}",
	"service: {name: a}\nratelimit: {rulez: []}",
	`{"service": {"name": "a"}, "metrics": {"path": "/prom", "namespace": "app"}}`,
}

// A field-named error: "setup: " then a YAML path, optionally after the
// file position of the library's message.
var fieldError = regexp.MustCompile(`^setup: [a-zA-Z_]+(\.[a-zA-Z_]+|\[\d+\])*: `)

// Parse and Validate never panic; every error starts with "setup: ", and
// every validation error names the field. A configuration that validates
// holds no NaN or infinite number.
func FuzzParse(f *testing.F) {
	for _, doc := range seedDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := setup.Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "setup: ") {
				t.Fatalf("Parse error without the package prefix: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			if !fieldError.MatchString(err.Error()) {
				t.Fatalf("Validate error names no field: %v", err)
			}
			return
		}
		checkValid(t, cfg)
	})
}

// ApplyEnv never panics and an error names the variable; the result is
// validated like a document.
func FuzzApplyEnv(f *testing.F) {
	for _, kv := range []string{
		"GINGOV_SERVICE_NAME=orders", "GINGOV_TRACING_SAMPLE_RATIO=0.1", "GINGOV_TRACING_SAMPLE_RATIO=most",
		"GINGOV_RATELIMIT_REDIS_ADDRS=127.0.0.1:7000, 127.0.0.1:7001", "GINGOV_RATELIMIT_REDIS_CLUSTER=true",
		"GINGOV_RELOAD_INTERVAL=250ms", "GINGOV_RELOAD_INTERVAL=5", "GINGOV_RELOAD_NACOS_ADDR=127.0.0.1:8848",
		"GINGOV_RELOAD_NACOS_DATA_ID=gingov.yaml", "GINGOV_METRICS_DISABLED=1", "GINGOV_SERVICE_NAYM=x",
		"GINGOV_RATELIMIT_RULES=x", "GINGOV_LOG_LEVEL=debug", "GINGOV_CIRCUITBREAKER_K=NaN",
		"GINGOV_EXEMPT_PATHS=/a,/b", "GINGOV_RATELIMIT_REDIS_DB=-1", "HOME=/root",
	} {
		f.Add(kv, seedDocs[1])
	}
	f.Fuzz(func(t *testing.T, kv, doc string) {
		cfg, err := setup.Parse([]byte(doc))
		if err != nil {
			return
		}
		err = setup.ApplyEnv(&cfg, []string{kv})
		if err != nil {
			name, _, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(err.Error(), "setup: environment variable "+name+" ") &&
				!strings.HasPrefix(err.Error(), "setup: environment variable "+name+":") {
				t.Fatalf("ApplyEnv(%q) error does not name the variable: %v", kv, err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			if !fieldError.MatchString(err.Error()) {
				t.Fatalf("Validate error names no field: %v", err)
			}
			return
		}
		checkValid(t, cfg)
	})
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// checkValid checks what Validate promises of a valid configuration.
func checkValid(t *testing.T, cfg setup.Config) {
	t.Helper()
	if strings.TrimSpace(cfg.Service.Name) == "" {
		t.Fatal("valid without a service name")
	}
	if r := cfg.Tracing.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		t.Fatalf("valid with sample_ratio %v", *r)
	}
	b := cfg.Breaker
	if !finite(b.FailureRatio) || !finite(b.K) || b.FailureRatio < 0 || b.FailureRatio > 1 || b.MinRequests < 0 || b.MinRequests > math.MaxUint32 {
		t.Fatalf("valid with circuitbreaker %+v", b)
	}
	for i, r := range cfg.RateLimit.Rules {
		if r.Limit <= 0 || r.Period <= 0 || r.Burst < 0 {
			t.Fatalf("valid with ratelimit.rules[%d] %+v", i, r)
		}
	}
	if cfg.Reload.Interval < 0 || cfg.RateLimit.Redis.Deadline < 0 || b.Window < 0 || b.OpenTimeout < 0 {
		t.Fatalf("valid with a negative duration: %+v", cfg)
	}
}
