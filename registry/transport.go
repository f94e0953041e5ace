package registry

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/reqinfo"
)

// Defaults of [Transport].
const (
	// DefaultRetries is how many other instances an idempotent request
	// that failed to get an answer is tried on.
	DefaultRetries = 1
	// DefaultCanaryHeader is the request header that selects a canary.
	DefaultCanaryHeader = "X-Canary"
	// DefaultCanaryLabel is the instance label the canary header matches.
	DefaultCanaryLabel = "version"
)

// Canary routes requests that carry a header to the instances labelled
// with its value: with the defaults, "X-Canary: v2" goes to the instances
// whose version (ServiceInstance.Version or Metadata["version"]) is v2.
// When no instance matches, or the request has no header, the request goes
// to the stable set: the instances labelled Stable, or all instances when
// Stable is empty or none is labelled so. Routing never fails a request
// that some instance could serve.
type Canary struct {
	Header string // DefaultCanaryHeader when empty
	Label  string // DefaultCanaryLabel when empty; any Metadata key
	Stable string // label value of the stable set; "" means all instances
}

// label returns ins's value of the canary label.
func (c *Canary) label(ins *ServiceInstance) string {
	if v, ok := ins.Metadata[c.Label]; ok {
		return v
	}
	if c.Label == "version" {
		return ins.Version
	}
	return ""
}

// TransportOption configures [NewTransport].
type TransportOption func(*transportConfig) error

type transportConfig struct {
	balancer Balancer
	canary   *Canary
	filter   func(*ServiceInstance) bool
	retries  int
}

// WithBalancer selects the balancer (default [P2C]).
func WithBalancer(b Balancer) TransportOption {
	return func(c *transportConfig) error {
		if b == nil {
			return errors.New("registry: WithBalancer: nil Balancer")
		}
		c.balancer = b
		return nil
	}
}

// WithCanary turns on canary routing (off by default).
func WithCanary(cn Canary) TransportOption {
	return func(c *transportConfig) error {
		if cn.Header == "" {
			cn.Header = DefaultCanaryHeader
		}
		if cn.Label == "" {
			cn.Label = DefaultCanaryLabel
		}
		if !reqinfo.ValidHeaderName(cn.Header) {
			return fmt.Errorf("registry: WithCanary: invalid header name %q", cn.Header)
		}
		cn.Header = http.CanonicalHeaderKey(cn.Header)
		c.canary = &cn
		return nil
	}
}

// WithFilter keeps only the instances fn accepts (for example
// MatchMetadata("zone", "eu-1")); when none is accepted requests fail with
// 503. It runs before canary routing, on every request, and must be fast.
func WithFilter(fn func(*ServiceInstance) bool) TransportOption {
	return func(c *transportConfig) error {
		if fn == nil {
			return errors.New("registry: WithFilter: nil function")
		}
		c.filter = fn
		return nil
	}
}

// MatchMetadata returns a filter accepting instances whose Metadata[key]
// is value ("version" also matches ServiceInstance.Version).
func MatchMetadata(key, value string) func(*ServiceInstance) bool {
	c := Canary{Label: key}
	return func(ins *ServiceInstance) bool { return c.label(ins) == value }
}

// WithRetries sets how many other instances a request is tried on when it
// got no answer (a transport error or an open breaker; default
// [DefaultRetries], 0 turns retries off). Only requests with an
// idempotent method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and a body
// that can be replayed (none, or GetBody set, as http.NewRequest does for
// in-memory bodies) are retried; 5xx answers are returned, not retried.
func WithRetries(n int) TransportOption {
	return func(c *transportConfig) error {
		if n < 0 || n > 10 {
			return fmt.Errorf("registry: WithRetries: need 0 <= n <= 10, got %d", n)
		}
		c.retries = n
		return nil
	}
}

// Transport is an http.RoundTripper that sends requests for
// http://<service>/path to an instance of the service, chosen by a
// [Balancer] among the instances a [Resolver] knows. Requests whose host
// is an IP address pass through unchanged. The chosen instance's address
// replaces the URL host (and the Host header, unless it was set to
// something else than the URL host).
//
// Put a per-host client breaker under it (circuitbreaker.NewTransport as
// next): the balancer then avoids the instances whose breaker is open, and
// tries them only when all are open, in which case the breaker's error (503
// CIRCUIT_OPEN through errcode) is returned. Any next RoundTripper with an
// Open(host string) bool method is consulted the same way.
//
// When the request's context has a deadline, each attempt sends the
// remaining budget in the deadline.Header header (deadline.Propagate); an
// attempt with less than a millisecond left is not made, and RoundTrip
// fails with an error that is errors.Is context.DeadlineExceeded. The
// request ID of the context (logging.RequestIDFromContext) is sent on in
// the header the logging.RequestID middleware read it from, unless the
// request already has that header (logging.PropagateRequestID).
//
// Errors of the Transport itself are *errcode.Error 503 UNAVAILABLE (no
// instance) whose cause names the service; errors of next are returned as
// they are.
type Transport struct {
	res  *Resolver
	next http.RoundTripper
	open func(host string) bool
	cfg  transportConfig
}

