package ratelimit_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/ratelimit"
)

func engine(t *testing.T, g *ratelimit.Guard, trusted ...string) *gin.Engine {
	t.Helper()
	r := gin.New()
	if err := r.SetTrustedProxies(trusted); err != nil {
		t.Fatal(err)
	}
	errcode.Handle(r)
	r.Use(g.Middleware())
	r.GET("/x", func(c *gin.Context) { c.String(200, "ok") })
	r.GET("/y", func(c *gin.Context) { c.String(200, "ok") })
	return r
}

func do(r http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func mustGuard(t *testing.T, rdb redis.UniversalClient, opts ...ratelimit.Option) *ratelimit.Guard {
	t.Helper()
	g, err := ratelimit.New(rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func TestGuardRejectsWithEnvelopeAndHeaders(t *testing.T) {
	r := engine(t, mustGuard(t, nil, ratelimit.PerIP(2, time.Minute)))
	for i := 0; i < 2; i++ {
		w := do(r, "/x")
		if w.Code != 200 || w.Header().Get("X-RateLimit-Limit") != "2" || w.Header().Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) {
			t.Fatalf("request %d: %d %v", i, w.Code, w.Header())
		}
		reset, err := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64)
		if err != nil || reset < time.Now().Unix() || reset > time.Now().Unix()+61 {
			t.Fatalf("reset %q", w.Header().Get("X-RateLimit-Reset"))
		}
	}
	w := do(r, "/x")
	if w.Code != 429 || w.Header().Get("Content-Type") != errcode.ContentType {
		t.Fatalf("third request: %d %q", w.Code, w.Body)
	}
	var env errcode.Envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if env.Code != errcode.RateLimited.Code() || env.Metadata["rule"] != "ip" {
		t.Fatalf("envelope %+v", env)
	}
	// 2 per minute: the next token in 30 s.
	if ra := w.Header().Get("Retry-After"); ra != "30" {
		t.Fatalf("Retry-After %q, want 30", ra)
	}
	if w.Header().Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("remaining on rejection: %q", w.Header().Get("X-RateLimit-Remaining"))
	}
}

func TestGuardIETFHeaders(t *testing.T) {
	g := mustGuard(t, nil, ratelimit.PerIP(10, time.Minute), ratelimit.Global(100, time.Second),
		ratelimit.WithHeaders(ratelimit.HeadersIETF))
	w := do(engine(t, g), "/x")
	if got := w.Header().Get("RateLimit-Policy"); got != `"ip";q=10;w=60, "global";q=100;w=1` {
		t.Fatalf("RateLimit-Policy %q", got)
	}
	// ip has 9 of 10 left, global 99 of 100: ip is the tighter one.
	if got := w.Header().Get("RateLimit"); got != `"ip";r=9;t=6` {
		t.Fatalf("RateLimit %q", got)
	}
	if w.Header().Get("X-RateLimit-Limit") != "" {
		t.Fatal("legacy headers sent with HeadersIETF only")
	}
	g = mustGuard(t, nil, ratelimit.PerIP(1, time.Minute), ratelimit.WithHeaders(ratelimit.HeadersNone))
	r := engine(t, g)
	do(r, "/x")
	w = do(r, "/x")
	if w.Code != 429 || w.Header().Get("X-RateLimit-Limit") != "" || w.Header().Get("RateLimit") != "" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("HeadersNone: %d %v", w.Code, w.Header())
	}
}

// Both header sets at once carry their own values, and adding to one field
// leaves the others as they were.
func TestGuardLegacyAndIETFHeadersTogether(t *testing.T) {
	g := mustGuard(t, nil, ratelimit.PerIP(150, time.Minute),
		ratelimit.WithHeaders(ratelimit.HeadersLegacy|ratelimit.HeadersIETF))
	w := do(engine(t, g), "/x")
	h := w.Header()
	h.Add("X-RateLimit-Limit", "extra")
	if got := h.Values("X-RateLimit-Limit"); len(got) != 2 || got[0] != "150" {
		t.Fatalf("X-RateLimit-Limit %q", got)
	}
	if got := h.Values("X-RateLimit-Remaining"); len(got) != 1 || got[0] != "149" {
		t.Fatalf("X-RateLimit-Remaining %q", got)
	}
	if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err != nil || reset < time.Now().Unix() {
		t.Fatalf("X-RateLimit-Reset %q", h.Get("X-RateLimit-Reset"))
	}
	if got := h.Get("RateLimit"); got != `"ip";r=149;t=1` {
		t.Fatalf("RateLimit %q", got)
	}
	if got := h.Get("RateLimit-Policy"); got != `"ip";q=150;w=60` {
		t.Fatalf("RateLimit-Policy %q", got)
	}
}

