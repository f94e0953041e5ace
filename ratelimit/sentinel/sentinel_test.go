package sentinel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alibaba/sentinel-golang/core/base"
	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit/sentinel"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	testenv.MainWithDir(m, func(dir string) error { logDir = dir; return sentinel.Init(sentinel.WithLogDir(dir)) },
		testenv.SentinelLeftovers()...)
}

// logDir is the log directory TestMain initialised Sentinel with.
var logDir string

// Init validates its options on every call, and refuses settings other
// than those in force once Sentinel runs.
func TestInitAfterInit(t *testing.T) {
	if err := sentinel.Init(sentinel.WithLogDir("")); err == nil || err.Error() != "sentinel: WithLogDir: empty directory" {
		t.Errorf("invalid option: %v", err)
	}
	if err := sentinel.Init(nil); err == nil || err.Error() != "sentinel: option 1 is nil" {
		t.Errorf("nil option: %v", err)
	}
	if err := sentinel.Init(sentinel.WithLogDir(t.TempDir())); err == nil || !strings.HasPrefix(err.Error(), "sentinel: Init: already initialised with other settings") {
		t.Errorf("other settings: %v", err)
	}
	if err := sentinel.Init(sentinel.WithLogDir(logDir)); err != nil {
		t.Errorf("the same settings: %v", err)
	}
	if err := sentinel.Init(); err != nil {
		t.Errorf("no options: %v", err)
	}
}

func load(t *testing.T, doc string) {
	t.Helper()
	rules, err := sentinel.ParseRules([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := sentinel.Load(rules); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sentinel.Load(sentinel.Rules{}) })
}

