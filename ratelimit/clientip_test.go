package ratelimit_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit"
)

// PerIP's key is Gin's c.ClientIP() (trusted proxies, X-Forwarded-For,
// X-Real-IP), whether or not the kit's per-request state is attached (then
// the value is computed once and shared).
func TestPerIPKeyIsGinClientIP(t *testing.T) {
	key := ratelimit.PerIP(1, time.Minute).Key
	rid, err := logging.NewRequestID()
	if err != nil {
		t.Fatal(err)
	}
	for _, trusted := range [][]string{nil, {"192.0.2.1"}} {
		for _, state := range []bool{false, true} {
			for _, hdr := range [][2]string{{}, {"X-Forwarded-For", "198.51.100.7, 203.0.113.9"}, {"X-Real-IP", "198.51.100.8"}, {"X-Forwarded-For", "not an ip"}} {
				r := gin.New()
				if err := r.SetTrustedProxies(trusted); err != nil {
					t.Fatal(err)
				}
				if state {
					r.Use(rid.Middleware())
				}
				var got, want string
				calls := 0
				r.GET("/x", func(c *gin.Context) {
					want = c.ClientIP()
					got, _ = key(c)
					again, ok := key(c)
					if again != got || !ok {
						t.Errorf("second call: %q %v, first %q", again, ok, got)
					}
					calls++
				})
				req := httptest.NewRequest("GET", "/x", nil)
				if hdr[0] != "" {
					req.Header.Set(hdr[0], hdr[1])
				}
				r.ServeHTTP(httptest.NewRecorder(), req)
				if calls != 1 || got != want || got == "" {
					t.Errorf("trusted %v, state %v, %v: key %q, c.ClientIP() %q", trusted, state, hdr, got, want)
				}
			}
		}
	}
}
