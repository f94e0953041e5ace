// Package metrics exposes Prometheus metrics for a Gin service: RED metrics
// per route template, on an explicit prometheus.Registerer.
//
// Labels are bounded: route is the template (c.FullPath()), never the raw
// path, with "unmatched" for requests no route matched; method is one of the
// standard methods or "OTHER".
package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gingov/gingov/internal/reqinfo"
)

// DefaultBuckets are the request-duration histogram buckets, in seconds:
// from 1 ms to 10 s, dense where API latencies usually fall.
var DefaultBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// UnmatchedRoute is the route label of requests that matched no route.
const UnmatchedRoute = "unmatched"

// Option configures [New].
type Option func(*config)

type config struct {
	namespace string
	buckets   []float64
	skip      map[string]bool
}

// WithNamespace prefixes every metric name with ns and "_" (default none).
func WithNamespace(ns string) Option { return func(c *config) { c.namespace = ns } }

// WithBuckets sets the duration histogram buckets (default [DefaultBuckets]).
func WithBuckets(b ...float64) Option { return func(c *config) { c.buckets = b } }

// WithSkipPaths records nothing for requests whose URL path or route
// template is one of paths (e.g. "/metrics").
func WithSkipPaths(paths ...string) Option {
	return func(c *config) {
		for _, p := range paths {
			c.skip[p] = true
		}
	}
}

// Metrics holds the collectors. Create it once per registry with [New].
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	skip     map[string]bool
}

// New creates the collectors and registers them on reg. It fails when reg
// is nil, a bucket list is not strictly increasing, or registration fails
// (for example, a second New on the same registry).
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("metrics: nil Registerer")
	}
	cfg := config{buckets: DefaultBuckets, skip: map[string]bool{}}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.buckets) == 0 {
		return nil, fmt.Errorf("metrics: no histogram buckets")
	}
	for i := 1; i < len(cfg.buckets); i++ {
		if cfg.buckets[i] <= cfg.buckets[i-1] {
			return nil, fmt.Errorf("metrics: buckets must be strictly increasing, got %v", cfg.buckets)
		}
	}
	labels := []string{"method", "route", "status"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: cfg.namespace, Name: "http_server_requests_total",
			Help: "HTTP requests served, by method, route template and status code.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: cfg.namespace, Name: "http_server_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method, route template and status code.",
			Buckets: cfg.buckets,
		}, labels),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: cfg.namespace, Name: "http_server_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		skip: cfg.skip,
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Middleware records every request below it, including the 404/405 answers
// and the rejections of middlewares placed after it, and requests that
// panic (as 500, or 499 for a broken connection).
func (m *Metrics) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(m.skip) > 0 && (m.skip[c.Request.URL.Path] || m.skip[c.FullPath()]) {
			c.Next()
			return
		}
		start := time.Now()
		m.inFlight.Inc()
		completed := false
		defer func() {
			m.inFlight.Dec()
			if completed {
				return
			}
			if p := recover(); p != nil {
				m.observe(c, reqinfo.ObservePanic(c, p), start)
				panic(p)
			}
		}()
		c.Next()
		completed = true
		m.observe(c, c.Writer.Status(), start)
	}
}

func (m *Metrics) observe(c *gin.Context, status int, start time.Time) {
	route := c.FullPath()
	if route == "" {
		route = UnmatchedRoute
	}
	lv := [3]string{methodLabel(c.Request.Method), route, statusLabel(status)}
	m.requests.WithLabelValues(lv[:]...).Inc()
	m.duration.WithLabelValues(lv[:]...).Observe(time.Since(start).Seconds())
}

// Handler serves the metrics of g in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// statusLabels avoids formatting the status of every request.
var statusLabels = func() (l [600]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func statusLabel(s int) string {
	if s >= 0 && s < len(statusLabels) {
		return statusLabels[s]
	}
	return strconv.Itoa(s)
}
