package envoy_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/ratelimit/envoy"
)

// serve starts a Service for doc on rdb behind a loopback gRPC listener and
// returns a client of it.
func serve(t testing.TB, rdb redis.UniversalClient, doc string, opts ...envoy.Option) (rlsv3.RateLimitServiceClient, *envoy.Service) {
	t.Helper()
	cfg, err := envoy.ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := envoy.New(rdb, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	svc.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		svc.Close()
	})
	return rlsv3.NewRateLimitServiceClient(conn), svc
}

func startRedis(t testing.TB) (*testenv.Redis, *redis.Client) {
	t.Helper()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

func desc(kv ...string) *commonv3.RateLimitDescriptor {
	d := &commonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &commonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func call(t testing.TB, c rlsv3.RateLimitServiceClient, req *rlsv3.RateLimitRequest) *rlsv3.RateLimitResponse {
	t.Helper()
	resp, err := c.ShouldRateLimit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func header(resp *rlsv3.RateLimitResponse, name string) string {
	for _, h := range resp.GetResponseHeadersToAdd() {
		if h.GetKey() == name {
			return h.GetValue()
		}
	}
	return ""
}

const ok, over = rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT

// exact gives the limiters a deadline that a loaded machine (or -race)
// does not reach, and fails the test on any decision not made by Redis:
// the figures measure the buckets, not the failure policy.
func exact(t testing.TB) []envoy.Option {
	return exactRec(t, nil)
}

// exactRec is exact that also records every decision in rec.
func exactRec(t testing.TB, rec *recorder) []envoy.Option {
	return []envoy.Option{
		envoy.WithLimiterOptions(ratelimit.WithDeadline(5 * time.Second)),
		envoy.WithOnDecision(func(ctx context.Context, e ratelimit.Event) {
			if e.Decision.Source != ratelimit.SourceRedis {
				t.Errorf("a decision by %s, not Redis", e.Decision.Source)
			}
			if rec != nil {
				rec.OnDecision(ctx, e)
			}
		}),
	}
}

// recorder is a decision hook (of the service or of a Guard) that times
// the decisions where they are made, next to Redis: the accuracy figures
// then do not depend on how late the replies reach the load generator
// through gRPC, HTTP and Envoy on a loaded machine.
type recorder struct {
	mu sync.Mutex
	l  load
	on atomic.Bool
}

func (r *recorder) OnDecision(_ context.Context, e ratelimit.Event) {
	if !r.on.Load() {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if start := now.Add(-e.Latency); r.l.firstStart.IsZero() || start.Before(r.l.firstStart) {
		r.l.firstStart = start
	}
	r.l.record(now, e.Decision.Allowed)
	r.mu.Unlock()
}

func (r *recorder) load() load {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.l
}

func TestHitsAddend(t *testing.T) {
	_, rdb := startRedis(t)
	c, _ := serve(t, rdb, "domain: d\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 10}")
	resp := call(t, c, &rlsv3.RateLimitRequest{Domain: "d", HitsAddend: 4, Descriptors: []*commonv3.RateLimitDescriptor{desc("user", "u1")}})
	st := resp.Statuses[0]
	if resp.OverallCode != ok || st.Code != ok || st.LimitRemaining != 6 {
		t.Fatalf("4 hits: %v", resp)
	}
	if cl := st.CurrentLimit; cl.RequestsPerUnit != 10 || cl.Unit != rlsv3.RateLimitResponse_RateLimit_MINUTE || cl.Name != "d/user" {
		t.Fatalf("current_limit %v", cl)
	}
	if st.DurationUntilReset.AsDuration() < 23*time.Second || st.DurationUntilReset.AsDuration() > 25*time.Second {
		t.Fatalf("duration_until_reset %v, want 24s (4 tokens at 6 s)", st.DurationUntilReset.AsDuration())
	}
	d := desc("user", "u1")
	d.HitsAddend = wrapperspb.UInt64(5) // overrides the request's 4
	resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "d", HitsAddend: 4, Descriptors: []*commonv3.RateLimitDescriptor{d}})
	if resp.OverallCode != ok || resp.Statuses[0].LimitRemaining != 1 {
		t.Fatalf("5 more hits: %v", resp)
	}
	resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "d", HitsAddend: 2, Descriptors: []*commonv3.RateLimitDescriptor{desc("user", "u1")}})
	if resp.OverallCode != over || resp.Statuses[0].Code != over {
		t.Fatalf("2 hits with 1 left: %v", resp)
	}
	// A denial takes nothing: the last token is still there.
	resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("user", "u1")}})
	if resp.OverallCode != ok || resp.Statuses[0].LimitRemaining != 0 {
		t.Fatalf("1 hit with 1 left: %v", resp)
	}
	// Another user has its own bucket; hits_addend 0 takes nothing.
	d = desc("user", "u2")
	d.HitsAddend = wrapperspb.UInt64(0)
	resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{d, desc("user", "u2")}})
	if resp.OverallCode != ok || resp.Statuses[1].LimitRemaining != 9 {
		t.Fatalf("u2: %v", resp)
	}
}

