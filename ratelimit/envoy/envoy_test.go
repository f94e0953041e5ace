package envoy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/ratelimit/envoy"
)

// startEnvoy runs the app, the gingov service (doc) and Envoy in front of
// the app, and returns Envoy's address and the service's Redis.
func startEnvoy(t *testing.T, doc string, opts ...envoy.Option) (string, *redis.Client) {
	addr, _, rdb := startEnvoyRedis(t, doc, opts...)
	return addr, rdb
}

func startEnvoyRedis(t *testing.T, doc string, opts ...envoy.Option) (string, *testenv.Redis, *redis.Client) {
	testenv.EnvoyBinary(t) // skip (or fail under CI) before starting anything
	srv, rdb := startRedis(t)
	cfg, err := envoy.ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := envoy.New(rdb, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	svc.Register(gs)
	go func() { _ = gs.Serve(rlis) }()
	t.Cleanup(func() { gs.Stop(); svc.Close() })

	app := gin.New()
	app.GET("/", func(c *gin.Context) { c.String(200, "ok") })
	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: app}
	go func() { _ = hs.Serve(alis) }()
	t.Cleanup(func() { hs.Close() })

	// A Zipkin collector that takes Envoy's spans and drops them.
	zlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	zs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = zs.Serve(zlis) }()
	t.Cleanup(func() { zs.Close() })

	// docs/mesh/envoy.yaml: its rate-limit filter sends one descriptor,
	// user=<X-User-Id>, in domain "app". Nothing listens at the egress and
	// upstream ports.
	admin, port := testenv.FreePort(t), testenv.FreePort(t)
	testenv.StartEnvoy(t, testenv.ExpandEnvoyConfig(t, "../../docs/mesh/envoy.yaml", map[string]string{
		"ADMIN_PORT": strconv.Itoa(admin), "INGRESS_PORT": strconv.Itoa(port),
		"APP_PORT": strconv.Itoa(alis.Addr().(*net.TCPAddr).Port), "RATELIMIT_PORT": strconv.Itoa(rlis.Addr().(*net.TCPAddr).Port),
		// Envoy's default is 20 ms; the tests share two loaded cores (and
		// run under -race), and a timed-out call would be admitted.
		"RATELIMIT_TIMEOUT": "5s",
		"EGRESS_PORT":       strconv.Itoa(testenv.FreePort(t)), "UPSTREAM_ADDR": "127.0.0.1", "UPSTREAM_PORT": strconv.Itoa(testenv.FreePort(t)),
		"ZIPKIN_PORT": strconv.Itoa(zlis.Addr().(*net.TCPAddr).Port),
		// No sampled traces: a span report per request would halve what
		// one Envoy worker sends on a loaded machine.
		"TRACE_SAMPLING": "0",
	}), admin)
	return "127.0.0.1:" + strconv.Itoa(port), srv, rdb
}

