// Package metrics exposes Prometheus metrics for a Gin service: RED metrics
// per route template ([NewHTTP], [HTTP.Middleware]) and the governance
// metrics of the rest of the kit ([NewGovernance]: rate-limit decisions,
// Redis health, Sentinel blocks, breaker states, registrations, deadline
// timeouts), each on an explicit prometheus.Registerer.
//
// Labels are bounded: route is the template (c.FullPath()), never the raw
// path, with "unmatched" for requests no route matched; method is one of the
// standard methods or "OTHER"; status is the numeric code. The governance
// labels are names from the service's own configuration (rule, limiter,
// breaker, resource, backend, service), so their number is the number of
// rules, routes, hosts and registrations the service has.
//
// Place the middleware after the tracing middleware: the duration
// histogram then carries the trace ID of sampled requests as an exemplar,
// served by [Handler] to scrapers that ask for OpenMetrics.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/gingov/gingov/internal/cowmap"
	"github.com/gingov/gingov/reqinfo"
)

// DefaultBuckets are the request-duration histogram buckets, in seconds:
// from 1 ms to 10 s, dense where API latencies usually fall.
var DefaultBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// DefaultSizeBuckets are the request- and response-size histogram buckets,
// in bytes: powers of 4 from 64 B to 16 MiB.
var DefaultSizeBuckets = []float64{64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216}

// DefaultNativeMaxBuckets bounds the buckets of each native histogram (see
// [WithNativeHistograms]); past it the resolution is halved.
const DefaultNativeMaxBuckets = 160

// ExemplarLabel is the exemplar label holding the trace ID.
const ExemplarLabel = "trace_id"

// ExemplarInterval is the least time between two exemplars of one bucket
// of one series. A bucket shows one exemplar, its latest, so a scraper
// sees no difference, and busy series skip the exemplar's cost (about ten
// allocations) on most sampled requests.
const ExemplarInterval = time.Second

// maxCachedSeries bounds the per-label-set caches of the middleware and of
// [Governance.OnDecision]; label sets past it are looked up in the vectors
// on each call instead.
const maxCachedSeries = 4096

// HTTPOption configures [NewHTTP].
type HTTPOption interface{ applyHTTP(*config) }

// GovernanceOption configures [NewGovernance].
type GovernanceOption interface{ applyGovernance(*config) }

// CommonOption is an option of both [NewHTTP] and [NewGovernance].
type CommonOption func(*config)

func (f CommonOption) applyHTTP(c *config)       { f(c) }
func (f CommonOption) applyGovernance(c *config) { f(c) }

type httpOption func(*config)

func (f httpOption) applyHTTP(c *config) { f(c) }

type governanceOption func(*config)

func (f governanceOption) applyGovernance(c *config) { f(c) }

type config struct {
	namespace    string
	buckets      []float64
	sizeBuckets  []float64
	redisBuckets []float64
	native       bool // WithNativeHistograms was given
	nativeFactor float64
	noExemplars  bool
	skip         reqinfo.PathSet
}

// WithNamespace prefixes every metric name with ns and "_" (default none).
func WithNamespace(ns string) CommonOption { return func(c *config) { c.namespace = ns } }

// WithBuckets sets the request-duration histogram buckets, in seconds
// (default [DefaultBuckets]); they must be strictly increasing.
func WithBuckets(b ...float64) HTTPOption { return httpOption(func(c *config) { c.buckets = b }) }

// WithSizeBuckets sets the request- and response-size histogram buckets,
// in bytes (default [DefaultSizeBuckets]); they must be strictly increasing.
func WithSizeBuckets(b ...float64) HTTPOption {
	return httpOption(func(c *config) { c.sizeBuckets = b })
}

// WithSkipPaths records nothing for requests whose URL path or route
// template is one of paths (e.g. "/metrics"). Default none; repeated
// options add up.
func WithSkipPaths(paths ...string) HTTPOption {
	return httpOption(func(c *config) { c.skip = c.skip.Add(paths...) })
}

// WithExemplars sets whether the duration histogram records the trace ID
// of sampled requests as an exemplar (default true).
func WithExemplars(on bool) HTTPOption { return httpOption(func(c *config) { c.noExemplars = !on }) }

// WithNativeHistograms makes every histogram a native histogram as well
// (exposed to scrapers that negotiate the protobuf format; the classic
// buckets stay), with buckets growing by at most factor from one to the
// next (1.1 is a good start; it must be > 1) and at most
// [DefaultNativeMaxBuckets] buckets per series. Default off.
//
// A Prometheus with native histograms enabled then stores the native one
// only, unless its scrape config sets scrape_classic_histograms (2.45 and
// later); the _bucket series that dashboards/gingov.json reads need it.
func WithNativeHistograms(factor float64) CommonOption {
	return func(c *config) { c.native, c.nativeFactor = true, factor }
}

