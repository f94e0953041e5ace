package circuitbreaker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
)

// A real upstream on loopback: its 5xx answers open the host's breaker,
// calls then fail at once with an error that maps to 503 CIRCUIT_OPEN,
// and after the open timeout a healthy upstream closes it again.
func TestTransportAgainstRealUpstream(t *testing.T) {
	var failing atomic.Bool
	var hits atomic.Int64
	failing.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer up.Close()
	tr, err := circuitbreaker.NewTransport(nil, quiet, circuitbreaker.WithPolicy(circuitbreaker.Classic{
		MinRequests: 5, OpenTimeout: 200 * time.Millisecond, Probes: 1,
	}))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()
	call := func() (int, error) {
		resp, err := client.Get(up.URL)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for i := 0; i < 5; i++ {
		if code, err := call(); err != nil || code != 502 {
			t.Fatalf("call %d: %d %v", i, code, err)
		}
	}
	host := strings.TrimPrefix(up.URL, "http://")
	if st := tr.State(host); st != circuitbreaker.StateOpen || !tr.Open(host) {
		t.Fatalf("state %v", st)
	}
	before := hits.Load()
	_, err = call()
	if !errors.Is(err, circuitbreaker.ErrOpen) {
		t.Fatalf("open breaker: %v", err)
	}
	if e := errcode.From(err); e.Code() != errcode.CircuitOpen {
		t.Fatalf("errcode.From maps to %v", e.Code().Reason())
	}
	if hits.Load() != before {
		t.Fatal("the open breaker sent a request upstream")
	}
	failing.Store(false)
	time.Sleep(250 * time.Millisecond)
	if code, err := call(); err != nil || code != 200 {
		t.Fatalf("probe: %d %v", code, err)
	}
	if st := tr.State(host); st != circuitbreaker.StateClosed || tr.Open(host) {
		t.Fatalf("after a good probe: %v", st)
	}
}

// rtFunc is a RoundTripper from a function.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Transport errors and timeouts count; a call the caller cancelled does not.
func TestTransportFailureKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errKind := context.Canceled
		tr, err := circuitbreaker.NewTransport(rtFunc(func(*http.Request) (*http.Response, error) {
			return nil, errKind
		}), quiet, circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5}))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://a.test/", nil)
			_, _ = tr.RoundTrip(req)
		}
		if st := tr.State("a.test"); st != circuitbreaker.StateClosed {
			t.Fatalf("caller cancellations opened the breaker: %v", st)
		}
		errKind = context.DeadlineExceeded
		for i := 0; i < 5; i++ {
			req, _ := http.NewRequest("GET", "http://a.test/", nil)
			_, _ = tr.RoundTrip(req)
		}
		if st := tr.State("a.test"); st != circuitbreaker.StateOpen {
			t.Fatalf("timeouts did not open the breaker: %v", st)
		}
		if st := tr.State("b.test"); st != circuitbreaker.StateClosed {
			t.Fatalf("another host: %v", st)
		}
	})
}

// SRE throttling: a healthy route is never throttled; when every call
// fails, about MinRequests pass and then almost none; once calls succeed
// again the throttle lifts.
func TestSREThrottling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := &upstream{status: 200}
		r, s := newServer(t, u, circuitbreaker.WithPolicy(circuitbreaker.SRE{}))
		for i := 0; i < 1000; i++ {
			if w := get(r, "/orders/1"); w.Code != 200 {
				t.Fatalf("healthy route throttled at %d", i)
			}
		}
		time.Sleep(11 * time.Second) // the window forgets
		u.set(500, false)
		passed := 0
		for i := 0; i < 1000; i++ {
			if w := get(r, "/orders/1"); w.Code == 500 {
				passed++
			}
		}
		t.Logf("SRE, all failing: %d of 1000 passed", passed)
		if passed < 100 || passed > 160 {
			t.Fatalf("all failing: %d of 1000 passed, want ~100 (MinRequests) plus a few probes", passed)
		}
		if st := s.State("GET", "/orders/:id"); st != circuitbreaker.StateOpen {
			t.Fatalf("state %v", st)
		}
		u.set(200, false)
		time.Sleep(11 * time.Second)
		if w := get(r, "/orders/1"); w.Code != 200 {
			t.Fatalf("after recovery: %d", w.Code)
		}
	})
}

// A Transport with more hosts than the breakers kept in its copy-on-write
// map (4096) keeps a breaker per host for the rest too, up to its bound.
func TestTransportManyHosts(t *testing.T) {
	fail := false
	tr, err := circuitbreaker.NewTransport(rtFunc(func(*http.Request) (*http.Response, error) {
		if fail {
			return nil, context.DeadlineExceeded
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}), quiet, circuitbreaker.WithMaxBreakers(5000), circuitbreaker.WithPolicy(circuitbreaker.Classic{MinRequests: 5}))
	if err != nil {
		t.Fatal(err)
	}
	call := func(host string) {
		req, _ := http.NewRequest("GET", "http://"+host+"/", nil)
		if resp, err := tr.RoundTrip(req); err == nil {
			_ = resp.Body.Close()
		}
	}
	host := func(i int) string { return "h" + strconv.Itoa(i) + ".test" }
	for i := range 4200 {
		call(host(i))
	}
	fail = true
	for range 5 {
		call(host(4150))
	}
	for _, c := range []struct {
		i    int
		want circuitbreaker.State
	}{{4150, circuitbreaker.StateOpen}, {4151, circuitbreaker.StateClosed}, {10, circuitbreaker.StateClosed}} {
		if st := tr.State(host(c.i)); st != c.want {
			t.Errorf("host %d: %v, want %v", c.i, st, c.want)
		}
	}
	// The bound still holds past the map: the hosts beyond share the overflow breaker.
	for i := 4200; i < 5100; i++ {
		call(host(i))
	}
	for range 5 {
		call(host(5050))
	}
	if st := tr.State(host(5050)); st != circuitbreaker.StateClosed {
		t.Errorf("host past the bound has a breaker of its own: %v", st)
	}
	if st := tr.State(host(4999)); st != circuitbreaker.StateClosed {
		t.Errorf("host 4999: %v", st)
	}
}