// Header values longer than the per-response buffer (a long rule name in
// RateLimit) are written the same; values of one response do not change
// when the next response's are written.
func TestGuardHeadersLongRuleName(t *testing.T) {
	name := strings.Repeat("n", 100)
	g := mustGuard(t, nil, ratelimit.PerIP(1000, time.Minute).WithName(name),
		ratelimit.WithHeaders(ratelimit.HeadersLegacy|ratelimit.HeadersIETF))
	r := engine(t, g)
	first := do(r, "/x").Header()
	if got, want := first.Get("RateLimit"), `"`+name+`";r=999;t=1`; got != want {
		t.Fatalf("RateLimit %q, want %q", got, want)
	}
	if got := first.Get("X-RateLimit-Limit"); got != "1000" {
		t.Fatalf("X-RateLimit-Limit %q", got)
	}
	short := mustGuard(t, nil, ratelimit.PerIP(1000, time.Minute), ratelimit.WithHeaders(ratelimit.HeadersLegacy|ratelimit.HeadersIETF))
	rs := engine(t, short)
	a := do(rs, "/x").Header()
	for range 3 {
		do(rs, "/x")
	}
	if a.Get("X-RateLimit-Remaining") != "999" || a.Get("RateLimit") != `"ip";r=999;t=1` || a.Get("X-RateLimit-Limit") != "1000" {
		t.Fatalf("first response's headers changed: %v", a)
	}
}

// While a rule's decisions say the same (a bucket that stays full), the
// header values are not formatted again: the headers cost no allocation.
func TestGuardHeadersReusedWhileUnchanged(t *testing.T) {
	allocs := func(h ratelimit.Headers) float64 {
		r := engine(t, mustGuard(t, nil, ratelimit.PerIP(1e9, time.Second), ratelimit.WithHeaders(h)))
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.ServeHTTP(httptest.NewRecorder(), req)
		return testing.AllocsPerRun(200, func() { r.ServeHTTP(httptest.NewRecorder(), req) })
	}
	none := allocs(ratelimit.HeadersNone)
	for _, h := range []ratelimit.Headers{ratelimit.HeadersLegacy, ratelimit.HeadersIETF, ratelimit.HeadersLegacy | ratelimit.HeadersIETF} {
		if got := allocs(h); got != none {
			t.Errorf("headers %d: %v allocations per request, %v without headers", h, got, none)
		}
	}
	r := engine(t, mustGuard(t, nil, ratelimit.PerIP(1e9, time.Second), ratelimit.WithHeaders(ratelimit.HeadersLegacy|ratelimit.HeadersIETF)))
	a, b := do(r, "/x").Header(), do(r, "/x").Header()
	for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "RateLimit", "RateLimit-Policy"} {
		if a.Get(k) == "" || a.Get(k) != b.Get(k) {
			t.Errorf("%s: %q then %q", k, a.Get(k), b.Get(k))
		}
	}
	if a.Get("X-RateLimit-Remaining") != "999999999" || a.Get("RateLimit") != `"ip";r=999999999;t=1` {
		t.Errorf("headers %v", a)
	}
}

// A client cannot pick its own key through X-Forwarded-For unless the
// proxy it comes through is trusted.
func TestGuardIgnoresSpoofedForwardedFor(t *testing.T) {
	g := mustGuard(t, nil, ratelimit.PerIP(1, time.Minute))
	r := engine(t, g) // no trusted proxies
	if w := do(r, "/x", "X-Forwarded-For", "198.51.100.1"); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if w := do(r, "/x", "X-Forwarded-For", "198.51.100.2"); w.Code != 429 {
		t.Fatalf("spoofed X-Forwarded-For got a fresh bucket: %d", w.Code)
	}
	// Behind a trusted proxy (httptest's peer is 192.0.2.1) the header counts.
	r = engine(t, mustGuard(t, nil, ratelimit.PerIP(1, time.Minute)), "192.0.2.1")
	for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		if w := do(r, "/x", "X-Forwarded-For", ip); w.Code != 200 {
			t.Fatalf("client %s behind a trusted proxy: %d", ip, w.Code)
		}
	}
}

