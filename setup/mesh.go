package setup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/setup/internal/choices"
	"github.com/gingov/gingov/tracing"
)

// Mesh modes (Config.Mesh).
const (
	// MeshNone: no sidecar; the app discovers, balances, retries and
	// breaks its outbound calls itself, and enforces every rate-limit rule.
	MeshNone = "none"
	// MeshSidecar: a sidecar proxy (Envoy, Istio) carries the traffic: the
	// clients of [Chain.NewClient] send plain requests to the service's
	// address through it, and rules with Enforce "sidecar" are left to it.
	MeshSidecar = "sidecar"
)

// Where a rate-limit rule is enforced (LimitRule.Enforce).
const (
	// EnforceApp: by the app's limiter, meshed or not.
	EnforceApp = "app"
	// EnforceSidecar: by Envoy's rate-limit filter through
	// ratelimit/envoy when Mesh is sidecar, by the app otherwise; both
	// draw on the same Redis buckets (same rule name and rate).
	EnforceSidecar = "sidecar"
)

// DefaultMeshPropagators are the trace-header formats of a meshed service
// when tracing.propagators is not set: W3C trace context and baggage, and
// B3 multi-header, which Envoy's Zipkin tracer reads and writes.
var DefaultMeshPropagators = []string{tracing.PropagatorTraceContext, tracing.PropagatorBaggage, tracing.PropagatorB3Multi}

func (c *Config) meshed() bool { return c.Mesh == MeshSidecar }

func (c *Config) validateMesh() error {
	if !choices.Mesh.Has(c.Mesh) {
		return fieldErr("mesh", "%q is not %s", c.Mesh, choices.Mesh)
	}
	for i, r := range c.RateLimit.Rules {
		if !choices.Enforce.Has(r.Enforce) {
			return fieldErr(fmt.Sprintf("ratelimit.rules[%d].enforce", i), "%q is not %s", r.Enforce, choices.Enforce)
		}
	}
	return nil
}

// inAppRules are the rules the app's limiter enforces: all of them out of
// a mesh, those not left to the sidecar in one.
func (c *Config) inAppRules() []LimitRule {
	if !c.meshed() {
		return c.RateLimit.Rules
	}
	var out []LimitRule
	for _, r := range c.RateLimit.Rules {
		if r.Enforce != EnforceSidecar {
			out = append(out, r)
		}
	}
	return out
}

// ClientOption configures [Chain.NewClient].
type ClientOption interface{ applyClient(*clientConfig) }

type clientOption func(*clientConfig)

func (f clientOption) applyClient(c *clientConfig) { f(c) }

type clientConfig struct {
	res         *registry.Resolver
	nilRes      bool
	regOpts     []registry.TransportOption
	breakerOpts []circuitbreaker.TransportOption
	sidecar     *url.URL
	sidecarRaw  string
	sidecarSet  bool
	base        http.RoundTripper
}

// WithResolver is where the client finds the instances of the services it
// calls out of a mesh (required then; a nil res is an error). In mesh mode
// it is not used: the sidecar finds them.
func WithResolver(res *registry.Resolver) ClientOption {
	return clientOption(func(c *clientConfig) { c.res, c.nilRes = res, res == nil })
}

// WithDiscoveryOptions configures the load balancing, canary routing and
// retries over the instances out of a mesh (registry.NewTransport's
// options; default registry's: P2C, registry.DefaultRetries). In mesh mode
// they are not used: the sidecar balances and retries.
func WithDiscoveryOptions(opts ...registry.TransportOption) ClientOption {
	return clientOption(func(c *clientConfig) { c.regOpts = append(c.regOpts, opts...) })
}

// WithBreakerOptions configures the per-instance client breakers out of a
// mesh (circuitbreaker.NewTransport's options, after the chain's logger and
// metrics hook; default circuitbreaker's Classic policy). In mesh mode
// there are none: the sidecar's outlier detection and circuit breaking take
// their place.
func WithBreakerOptions(opts ...circuitbreaker.TransportOption) ClientOption {
	return clientOption(func(c *clientConfig) { c.breakerOpts = append(c.breakerOpts, opts...) })
}

// WithSidecar sends the calls of a meshed client to the sidecar's outbound
// listener at rawURL (http://host:port), keeping the service's name as the
// Host header, by which the sidecar routes. Default: no rewriting, the
// calls go to http://<service>/..., which the mesh's DNS and traffic
// interception deliver to the sidecar (Istio). Out of a mesh it is not
// used. The URL must be http with a host and no path.
func WithSidecar(rawURL string) ClientOption {
	return clientOption(func(c *clientConfig) { c.sidecarRaw, c.sidecarSet = rawURL, true })
}

// WithBaseTransport sends through rt (default, and for a nil rt:
// http.DefaultTransport).
func WithBaseTransport(rt http.RoundTripper) ClientOption {
	return clientOption(func(c *clientConfig) { c.base = rt })
}