func get(t testing.TB, c *http.Client, addr, user string) *http.Response {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("X-User-Id", user)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestThroughEnvoy: a real Envoy's rate-limit filter calls the service.
func TestThroughEnvoy(t *testing.T) {
	addr, _ := startEnvoy(t, "domain: app\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 3, name: per-user}")
	c := &http.Client{Timeout: 5 * time.Second}
	for i := 1; i <= 3; i++ {
		resp := get(t, c, addr, "alice")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		if i == 1 {
			if got := resp.Header.Get("RateLimit-Policy"); got != `"per-user";q=3;w=60` {
				t.Errorf("RateLimit-Policy %q", got)
			}
			if got := resp.Header.Get("RateLimit"); got != `"per-user";r=2;t=20` {
				t.Errorf("RateLimit %q", got)
			}
		}
	}
	resp := get(t, c, addr, "alice")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Envoy-Ratelimited") != "true" {
		t.Fatalf("request 4: %d, x-envoy-ratelimited %q", resp.StatusCode, resp.Header.Get("X-Envoy-Ratelimited"))
	}
	if got := resp.Header.Get("Retry-After"); got == "" || resp.Header.Get("RateLimit") == "" {
		t.Fatalf("429 without Retry-After/RateLimit: %v", resp.Header)
	}
	// Envoy's own 429 is gingov's envelope (the bootstrap's local_reply_config),
	// with the request's x-request-id (Envoy rewrites the UUID's version
	// nibble when it samples the trace).
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("X-User-Id", "alice")
	req.Header.Set("X-Request-Id", "5f1c6f0e-3d5b-4a7e-9f7e-2b1d6c1e8a11")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var env struct {
		Code      int    `json:"code"`
		Reason    string `json:"reason"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(body, &env); err != nil || resp.StatusCode != 429 || env.Code != 429001 || env.Reason != "RATE_LIMITED" ||
		!strings.HasPrefix(env.RequestID, "5f1c6f0e-3d5b-") || resp.Header.Get("Content-Type") != errcode.ContentType {
		t.Fatalf("Envoy's 429: %d %q %s (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), body, err)
	}
	t.Logf("Envoy's 429: %s", body)
	if resp := get(t, c, addr, "bob"); resp.StatusCode != 200 {
		t.Fatalf("another user: %d", resp.StatusCode)
	}
}

// TestAccuracyThroughEnvoy: admitted / ideal over 4 s at 200/s through
// Envoy, within 1%, never above what the bucket holds.
func TestAccuracyThroughEnvoy(t *testing.T) {
	var rec recorder
	addr, _ := startEnvoy(t, "domain: app\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 200, burst: 200}", exactRec(t, &rec)...)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	get(t, c, addr, "warm")
	rec.on.Store(true)
	var (
		mu sync.Mutex
		l  load
		wg sync.WaitGroup
	)
	l.firstStart = time.Now()
	stop := l.firstStart.Add(4 * time.Second)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				resp := get(t, c, addr, "acc")
				done := time.Now()
				mu.Lock()
				l.record(done, resp.StatusCode == 200)
				if resp.StatusCode != 200 && resp.StatusCode != http.StatusTooManyRequests {
					t.Errorf("status %d", resp.StatusCode)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("at the client: admitted %d of %d calls", l.admitted, l.calls)
	rec.load().check(t, "through Envoy", 200, 200)
}

// TestOneBudgetAcrossTheMigration: two instances limited in-app by
// ratelimit.Guard and traffic through Envoy limited by the service, one
// rule, one Redis: together they admit the rule's rate, within 1%.
func TestOneBudgetAcrossTheMigration(t *testing.T) {
	var rec recorder
	addr, rdb := startEnvoy(t, "domain: app\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 200, burst: 200, name: per-user}", exactRec(t, &rec)...)
	var inApp []string
	for range 2 {
		g, err := ratelimit.New(rdb, ratelimit.PerHeader("X-User-Id", 200, time.Second).WithName("per-user").WithBurst(200),
			ratelimit.WithCoalescing(false), ratelimit.WithDeadline(5*time.Second), ratelimit.WithOnDecision(rec.OnDecision))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		e := gin.New()
		e.Use(g.Middleware())
		e.GET("/", func(c *gin.Context) { c.String(200, "ok") })
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: e}
		go func() { _ = hs.Serve(lis) }()
		t.Cleanup(func() { hs.Close() })
		inApp = append(inApp, lis.Addr().String())
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	get(t, c, addr, "warm")
	var (
		mu     sync.Mutex
		l      load
		wg     sync.WaitGroup
		byPath = map[string]int64{}
	)
	targets := []string{addr, addr, addr, addr, inApp[0], inApp[0], inApp[1], inApp[1]}
	rec.on.Store(true)
	l.firstStart = time.Now()
	stop := l.firstStart.Add(4 * time.Second)
	for i, target := range targets {
		name := "envoy"
		if i >= 4 {
			name = "in-app"
		}
		wg.Go(func() {
			for time.Now().Before(stop) {
				resp := get(t, c, target, "shared")
				done := time.Now()
				mu.Lock()
				l.record(done, resp.StatusCode == 200)
				if resp.StatusCode == 200 {
					byPath[name]++
				} else if resp.StatusCode != http.StatusTooManyRequests {
					t.Errorf("%s: status %d", name, resp.StatusCode)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("at the clients: admitted %d of %d calls", l.admitted, l.calls)
	rec.load().check(t, fmt.Sprintf("mixed fleet (through Envoy %d, in-app %d)", byPath["envoy"], byPath["in-app"]), 200, 200)
	if byPath["envoy"] == 0 || byPath["in-app"] == 0 {
		t.Fatalf("one side admitted nothing: %v", byPath)
	}
}

// TestWindowBoundaryThroughEnvoy: bursts through Envoy just before and
// just after a second boundary admit no more than burst + rate × elapsed
// (envoyproxy/ratelimit's fixed windows admit up to twice the limit there).
func TestWindowBoundaryThroughEnvoy(t *testing.T) {
	addr, _ := startEnvoy(t, "domain: app\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 50, burst: 10}", exact(t)...)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	get(t, c, addr, "warm")
	burst := func(n int) int64 {
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if get(t, c, addr, "boundary").StatusCode == 200 {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		return admitted.Load()
	}
	checkBoundary(t, "through Envoy: ", burst, 60, 50*time.Millisecond, 10, 50)
}

// TestRedisKilledThroughEnvoy: Redis killed while Envoy sends traffic; the
// service answers within its deadline, long before Envoy's timeout, and
// its FailClosed policy holds (429), as the local policy admits.
func TestRedisKilledThroughEnvoy(t *testing.T) {
	const deadline = 50 * time.Millisecond
	for _, tc := range []struct {
		name   string
		policy ratelimit.FailurePolicy
		want   int
	}{
		{"closed", ratelimit.FailClosed, http.StatusTooManyRequests},
		{"local", ratelimit.FailLocal(1), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, srv, _ := startEnvoyRedis(t, "domain: app\ndescriptors:\n  - key: user\n    rate_limit: {unit: second, requests_per_unit: 1000}",
				envoy.WithLimiterOptions(ratelimit.WithFailurePolicy(tc.policy), ratelimit.WithDeadline(deadline)))
			c := &http.Client{Timeout: 10 * time.Second}
			if resp := get(t, c, addr, "u"); resp.StatusCode != 200 {
				t.Fatalf("with Redis up: %d", resp.StatusCode)
			}
			srv.Kill()
			var worst time.Duration
			for range 10 {
				start := time.Now()
				resp := get(t, c, addr, "u")
				worst = max(worst, time.Since(start))
				if resp.StatusCode != tc.want {
					t.Fatalf("with Redis killed: %d, want %d", resp.StatusCode, tc.want)
				}
			}
			t.Logf("slowest answer through Envoy with Redis killed: %s", worst)
			if worst > time.Second {
				t.Fatalf("slowest answer %s: the service did not answer within its deadline", worst)
			}
		})
	}
}