func TestGuardRulesAndKeys(t *testing.T) {
	g := mustGuard(t, nil,
		ratelimit.PerHeader("X-Api-Key", 1, time.Minute),
		ratelimit.PerRoute(3, time.Minute),
		ratelimit.PerUser(func(c *gin.Context) string { return c.Query("user") }, 2, time.Minute),
	)
	r := engine(t, g)
	// No api key, no user: only the route rule applies (3 per route).
	for i := 0; i < 3; i++ {
		if w := do(r, "/x"); w.Code != 200 {
			t.Fatalf("route request %d: %d", i, w.Code)
		}
	}
	w := do(r, "/x")
	if w.Code != 429 || !strings.Contains(w.Body.String(), `"rule":"route"`) {
		t.Fatalf("route rule: %d %s", w.Code, w.Body)
	}
	if w := do(r, "/y"); w.Code != 200 {
		t.Fatal("another route shares the bucket")
	}
	if w := do(r, "/y?user=u1", "X-Api-Key", "k1"); w.Code != 200 {
		t.Fatal(w.Code)
	}
	w = do(r, "/y?user=u2", "X-Api-Key", "k1")
	if w.Code != 429 || !strings.Contains(w.Body.String(), `"rule":"header:x-api-key"`) {
		t.Fatalf("api key rule: %d %s", w.Code, w.Body)
	}
	// Unmatched paths share one route bucket, not one per path.
	for i := 0; i < 3; i++ {
		do(r, "/nope/"+strconv.Itoa(i))
	}
	if w := do(r, "/nope/other"); w.Code != 429 {
		t.Fatalf("unmatched paths not bounded to one bucket: %d", w.Code)
	}
}

func TestNewRejectsInvalidRules(t *testing.T) {
	key := func(*gin.Context) (string, bool) { return "k", true }
	cases := map[string][]ratelimit.Option{
		"no rules":            {},
		"rate limit must be":  {ratelimit.PerIP(0, time.Second)},
		"period must be":      {ratelimit.PerIP(1, 0)},
		"burst must be":       {ratelimit.PerIP(1, time.Second).WithBurst(-1)},
		"no key function":     {ratelimit.By("k", nil, ratelimit.PerSecond(1))},
		"empty name":          {ratelimit.By("", key, ratelimit.PerSecond(1))},
		"two rules named":     {ratelimit.PerIP(1, time.Second), ratelimit.PerIP(2, time.Second)},
		"lease mode needs":    {ratelimit.PerIP(1, time.Second).WithLease(ratelimit.LeaseOptions{})},
		"FailLocal needs":     {ratelimit.PerIP(1, time.Second).WithFailurePolicy(ratelimit.FailLocal(0))},
		"FailLocalFunc needs": {ratelimit.PerIP(1, time.Second).WithFailurePolicy(ratelimit.FailLocalFunc(nil))},
		"option 1 is nil":     {nil},
		`ratelimit: PerHeader: invalid header name ""`:           {ratelimit.PerHeader("", 1, time.Second)},
		`ratelimit: PerHeader: invalid header name "bad header"`: {ratelimit.PerHeader("bad header", 1, time.Second)},
		// Without a Redis client, Redis settings would do nothing.
		"WithFailurePolicy: needs a Redis client": {ratelimit.PerIP(1, time.Second).WithFailurePolicy(ratelimit.FailClosed)},
		"ratelimit: WithDeadline: needs a Redis client": {ratelimit.PerIP(1, time.Second), ratelimit.WithDeadline(time.Hour),
			ratelimit.WithKeyPrefix("x")},
		"ratelimit: WithKeyPrefix: needs a Redis client":      {ratelimit.PerIP(1, time.Second), ratelimit.WithKeyPrefix("x")},
		"ratelimit: WithLogger: needs a Redis client":         {ratelimit.PerIP(1, time.Second), ratelimit.WithLogger(nil)},
		"ratelimit: WithCoalescing: needs a Redis client":     {ratelimit.PerIP(1, time.Second), ratelimit.WithCoalescing(true)},
		"ratelimit: WithMembership: needs a Redis client":     {ratelimit.PerIP(1, time.Second), ratelimit.WithMembership(false)},
		"ratelimit: WithClientAsIs: needs a Redis client":     {ratelimit.PerIP(1, time.Second), ratelimit.WithClientAsIs()},
		"ratelimit: WithProbeInterval: needs a Redis client":  {ratelimit.PerIP(1, time.Second), ratelimit.WithProbeInterval(time.Second)},
		"ratelimit: WithOnHealthChange: needs a Redis client": {ratelimit.PerIP(1, time.Second), ratelimit.WithOnHealthChange(func(context.Context, ratelimit.Event) {})},
	}
	for want, opts := range cases {
		_, err := ratelimit.New(nil, opts...)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "ratelimit: ") {
			t.Errorf("%s: error %v", want, err)
		}
	}
	if _, err := ratelimit.New(nil, ratelimit.PerUser(nil, 1, time.Second)); err == nil {
		t.Error("PerUser(nil) accepted")
	}
	if _, err := ratelimit.New(nil, ratelimit.PerIP(1, time.Second), ratelimit.PerIP(1, time.Second).WithName("ip2")); err != nil {
		t.Errorf("renamed rule rejected: %v", err)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
}