func newClientConfig(opts []ClientOption, meshed bool) (clientConfig, error) {
	var c clientConfig
	for i, o := range opts {
		if f, ok := o.(clientOption); o == nil || (ok && f == nil) {
			return c, fmt.Errorf("setup: NewClient: option %d is nil", i+1)
		}
		o.applyClient(&c)
	}
	switch {
	case c.nilRes:
		return c, errors.New("setup: WithResolver: nil Resolver")
	case !meshed && c.res == nil:
		return c, errors.New("setup: WithResolver: required out of a mesh (mesh is not sidecar): the client finds the instances itself")
	}
	for i, o := range c.regOpts {
		if o == nil {
			return c, fmt.Errorf("setup: WithDiscoveryOptions: option %d is nil", i+1)
		}
	}
	for i, o := range c.breakerOpts {
		if o == nil {
			return c, fmt.Errorf("setup: WithBreakerOptions: option %d is nil", i+1)
		}
	}
	if c.sidecarSet {
		u, err := url.Parse(c.sidecarRaw)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return c, fmt.Errorf("setup: WithSidecar: %q is not http://host:port", c.sidecarRaw)
		}
		c.sidecar = u
	}
	if c.base == nil {
		c.base = http.DefaultTransport
	}
	return c, nil
}

// NewClient builds the *http.Client for calls to other services, by their
// name as the URL host (http://orders/orders/42), as the mesh mode says:
//
//   - Out of a mesh: trace span and headers → discovery (WithResolver),
//     load balancing, canary routing and retries (WithDiscoveryOptions) →
//     one breaker per instance (WithBreakerOptions) → the network.
//   - Mesh sidecar: trace span and headers → the service's plain address,
//     through the sidecar (WithSidecar). Discovery, balancing, retries and
//     breakers step aside: the sidecar does them, and the options that
//     configure them are accepted and unused, so that the same code runs
//     on both sides of the move.
//
// Both forward the request ID (Envoy's x-request-id among them) and the
// deadline budget, and write the trace headers of tracing.propagators
// (a meshed service's default includes B3, see DefaultMeshPropagators),
// so that the sidecar's span and the callee's continue the trace. With
// tracing off there is no span and no trace header. Breaker state changes
// are counted in the chain's metrics. The client's breakers are closed by
// Chain.Close. The returned client has no timeout: set one, or give each
// request a deadline.
func (ch *Chain) NewClient(opts ...ClientOption) (*http.Client, error) {
	cfg := ch.Config() // under the lock: a reload may replace it (not its mode)
	meshed := cfg.meshed()
	c, err := newClientConfig(opts, meshed)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper
	if meshed {
		rt = c.base
		if c.sidecar != nil {
			rt = &sidecarTransport{to: c.sidecar, next: rt}
		}
		if ch.Tracing == nil {
			rt = propagateOnly{rt} // the tracing transport does it otherwise
		}
	} else {
		bopts := []circuitbreaker.TransportOption{circuitbreaker.WithLogger(ch.Logger)}
		if ch.gov != nil {
			bopts = append(bopts, circuitbreaker.WithOnStateChange(ch.gov.OnBreakerChange))
		}
		breakers, err := circuitbreaker.NewTransport(c.base, append(bopts, c.breakerOpts...)...)
		if err != nil {
			return nil, fmt.Errorf("setup: WithBreakerOptions: %w", err)
		}
		lb, err := registry.NewTransport(c.res, breakers, c.regOpts...)
		if err != nil {
			_ = breakers.Close()
			return nil, fmt.Errorf("setup: WithDiscoveryOptions: %w", err)
		}
		ch.mu.Lock()
		ch.closers = append(ch.closers, func(context.Context) error { return breakers.Close() })
		ch.mu.Unlock()
		rt = lb
	}
	if ch.Tracing != nil {
		rt = ch.Tracing.Transport(rt)
	}
	return &http.Client{Transport: rt}, nil
}

// sidecarTransport sends every request to the sidecar's address, with the
// service's name as the Host header.
type sidecarTransport struct {
	to   *url.URL
	next http.RoundTripper
}

func (t *sidecarTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.WithContext(req.Context()) // shallow copy; the caller's request is not modified
	u := *req.URL
	u.Scheme, u.Host = t.to.Scheme, t.to.Host
	out.URL = &u
	if out.Host == "" {
		out.Host = req.URL.Host
	}
	return t.next.RoundTrip(out)
}

// propagateOnly forwards the deadline budget and the request ID, as the
// tracing and registry transports do, for a meshed client without tracing.
type propagateOnly struct{ next http.RoundTripper }

func (t propagateOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	out, err := deadline.Propagate(req)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(logging.PropagateRequestID(out))
}
