package deadline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/reqinfo"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	goleak.VerifyTestMain(m)
}

func mustNew(t testing.TB, timeout time.Duration, opts ...deadline.Option) *deadline.Timeouts {
	t.Helper()
	d, err := deadline.New(timeout, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitDone is a handler that honours its context, then (too late) answers.
func waitDone(c *gin.Context) {
	select {
	case <-c.Request.Context().Done():
	case <-time.After(time.Hour):
	}
	c.String(http.StatusOK, "too late")
}

// checkEnvelope checks that body is exactly one envelope of code.
func checkEnvelope(t *testing.T, status int, header http.Header, body []byte, code *errcode.Code) {
	t.Helper()
	if status != code.Status() {
		t.Errorf("status %d, want %d", status, code.Status())
	}
	if ct := header.Get("Content-Type"); ct != errcode.ContentType {
		t.Errorf("Content-Type %q, want %q", ct, errcode.ContentType)
	}
	var env errcode.Envelope
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("body %q is no envelope: %v", body, err)
	}
	if dec.More() {
		t.Errorf("body %q has more than the envelope", body)
	}
	if env.Code != code.Code() || env.Reason != code.Reason() {
		t.Errorf("envelope %d %s, want %d %s", env.Code, env.Reason, code.Code(), code.Reason())
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	hook := func(context.Context, deadline.Event) {}
	for name, tc := range map[string]struct {
		timeout time.Duration
		opts    []deadline.Option
		want    string // "" for no error
	}{
		"ok":                {time.Second, []deadline.Option{deadline.WithRoute("GET /a/:id", time.Minute), deadline.WithExempt("GET /events"), deadline.WithOnTimeout(hook)}, ""},
		"zero timeout":      {0, nil, "deadline: New: timeout 0s must be > 0"},
		"negative timeout":  {-time.Second, nil, "deadline: New: timeout -1s must be > 0"},
		"nil option":        {time.Second, []deadline.Option{deadline.WithExempt("GET /x"), nil}, "deadline: option 2 is nil"},
		"nil hook":          {time.Second, []deadline.Option{deadline.WithOnTimeout(nil)}, "deadline: WithOnTimeout: nil function"},
		"route timeout 0":   {time.Second, []deadline.Option{deadline.WithRoute("GET /a", 0)}, `deadline: WithRoute: "GET /a": timeout 0s must be > 0`},
		"route no method":   {time.Second, []deadline.Option{deadline.WithRoute("/a", time.Second)}, `deadline: WithRoute: route "/a" must be`},
		"route no slash":    {time.Second, []deadline.Option{deadline.WithRoute("GET a", time.Second)}, `deadline: WithRoute: route "GET a" must be`},
		"route two spaces":  {time.Second, []deadline.Option{deadline.WithRoute("GET  /a", time.Second)}, `deadline: WithRoute: route "GET  /a" must be`},
		"exempt bad":        {time.Second, []deadline.Option{deadline.WithExempt("")}, `deadline: WithExempt: route "" must be`},
		"route twice":       {time.Second, []deadline.Option{deadline.WithRoute("GET /a", time.Second), deadline.WithRoute("GET /a", time.Minute)}, `deadline: WithRoute: route "GET /a" is configured twice`},
		"route and exempt":  {time.Second, []deadline.Option{deadline.WithRoute("GET /a", time.Second), deadline.WithExempt("GET /a")}, `deadline: WithExempt: route "GET /a" is configured twice`},
		"first error wins":  {time.Second, []deadline.Option{deadline.WithRoute("x", time.Second), deadline.WithOnTimeout(nil)}, `deadline: WithRoute: route "x"`},
		"other method fine": {time.Second, []deadline.Option{deadline.WithRoute("GET /a", time.Second), deadline.WithRoute("POST /a", time.Minute)}, ""},
	} {
		_, err := deadline.New(tc.timeout, tc.opts...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q…", name, err, tc.want)
		}
	}
}

// A handler that honours its context returns at the deadline and the
// request is answered with the 504 envelope then, in fake time exactly.
func TestHonouringHandlerAnsweredAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []deadline.Event
		d := mustNew(t, 100*time.Millisecond, deadline.WithOnTimeout(func(_ context.Context, e deadline.Event) { events = append(events, e) }))
		r := gin.New()
		r.Use(d.Middleware())
		r.GET("/slow/:id", waitDone)
		start := time.Now()
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/slow/1", nil))
		if took := time.Since(start); took != 100*time.Millisecond {
			t.Errorf("answered after %v, want 100ms", took)
		}
		checkEnvelope(t, w.Code, w.Header(), w.Body.Bytes(), errcode.DeadlineExceeded)
		want := deadline.Event{Method: "GET", Route: "/slow/:id", Timeout: 100 * time.Millisecond, Elapsed: 100 * time.Millisecond}
		if len(events) != 1 || events[0] != want {
			t.Errorf("events %+v, want [%+v]", events, want)
		}
	})
}

