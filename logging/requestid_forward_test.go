package logging_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/logging"
)

// envoyRequestID is an x-request-id as Envoy generates it: a UUID.
const envoyRequestID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"

func TestValidRequestIDAcceptsUUID(t *testing.T) {
	for _, id := range []string{envoyRequestID, "3FA85F64-5717-4562-B3FC-2C963F66AFA6"} {
		if !logging.ValidRequestID(id) {
			t.Fatalf("UUID %q rejected", id)
		}
	}
}

// Envoy sends x-request-id in lower case on the wire; the middleware keeps
// its UUID as the request's ID and echoes it.
func TestRequestIDKeepsEnvoyUUIDOverTheWire(t *testing.T) {
	r := gin.New()
	r.Use(requestID())
	seen := make(chan string, 1)
	r.GET("/x", func(c *gin.Context) { seen <- logging.RequestIDFromContext(c.Request.Context()) })
	srv := httptest.NewServer(r)
	defer srv.Close()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/x", nil)
	req.Header["x-request-id"] = []string{envoyRequestID} // not canonical: written as is
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-seen; got != envoyRequestID {
		t.Fatalf("request ID in context %q; want Envoy's %q", got, envoyRequestID)
	}
	if got := resp.Header.Get("X-Request-Id"); got != envoyRequestID {
		t.Fatalf("echoed request ID %q; want %q", got, envoyRequestID)
	}
}

// contextOf runs one request with ID id through a RequestID middleware
// built with opts and returns the handler's context.
func contextOf(t *testing.T, header, id string, opts ...logging.RequestIDOption) context.Context {
	t.Helper()
	r := gin.New()
	r.Use(requestID(opts...))
	var ctx context.Context
	r.GET("/x", func(c *gin.Context) { ctx = c.Request.Context() })
	serve(r, "GET", "/x", header, id)
	if ctx == nil {
		t.Fatal("handler did not run")
	}
	return ctx
}

func TestInjectRequestID(t *testing.T) {
	ctx := contextOf(t, "X-Request-ID", envoyRequestID)
	h := http.Header{}
	logging.InjectRequestID(ctx, h)
	if got := h["X-Request-Id"]; len(got) != 1 || got[0] != envoyRequestID {
		t.Fatalf("injected %v; want [%s]", h, envoyRequestID)
	}

	h = http.Header{"X-Request-Id": {"callers-own"}}
	logging.InjectRequestID(ctx, h)
	if got := h["X-Request-Id"]; len(got) != 1 || got[0] != "callers-own" {
		t.Fatalf("an ID the caller set was replaced: %v", h)
	}

	h = http.Header{}
	logging.InjectRequestID(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("a context without request ID injected %v", h)
	}

	// The configured header name is the one forwarded.
	ctx = contextOf(t, "X-Correlation-ID", "corr-1", logging.WithRequestIDHeader("x-correlation-id"))
	h = http.Header{}
	logging.InjectRequestID(ctx, h)
	if got := h["X-Correlation-Id"]; len(got) != 1 || got[0] != "corr-1" || len(h) != 1 {
		t.Fatalf("custom header: injected %v; want only X-Correlation-Id: corr-1", h)
	}
}

func TestPropagateRequestIDCopiesOnWrite(t *testing.T) {
	ctx := contextOf(t, "X-Request-ID", envoyRequestID)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://orders/items", nil)
	req.Header.Set("Accept", "application/json")
	out := logging.PropagateRequestID(req)
	if out == req {
		t.Fatal("request returned as is; want a copy carrying the ID")
	}
	if got := out.Header.Get("X-Request-Id"); got != envoyRequestID || out.Header.Get("Accept") != "application/json" {
		t.Fatalf("copy's header %v", out.Header)
	}
	if _, ok := req.Header["X-Request-Id"]; ok {
		t.Fatal("the caller's request was modified")
	}

	req.Header.Set("X-Request-Id", "callers-own")
	if out := logging.PropagateRequestID(req); out != req {
		t.Fatal("a request with its own ID was copied")
	}
	plain, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://orders/", nil)
	if out := logging.PropagateRequestID(plain); out != plain || len(out.Header) != 0 {
		t.Fatal("a request whose context has no ID was changed")
	}
}

// A service's outbound call forwards the incoming x-request-id to a real
// loopback upstream.
func TestRequestIDRoundTripThroughUpstream(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Request-Id")
	}))
	defer up.Close()

	r := gin.New()
	r.Use(requestID())
	r.GET("/call", func(c *gin.Context) {
		req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, up.URL, nil)
		resp, err := up.Client().Do(logging.PropagateRequestID(req))
		if err != nil {
			c.Status(http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/call", nil)
	req.Header["x-request-id"] = []string{envoyRequestID}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := <-got; id != envoyRequestID {
		t.Fatalf("upstream saw request ID %q; want %q", id, envoyRequestID)
	}
}
