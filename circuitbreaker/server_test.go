package circuitbreaker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

var quiet = circuitbreaker.WithLogger(logging.New(io.Discard, nil))

// upstream is a handler whose behaviour the test switches.
type upstream struct {
	mu     sync.Mutex
	status int
	panics bool
	calls  int
}

func (u *upstream) set(status int, panics bool) {
	u.mu.Lock()
	u.status, u.panics = status, panics
	u.mu.Unlock()
}

func (u *upstream) handle(c *gin.Context) {
	u.mu.Lock()
	status, panics := u.status, u.panics
	u.calls++
	u.mu.Unlock()
	if panics {
		panic("upstream bug")
	}
	c.String(status, "from handler")
}

func newServer(t *testing.T, u *upstream, opts ...circuitbreaker.Option) (*gin.Engine, *circuitbreaker.Server) {
	t.Helper()
	s, err := circuitbreaker.New(append([]circuitbreaker.Option{quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(logging.Recovery(logging.New(io.Discard, nil)))
	errcode.Handle(r)
	r.Use(s.Middleware())
	r.GET("/orders/:id", u.handle)
	r.GET("/other", func(c *gin.Context) { c.String(200, "ok") })
	return r, s
}

func get(r http.Handler, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

var policy = circuitbreaker.Classic{MinRequests: 10, FailureRatio: 0.5, OpenTimeout: 5 * time.Second, Probes: 3}

// Under induced failure the breaker opens, answers 503 CIRCUIT_OPEN with
// Retry-After, lets a bounded number of probes through when half-open,
// and closes when they succeed; hooks see every transition in order.
func TestServerOpensProbesAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var changes []string
		var s *circuitbreaker.Server
		u := &upstream{status: 500}
		hook := circuitbreaker.WithOnStateChange(func(_ context.Context, ch circuitbreaker.Event) {
			// Calling back into the breaker from a hook must not deadlock.
			_ = s.State("GET", "/orders/:id")
			mu.Lock()
			changes = append(changes, ch.From.String()+">"+ch.To.String())
			mu.Unlock()
		})
		r, srv := newServer(t, u, circuitbreaker.WithPolicy(policy), hook)
		s = srv

		for i := 0; i < 10; i++ {
			if w := get(r, "/orders/1"); w.Code != 500 {
				t.Fatalf("request %d: %d", i, w.Code)
			}
		}
		if st := s.State("GET", "/orders/:id"); st != circuitbreaker.StateOpen {
			t.Fatalf("state after 10 failures: %v", st)
		}
		calls := u.calls
		w := get(r, "/orders/2")
		if w.Code != 503 || w.Header().Get("Retry-After") != "5" || !strings.Contains(w.Body.String(), `"reason":"CIRCUIT_OPEN"`) {
			t.Fatalf("open breaker answered %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
		}
		if u.calls != calls {
			t.Fatal("open breaker let a request reach the handler")
		}
		if w := get(r, "/other"); w.Code != 200 {
			t.Fatal("another route's breaker opened too")
		}

		time.Sleep(2 * time.Second)
		if ra := get(r, "/orders/3").Header().Get("Retry-After"); ra != "3" {
			t.Fatalf("Retry-After %q two seconds later, want 3", ra)
		}
		time.Sleep(3*time.Second + time.Millisecond) // open timeout over: half-open
		u.set(200, false)
		// Three probes pass; until they complete nothing else does.
		for i := 0; i < 3; i++ {
			if w := get(r, "/orders/4"); w.Code != 200 {
				t.Fatalf("probe %d: %d", i, w.Code)
			}
		}
		if st := s.State("GET", "/orders/:id"); st != circuitbreaker.StateClosed {
			t.Fatalf("state after successful probes: %v", st)
		}
		mu.Lock()
		got := strings.Join(changes, " ")
		mu.Unlock()
		if got != "closed>open open>half-open half-open>closed" {
			t.Fatalf("changes %q", got)
		}
	})
}

func TestServerHalfOpenFailureReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &upstream{status: 503}
		r, s := newServer(t, u, circuitbreaker.WithPolicy(policy))
		for i := 0; i < 10; i++ {
			get(r, "/orders/1")
		}
		time.Sleep(5*time.Second + time.Millisecond)
		if w := get(r, "/orders/1"); w.Code != 503 || strings.Contains(w.Body.String(), "CIRCUIT_OPEN") {
			t.Fatalf("probe should reach the failing handler: %d %s", w.Code, w.Body)
		}
		if st := s.State("GET", "/orders/:id"); st != circuitbreaker.StateOpen {
			t.Fatalf("a failed probe should reopen: %v", st)
		}
	})
}

