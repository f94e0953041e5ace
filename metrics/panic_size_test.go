package metrics_test

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
)

// responseSize returns the sample count and sum of the response-size
// histogram series of route and status, read from reg.
func responseSize(t *testing.T, reg *prometheus.Registry, route, status string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "http_server_response_size_bytes" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "route") == route && label(m, "status") == status {
				return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no response-size series for %s %s", route, status)
	return 0, 0
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// A request that panics is recorded with the bytes of the envelope that
// Recovery sends, and status 500, in the order of the README and setup
// (Recovery first, metrics below it) as in the reverse order.
func TestPanicResponseSizeCountsTheEnvelope(t *testing.T) {
	logger := logging.New(io.Discard, nil)
	rid, err := logging.NewRequestID()
	if err != nil {
		t.Fatal(err)
	}
	access, err := logging.NewAccessLog(logger)
	if err != nil {
		t.Fatal(err)
	}
	// swallow answers a panic itself and does not pass it on: a user's own
	// recovery between Recovery and the metrics.
	swallow := func(c *gin.Context) {
		defer func() {
			if recover() != nil {
				c.AbortWithStatusJSON(503, gin.H{"swallowed": true})
			}
		}()
		c.Next()
	}
	for _, tc := range []struct {
		name   string
		status string
		chain  func(m gin.HandlerFunc) []gin.HandlerFunc
	}{
		{"recovery outermost (README, setup)", "500", func(m gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{logging.Recovery(logger), rid.Middleware(), m, access.Middleware()}
		}},
		{"recovery below the metrics", "500", func(m gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{m, logging.Recovery(logger), rid.Middleware(), access.Middleware()}
		}},
		{"panic swallowed between Recovery and the metrics", "503", func(m gin.HandlerFunc) []gin.HandlerFunc {
			return []gin.HandlerFunc{logging.Recovery(logger), swallow, m}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.NewHTTP(reg)
			if err != nil {
				t.Fatal(err)
			}
			r := gin.New()
			r.Use(tc.chain(m.Middleware())...)
			errcode.Handle(r)
			r.GET("/boom", func(c *gin.Context) { panic("kaboom") })
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest("GET", "/boom", nil))
			if w.Body.Len() == 0 {
				t.Fatal("no answer body")
			}
			n, sum := responseSize(t, reg, "/boom", tc.status)
			if n != 1 || sum != float64(w.Body.Len()) {
				t.Fatalf("response size: %d observations summing %v bytes, want 1 of %d (the answer sent: %d %s)",
					n, sum, w.Body.Len(), w.Code, w.Body)
			}
		})
	}
}