// NewTransport returns a Transport over res, sending through next (nil:
// http.DefaultTransport).
func NewTransport(res *Resolver, next http.RoundTripper, opts ...TransportOption) (*Transport, error) {
	if res == nil {
		return nil, errors.New("registry: NewTransport: nil Resolver")
	}
	cfg := transportConfig{balancer: P2C(), retries: DefaultRetries}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("registry: nil TransportOption")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{res: res, next: next, cfg: cfg}
	if o, ok := next.(interface{ Open(host string) bool }); ok {
		t.open = o.Open
	}
	return t, nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	name := req.URL.Hostname()
	if net.ParseIP(name) != nil || name == "" {
		return t.next.RoundTrip(req)
	}
	ns, err := t.res.nodes(req.Context(), name)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	cands := t.candidates(req, ns)
	if len(cands) == 0 {
		closeBody(req)
		return nil, errcode.Unavailable.Wrap(fmt.Errorf("registry: no instance of %q to send to", name))
	}
	retries := 0
	if t.cfg.retries > 0 && replayable(req) {
		retries = min(t.cfg.retries, len(cands)-1)
	}
	var tried []*node
	for attempt := 0; ; attempt++ {
		n := t.cfg.balancer.pick(ns, t.avoid(cands, tried))
		out := req.WithContext(req.Context()) // shallow copy; headers are not modified
		u := *req.URL
		u.Host = n.addr
		out.URL = &u
		if req.Host == "" || req.Host == req.URL.Host {
			out.Host = ""
		}
		if attempt > 0 && req.GetBody != nil {
			if out.Body, err = req.GetBody(); err != nil {
				return nil, fmt.Errorf("registry: replay request body: %w", err)
			}
		}
		sent, err := deadline.Propagate(out)
		if err != nil {
			closeBody(out) // no budget left to send it with
			return nil, err
		}
		sent = logging.PropagateRequestID(sent)
		resp, err := t.send(n, sent)
		if err == nil || attempt >= retries || req.Context().Err() != nil {
			return resp, err
		}
		tried = append(tried, n)
	}
}

// send calls next and records the latency of answered calls.
func (t *Transport) send(n *node, req *http.Request) (*http.Response, error) {
	n.inflight.Add(1)
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	n.inflight.Add(-1)
	switch {
	case err != nil && errcode.From(err).Code() == errcode.CircuitOpen:
		// Rejected by the breaker: says nothing of the instance's latency.
	case err != nil && req.Context().Err() != nil:
		// The caller gave up.
	default:
		now := time.Now()
		n.observe(now.Sub(start), err != nil || resp.StatusCode >= 500, now.UnixNano())
	}
	return resp, err
}

// candidates applies the filter and canary routing.
func (t *Transport) candidates(req *http.Request, ns *nodeSet) []*node {
	cands := ns.nodes
	if t.cfg.filter != nil {
		cands = keep(cands, func(n *node) bool { return t.cfg.filter(n.ins) })
	}
	if c := t.cfg.canary; c != nil && len(cands) > 0 {
		if v := req.Header.Get(c.Header); v != "" {
			if sub := keep(cands, func(n *node) bool { return c.label(n.ins) == v }); len(sub) > 0 {
				return sub
			}
		}
		if c.Stable != "" {
			if sub := keep(cands, func(n *node) bool { return c.label(n.ins) == c.Stable }); len(sub) > 0 {
				return sub
			}
		}
	}
	return cands
}

// avoid drops the nodes already tried and those whose breaker is open;
// when that leaves none, it keeps the untried ones, then all.
func (t *Transport) avoid(cands, tried []*node) []*node {
	untried := cands
	if len(tried) > 0 {
		untried = keep(cands, func(n *node) bool {
			for _, x := range tried {
				if x == n {
					return false
				}
			}
			return true
		})
		if len(untried) == 0 {
			untried = cands
		}
	}
	if t.open == nil {
		return untried
	}
	if closed := keep(untried, func(n *node) bool { return !t.open(n.addr) }); len(closed) > 0 {
		return closed
	}
	return untried
}

// keep returns the nodes ok accepts; cands itself when it accepts all.
func keep(cands []*node, ok func(*node) bool) []*node {
	for i, n := range cands {
		if ok(n) {
			continue
		}
		out := make([]*node, i, len(cands))
		copy(out, cands[:i])
		for _, m := range cands[i+1:] {
			if ok(m) {
				out = append(out, m)
			}
		}
		return out
	}
	return cands
}

// replayable reports whether a request may be sent again.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

var _ io.Closer = (*Resolver)(nil)

// Client returns &http.Client{Transport: t}.
func (t *Transport) Client() *http.Client { return &http.Client{Transport: t} }

// A compile-time check that Transport is a RoundTripper.
var _ http.RoundTripper = (*Transport)(nil)
