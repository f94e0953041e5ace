package setup_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit/sentinel"
	"github.com/gingov/gingov/setup"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	testenv.MainWithDir(m, func(dir string) error { return sentinel.Init(sentinel.WithLogDir(dir)) },
		testenv.SentinelLeftovers()...)
}

func use(t *testing.T, cfg setup.Config, opts ...setup.Option) (*gin.Engine, *setup.Chain, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	r := gin.New()
	ch, err := setup.Use(context.Background(), r, cfg, append([]setup.Option{setup.WithLogOutput(logs)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ch.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	r.GET("/ping", func(c *gin.Context) { c.JSON(200, gin.H{"message": "pong"}) })
	r.GET("/orders/:id", func(c *gin.Context) { c.JSON(200, gin.H{"id": c.Param("id")}) })
	r.GET("/fail", func(c *gin.Context) { c.Status(500) })
	r.GET("/panic", func(c *gin.Context) { panic("boom") })
	return r, ch, logs
}

func get(r http.Handler, path string) *httptest.ResponseRecorder {
	return getFrom(r, path, "192.0.2.1")
}

func getFrom(r http.Handler, path, ip string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = ip + ":1234"
	r.ServeHTTP(w, req)
	return w
}

func reason(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var env struct {
		Reason    string `json:"reason"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("not an envelope: %q", w.Body.String())
	}
	if env.RequestID == "" {
		t.Fatalf("envelope without request_id: %s", w.Body.String())
	}
	return env.Reason
}

func mustParse(t *testing.T, doc string) setup.Config {
	t.Helper()
	cfg, err := setup.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestUseBuildsTheChain(t *testing.T) {
	cfg := mustParse(t, `
service: {name: orders, version: v1}
ratelimit:
  rules:
    - {by: ip, limit: 2, period: 1m}
    - {name: orders, by: route, limit: 100, period: 1s, routes: ["/orders/:id"]}
`)
	r, ch, logs := use(t, cfg)
	if w := get(r, "/ping"); w.Code != 200 || w.Body.String() != `{"message":"pong"}` {
		t.Fatalf("/ping: %d %s", w.Code, w.Body)
	}
	get(r, "/ping")
	w := get(r, "/ping")
	if w.Code != http.StatusTooManyRequests || reason(t, w) != "RATE_LIMITED" {
		t.Fatalf("third request: %d %s", w.Code, w.Body)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if w := getFrom(r, "/nowhere", "192.0.2.2"); w.Code != 404 || reason(t, w) != "NOT_FOUND" {
		t.Fatalf("404: %d %s", w.Code, w.Body)
	}
	if w := getFrom(r, "/metrics", "192.0.2.3"); w.Code != 200 || !strings.Contains(w.Body.String(), `http_server_requests_total{method="GET",route="/ping",status="429"} 1`) {
		t.Fatalf("metrics do not count the rejection: %d\n%s", w.Code, w.Body)
	}
	if w := getFrom(r, "/metrics", "192.0.2.3"); !strings.Contains(w.Body.String(), `gingov_ratelimit_decisions_total{result="limited",rule="ip",source="local"} 1`) {
		t.Fatalf("governance metrics do not count the rejection:\n%s", w.Body)
	}
	if v, ok := redisUp(t, ch); ok {
		t.Fatalf("redis_up = %v exported with no Redis configured", v)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var access int
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if rec["route"] == "/metrics" {
			t.Error("the metrics path was logged")
		}
		if rec["request_id"] != nil && rec["status"] != nil {
			access++
		}
	}
	if access != 4 {
		t.Errorf("%d access-log lines, want 4 (3 pings and one 404):\n%s", access, logs)
	}
}

func TestUsePanicAndBreaker(t *testing.T) {
	cfg := mustParse(t, `
service: {name: orders}
metrics: {disabled: true}
circuitbreaker: {enabled: true, min_requests: 4, failure_ratio: 0.5, open_timeout: 1m}
`)
	r, _, _ := use(t, cfg)
	if w := get(r, "/panic"); w.Code != 500 || reason(t, w) != "INTERNAL_PANIC" {
		t.Fatalf("panic: %d %s", w.Code, w.Body)
	}
	for range 4 {
		get(r, "/fail")
	}
	if w := get(r, "/fail"); w.Code != http.StatusServiceUnavailable || reason(t, w) != "CIRCUIT_OPEN" {
		t.Fatalf("breaker did not open: %d %s", w.Code, w.Body)
	}
	if w := get(r, "/ping"); w.Code != 200 {
		t.Fatalf("the breaker of another route opened: %d", w.Code)
	}
	if w := get(r, "/metrics"); w.Code != 404 {
		t.Fatalf("metrics disabled but /metrics answers %d", w.Code)
	}
}

// The documents of the reload tests: reloadDocs are accepted, the
// invalid ones rejected (each changes nothing). The schema test checks
// them too.
var (
	fileReloadDoc = func(limit string) string {
		return "service: {name: orders}\nreload: {file: true, interval: 20ms}\nratelimit:\n  rules:\n    - {by: ip, limit: " + limit + ", period: 1m}\n"
	}
	nacosReloadDoc = func(limit string) string {
		return "service: {name: orders}\nratelimit:\n  rules:\n    - {by: ip, limit: " + limit + ", period: 1m}\n"
	}
	reloadDocs            = []string{fileReloadDoc("2"), fileReloadDoc("10"), nacosReloadDoc("1"), nacosReloadDoc("4")}
	invalidReloadDocs     = []string{fileReloadDoc("zero"), fileReloadDoc("0"), invalidNacosReload, invalidSentinelReload}
	invalidNacosReload    = "service: {name: orders}\nratelimit: {rules: [{by: nobody, limit: 1, period: 1s}]}\n"
	invalidSentinelReload = `
service: {name: orders}
sentinel:
  enabled: true
  rules:
    flow: [{resource: "GET:/orders/:id", threshold: -1}]
`
)

func TestUseSentinelInlineRules(t *testing.T) {
	cfg := mustParse(t, `
service: {name: orders}
sentinel:
  enabled: true
  rules:
    flow: [{resource: "GET:/orders/:id", threshold: 1}]
`)
	r, ch, _ := use(t, cfg)
	defer func() { _ = sentinel.Load(sentinel.Rules{}) }()
	if a, b := get(r, "/orders/1"), get(r, "/orders/2"); a.Code != 200 || b.Code != 429 || reason(t, b) != "FLOW_BLOCKED" {
		t.Fatalf("flow rule not in force: %d %d %s", a.Code, b.Code, b.Body)
	}
	// Reloading the same document with a higher threshold lifts the block.
	if err := ch.Reload([]byte(`
service: {name: orders}
sentinel:
  enabled: true
  rules:
    flow: [{resource: "GET:/orders/:id", threshold: 1000}]
`)); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if w := get(r, "/orders/3"); w.Code != 200 {
			t.Fatalf("reloaded Sentinel rule not in force: %d", w.Code)
		}
	}
	// An invalid rule changes nothing.
	if err := ch.Reload([]byte(invalidSentinelReload)); err == nil {
		t.Fatal("an invalid Sentinel rule was accepted")
	}
	if got := ch.Config().Sentinel.Rules.Flow[0].Threshold; got != 1000 {
		t.Fatalf("rules in force after a rejected reload: threshold %v", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// countAllowed sends n requests and counts the 200s.
func countAllowed(r http.Handler, path string, n int) int {
	ok := 0
	for range n {
		if get(r, path).Code == 200 {
			ok++
		}
	}
	return ok
}

func waitReload(t *testing.T, reloads <-chan setup.Event, source string, wantErr bool) {
	t.Helper()
	select {
	case e := <-reloads:
		if (e.Err != nil) != wantErr {
			t.Fatalf("reload error %v, want error: %v", e.Err, wantErr)
		}
		if e.Source != source || e.Time.IsZero() {
			t.Fatalf("reload event %+v, want source %q and a time", e, source)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10 s")
	}
}

func TestReloadFromFile(t *testing.T) {
	// The watcher polls on a ticker: in a synctest bubble its 20 ms ticks
	// and the waits below take no wall-clock time.
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gingov.yaml")
		doc := fileReloadDoc
		writeFile(t, path, doc("2"))
		cfg, err := setup.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		reloads := make(chan setup.Event, 16)
		r, ch, logs := use(t, cfg, setup.WithOnReload(func(_ context.Context, e setup.Event) { reloads <- e }))
		src := "file:" + path
		waitReload(t, reloads, src, false) // the first read
		if got := countAllowed(r, "/ping", 5); got != 2 {
			t.Fatalf("%d of 5 allowed, want 2", got)
		}

		writeFile(t, path, doc("10"))
		waitReload(t, reloads, src, false)
		// The new rule has fresh buckets: 10 more for this client.
		if got := countAllowed(r, "/ping", 12); got != 10 {
			t.Fatalf("after reload %d of 12 allowed, want 10", got)
		}
		if got := ch.Config().RateLimit.Rules[0].Limit; got != 10 {
			t.Fatalf("config in force has limit %d", got)
		}

		writeFile(t, path, doc("zero"))
		waitReload(t, reloads, src, true)
		writeFile(t, path, doc("0"))
		waitReload(t, reloads, src, true)
		if got := ch.Config().RateLimit.Rules[0].Limit; got != 10 {
			t.Fatalf("a rejected document replaced the rules: limit %d", got)
		}
		if got := countAllowed(r, "/ping", 3); got != 0 {
			t.Fatalf("the exhausted bucket of the rules in force was reset: %d allowed", got)
		}
		// However long the bad document stays, it was logged once; each
		// distinct one counts once in the metric.
		time.Sleep(100 * 20 * time.Millisecond)
		synctest.Wait()
		if n := strings.Count(testenv.LogLines(logs.String(), "document rejected"), `"level":"ERROR"`); n != 2 {
			t.Errorf("%d ERROR lines for two bad documents over 100 polls, want 2:\n%s", n, logs)
		}
		if got := reloadCount(t, ch, "file", "rejected"); got != 2 {
			t.Errorf("rejected file reloads metric %v, want 2", got)
		}
		if got := reloadCount(t, ch, "file", "accepted"); got != 2 {
			t.Errorf("accepted file reloads metric %v, want 2", got)
		}
		writeFile(t, path, doc("3"))
		waitReload(t, reloads, src, false)
		synctest.Wait() // the watcher logs after the hook
		if !strings.Contains(testenv.LogLines(logs.String(), `"level":"INFO"`), `"after_rejected":true`) {
			t.Errorf("the next good document was not logged as accepted:\n%s", logs)
		}
	})
}

func TestReloadFromNacos(t *testing.T) {
	n := testenv.StartNacos(t)
	const dataID, group = "gingov.yaml", "DEFAULT_GROUP"
	doc := nacosReloadDoc
	n.PublishConfig(t, dataID, group, doc("1"))
	cfg := mustParse(t, doc("1"))
	cfg.Reload = setup.Reload{Interval: 200 * time.Millisecond, Nacos: &setup.NacosDoc{Addr: n.HTTPAddr, DataID: dataID}}
	reloads := make(chan setup.Event, 16)
	r, _, _ := use(t, cfg, setup.WithOnReload(func(_ context.Context, e setup.Event) { reloads <- e }))
	src := "nacos:" + group + "/" + dataID
	waitReload(t, reloads, src, false)
	if got := countAllowed(r, "/ping", 3); got != 1 {
		t.Fatalf("%d of 3 allowed, want 1", got)
	}
	n.PublishConfig(t, dataID, group, doc("4"))
	waitReload(t, reloads, src, false)
	if got := countAllowed(r, "/ping", 6); got != 4 {
		t.Fatalf("after the Nacos change %d of 6 allowed, want 4", got)
	}
	n.PublishConfig(t, dataID, group, invalidNacosReload)
	waitReload(t, reloads, src, true)
	if got := countAllowed(r, "/ping", 2); got != 0 {
		t.Fatalf("a rejected document from Nacos changed the limiter: %d allowed", got)
	}
}

func TestRedisSharedAcrossChains(t *testing.T) {
	rs := testenv.StartRedis(t)
	doc := "service: {name: orders}\nratelimit:\n  redis: {addrs: [\"" + rs.Addr + "\"]}\n  rules:\n    - {by: global, limit: 5, period: 1m}\n"
	r1, ch1, _ := use(t, mustParse(t, doc))
	r2, _, _ := use(t, mustParse(t, doc))
	got := countAllowed(r1, "/ping", 4) + countAllowed(r2, "/ping", 4)
	if got != 5 {
		t.Fatalf("two instances admitted %d, want the shared limit 5", got)
	}
	if v, ok := redisUp(t, ch1); !ok || v != 1 {
		t.Fatalf("redis_up with Redis configured = %v (exists: %v), want 1", v, ok)
	}
}

// redisUp returns the chain's gingov_ratelimit_redis_up{limiter="ratelimit"}
// and whether the series exists.
func redisUp(t *testing.T, ch *setup.Chain) (float64, bool) {
	t.Helper()
	mfs, err := ch.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gingov_ratelimit_redis_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == "ratelimit" {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func TestSignalsCorrelated(t *testing.T) {
	cfg := mustParse(t, `
service: {name: orders, version: v1}
tracing: {exporter: stdout, sample_ratio: 1, response_header: Trace-Id}
ratelimit:
  rules: [{by: ip, limit: 1, period: 1m}]
`)
	logs := &testenv.Buffer{}
	r := gin.New()
	ch, err := setup.Use(context.Background(), r, cfg, setup.WithLogOutput(logs))
	if err != nil {
		t.Fatal(err)
	}
	r.GET("/ping", func(c *gin.Context) { c.JSON(200, gin.H{"message": "pong"}) })
	get(r, "/ping")
	w := get(r, "/ping")
	if w.Code != 429 {
		t.Fatalf("second request: %d", w.Code)
	}
	if err := ch.Close(context.Background()); err != nil { // flushes the spans
		t.Fatal(err)
	}
	traceID := w.Header().Get("Trace-Id")
	if len(traceID) != 32 {
		t.Fatalf("trace id header %q", traceID)
	}
	var env struct {
		TraceID string `json:"trace_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.TraceID != traceID {
		t.Fatalf("envelope trace_id %q, header %q (%v)", env.TraceID, traceID, err)
	}
	var logged, spans int
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, traceID) {
			continue
		}
		if strings.Contains(l, `"trace_id":"`+traceID+`"`) && strings.Contains(l, `"status":429`) {
			logged++
		}
		if strings.Contains(l, `"TraceID":"`+traceID+`"`) && strings.Contains(l, `"Name":"GET /ping"`) {
			spans++
		}
	}
	if logged != 1 || spans != 1 {
		t.Fatalf("trace %s: %d access-log lines, %d spans; want 1 and 1\n%s", traceID, logged, spans, logs)
	}
}

// A Nacos document without a group is read from Sentinel's default group.
func TestDefaultNacosGroupIsSentinels(t *testing.T) {
	if setup.DefaultNacosGroup != sentinel.DefaultNacosGroup {
		t.Fatalf("setup %q, sentinel %q", setup.DefaultNacosGroup, sentinel.DefaultNacosGroup)
	}
}