// The same on a real server: the client has its 504 at the deadline,
// give or take scheduling.
func TestAnsweredAtDeadlineOnLoopback(t *testing.T) {
	t.Parallel()
	r := gin.New()
	r.Use(mustNew(t, 150*time.Millisecond).Middleware())
	r.GET("/slow", waitDone)
	srv := httptest.NewServer(r)
	defer srv.Close()
	start := time.Now()
	resp, err := http.Get(srv.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	checkEnvelope(t, resp.StatusCode, resp.Header, body, errcode.DeadlineExceeded)
	if took < 150*time.Millisecond || took > 150*time.Millisecond+time.Second {
		t.Errorf("answered after %v, want 150ms give or take scheduling", took)
	}
}

// A handler that ignores its context and keeps writing after its deadline
// is answered when it returns; none of its late bytes or headers reach
// the client, and nothing races (run with -race).
func TestLateWritesDropped(t *testing.T) {
	t.Parallel()
	var hookCalls atomic.Int32
	r := gin.New()
	r.Use(mustNew(t, 30*time.Millisecond, deadline.WithOnTimeout(func(context.Context, deadline.Event) { hookCalls.Add(1) })).Middleware())
	var writeErrs atomic.Int32
	r.GET("/loop", func(c *gin.Context) {
		end := time.Now().Add(80 * time.Millisecond)
		for time.Now().Before(end) {
			time.Sleep(time.Millisecond)
		}
		// All of this is after the deadline.
		c.Header("X-Handler", "late")
		c.Header("Content-Length", "999")
		for i := 0; i < 200; i++ {
			c.Status(http.StatusCreated)
			if _, err := c.Writer.WriteString("late bytes "); err != nil {
				writeErrs.Add(1)
			}
			_, _ = c.Writer.Write([]byte("more"))
			c.Writer.Flush()
			c.Writer.WriteHeaderNow()
		}
		c.JSON(http.StatusOK, gin.H{"late": true})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/loop")
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			checkEnvelope(t, resp.StatusCode, resp.Header, body, errcode.DeadlineExceeded)
			if resp.Header.Get("X-Handler") != "" {
				t.Errorf("a header the handler set late reached the client")
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d for a body of %d bytes", resp.ContentLength, len(body))
			}
		})
	}
	wg.Wait()
	if got := writeErrs.Load(); got != 8*200 {
		t.Errorf("%d late WriteString calls failed, want %d", got, 8*200)
	}
	if got := hookCalls.Load(); got != 8 {
		t.Errorf("WithOnTimeout called %d times, want 8", got)
	}
}

// A loop of writes that began before the deadline committed the answer:
// it is the handler's, and it may go on after the deadline.
func TestCommittedAnswerIsTheHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		called := false
		r := gin.New()
		r.Use(mustNew(t, 50*time.Millisecond, deadline.WithOnTimeout(func(context.Context, deadline.Event) { called = true })).Middleware())
		r.GET("/stream", func(c *gin.Context) {
			for i := 0; i < 10; i++ {
				_, _ = c.Writer.WriteString("chunk;")
				c.Writer.Flush()
				time.Sleep(10 * time.Millisecond)
			}
		})
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/stream", nil))
		if w.Code != http.StatusOK || w.Body.String() != strings.Repeat("chunk;", 10) {
			t.Errorf("got %d %q, want the handler's 10 chunks", w.Code, w.Body.String())
		}
		if called {
			t.Error("WithOnTimeout called for an answer committed in time")
		}
	})
}