func newEngine(t *testing.T, opts ...sentinel.Option) *gin.Engine {
	t.Helper()
	f, err := sentinel.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(logging.Recovery(logging.New(io.Discard, nil)))
	errcode.Handle(r)
	r.Use(f.Middleware())
	r.GET("/orders/:id", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/inv/:id", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/watch/:id", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/fail", func(c *gin.Context) { c.String(500, "boom") })
	r.GET("/panic", func(c *gin.Context) { panic("bug") })
	r.GET("/slow", func(c *gin.Context) { time.Sleep(200 * time.Millisecond); c.String(200, "ok") })
	return r
}

func get(r http.Handler, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func reason(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var env errcode.Envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("not an envelope: %d %s", w.Code, w.Body)
	}
	return env.Reason
}

// A flow rule of N per second admits N ± 5% per second under demand well
// above it. Counted from the second second on: in the first, Sentinel's
// half-second buckets let about N/4 more through while its window fills.
func TestFlowRuleAdmitsItsRate(t *testing.T) {
	load(t, `flow: [{resource: "GET:/orders/:id", threshold: 50}]`)
	r := newEngine(t)
	var allowed, blocked, first int
	start := time.Now()
	for time.Since(start) < 6*time.Second {
		w := get(r, "/orders/1")
		switch w.Code {
		case 200:
			if time.Since(start) < time.Second {
				first++
			} else {
				allowed++
			}
		case 429:
			blocked++
			if reason(t, w) != "FLOW_BLOCKED" || w.Header().Get("Retry-After") != "1" {
				t.Fatalf("block answer: %s %v", w.Body, w.Header())
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
		time.Sleep(2 * time.Millisecond) // ~400/s offered
	}
	elapsed := time.Since(start).Seconds() - 1
	ideal := 50 * elapsed
	t.Logf("flow 50/s: %d admitted in the first second, then %d in %.2fs (ideal %.0f, ratio %.3f); %d blocked",
		first, allowed, elapsed, ideal, float64(allowed)/ideal, blocked)
	if float64(allowed) < ideal*0.95 || float64(allowed) > ideal*1.05 {
		t.Fatalf("admitted %d, want %.0f ± 5%%", allowed, ideal)
	}
}

// Warm-up: after a quiet period the rule starts at threshold/coldFactor and
// ramps to the threshold over the warm-up period.
func TestFlowWarmUpRamps(t *testing.T) {
	load(t, `flow: [{resource: "GET:/orders/:id", threshold: 200, behavior: warmup, warmUpPeriodSec: 3, warmUpColdFactor: 4}]`)
	r := newEngine(t)
	perSecond := make([]int, 5)
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if get(r, "/orders/1").Code == 200 {
			perSecond[int(time.Since(start).Seconds())]++
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("warm-up 200/s over 3 s, cold factor 4: admitted per second %v", perSecond)
	if perSecond[0] >= 150 || perSecond[4] < 150 || perSecond[0] >= perSecond[4] {
		t.Fatalf("no ramp: %v", perSecond)
	}
}

// An error-ratio breaker rule sees the handler's 5xx answers and panics
// (Sentinel's own Gin adapter never reports them) and opens.
func TestErrorRatioBreakerSeesHandlerFailures(t *testing.T) {
	for _, path := range []string{"/fail", "/panic"} {
		t.Run(path, func(t *testing.T) {
			load(t, `circuitBreaker: [{resource: "GET:`+path+`", strategy: error_ratio, threshold: 0.5, minRequests: 5, statIntervalMs: 2000, retryTimeoutMs: 3000}]`)
			r := newEngine(t)
			for i := 0; i < 5; i++ { // minRequests failures: the breaker opens on the 5th
				if w := get(r, path); w.Code != 500 {
					t.Fatalf("request %d: %d", i, w.Code)
				}
			}
			w := get(r, path)
			if w.Code != 503 || reason(t, w) != "CIRCUIT_OPEN" || w.Header().Get("Retry-After") != "3" {
				t.Fatalf("breaker did not open on handler failures: %d %s %v", w.Code, w.Body, w.Header())
			}
		})
	}
}

func TestIsolationAndSystemAnswers(t *testing.T) {
	load(t, `isolation: [{resource: "GET:/slow", maxConcurrency: 1}]`)
	r := newEngine(t)
	var wg sync.WaitGroup
	var limited atomic.Int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w := get(r, "/slow"); w.Code == 503 && strings.Contains(w.Body.String(), "CONCURRENCY_LIMITED") {
				limited.Add(1)
			}
		}()
	}
	wg.Wait()
	if limited.Load() == 0 {
		t.Fatal("isolation rule never answered 503 CONCURRENCY_LIMITED")
	}

	load(t, `system: [{metric: inbound_qps, threshold: 3}]`)
	sys := 0
	for i := 0; i < 20; i++ {
		if w := get(r, "/orders/1"); w.Code == 503 && reason(t, w) == "SYSTEM_OVERLOAD" {
			sys++
		}
	}
	if sys == 0 {
		t.Fatal("system rule never answered 503 SYSTEM_OVERLOAD")
	}
}

// Hotspot rules limit per parameter value.
func TestHotspotPerParameter(t *testing.T) {
	load(t, `hotspot: [{resource: "GET:/orders/:id", param: 0, threshold: 2, durationSec: 1}]`)
	r := newEngine(t, sentinel.WithParams(sentinel.ParamQuery("user")))
	codes := []int{get(r, "/orders/1?user=a").Code, get(r, "/orders/1?user=a").Code, get(r, "/orders/1?user=a").Code}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("user a: %v", codes)
	}
	if w := get(r, "/orders/1?user=b"); w.Code != 200 {
		t.Fatalf("user b limited by user a's budget: %d", w.Code)
	}
}

// All unmatched paths are one resource, not one per path.
func TestUnmatchedPathsShareOneResource(t *testing.T) {
	load(t, `flow: [{resource: "unmatched", threshold: 2}]`)
	r := newEngine(t)
	got := []int{get(r, "/a").Code, get(r, "/b").Code, get(r, "/c").Code}
	if got[0] != 404 || got[1] != 404 || got[2] != 429 {
		t.Fatalf("unmatched: %v", got)
	}
}

func TestFallbackAndBlockHandler(t *testing.T) {
	load(t, `flow: [{resource: "GET:/orders/:id", threshold: 1}]`)
	r := newEngine(t, sentinel.WithFallback("/orders/:id", func(c *gin.Context, cause error) error {
		c.JSON(200, gin.H{"degraded": true, "why": cause.Error()})
		return nil
	}))
	get(r, "/orders/1")
	w := get(r, "/orders/1")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"degraded":true`) {
		t.Fatalf("fallback: %d %s", w.Code, w.Body)
	}
}

// A fallback that fails leaves the envelope and is logged: WARN for an
// error, ERROR for a panic.
func TestFallbackFailureLogged(t *testing.T) {
	load(t, `flow: [{resource: "GET:/orders/:id", threshold: 1}]`)
	var logs bytes.Buffer
	r := newEngine(t, sentinel.WithLogger(logging.New(&logs, nil)), sentinel.WithFallback("/orders/:id", func(c *gin.Context, _ error) error {
		switch c.Param("id") {
		case "broken":
			return errors.New("cache miss")
		case "panics":
			panic("fallback bug")
		}
		return nil // writes nothing, fails not: the envelope, no log line
	}))
	get(r, "/orders/1") // spends the budget, or is blocked already
	for _, id := range []string{"broken", "panics"} {
		if w := get(r, "/orders/"+id); w.Code != 429 {
			t.Fatalf("failed fallback (%s) should leave the envelope: %d %s", id, w.Code, w.Body)
		}
	}
	testenv.WantLogLines(t, logs.String(), "fallback failed",
		`{"level":"WARN","msg":"sentinel fallback failed","resource":"GET:/orders/:id","error":"cache miss"}`,
		`{"level":"ERROR","msg":"sentinel fallback failed","resource":"GET:/orders/:id","error":"errcode: fallback panicked: fallback bug"}`)
}

// An invalid rule set is rejected as a whole and changes nothing.
func TestInvalidRulesChangeNothing(t *testing.T) {
	load(t, `flow: [{resource: "GET:/inv/:id", threshold: 1}]`)
	bad := []string{
		`flow: [{resource: "GET:/inv/:id", threshold: 0}]`,
		`flow: [{resource: "x", threshold: 5, behavior: sometimes}]`,
		`flow: [{resource: "", threshold: 5}]`,
		`flow: [{resource: "x", threshold: 5, behavior: warmup}]`,
		`system: [{metric: cpu, threshold: 3}]`,
		`system: [{metric: avg_rt, threshold: 10, strategy: bbr}]`,
		`circuitBreaker: [{resource: x, strategy: maybe}]`,
		`isolation: [{resource: x, maxConcurrency: 0}]`,
		`hotspot: [{resource: x, param: -1, threshold: 1}]`,
		`flow: [{resource: x, threshold: 5, colour: red}]`,
		`flow: {not: a list}`,
	}
	for _, doc := range bad {
		if _, err := sentinel.ParseRules([]byte(doc)); err == nil || !strings.HasPrefix(err.Error(), "sentinel: ") {
			t.Errorf("%s: %v", doc, err)
		}
	}
	mixed := sentinel.Rules{Flow: []sentinel.FlowRule{{Resource: "GET:/inv/:id", Threshold: 1000}, {Resource: "", Threshold: 1}}}
	if err := sentinel.Load(mixed); err == nil || !strings.Contains(err.Error(), "flow rule 1") {
		t.Fatalf("mixed set: %v", err)
	}
	r := newEngine(t)
	if a, b := get(r, "/inv/1").Code, get(r, "/inv/1").Code; a != 200 || b != 429 {
		t.Fatalf("the rule in force changed: %d %d", a, b)
	}
}

// Hot reload from a file: a change takes effect, a malformed version is
// rejected and logged while the previous rules stay.
func TestWatchFileHotReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`flow: [{resource: "GET:/watch/:id", threshold: 1}]`)
	reloads := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := sentinel.WatchFile(ctx, path, sentinel.WithPollInterval(50*time.Millisecond),
		sentinel.WithLogger(logging.New(io.Discard, nil)),
		sentinel.WithOnReload(func(ctx context.Context, e sentinel.Event) {
			if ctx == nil || e.Kind != sentinel.EventReload || e.Source != "file:"+path {
				t.Errorf("reload event %+v (context %v)", e, ctx)
			}
			reloads <- e.Err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); wait(); _ = sentinel.Load(sentinel.Rules{}) }()
	<-reloads // the first load
	r := newEngine(t)
	if a, b := get(r, "/watch/1").Code, get(r, "/watch/1").Code; a != 200 || b != 429 {
		t.Fatalf("initial rule: %d %d", a, b)
	}
	write(`flow: [{resource: "GET:/watch/:id", threshold: 1000}]`)
	if err := <-reloads; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if get(r, "/watch/1").Code != 200 {
			t.Fatal("the reloaded limit did not take effect")
		}
	}
	write(`flow: [{resource: "GET:/watch/:id", threshold: -4}]`)
	if err := <-reloads; err == nil {
		t.Fatal("a malformed file was accepted")
	}
	for i := 0; i < 5; i++ {
		if get(r, "/watch/1").Code != 200 {
			t.Fatal("a rejected file replaced the rules in force")
		}
	}
	if _, err := sentinel.WatchFile(ctx, filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file at start was accepted")
	}
}

// WithOnBlock reports each blocked request with its resource and block
// type, and only blocked ones.
func TestOnBlockHook(t *testing.T) {
	if _, err := sentinel.New(sentinel.WithOnBlock(nil)); err == nil || err.Error() != "sentinel: WithOnBlock: nil function" {
		t.Fatalf("nil hook: %v", err)
	}
	load(t, `
flow: [{resource: "GET:/orders/:id", threshold: 2}]
hotspot: [{resource: "GET:/inv/:id", param: 0, threshold: 1, durationSec: 1}]`)
	type block struct{ resource, blockType string }
	var mu sync.Mutex
	var blocks []block
	r := newEngine(t, sentinel.WithParams(sentinel.ParamQuery("user")),
		sentinel.WithOnBlock(func(ctx context.Context, e sentinel.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ctx == nil {
				t.Error("nil context")
			}
			if e.Kind != sentinel.EventBlock || e.Block == nil || sentinel.BlockTypeName(e.Block.BlockType()) != e.BlockType {
				t.Errorf("event %+v without its block", e)
			}
			blocks = append(blocks, block{e.Resource, e.BlockType})
		}))
	// Earlier tests may have used the window of /orders/:id: count what
	// happens rather than expect the first requests through.
	var want []block
	for i := range 6 {
		w := get(r, "/orders/"+strconv.Itoa(i))
		if w.Code == 429 {
			want = append(want, block{"GET:/orders/:id", "flow"})
		}
	}
	for range 3 {
		if w := get(r, "/inv/1?user=a"); w.Code == 429 {
			want = append(want, block{"GET:/inv/:id", "hotspot"})
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(want) < 6 || fmt.Sprint(blocks) != fmt.Sprint(want) {
		t.Fatalf("blocks %v, want %v (at least 4 flow and 2 hotspot)", blocks, want)
	}
	for _, bt := range []struct {
		t    base.BlockType
		name string
	}{{base.BlockTypeFlow, "flow"}, {base.BlockTypeIsolation, "isolation"}, {base.BlockTypeCircuitBreaking, "circuit_breaking"},
		{base.BlockTypeSystemFlow, "system"}, {base.BlockTypeHotSpotParamFlow, "hotspot"}, {base.BlockTypeUnknown, "unknown"}} {
		if got := sentinel.BlockTypeName(bt.t); got != bt.name {
			t.Errorf("BlockTypeName(%v) = %q, want %q", bt.t, got, bt.name)
		}
	}
}

func TestOptionValidation(t *testing.T) {
	ctx := context.Background()
	cases := map[string]func() error{
		"sentinel: option 2 is nil": func() error { _, err := sentinel.New(sentinel.WithLogger(nil), nil); return err },
		`sentinel: WithFallback: nil fallback for route "/x"`: func() error {
			_, err := sentinel.New(sentinel.WithFallback("/x", nil))
			return err
		},
		"sentinel: WithBlockHandler: nil function": func() error { _, err := sentinel.New(sentinel.WithBlockHandler(nil)); return err },
		"sentinel: WithParams: param 1 is nil": func() error {
			_, err := sentinel.New(sentinel.WithParams(sentinel.ParamIP(), nil))
			return err
		},
		"sentinel: WithPollInterval: must be > 0, got 0s": func() error {
			_, err := sentinel.WatchFileFunc(ctx, "unused", nil, sentinel.WithPollInterval(0))
			return err
		},
		"sentinel: WithOnReload: nil function": func() error {
			_, err := sentinel.WatchFileFunc(ctx, "unused", nil, sentinel.WithOnReload(nil))
			return err
		},
		"sentinel: option 1 is nil": func() error { _, err := sentinel.WatchFileFunc(ctx, "unused", nil, nil); return err },
		"sentinel: option 3 is nil": func() error {
			_, err := sentinel.New(sentinel.WithLogger(nil), sentinel.WithParams(), sentinel.LoggerOption(nil))
			return err
		},
		"sentinel: option 2 is nil: source": func() error {
			_, err := sentinel.WatchFileFunc(ctx, "unused", nil, sentinel.WithLogger(nil), sentinel.LoggerOption(nil))
			return err
		},
		"sentinel: WatchFileFunc: nil apply function": func() error {
			_, err := sentinel.WatchFileFunc(ctx, "sentinel_test.go", nil)
			return err
		},
		"sentinel: WatchNacosFunc: nil apply function": func() error {
			_, err := sentinel.WatchNacosFunc(ctx, sentinel.NacosSource{Addr: "127.0.0.1:1", DataID: "x"}, nil)
			return err
		},
	}
	for want, f := range cases {
		want, _, _ = strings.Cut(want, ": source")
		if err := f(); err == nil || err.Error() != want {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}
