package deadline_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/registrytest"
	"github.com/gingov/gingov/tracing"
)

// upstream is a gingov service on loopback recording the budget it was
// sent and the deadline its handler got.
type upstream struct {
	srv    *httptest.Server
	header atomic.Value // string
	budget atomic.Int64 // the handler's time to its deadline, ns
	hits   atomic.Int32
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	r := gin.New()
	r.Use(mustNew(t, deadline.DefaultTimeout).Middleware())
	r.GET("/budget", func(c *gin.Context) {
		u.hits.Add(1)
		u.header.Store(c.GetHeader(deadline.Header))
		dl, _ := c.Request.Context().Deadline()
		u.budget.Store(int64(time.Until(dl)))
		c.Status(http.StatusNoContent)
	})
	u.srv = httptest.NewServer(r)
	t.Cleanup(u.srv.Close)
	return u
}

func transports(t *testing.T, u *upstream) map[string]struct {
	rt  http.RoundTripper
	url string
} {
	t.Helper()
	reg := registrytest.New()
	if err := reg.Register(t.Context(), &registry.ServiceInstance{Name: "budget", Address: u.srv.Listener.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	res, err := registry.NewResolver(reg, registry.WithLogger(logging.New(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Close() })
	plain := &http.Transport{}
	t.Cleanup(plain.CloseIdleConnections)
	lb, err := registry.NewTransport(res, plain)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracing.NewTransport(plain)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := circuitbreaker.NewTransport(plain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cb.Close() })
	stackCB, err := circuitbreaker.NewTransport(tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stackCB.Close() })
	stack, err := registry.NewTransport(res, stackCB)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		rt  http.RoundTripper
		url string
	}{
		"registry":                        {lb, "http://budget/budget"},
		"tracing":                         {tr, u.srv.URL + "/budget"},
		"circuitbreaker":                  {cb, u.srv.URL + "/budget"},
		"registry+circuitbreaker+tracing": {stack, "http://budget/budget"},
	}
}

// An incoming budget of 200 ms reaches the upstream service as at most
// 200 ms minus the margin, through each outbound transport.
func TestBudgetReachesUpstream(t *testing.T) {
	u := newUpstream(t)
	for name, tc := range transports(t, u) {
		t.Run(name, func(t *testing.T) {
			client := &http.Client{Transport: tc.rt}
			r := gin.New()
			r.Use(mustNew(t, deadline.DefaultTimeout).Middleware())
			r.GET("/call", func(c *gin.Context) {
				req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, tc.url, nil)
				resp, err := client.Do(req)
				if err != nil {
					errcode.Write(c, err)
					return
				}
				resp.Body.Close()
				c.Status(resp.StatusCode)
			})
			front := httptest.NewServer(r)
			defer front.Close()

			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, front.URL+"/call", nil)
			req.Header.Set(deadline.Header, "200")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d", resp.StatusCode)
			}
			limit := 200*time.Millisecond - deadline.DefaultMargin
			h, _ := u.header.Load().(string)
			ms, err := strconv.Atoi(h)
			if err != nil || time.Duration(ms)*time.Millisecond > limit || ms <= 0 {
				t.Errorf("upstream got %s: %q, want a positive number of ms ≤ %v", deadline.Header, h, limit)
			}
			if b := time.Duration(u.budget.Load()); b > limit || b <= 0 {
				t.Errorf("upstream handler's deadline in %v, want in (0, %v]", b, limit)
			}
		})
	}
}

// With less than the margin left, the transports fail at once with
// context.DeadlineExceeded and send nothing.
func TestExhaustedBudgetFailsFast(t *testing.T) {
	u := newUpstream(t)
	for name, tc := range transports(t, u) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), deadline.DefaultMargin/2)
			defer cancel()
			before := u.hits.Load()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			resp, err := tc.rt.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, context.DeadlineExceeded) || resp != nil {
				t.Errorf("RoundTrip = %v, %v; want DeadlineExceeded", resp, err)
			}
			if e := errcode.From(err); e.Code().Status() != http.StatusGatewayTimeout {
				t.Errorf("errcode status %d, want 504", e.Code().Status())
			}
			if u.hits.Load() != before {
				t.Error("the request was sent")
			}
		})
	}
}

// Without a deadline nothing is sent and the request passes unchanged.
func TestNoDeadlineNoHeader(t *testing.T) {
	u := newUpstream(t)
	for name, tc := range transports(t, u) {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url, nil)
			resp, err := tc.rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if h := u.header.Load().(string); h != "" {
				t.Errorf("upstream got %s: %q, want none", deadline.Header, h)
			}
		})
	}
}

func TestPropagate(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://x/", nil)
	if out, err := deadline.Propagate(req); out != req || err != nil {
		t.Errorf("no deadline: Propagate = %p, %v; want the request itself", out, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://x/", nil)
	out, err := deadline.Propagate(req)
	if err != nil || out == req {
		t.Fatalf("Propagate = %p, %v; want a copy", out, err)
	}
	if req.Header.Get(deadline.Header) != "" {
		t.Error("Propagate modified the caller's request")
	}
	ms, _ := strconv.Atoi(out.Header.Get(deadline.Header))
	if d := time.Duration(ms) * time.Millisecond; d > time.Hour-deadline.DefaultMargin || d < time.Hour-time.Minute {
		t.Errorf("sent %v, want just under 1h minus the margin", d)
	}
	// A shorter budget already there is kept, a longer one replaced.
	req.Header.Set(deadline.Header, "1000")
	if out, _ := deadline.Propagate(req); out != req {
		t.Error("a shorter budget in the request was not kept")
	}
	req.Header.Set(deadline.Header, "999999999")
	if out, _ := deadline.Propagate(req); out == req || out.Header.Get(deadline.Header) == "999999999" {
		t.Error("a longer budget in the request was sent on")
	}
	h := http.Header{deadline.Header: {"junk"}}
	if err := deadline.Inject(ctx, h); err != nil || h.Get(deadline.Header) == "junk" {
		t.Errorf("Inject over junk: %v, %q", err, h.Get(deadline.Header))
	}
	if b, ok := deadline.Remaining(t.Context()); ok || b != 0 {
		t.Errorf("Remaining without deadline = %v, %v", b, ok)
	}
}

// A budget that cannot be sent is never sent: a zero-length wait on the
// wire proves nothing, so make sure no connection is even opened.
func TestExhaustedOpensNoConnection(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	cb, err := circuitbreaker.NewTransport(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), deadline.DefaultMargin-time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	if _, err := cb.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RoundTrip: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if accepted.Load() != 0 {
		t.Error("a connection was opened")
	}
	if st := cb.State(ln.Addr().String()); st != circuitbreaker.StateClosed {
		t.Errorf("breaker %v", st)
	}
}