// A handler that returns in time without writing keeps its answer (gin
// writes the status after the chain).
func TestInTimeAnswerUntouched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := gin.New()
		r.Use(mustNew(t, 50*time.Millisecond).Middleware())
		r.GET("/quick", func(c *gin.Context) {
			time.Sleep(49 * time.Millisecond)
			c.Status(http.StatusNoContent)
		})
		r.GET("/json", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"ok": true}) })
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/quick", nil))
		if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
			t.Errorf("/quick: %d %q, want 204", w.Code, w.Body.String())
		}
		w = httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/json", nil))
		if w.Code != http.StatusOK || w.Body.String() != `{"ok":true}` {
			t.Errorf("/json: %d %q", w.Code, w.Body.String())
		}
	})
}

// The middlewares before the deadline (metrics, access log) see the 504
// written; those after it (breakers, limiters) see it via Status(), and
// the deadline on c.Request's context.
func TestStatusSeenAroundTheMiddleware(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var outer, inner int
		var innerErr error
		r := gin.New()
		r.Use(func(c *gin.Context) { c.Next(); outer = c.Writer.Status() })
		r.Use(mustNew(t, 20*time.Millisecond).Middleware())
		r.Use(func(c *gin.Context) {
			c.Next()
			inner, innerErr = c.Writer.Status(), c.Request.Context().Err()
		})
		r.GET("/slow", waitDone)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/slow", nil))
		if outer != http.StatusGatewayTimeout || inner != http.StatusGatewayTimeout || !errors.Is(innerErr, context.DeadlineExceeded) {
			t.Errorf("outer saw %d, inner %d and %v; want 504, 504 and DeadlineExceeded", outer, inner, innerErr)
		}
	})
}

