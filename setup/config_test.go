package setup_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/setup"
)

func TestParseDecodes(t *testing.T) {
	cfg := mustParse(t, `
service: {name: orders, version: v2}
tracing: {exporter: otlp-http, endpoint: "127.0.0.1:4318", sample_ratio: 0.25}
ratelimit:
  redis: {addrs: ["127.0.0.1:6379"], failure_policy: closed, deadline: 50ms}
  rules: [{by: "header:X-User-Id", limit: 10, period: 1s, burst: 20}]
`)
	if cfg.Service.Version != "v2" || *cfg.Tracing.SampleRatio != 0.25 || cfg.RateLimit.Redis.Deadline != 50*time.Millisecond ||
		cfg.RateLimit.Rules[0].Period != time.Second || cfg.RateLimit.Rules[0].Burst != 20 {
		t.Fatalf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// invalidDocs are documents that Parse or Validate rejects, each with the
// field the error names. The schema test checks that gingov.schema.json
// rejects each of them too.
var invalidDocs = []struct{ doc, field string }{
	{`service: {}`, "service.name"},
	{"service: {name: a}\nlog: {level: loud}", "log.level"},
	{"service: {name: a}\nlog: {request_id_header: \"X Request\"}", "log.request_id_header"},
	{"service: {name: a}\nlog: {max_field_bytes: 15}", "log.max_field_bytes"},
	{"service: {name: a}\nlog: {max_field_bytes: -1}", "log.max_field_bytes"},
	{"service: {name: a}\nlog: {max_line_bytes: 1000}", "log.max_line_bytes"},
	{"service: {name: a}\ntracing: {response_header: \"Trace:Id\"}", "tracing.response_header"},
	{"service: {name: a}\nratelimit: {rules: [{by: \"header:\", limit: 1, period: 1s}]}", "ratelimit.rules[0].by"},
	{"service: {name: a}\nsentinel: {enabled: true, params: [\"header:X(1)\"]}", "sentinel.params[0]"},
	{"service: {name: a}\nexempt: {paths: [healthz]}", "exempt.paths[0]"},
	{"service: {name: a}\ntracing: {exporter: zipkin}", "tracing.exporter"},
	{"service: {name: a}\nmesh: istio", "mesh"},
	{"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 1s, enforce: envoy}]}", "ratelimit.rules[0].enforce"},
	{"service: {name: a}\ntracing: {sample_ratio: 1.5}", "tracing.sample_ratio"},
	{"service: {name: a}\ntracing: {endpoint: nowhere}", "tracing.endpoint"},
	{"service: {name: a}\nmetrics: {path: metrics}", "metrics.path"},
	{"service: {name: a}\nmetrics: {namespace: my-app}", "metrics.namespace"},
	{"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 0, period: 1s}]}", "ratelimit.rules[0].limit"},
	{"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1}]}", "ratelimit.rules[0].period"},
	{"service: {name: a}\nratelimit: {rules: [{by: cookie, limit: 1, period: 1s}]}", "ratelimit.rules[0].by"},
	{"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 1s}, {by: ip, limit: 2, period: 1s}]}", "ratelimit.rules[1].name"},
	{"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 1s, routes: [orders]}]}", "ratelimit.rules[0].routes[0]"},
	{"service: {name: a}\nratelimit: {redis: {addrs: [localhost]}}", "ratelimit.redis.addrs[0]"},
	{"service: {name: a}\nratelimit: {redis: {failure_policy: maybe}}", "ratelimit.redis.failure_policy"},
	{"service: {name: a}\ncircuitbreaker: {policy: fancy}", "circuitbreaker.policy"},
	{"service: {name: a}\ncircuitbreaker: {failure_ratio: 2}", "circuitbreaker.failure_ratio"},
	{"service: {name: a}\ncircuitbreaker: {policy: sre, k: 0.5}", "circuitbreaker.k"},
	{"service: {name: a}\ncircuitbreaker: {policy: sre, k: .inf}", "circuitbreaker.k"},
	{"service: {name: a}\ncircuitbreaker: {policy: sre, k: .nan}", "circuitbreaker.k"},
	{"service: {name: a}\ncircuitbreaker: {failure_ratio: .nan}", "circuitbreaker.failure_ratio"},
	{"service: {name: a}\ncircuitbreaker: {min_requests: 4294967296}", "circuitbreaker.min_requests"},
	{"service: {name: a}\ntracing: {sample_ratio: .nan}", "tracing.sample_ratio"},
	{"service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: soon}]}", "ratelimit.rules[0].period"},
	{"service: {name: a}\nratelimit: {rules: [{by: ip, limit: x, period: 1s}]}", "ratelimit.rules[0].limit"},
	{"service: {name: a}\nreload: {interval: \"5\"}", "reload.interval"},
	{"service: {name: a}\nextra: 1", "extra"},
	{"service: {name: a}\nsentinel: {rules: {flow: [{resource: r, threshold: 1}]}}", "sentinel.enabled"},
	{"service: {name: a}\nsentinel: {enabled: true, rules: {flow: [{resource: r, threshold: -1}]}}", "sentinel.rules"},
	{"service: {name: a}\nsentinel: {enabled: true, rules_file: x.yaml, nacos: {addr: \"127.0.0.1:8848\", data_id: d}}", "sentinel"},
	{"service: {name: a}\nsentinel: {enabled: true, params: [cookie]}", "sentinel.params[0]"},
	{"service: {name: a}\nreload: {nacos: {addr: \"127.0.0.1:8848\"}}", "reload.nacos.data_id"},
	{"service: {name: a}\nreload: {interval: -1s}", "reload.interval"},
	{"service: {name: a}\nreload: {nacos: {addr: \"127.0.0.1:8848\", data_id: d, timeout: -1s}}", "reload.nacos.timeout"},
	{"service: {name: a}\nreload: {etcd: {key: /gingov/doc}}", "reload.etcd.endpoints"},
	{"service: {name: a}\nreload: {etcd: {endpoints: [\"\"], key: /gingov/doc}}", "reload.etcd.endpoints[0]"},
	{"service: {name: a}\nreload: {etcd: {endpoints: [\"127.0.0.1:2379\"]}}", "reload.etcd.key"},
	{"service: {name: a}\nreload: {etcd: {endpoints: [\"127.0.0.1:2379\"], key: k, timeout: -1s}}", "reload.etcd.timeout"},
	{"service: {name: a}\nreload: {consul: {addr: nowhere, key: k}}", "reload.consul.addr"},
	{"service: {name: a}\nreload: {consul: {addr: \"127.0.0.1:8500\"}}", "reload.consul.key"},
	{"service: {name: a}\nreload: {consul: {addr: \"127.0.0.1:8500\", key: /gingov/doc}}", "reload.consul.key"},
	{"service: {name: a}\nreload: {consul: {addr: \"127.0.0.1:8500\", key: k, timeout: -1s}}", "reload.consul.timeout"},
	{"service: {name: a}\nreload: {consul: {addr: \"127.0.0.1:8500\", key: k, wait: 11m}}", "reload.consul.wait"},
}

func TestInvalidConfigNamesTheField(t *testing.T) {
	for _, tc := range invalidDocs {
		cfg, err := setup.Parse([]byte(tc.doc))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "setup: "+tc.field+":") {
			t.Errorf("%q: got %v, want an error naming %s", tc.doc, err, tc.field)
		}
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	_, err := setup.Parse([]byte("service: {name: a}\nratelimit: {rulez: []}"))
	if err == nil || !strings.Contains(err.Error(), "rulez") {
		t.Fatalf("got %v, want an error naming the unknown key", err)
	}
	if _, err := setup.Parse([]byte("service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: soon}]}")); err == nil {
		t.Fatal("a malformed duration was accepted")
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg := mustParse(t, "service: {name: a}\ntracing: {exporter: stdout}")
	err := setup.ApplyEnv(&cfg, []string{
		"HOME=/root",
		"GINGOV_SERVICE_NAME=orders",
		"GINGOV_TRACING_SAMPLE_RATIO=0.1",
		"GINGOV_RATELIMIT_REDIS_ADDRS=127.0.0.1:7000, 127.0.0.1:7001",
		"GINGOV_RATELIMIT_REDIS_CLUSTER=true",
		"GINGOV_RELOAD_INTERVAL=250ms",
		"GINGOV_RELOAD_NACOS_ADDR=127.0.0.1:8848",
		"GINGOV_RELOAD_NACOS_DATA_ID=gingov.yaml",
		"GINGOV_METRICS_DISABLED=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Service.Name != "orders" || *cfg.Tracing.SampleRatio != 0.1 || cfg.Tracing.Exporter != "stdout" ||
		len(cfg.RateLimit.Redis.Addrs) != 2 || cfg.RateLimit.Redis.Addrs[1] != "127.0.0.1:7001" || !*cfg.RateLimit.Redis.Cluster ||
		cfg.Reload.Interval != 250*time.Millisecond || cfg.Reload.Nacos == nil || cfg.Reload.Nacos.DataID != "gingov.yaml" ||
		!cfg.Metrics.Disabled {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if cfg.Sentinel.Nacos != nil {
		t.Fatal("an untouched optional section was created")
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{"GINGOV_TRACING_SAMPLE_RATIO=most", "GINGOV_RELOAD_INTERVAL=5", "GINGOV_SERVICE_NAYM=x", "GINGOV_RATELIMIT_RULES=x"} {
		err := setup.ApplyEnv(&cfg, []string{bad})
		name, _, _ := strings.Cut(bad, "=")
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want an error naming the variable", bad, err)
		}
	}
}

func TestLoadAppliesEnvAndValidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gingov.yaml")
	if err := os.WriteFile(path, []byte("service: {name: a}\nratelimit: {rules: [{by: ip, limit: 1, period: 1s}]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GINGOV_LOG_LEVEL", "debug")
	cfg, err := setup.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" {
		t.Fatalf("env override not applied: %q", cfg.Log.Level)
	}
	t.Setenv("GINGOV_LOG_LEVEL", "chatty")
	if _, err := setup.Load(path); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("got %v", err)
	}
	if _, err := setup.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file loaded")
	}
}

func TestUseRejectsWithoutTouchingTheEngine(t *testing.T) {
	r := gin.New()
	cfg := mustParse(t, "service: {name: a}\nreload: {file: true}")
	if _, err := setup.Use(context.Background(), r, cfg); err == nil || !strings.Contains(err.Error(), "reload.file") {
		t.Fatalf("got %v, want reload.file error (no file was loaded)", err)
	}
	if len(r.Handlers) != 0 || len(r.Routes()) != 0 {
		t.Fatal("a failed Use changed the engine")
	}
	if _, err := setup.Use(context.Background(), r, setup.Config{}); err == nil {
		t.Fatal("an empty config (no service name) was accepted")
	}
	ok := mustParse(t, "service: {name: a}")
	if _, err := setup.Use(context.Background(), r, ok, setup.WithLogOutput(io.Discard), nil); err == nil || err.Error() != "setup: option 2 is nil" {
		t.Fatalf("got %v, want setup: option 2 is nil", err)
	}
	for want, o := range map[string]setup.Option{
		"setup: WithInstances: nil function": setup.WithInstances(nil),
		"setup: WithOnReload: nil function":  setup.WithOnReload(nil),
	} {
		if _, err := setup.Use(context.Background(), r, ok, setup.WithLogOutput(io.Discard), o); err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	}
	if len(r.Handlers) != 0 || len(r.Routes()) != 0 {
		t.Fatal("a failed Use changed the engine")
	}
}

// WithLogger(nil) is the default logger: the kit's JSON lines on the
// WithLogOutput writer, never slog.Default().
func TestNilLoggerIsTheDefault(t *testing.T) {
	r, ch, logs := use(t, mustParse(t, "service: {name: a}"), setup.WithLogger(nil))
	if ch.Logger == nil {
		t.Fatal("nil Chain.Logger")
	}
	get(r, "/ping")
	if n := accessLogged(t, logs.String(), "/ping"); n != 1 {
		t.Fatalf("%d JSON access-log lines of /ping on the output, want 1:\n%s", n, logs)
	}
}