// newConfig applies opts in order over the defaults, with apply (the
// constructor's option method), and validates the result.
func newConfig[O any](opts []O, apply func(O, *config)) (config, error) {
	cfg := config{
		buckets:      DefaultBuckets,
		sizeBuckets:  DefaultSizeBuckets,
		redisBuckets: DefaultRedisBuckets,
	}
	for i, o := range opts {
		if f, ok := any(o).(CommonOption); any(o) == nil || ok && f == nil {
			return cfg, fmt.Errorf("metrics: option %d is nil", i+1)
		}
		apply(o, &cfg)
	}
	if cfg.native && !(cfg.nativeFactor > 1) {
		return cfg, fmt.Errorf("metrics: WithNativeHistograms: factor must be > 1, got %v", cfg.nativeFactor)
	}
	for _, b := range []struct {
		name string
		v    []float64
	}{{"WithBuckets", cfg.buckets}, {"WithSizeBuckets", cfg.sizeBuckets}, {"WithRedisBuckets", cfg.redisBuckets}} {
		if err := checkBuckets(b.name, b.v); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func checkBuckets(name string, b []float64) error {
	if len(b) == 0 {
		return fmt.Errorf("metrics: %s: no buckets", name)
	}
	for i := 1; i < len(b); i++ {
		if !(b[i] > b[i-1]) {
			return fmt.Errorf("metrics: %s: buckets must be strictly increasing, got %v", name, b)
		}
	}
	return nil
}

func (c *config) histogram(name, help string, buckets []float64) prometheus.HistogramOpts {
	o := prometheus.HistogramOpts{Namespace: c.namespace, Name: name, Help: help, Buckets: buckets}
	if c.native {
		o.NativeHistogramBucketFactor = c.nativeFactor
		o.NativeHistogramMaxBucketNumber = DefaultNativeMaxBuckets
		o.NativeHistogramMinResetDuration = time.Hour
	}
	return o
}

// HTTP holds the RED collectors. Create it once per registry with
// [NewHTTP]. It is safe for concurrent use.
type HTTP struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reqSize   *prometheus.HistogramVec
	respSize  *prometheus.HistogramVec
	inFlight  prometheus.Gauge
	skip      reqinfo.PathSet
	exemplars bool
	buckets   []float64 // of the duration histogram, to throttle exemplars per bucket
	series    cowmap.Map[seriesKey, *series]
}

// seriesKey is one label set; series caches its children so that a request
// costs one map lookup instead of one per vector.
type seriesKey struct {
	method, route string
	status        int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
	exemplar prometheus.ExemplarObserver // nil when the child has none
	reqSize  prometheus.Observer
	respSize prometheus.Observer
	// exemplarAt holds, per duration bucket (+Inf last), the Unix ns of
	// its latest exemplar.
	exemplarAt []atomic.Int64
}

// NewHTTP creates the RED collectors and registers them on reg:
//
//   - http_server_requests_total (counter)
//   - http_server_request_duration_seconds (histogram, [DefaultBuckets])
//   - http_server_request_size_bytes (histogram of Content-Length, [DefaultSizeBuckets];
//     requests of unknown length, such as chunked uploads, are not observed)
//   - http_server_response_size_bytes (histogram of the bytes written, [DefaultSizeBuckets])
//   - http_server_requests_in_flight (gauge)
//
// all but the gauge labelled by method, route and status. It fails when
// reg is nil, an option is nil or invalid, or registration fails (for
// example, a second NewHTTP on the same registry).
func NewHTTP(reg prometheus.Registerer, opts ...HTTPOption) (*HTTP, error) {
	if nilRegisterer(reg) {
		return nil, errors.New("metrics: nil Registerer")
	}
	cfg, err := newConfig(opts, HTTPOption.applyHTTP)
	if err != nil {
		return nil, err
	}
	labels := []string{"method", "route", "status"}
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: cfg.namespace, Name: "http_server_requests_total",
			Help: "HTTP requests served, by method, route template and status code.",
		}, labels),
		duration: prometheus.NewHistogramVec(cfg.histogram("http_server_request_duration_seconds",
			"Time to serve HTTP requests, by method, route template and status code.", cfg.buckets), labels),
		reqSize: prometheus.NewHistogramVec(cfg.histogram("http_server_request_size_bytes",
			"Sizes of HTTP request bodies (Content-Length, when known), by method, route template and status code.", cfg.sizeBuckets), labels),
		respSize: prometheus.NewHistogramVec(cfg.histogram("http_server_response_size_bytes",
			"Sizes of HTTP response bodies, by method, route template and status code.", cfg.sizeBuckets), labels),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: cfg.namespace, Name: "http_server_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		skip:      cfg.skip,
		exemplars: !cfg.noExemplars,
		buckets:   cfg.buckets,
	}
	m.series.Limit = maxCachedSeries
	if err := register(reg, m.requests, m.duration, m.reqSize, m.respSize, m.inFlight); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers cs, undoing the registrations done so far when one fails.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("metrics: register: %w", err)
		}
	}
	return nil
}