// Breakers after the middleware count a 504 as a failure; a rate limit
// counts the request once, as any other: no refund, no extra charge.
func TestBreakerCountsTimeoutsRateLimitDoesNot(t *testing.T) {
	t.Parallel()
	var seen []int
	var mu sync.Mutex
	br, err := circuitbreaker.New(
		circuitbreaker.WithLogger(logging.New(io.Discard, nil)),
		circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 3, FailureRatio: 0.5, OpenTimeout: time.Hour}),
		circuitbreaker.WithFailure(func(c *gin.Context, status int) bool {
			mu.Lock()
			seen = append(seen, status)
			mu.Unlock()
			return status >= 500
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	var decisions atomic.Int32
	lim, err := ratelimit.New(nil, ratelimit.PerRoute(4, time.Hour),
		ratelimit.WithOnDecision(func(context.Context, ratelimit.Event) { decisions.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(mustNew(t, 20*time.Millisecond).Middleware(), lim.Middleware(), br.Middleware())
	r.GET("/slow", waitDone)
	r.GET("/other", waitDone)
	get := func(path string) (int, []byte) {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
		return w.Code, w.Body.Bytes()
	}
	for i := 0; i < 3; i++ {
		code, body := get("/slow")
		checkEnvelope(t, code, http.Header{"Content-Type": {errcode.ContentType}}, body, errcode.DeadlineExceeded)
	}
	if st := br.State(http.MethodGet, "/slow"); st != circuitbreaker.StateOpen {
		t.Errorf("breaker %v after three 504s, want open", st)
	}
	mu.Lock()
	if len(seen) != 3 || seen[0] != 504 || seen[1] != 504 || seen[2] != 504 {
		t.Errorf("the breaker saw statuses %v, want [504 504 504]", seen)
	}
	mu.Unlock()
	code, body := get("/slow") // the 4th request: allowed by the limiter, rejected by the open breaker
	checkEnvelope(t, code, http.Header{"Content-Type": {errcode.ContentType}}, body, errcode.CircuitOpen)
	code, body = get("/slow") // the 5th: the three 504s were charged once each, not refunded
	checkEnvelope(t, code, http.Header{"Content-Type": {errcode.ContentType}}, body, errcode.RateLimited)
	if got := decisions.Load(); got != 5 {
		t.Errorf("%d rate-limit decisions for 5 requests", got)
	}
	if st := br.State(http.MethodGet, "/other"); st != circuitbreaker.StateClosed {
		t.Errorf("the other route's breaker is %v", st)
	}
}

// A client that went away is 499, not 504, and is no timeout event.
func TestClientGoneIs499(t *testing.T) {
	t.Parallel()
	var hook atomic.Int32
	statuses := make(chan [2]int, 1)
	var innerStatus int
	r := gin.New()
	r.Use(func(c *gin.Context) {
		c.Next()
		statuses <- [2]int{c.Writer.Status(), innerStatus}
	})
	r.Use(mustNew(t, 10*time.Second, deadline.WithOnTimeout(func(context.Context, deadline.Event) { hook.Add(1) })).Middleware())
	r.Use(func(c *gin.Context) { c.Next(); innerStatus = c.Writer.Status() })
	started := make(chan struct{})
	r.GET("/slow", func(c *gin.Context) { close(started); waitDone(c) })
	srv := httptest.NewServer(r)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-started: // the client goes away once the handler runs
		case <-ctx.Done():
		}
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/slow", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request was answered")
	}
	select {
	case got := <-statuses:
		if got != [2]int{reqinfo.StatusClientClosedRequest, reqinfo.StatusClientClosedRequest} {
			t.Errorf("statuses before and after the middleware %v, want 499 and 499", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not end the request")
	}
	if hook.Load() != 0 {
		t.Error("WithOnTimeout called for a client that went away")
	}
}

// remaining returns a handler reporting the deadline it was given.
func remaining(got *time.Duration, has *bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		dl, ok := c.Request.Context().Deadline()
		*got, *has = 0, ok
		if ok {
			*got = time.Until(dl)
		}
		c.Status(http.StatusNoContent)
	}
}

func TestRouteOverrideAndExempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := mustNew(t, 50*time.Millisecond,
			deadline.WithRoute("GET /reports/:id", 10*time.Second),
			deadline.WithExempt("GET /events"))
		var got time.Duration
		var has bool
		r := gin.New()
		r.Use(d.Middleware())
		r.GET("/reports/:id", remaining(&got, &has))
		r.POST("/reports/:id", remaining(&got, &has))
		r.GET("/events", remaining(&got, &has))
		r.GET("/other", remaining(&got, &has))
		for _, tc := range []struct {
			method, path string
			want         time.Duration // 0: no deadline
			header       string        // Request-Timeout
		}{
			{"GET", "/reports/7", 10 * time.Second, ""},
			{"GET", "/reports/7", 2 * time.Second, "2000"},
			{"POST", "/reports/7", 50 * time.Millisecond, ""},
			{"GET", "/events", 0, ""},
			{"GET", "/events", 0, "10"}, // exempt: the caller's budget too
			{"GET", "/other", 50 * time.Millisecond, ""},
		} {
			got, has = 0, false
			req := httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, nil)
			if tc.header != "" {
				req.Header.Set(deadline.Header, tc.header)
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusNoContent || has != (tc.want != 0) || got != tc.want {
				t.Errorf("%s %s (%q): %d, deadline %v (%v), want %v", tc.method, tc.path, tc.header, w.Code, got, has, tc.want)
			}
		}
	})
}