func TestMultipleDescriptorsAndHeaders(t *testing.T) {
	_, rdb := startRedis(t)
	c, _ := serve(t, rdb, `
domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: second, requests_per_unit: 100, name: ip}
  - key: generic_key
    value: checkout
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: generic_key
    rate_limit: {unit: hour, requests_per_unit: 50}
`)
	req := &rlsv3.RateLimitRequest{Domain: "edge", Descriptors: []*commonv3.RateLimitDescriptor{
		desc("remote_address", "10.0.0.1"), desc("generic_key", "checkout"), desc("path", "/x"), desc("generic_key", "other"),
	}}
	resp := call(t, c, req)
	if resp.OverallCode != ok {
		t.Fatalf("first: %v", resp)
	}
	if got := resp.Statuses[1].CurrentLimit.GetName(); got != "edge/generic_key:checkout" {
		t.Fatalf("the exact value should win over the wildcard, matched %q", got)
	}
	if got := resp.Statuses[3].CurrentLimit.GetName(); got != "edge/generic_key" {
		t.Fatalf("wildcard matched %q", got)
	}
	if resp.Statuses[2].CurrentLimit != nil || resp.Statuses[2].Code != ok {
		t.Fatalf("unmatched descriptor: %v", resp.Statuses[2])
	}
	if got, want := header(resp, "RateLimit-Policy"), `"ip";q=100;w=1, "edge/generic_key:checkout";q=1;w=3600, "edge/generic_key";q=50;w=3600`; got != want {
		t.Fatalf("RateLimit-Policy %q, want %q", got, want)
	}
	if got, want := header(resp, "RateLimit"), `"edge/generic_key:checkout";r=0;t=3600`; got != want {
		t.Fatalf("RateLimit %q, want %q", got, want)
	}
	resp = call(t, c, req)
	if resp.OverallCode != over || resp.Statuses[0].Code != ok || resp.Statuses[1].Code != over || resp.Statuses[3].Code != ok {
		t.Fatalf("second: %v", resp)
	}
	if got := header(resp, "Retry-After"); got != "3600" {
		t.Fatalf("Retry-After %q", got)
	}
	if !strings.HasPrefix(header(resp, "RateLimit"), `"edge/generic_key:checkout";r=0;`) {
		t.Fatalf("RateLimit should describe the limit that is over: %q", header(resp, "RateLimit"))
	}
	// Another domain, or a descriptor without a match: OK, no headers.
	resp = call(t, c, &rlsv3.RateLimitRequest{Domain: "other", Descriptors: []*commonv3.RateLimitDescriptor{desc("generic_key", "checkout")}})
	if resp.OverallCode != ok || len(resp.ResponseHeadersToAdd) != 0 || resp.Statuses[0].CurrentLimit != nil {
		t.Fatalf("other domain: %v", resp)
	}
}