// Middleware records every request below it, including the 404/405 answers
// and the rejections of middlewares placed after it, and requests that
// panic (as 500, or 499 for a broken connection). A request that panics
// under logging.Recovery is recorded once Recovery has answered it, so that
// the response size counts the envelope's bytes.
func (m *HTTP) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if m.skip.Match(c) {
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
				status := reqinfo.ObservePanic(c, p)
				// Under logging.Recovery, the request is observed once it
				// has answered, so that the response size counts the
				// envelope.
				if !reqinfo.DeferToRecovery(c, func(status int) { m.observe(c, status, start) }) {
					m.observe(c, status, start)
				}
				panic(p)
			}
		}()
		c.Next()
		completed = true
		m.observe(c, c.Writer.Status(), start)
	}
}

func (m *HTTP) observe(c *gin.Context, status int, start time.Time) {
	d := time.Since(start)
	elapsed := d.Seconds()
	s := m.seriesFor(seriesKey{methodLabel(c.Request.Method), reqinfo.Route(c), status})
	if s == nil {
		return
	}
	s.requests.Inc()
	if sc, ok := m.exemplarSpan(c, s, elapsed, start.Add(d)); ok {
		s.exemplar.ObserveWithExemplar(elapsed, prometheus.Labels{ExemplarLabel: sc.TraceID().String()})
	} else {
		s.duration.Observe(elapsed)
	}
	if n := c.Request.ContentLength; n >= 0 {
		s.reqSize.Observe(float64(n))
	}
	s.respSize.Observe(float64(max(0, c.Writer.Size())))
}

// exemplarSpan returns the request's span when the observation of v at now
// is to carry its trace ID: the span is sampled and the observation is the
// first in its bucket for ExemplarInterval.
func (m *HTTP) exemplarSpan(c *gin.Context, s *series, v float64, now time.Time) (trace.SpanContext, bool) {
	if !m.exemplars || s.exemplar == nil {
		return trace.SpanContext{}, false
	}
	sc := trace.SpanContextFromContext(c.Request.Context())
	if !sc.IsValid() || !sc.IsSampled() {
		return sc, false
	}
	// The bucket v falls in: the first upper bound >= v, len for +Inf.
	lo, hi := 0, len(m.buckets)
	for lo < hi {
		if mid := int(uint(lo+hi) >> 1); m.buckets[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	at := &s.exemplarAt[lo]
	last, t := at.Load(), now.UnixNano()
	return sc, t-last >= int64(ExemplarInterval) && at.CompareAndSwap(last, t)
}

// seriesFor returns the children of a label set, or nil when the label
// values are invalid (never at request time: routes and methods are ours).
func (m *HTTP) seriesFor(k seriesKey) *series {
	if s, ok := m.series.Load(k); ok {
		return s
	}
	lv := []string{k.method, k.route, statusLabel(k.status)}
	s := &series{exemplarAt: make([]atomic.Int64, len(m.buckets)+1)}
	var err error
	if s.requests, err = m.requests.GetMetricWithLabelValues(lv...); err != nil {
		return nil
	}
	if s.duration, err = m.duration.GetMetricWithLabelValues(lv...); err != nil {
		return nil
	}
	s.exemplar, _ = s.duration.(prometheus.ExemplarObserver)
	if s.reqSize, err = m.reqSize.GetMetricWithLabelValues(lv...); err != nil {
		return nil
	}
	if s.respSize, err = m.respSize.GetMetricWithLabelValues(lv...); err != nil {
		return nil
	}
	s, _ = m.series.LoadOrStore(k, s)
	return s
}

// Handler serves the metrics of g: in the Prometheus text format by
// default, in OpenMetrics (with exemplars) to scrapers that ask for it. A
// nil g (or a nil *prometheus.Registry) means prometheus.DefaultGatherer.
func Handler(g prometheus.Gatherer) http.Handler {
	if r, ok := g.(*prometheus.Registry); g == nil || ok && r == nil {
		g = prometheus.DefaultGatherer
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// nilRegisterer reports a nil reg, or a nil pointer in it (a nil
// *prometheus.Registry), which would panic at registration.
func nilRegisterer(reg prometheus.Registerer) bool {
	if reg == nil {
		return true
	}
	v := reflect.ValueOf(reg)
	return v.Kind() == reflect.Pointer && v.IsNil()
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