// With Redis unreachable, a FailClosed rule answers 503 UNAVAILABLE (not
// 429: the client is not over any limit), within the deadline.
func TestGuardFailClosedIs503(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1})
	defer rdb.Close()
	g := mustGuard(t, rdb, ratelimit.PerIP(5, time.Second).WithFailurePolicy(ratelimit.FailClosed),
		ratelimit.WithDeadline(100*time.Millisecond))
	start := time.Now()
	w := do(engine(t, g), "/x")
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"reason":"UNAVAILABLE"`) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("fail closed: %d %s", w.Code, w.Body)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %v with Redis down", el)
	}
}

// Two guards (two instances) on one Redis share the bucket, and the
// decision hook sees every decision.
func TestGuardSharesBucketThroughRedis(t *testing.T) {
	_, rdb := newRedis(t)
	var mu sync.Mutex
	var events []ratelimit.Event
	hook := ratelimit.WithOnDecision(func(_ context.Context, e ratelimit.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	a := engine(t, mustGuard(t, rdb, ratelimit.PerIP(3, time.Minute), hook))
	b := engine(t, mustGuard(t, rdb, ratelimit.PerIP(3, time.Minute), hook))
	codes := []int{do(a, "/x").Code, do(b, "/x").Code, do(a, "/x").Code, do(b, "/x").Code}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 200 || codes[3] != 429 {
		t.Fatalf("codes %v, want three 200s then 429 across both instances", codes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 4 || events[3].Decision.Allowed || events[0].Rule != "ip" || events[0].Decision.Source != ratelimit.SourceRedis {
		t.Fatalf("events %+v", events)
	}
}

// Keys with odd or long bytes are hashed before they reach Redis.
func TestRedisKeysAreSanitised(t *testing.T) {
	_, rdb := newRedis(t)
	l, err := newLimiter(t, rdb, "odd", ratelimit.PerSecond(10))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, k := range []string{"a b", "x}{y", "\x00\xff", strings.Repeat("z", 200), "user@example.com"} {
		if d, _ := l.AllowN(ctx, k, 1); !d.Allowed || d.Source != ratelimit.SourceRedis {
			t.Fatalf("key %q: %+v", k, d)
		}
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Besides the buckets, the limiter's membership set may be there.
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "gingov:rl:{odd}:instances" })
	if len(keys) != 5 {
		t.Fatalf("keys %q", keys)
	}
	for _, k := range keys {
		inner := strings.TrimSuffix(strings.TrimPrefix(k, "gingov:rl:{odd:"), "}")
		if k == inner || strings.ContainsAny(inner, " {}\x00") || !utf8.ValidString(inner) || len(inner) > 64 {
			t.Errorf("unsafe Redis key %q", k)
		}
	}
	if !contains(keys, "gingov:rl:{odd:user@example.com}") {
		t.Errorf("plain key was hashed: %q", keys)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestNewRedisValidates(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: closedAddr(t)})
	defer rdb.Close()
	cases := map[string]func() error{
		"nil Redis client": func() error { _, err := ratelimit.NewRedis(nil, "n", ratelimit.PerSecond(1)); return err },
		"empty limiter":    func() error { _, err := ratelimit.NewRedis(rdb, "", ratelimit.PerSecond(1)); return err },
		"WithDeadline: must be > 0": func() error {
			_, err := ratelimit.NewRedis(rdb, "n", ratelimit.PerSecond(1), ratelimit.WithDeadline(0))
			return err
		},
		"WithProbeInterval: must be > 0": func() error {
			_, err := ratelimit.NewRedis(rdb, "n", ratelimit.PerSecond(1), ratelimit.WithProbeInterval(-1))
			return err
		},
		"WithLease: window 1s is longer": func() error {
			_, err := ratelimit.NewRedis(rdb, "n", ratelimit.PerSecond(1), ratelimit.WithLease(ratelimit.LeaseOptions{Window: time.Second, TTL: time.Millisecond}))
			return err
		},
		"finest a Redis bucket": func() error {
			_, err := ratelimit.NewRedis(rdb, "n", ratelimit.Rate{Limit: 4_000_000, Period: time.Second})
			return err
		},
		"WithLease: fields must not be negative": func() error {
			_, err := ratelimit.NewRedis(rdb, "n", ratelimit.PerSecond(1), ratelimit.WithLease(ratelimit.LeaseOptions{MaxBatch: -1}))
			return err
		},
	}
	for want, f := range cases {
		if err := f(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// A Guard without WithHeaders sends the DefaultHeaders: the legacy ones.
func TestDefaultHeaders(t *testing.T) {
	if ratelimit.DefaultHeaders != ratelimit.HeadersLegacy {
		t.Fatalf("DefaultHeaders = %d, want HeadersLegacy", ratelimit.DefaultHeaders)
	}
	w := do(engine(t, mustGuard(t, nil, ratelimit.Global(5, time.Minute))), "/x")
	if w.Header().Get("X-RateLimit-Limit") != "5" || w.Header().Get("RateLimit") != "" {
		t.Fatalf("default headers: %v", w.Header())
	}
}