// 4xx and 429 answers are the client's fault, not the route's; panics and
// timeouts are failures.
func TestServerWhatCountsAsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, status := range []int{400, 404, 429, 499} {
			u := &upstream{status: status}
			r, s := newServer(t, u, circuitbreaker.WithPolicy(policy))
			for i := 0; i < 30; i++ {
				get(r, "/orders/1")
			}
			if st := s.State("GET", "/orders/:id"); st != circuitbreaker.StateClosed {
				t.Errorf("%d answers opened the breaker", status)
			}
		}
		u := &upstream{panics: true}
		r, s := newServer(t, u, circuitbreaker.WithPolicy(policy))
		for i := 0; i < 10; i++ {
			if w := get(r, "/orders/1"); w.Code != 500 {
				t.Fatalf("panic answered %d", w.Code)
			}
		}
		if st := s.State("GET", "/orders/:id"); st != circuitbreaker.StateOpen {
			t.Fatalf("panics did not open the breaker: %v", st)
		}

		s2, err := circuitbreaker.New(quiet, circuitbreaker.WithPolicy(policy))
		if err != nil {
			t.Fatal(err)
		}
		r2 := gin.New()
		r2.Use(s2.Middleware())
		r2.GET("/slow", func(c *gin.Context) {
			ctx, cancel := context.WithTimeout(c.Request.Context(), time.Millisecond)
			defer cancel()
			c.Request = c.Request.WithContext(ctx)
			<-ctx.Done()
			c.String(200, "late") // answered, but the deadline passed
		})
		for i := 0; i < 10; i++ {
			get(r2, "/slow")
		}
		if st := s2.State("GET", "/slow"); st != circuitbreaker.StateOpen {
			t.Fatalf("timeouts did not open the breaker: %v", st)
		}
	})
}

func TestServerFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &upstream{status: 500}
		var cause error
		fb := circuitbreaker.WithFallback("/orders/:id", func(c *gin.Context, err error) error {
			cause = err
			if c.Param("id") == "broken" {
				return errors.New("cache miss")
			}
			if c.Param("id") == "panics" {
				panic("fallback bug")
			}
			c.JSON(200, gin.H{"id": c.Param("id"), "cached": true})
			return nil
		})
		var logs bytes.Buffer
		r, _ := newServer(t, u, circuitbreaker.WithPolicy(policy), fb, circuitbreaker.WithLogger(logging.New(&logs, nil)))
		for i := 0; i < 10; i++ {
			get(r, "/orders/1")
		}
		w := get(r, "/orders/7")
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"cached":true`) || !errors.Is(cause, circuitbreaker.ErrOpen) {
			t.Fatalf("fallback: %d %s (cause %v)", w.Code, w.Body, cause)
		}
		for _, id := range []string{"broken", "panics"} {
			w := get(r, "/orders/"+id)
			var env errcode.Envelope
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || w.Code != 503 || env.Reason != "CIRCUIT_OPEN" {
				t.Fatalf("failed fallback (%s) should leave the envelope: %d %s", id, w.Code, w.Body)
			}
		}
		// A fallback that fails is logged: WARN for an error, ERROR for a panic.
		testenv.WantLogLines(t, logs.String(), "fallback failed",
			`{"level":"WARN","msg":"circuit breaker fallback failed","route":"/orders/:id","error":"cache miss"}`,
			`{"level":"ERROR","msg":"circuit breaker fallback failed","route":"/orders/:id","error":"errcode: fallback panicked: fallback bug"}`)
	})
}

func TestServerBoundsBreakers(t *testing.T) {
	s, err := circuitbreaker.New(quiet, circuitbreaker.WithMaxBreakers(1), circuitbreaker.WithPolicy(policy))
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(s.Middleware())
	r.GET("/a", func(c *gin.Context) { c.Status(500) })
	r.GET("/b", func(c *gin.Context) { c.Status(500) })
	r.GET("/c", func(c *gin.Context) { c.Status(200) })
	get(r, "/a") // the one breaker of its own
	for i := 0; i < 10; i++ {
		get(r, "/b") // overflow
	}
	if w := get(r, "/c"); w.Code != 503 {
		t.Fatalf("/c shares the overflow breaker that /b opened: %d", w.Code)
	}
	if st := s.State("GET", "/a"); st != circuitbreaker.StateClosed {
		t.Fatalf("/a: %v", st)
	}
}

func TestNewValidates(t *testing.T) {
	// Options of both constructors: the same error from each.
	common := map[string]circuitbreaker.CommonOption{
		"circuitbreaker: WithPolicy: failure ratio must be in (0, 1], got 1.5":     circuitbreaker.WithPolicy(circuitbreaker.Classic{FailureRatio: 1.5}),
		"circuitbreaker: WithPolicy: buckets":                                      circuitbreaker.WithPolicy(circuitbreaker.Classic{Buckets: -1}),
		"circuitbreaker: WithPolicy: window and open timeout must not be negative": circuitbreaker.WithPolicy(circuitbreaker.Classic{OpenTimeout: -1}),
		"circuitbreaker: WithPolicy: SRE K":                                        circuitbreaker.WithPolicy(circuitbreaker.SRE{K: 0.5}),
		"circuitbreaker: WithPolicy: SRE min requests":                             circuitbreaker.WithPolicy(circuitbreaker.SRE{MinRequests: -1}),
		"circuitbreaker: WithPolicy: nil policy":                                   circuitbreaker.WithPolicy(nil),
		"circuitbreaker: WithPolicy: nil *Classic":                                 circuitbreaker.WithPolicy((*circuitbreaker.Classic)(nil)),
		"circuitbreaker: WithPolicy: nil *SRE":                                     circuitbreaker.WithPolicy((*circuitbreaker.SRE)(nil)),
		"circuitbreaker: WithMaxBreakers: must be >= 1, got -1":                    circuitbreaker.WithMaxBreakers(-1),
		"circuitbreaker: WithOnStateChange: nil function":                          circuitbreaker.WithOnStateChange(nil),
		"circuitbreaker: WithShared: needs a Redis client":                         circuitbreaker.WithShared(circuitbreaker.Shared{}),
		"circuitbreaker: WithShared: nil Redis client":                             circuitbreaker.WithShared(circuitbreaker.Shared{Client: (*redis.Client)(nil)}),
		"circuitbreaker: option 2 is nil":                                          nil,
	}
	for want, o := range common {
		if _, err := circuitbreaker.New(quiet, o); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("New: %s: %v", want, err)
		}
		if _, err := circuitbreaker.NewTransport(nil, quiet, o); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("NewTransport: %s: %v", want, err)
		}
	}
	// Server-only options (NewTransport does not take them: it would not compile).
	server := map[string]circuitbreaker.Option{
		`circuitbreaker: WithFallback: nil fallback for route "/x"`: circuitbreaker.WithFallback("/x", nil),
		"circuitbreaker: WithFailure: nil function":                 circuitbreaker.WithFailure(nil),
		"circuitbreaker: option 1 is nil":                           nil,
	}
	for want, o := range server {
		if _, err := circuitbreaker.New(o); err == nil || err.Error() != want {
			t.Errorf("New: %s: %v", want, err)
		}
	}
	if _, err := circuitbreaker.NewTransport(nil, nil); err == nil || err.Error() != "circuitbreaker: option 1 is nil" {
		t.Errorf("NewTransport(nil option): %v", err)
	}
}

type ctxKey struct{}

// The state-change hook gets the context of the request that caused the
// change, server side and client side.
func TestHookGetsRequestContext(t *testing.T) {
	var got []any
	hook := circuitbreaker.WithOnStateChange(func(ctx context.Context, e circuitbreaker.Event) {
		got = append(got, ctx.Value(ctxKey{}), e.Name, e.To)
	})
	one := circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 1, OpenTimeout: time.Hour})
	r, _ := newServer(t, &upstream{status: 500}, one, hook)
	req := httptest.NewRequest("GET", "/orders/1", nil)
	r.ServeHTTP(httptest.NewRecorder(), req.WithContext(context.WithValue(req.Context(), ctxKey{}, "server")))

	tr, err := circuitbreaker.NewTransport(rtFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("refused")
	}), quiet, one, hook)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := http.NewRequestWithContext(context.WithValue(context.Background(), ctxKey{}, "client"), "GET", "http://up:80/", nil)
	if _, err := tr.RoundTrip(out); err == nil {
		t.Fatal("no error")
	}
	want := []any{"server", "GET /orders/:id", circuitbreaker.StateOpen, "client", "up:80", circuitbreaker.StateOpen}
	if len(got) != len(want) {
		t.Fatalf("hook saw %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hook saw %v, want %v", got, want)
		}
	}
}