// TestSharedBucketWithGuard: an in-app Guard rule and the service limit of
// the same name share one bucket in Redis.
func TestSharedBucketWithGuard(t *testing.T) {
	_, rdb := startRedis(t)
	c, _ := serve(t, rdb, "domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: {unit: minute, requests_per_unit: 5, name: ip}")
	g, err := ratelimit.New(rdb, ratelimit.PerIP(5, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.Use(g.Middleware())
	e.GET("/", func(c *gin.Context) { c.String(200, "ok") })
	inApp := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.7:1234"
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		return w
	}
	req := &rlsv3.RateLimitRequest{Domain: "edge", HitsAddend: 3, Descriptors: []*commonv3.RateLimitDescriptor{desc("remote_address", "10.0.0.7")}}
	if resp := call(t, c, req); resp.OverallCode != ok || resp.Statuses[0].LimitRemaining != 2 {
		t.Fatalf("service, 3 hits: %v", resp)
	}
	if w := inApp(); w.Code != 200 || w.Header().Get("X-Ratelimit-Remaining") != "1" {
		t.Fatalf("in-app after 3 service hits: %d remaining %q", w.Code, w.Header().Get("X-Ratelimit-Remaining"))
	}
	req.HitsAddend = 1
	if resp := call(t, c, req); resp.OverallCode != ok || resp.Statuses[0].LimitRemaining != 0 {
		t.Fatalf("service, the last token: %v", resp)
	}
	if w := inApp(); w.Code != http.StatusTooManyRequests {
		t.Fatalf("in-app with the bucket empty: %d", w.Code)
	}
	keys, err := rdb.Keys(context.Background(), "*:10.0.0.7}").Result() // not the rule's membership key
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != ratelimit.DefaultKeyPrefix+"{ip:10.0.0.7}" {
		t.Fatalf("Redis keys %q, want one bucket", keys)
	}
}

// load is what admit measured for one key.
type load struct {
	calls, admitted         int64
	firstStart, firstReturn time.Time
	lastAdmit               time.Time
	lastReturn              time.Time
	maxGap                  time.Duration // longest time without a reply
}

// record notes a reply at done (the caller holds the lock).
func (l *load) record(done time.Time, admitted bool) {
	l.calls++
	if l.firstReturn.IsZero() {
		l.firstReturn = done
	} else {
		l.maxGap = max(l.maxGap, done.Sub(l.lastReturn))
	}
	if done.After(l.lastReturn) {
		l.lastReturn = done
	}
	if admitted {
		l.admitted++
		if done.After(l.lastAdmit) {
			l.lastAdmit = done
		}
	}
}

// check asserts that the bucket never admitted more than it holds and,
// unless the machine stalled the load for half the bucket's refill time
// (tokens then overflow a full bucket for want of callers, which measures
// the machine, not the limiter), that it admitted the ideal within 1%.
func (l load) check(t *testing.T, what string, burst, rate int) {
	t.Helper()
	ideal, bound := l.ideal(burst, rate), l.bound(burst, rate)
	ratio := float64(l.admitted) / ideal
	t.Logf("%s: admitted %d of %d calls, ideal %.1f (bound %.1f): %.4f; longest gap between replies %s",
		what, l.admitted, l.calls, ideal, bound, ratio, l.maxGap.Round(time.Millisecond))
	if float64(l.admitted) > bound+1 {
		t.Fatalf("admitted %d > %.1f + 1, more than the bucket holds", l.admitted, bound)
	}
	if stall := time.Duration(float64(burst) / float64(rate) / 2 * float64(time.Second)); l.maxGap > stall {
		t.Logf("the load stalled for %s (> %s): the lower bound is not checked", l.maxGap, stall)
		return
	}
	if ratio < 0.99 || ratio > 1.01 {
		t.Fatalf("admitted/ideal %.4f, want 1 ± 1%%", ratio)
	}
	if float64(l.calls) < 1.5*ideal {
		t.Fatalf("only %d calls for an ideal of %.0f: the load was not above the limit", l.calls, ideal)
	}
}

// ideal is the burst plus the rate from the first reply to the last
// admission (both lag the server's decisions by about half a round trip);
// bound starts at the first call instead, which no server decision
// precedes: an exact bucket never admits more than bound + 1.
func (l load) ideal(burst, rate int) float64 {
	return float64(burst) + float64(rate)*l.lastAdmit.Sub(l.firstReturn).Seconds()
}

func (l load) bound(burst, rate int) float64 {
	return float64(burst) + float64(rate)*l.lastAdmit.Sub(l.firstStart).Seconds()
}

// admit sends requests for one key from workers goroutines for d.
func admit(t *testing.T, c rlsv3.RateLimitServiceClient, key string, workers int, d time.Duration) load {
	var (
		mu  sync.Mutex
		res load
		wg  sync.WaitGroup
	)
	req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", key)}}
	res.firstStart = time.Now()
	stop := res.firstStart.Add(d)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				resp, err := c.ShouldRateLimit(context.Background(), req)
				done := time.Now()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				res.record(done, resp.OverallCode == ok)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

// TestAccuracy: admitted / ideal over 4 s at 200/s, within 1%, never above
// what the bucket holds. The burst of one second's worth lets the bucket
// ride out a stall of the loaded test machine without losing tokens.
func TestAccuracy(t *testing.T) {
	_, rdb := startRedis(t)
	var rec recorder
	c, _ := serve(t, rdb, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 200, burst: 200}", exactRec(t, &rec)...)
	rec.on.Store(true)
	l := admit(t, c, "acc", 8, 4*time.Second)
	t.Logf("at the client: admitted %d of %d calls", l.admitted, l.calls)
	rec.load().check(t, "service", 200, 200)
}

// TestWindowBoundary: bursts just before and just after a second boundary
// admit no more than burst + rate × elapsed (a fixed window would admit
// two windows' worth).
func TestWindowBoundary(t *testing.T) {
	_, rdb := startRedis(t)
	c, _ := serve(t, rdb, "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 100, burst: 10}", exact(t)...)
	burst := func(n int) int64 {
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				resp, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", "b")}})
				if err != nil {
					t.Error(err)
				} else if resp.OverallCode == ok {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		return admitted.Load()
	}
	call(t, c, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", "warm")}})
	checkBoundary(t, "", burst, 100, 30*time.Millisecond, 10, 100)
}

// checkBoundary sends n decisions at once just before the next second
// boundary (by around) and n just after it, and fails when together they
// admit more than bucket + rate × elapsed, or the first burst admits less
// than the bucket: fixed windows would admit a limit on each side.
func checkBoundary(t *testing.T, what string, burst func(n int) int64, n int, around time.Duration, bucket, rate float64) {
	t.Helper()
	next := time.Now().Truncate(time.Second).Add(time.Second)
	if time.Until(next) < 2*around+40*time.Millisecond {
		next = next.Add(time.Second)
	}
	time.Sleep(time.Until(next.Add(-around)))
	start := time.Now()
	a := burst(n)
	time.Sleep(time.Until(next.Add(around)))
	b := burst(n)
	elapsed := time.Since(start)
	limit := bucket + rate*elapsed.Seconds()
	t.Logf("%sadmitted %d before and %d after the boundary in %s; burst + rate × elapsed = %.1f", what, a, b, elapsed, limit)
	if float64(a+b) > limit {
		t.Fatalf("%sadmitted %d > burst + rate × elapsed = %.1f", what, a+b, limit)
	}
	if float64(a) < bucket {
		t.Fatalf("%sthe first burst admitted %d, want the bucket's %.0f", what, a, bucket)
	}
}

// TestRedisDown: with Redis stopped (paused: calls hang) or killed, the
// service answers within the limiter's deadline with the configured policy.
func TestRedisDown(t *testing.T) {
	const deadline = 50 * time.Millisecond
	doc := "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 100}"
	for _, tc := range []struct {
		name   string
		policy ratelimit.FailurePolicy
		want   rlsv3.RateLimitResponse_Code
		kill   bool
	}{
		{"closed paused", ratelimit.FailClosed, over, false},
		{"open paused", ratelimit.FailOpen, ok, false},
		{"local killed", ratelimit.FailLocal(1), ok, true},
		{"closed killed", ratelimit.FailClosed, over, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, rdb := startRedis(t)
			var events atomic.Int64
			c, svc := serve(t, rdb, doc, envoy.WithLimiterOptions(ratelimit.WithFailurePolicy(tc.policy), ratelimit.WithDeadline(deadline)),
				envoy.WithOnDecision(func(_ context.Context, e ratelimit.Event) {
					if e.Kind == ratelimit.EventDecision && e.Decision.Source == ratelimit.SourceFallback {
						events.Add(1)
					}
				}))
			req := &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", "x")}}
			// With Redis up: admitted. On a loaded machine the first call
			// can outlast the 50 ms deadline while the connection is dialled
			// (then the policy answers, a fallback decision): try again.
			for i := 0; ; i++ {
				resp := call(t, c, req)
				if resp.OverallCode == ok && svc.Healthy() {
					break
				}
				if i == 20 {
					t.Fatalf("with Redis up: %v", resp)
				}
				time.Sleep(50 * time.Millisecond)
			}
			events.Store(0)
			if tc.kill {
				srv.Kill()
			} else {
				srv.Pause(t)
				t.Cleanup(srv.Resume)
			}
			var worst time.Duration
			for range 10 {
				start := time.Now()
				resp := call(t, c, req)
				worst = max(worst, time.Since(start))
				if resp.OverallCode != tc.want {
					t.Fatalf("with Redis down: %v, want %v", resp.OverallCode, tc.want)
				}
			}
			t.Logf("slowest answer with Redis down: %s", worst)
			if worst > deadline+40*time.Millisecond {
				t.Fatalf("slowest answer %s, deadline %s", worst, deadline)
			}
			if events.Load() != 10 {
				t.Fatalf("%d fallback decisions reported, want 10", events.Load())
			}
			if svc.Healthy() {
				t.Fatal("Healthy with Redis down")
			}
		})
	}
}

func TestWatchFileKeepsWorkingConfig(t *testing.T) {
	_, rdb := startRedis(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
	path := filepath.Join(t.TempDir(), "rl.yaml")
	write := func(s string) {
		if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1}")
	c, svc := serve(t, rdb, "domain: d", envoy.WithLogger(logger))
	reloads := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := svc.WatchFile(ctx, path, envoy.WithPollInterval(10*time.Millisecond), envoy.WithOnReload(func(err error) { reloads <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); wait() }()
	code := func(key string) rlsv3.RateLimitResponse_Code {
		return call(t, c, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{desc("k", key)}}).OverallCode
	}
	if code("a") != ok || code("a") != over {
		t.Fatal("the file's 1/hour is not in force")
	}
	write("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}")
	if err := <-reloads; err == nil || !strings.Contains(err.Error(), "fortnight") {
		t.Fatalf("bad document: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // ten more polls of the same bad document
	if code("a") != over || code("b") != ok {
		t.Fatal("the working configuration did not stay in force")
	}
	mu.Lock()
	n := strings.Count(logs.String(), `"level":"ERROR"`)
	mu.Unlock()
	if n != 1 {
		t.Fatalf("%d ERROR lines for one bad document, want 1:\n%s", n, logs.String())
	}
	write("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 3}")
	if err := <-reloads; err != nil {
		t.Fatal(err)
	}
	for i, want := range []rlsv3.RateLimitResponse_Code{ok, ok, ok, over} {
		if got := code("c"); got != want {
			t.Fatalf("request %d under the new 3/hour: %v, want %v", i+1, got, want)
		}
	}
	if len(reloads) != 0 {
		t.Fatalf("unexpected reloads: %v", <-reloads)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNewErrors(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	cfg := envoy.Config{Domain: "d"}
	for _, tc := range []struct {
		opts []envoy.Option
		want string
	}{
		{[]envoy.Option{nil}, "envoy: option 1 is nil"},
		{[]envoy.Option{envoy.WithOnDecision(nil)}, "envoy: WithOnDecision: nil function"},
		{[]envoy.Option{envoy.WithLimiterOptions(nil)}, "envoy: WithLimiterOptions: option 1 is nil"},
	} {
		if _, err := envoy.New(rdb, cfg, tc.opts...); err == nil || err.Error() != tc.want {
			t.Errorf("New: %v, want %q", err, tc.want)
		}
	}
	bad := envoy.Config{Domain: "d", Descriptors: []envoy.Descriptor{{Key: "k", RateLimit: &envoy.RateLimit{Unit: "second", RequestsPerUnit: 1}}}}
	if _, err := envoy.New(rdb, bad, envoy.WithLimiterOptions(ratelimit.WithDeadline(0))); err == nil || !strings.Contains(err.Error(), "WithDeadline") {
		t.Errorf("New with a zero deadline: %v", err)
	}
	if _, err := envoy.New(nil, cfg); err == nil {
		t.Error("New with a nil client succeeded")
	}
}
