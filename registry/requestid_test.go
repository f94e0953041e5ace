package registry_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
)

// A call to http://orders/ made while serving a request carries that
// request's ID (Envoy's UUID x-request-id here) to the instance, in the
// header the RequestID middleware was configured with; an ID the caller
// set itself is kept; the caller's request is not modified.
func TestTransportForwardsRequestID(t *testing.T) {
	const envoyRequestID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	got := make(chan http.Header, 1)
	u := newUpstreams(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() })

	for _, header := range []string{logging.DefaultRequestIDHeader, "X-Correlation-Id"} {
		t.Run(header, func(t *testing.T) {
			client := clientFor(t, nil, []*registry.ServiceInstance{ins(u.addr(0))})
			rid, err := logging.NewRequestID(logging.WithRequestIDHeader(header))
			if err != nil {
				t.Fatal(err)
			}
			r := gin.New()
			r.Use(rid.Middleware())
			r.GET("/call", func(c *gin.Context) {
				req, _ := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, "http://orders/items", nil)
				if c.Query("own") != "" {
					req.Header.Set(header, "set-by-handler")
				}
				resp, err := client.Do(req)
				if err != nil {
					c.Status(http.StatusBadGateway)
					return
				}
				resp.Body.Close()
				if c.Query("own") == "" && req.Header.Get(header) != "" {
					c.Status(http.StatusInternalServerError) // the transport modified the caller's request
				}
			})
			for _, target := range []string{"/call", "/call?own=1"} {
				req := httptest.NewRequest(http.MethodGet, target, nil)
				req.Header.Set(header, envoyRequestID)
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					t.Fatalf("%s: status %d", target, w.Code)
				}
				want := envoyRequestID
				if target != "/call" {
					want = "set-by-handler"
				}
				if h := <-got; h.Get(header) != want {
					t.Fatalf("%s: instance got %s %q; want %q (headers %v)", target, header, h.Get(header), want, h)
				}
			}
		})
	}
}