// The caller's budget shortens the deadline, never lengthens it, and a
// malformed value changes nothing.
func TestCallerBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []deadline.Event
		d := mustNew(t, time.Second, deadline.WithOnTimeout(func(_ context.Context, e deadline.Event) { events = append(events, e) }))
		var got time.Duration
		var has bool
		r := gin.New()
		r.Use(d.Middleware())
		r.GET("/x", remaining(&got, &has))
		r.GET("/slow", waitDone)
		for _, tc := range []struct {
			rt, grpc string
			want     time.Duration
		}{
			{"", "", time.Second},
			{"200", "", 200 * time.Millisecond},
			{"250ms", "", 250 * time.Millisecond},
			{"1.5s", "", time.Second}, // never lengthened
			{"5000", "", time.Second},
			{"", "100m", 100 * time.Millisecond},
			{"", "2S", time.Second},
			{"", "300000u", 300 * time.Millisecond},
			{"", "1M", time.Second},
			{"", "99999999H", time.Second},
			{"200", "100m", 100 * time.Millisecond},
			{"100", "200m", 100 * time.Millisecond},
			{"bad", "100m", 100 * time.Millisecond},
			{"100", "bad", 100 * time.Millisecond},
			// malformed: ignored
			{"0", "", time.Second},
			{"-5", "", time.Second},
			{"+5", "", time.Second},
			{" 5", "", time.Second},
			{"5 ", "", time.Second},
			{"abc", "", time.Second},
			{"1e3", "", time.Second},
			{"9999999999", "", time.Second},
			{"-100ms", "", time.Second},
			{"0s", "", time.Second},
			{"100ms;q=1", "", time.Second},
			{"\x00\xff", "", time.Second},
			{strings.Repeat("1", 4096), "", time.Second},
			{"", "100", time.Second},
			{"", "m", time.Second},
			{"", "0m", time.Second},
			{"", "123456789m", time.Second},
			{"", "-1S", time.Second},
			{"", "1h", time.Second},
			{"", "1.5S", time.Second},
			{"", " 1S", time.Second},
			{"", "1S ", time.Second},
		} {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/x", nil)
			if tc.rt != "" {
				req.Header[deadline.Header] = []string{tc.rt}
			}
			if tc.grpc != "" {
				req.Header[deadline.GRPCHeader] = []string{tc.grpc}
			}
			got, has = 0, false
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if !has || got != tc.want {
				t.Errorf("Request-Timeout %q, grpc-timeout %q: deadline %v (%v), want %v", tc.rt, tc.grpc, got, has, tc.want)
			}
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/slow", nil)
		req.Header.Set("grpc-timeout", "70m")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		checkEnvelope(t, w.Code, w.Header(), w.Body.Bytes(), errcode.DeadlineExceeded)
		if len(events) != 1 || !events[0].Caller || events[0].Timeout != 70*time.Millisecond {
			t.Errorf("events %+v, want one with Caller and Timeout 70ms", events)
		}
	})
}

// A panic passes through, and Recovery (outside) answers through the
// real writer even after the deadline.
func TestPanicAfterDeadlineReachesRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := gin.New()
		r.Use(func(c *gin.Context) {
			defer func() {
				if p := recover(); p != nil {
					errcode.Write(c, errcode.Panic)
				}
			}()
			c.Next()
		})
		r.Use(mustNew(t, 10*time.Millisecond).Middleware())
		r.GET("/panic", func(c *gin.Context) {
			<-c.Request.Context().Done()
			panic("boom")
		})
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/panic", nil))
		checkEnvelope(t, w.Code, w.Header(), w.Body.Bytes(), errcode.Panic)
	})
}

// errcode.Handle's middleware after the deadline: a handler error after the
// deadline is dropped and the request answered with 504; before it, the
// handler's error is rendered.
func TestWithErrcodeHandle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := gin.New()
		r.Use(mustNew(t, 10*time.Millisecond).Middleware())
		errcode.Handle(r)
		r.GET("/late", errcode.Handler(func(c *gin.Context) error {
			<-c.Request.Context().Done()
			return c.Request.Context().Err()
		}))
		r.GET("/early", errcode.Handler(func(*gin.Context) error { return errcode.NotFound }))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/late", nil))
		checkEnvelope(t, w.Code, w.Header(), w.Body.Bytes(), errcode.DeadlineExceeded)
		w = httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/early", nil))
		checkEnvelope(t, w.Code, w.Header(), w.Body.Bytes(), errcode.NotFound)
		w = httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/nowhere", nil))
		checkEnvelope(t, w.Code, w.Header(), w.Body.Bytes(), errcode.NotFound)
	})
}
