// Package consul registers Gin services with a Consul agent and discovers
// them through Consul, as a backend of gingov's registry package
// ([registry.Registrar] and [registry.Discovery]).
//
// # Registration
//
// An instance is registered through the local agent (PUT
// /v1/agent/service/register) with service ID = the instance ID, its name,
// the host and port of its Address, the tag "version=<Version>" (what Kratos
// clients read the version from), the metadata "version" and "weight" next
// to the instance's Metadata, Consul's passing weight, and one health check:
//
//   - by default an HTTP check that Consul polls on the instance's Address
//     and the Server's readiness route ([DefaultCheckPath], every
//     [DefaultCheckInterval], timeout [DefaultCheckTimeout];
//     [WithHTTPCheck]). [registry.Server] turns readiness to 503 while
//     draining and while a dependency check fails, so Consul stops
//     listing the instance then. Consul runs a new check only after a
//     random part of its interval; so that an instance is listed at once,
//     Register probes the route itself first and registers the check with
//     the status that probe found.
//   - or a TTL check that gingov passes itself ([WithTTLCheck]), for
//     services that Consul cannot reach.
//
// A check critical for longer than [DefaultDeregisterCriticalAfter]
// removes the instance from Consul ([WithDeregisterCriticalAfter]).
//
// Until Deregister, a background loop keeps the registration: every third
// of the check interval (or of the TTL) it passes the TTL check or asks the
// agent for the service, and registers it again when the agent has lost it
// (an agent restarted without its state, a service reaped as critical), so
// an instance is back within one check interval after its agent is.
//
// # Discovery
//
// [Registry.GetService] returns the instances whose checks all pass
// (GET /v1/health/service/<name>?passing). [Registry.Watch] follows them
// with blocking queries (index and wait): each Next returns the whole set
// once it differs from the set returned before. On errors the watcher keeps
// the last set it returned and retries with backoff; an index that goes
// backwards (an agent or cluster that restarted) starts the queries over;
// queries that return the same set are spaced at least 50 ms apart, so a
// watcher never spins against the agent.
//
// Every HTTP call is bounded by the registry's own timeout ([WithTimeout];
// a blocking query by its wait time plus the timeout), so a hung agent
// cannot hold a caller.
//
// The package is tested against Consul 1.16.3.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
)

// Defaults of the options.
const (
	// DefaultCheckPath is the path of the HTTP check: the readiness route
	// of registry.Server.
	DefaultCheckPath = registry.DefaultReadinessPath
	// DefaultCheckInterval is how often Consul runs the HTTP check.
	DefaultCheckInterval = 10 * time.Second
	// DefaultCheckTimeout bounds one run of the HTTP check.
	DefaultCheckTimeout = 5 * time.Second
	// MinCheckInterval is the shortest check interval and TTL accepted
	// (Consul runs no check more often).
	MinCheckInterval = time.Second
	// DefaultDeregisterCriticalAfter is how long a check may stay
	// critical before Consul removes the instance.
	DefaultDeregisterCriticalAfter = time.Minute
	// MinDeregisterCriticalAfter is the shortest such delay Consul honours.
	MinDeregisterCriticalAfter = time.Minute
	// DefaultTimeout bounds each call to the agent.
	DefaultTimeout = 3 * time.Second
	// DefaultWatchWait is how long one blocking query of a watcher waits
	// for a change before the agent answers with the same set.
	DefaultWatchWait = time.Minute
	// MaxWatchWait is the longest wait Consul honours.
	MaxWatchWait = 10 * time.Minute
	// MaxBackoff caps the wait between a watcher's retries after errors.
	MaxBackoff = 5 * time.Second
)

// Metadata keys the registry writes next to the instance's own metadata.
// Discovery reads them back into Version and leaves them out of Metadata.
const (
	// MetadataVersion holds ServiceInstance.Version.
	MetadataVersion = "version"
	// MetadataWeight holds the effective weight, for clients that read a
	// weight from metadata (Kratos); gingov reads Consul's own weight.
	MetadataWeight = "weight"
)

// minBackoff is the first wait after a failure; the waits double from it
// (registry.Backoff) up to the keep-alive period or MaxBackoff.
const minBackoff = 100 * time.Millisecond

// backend names this backend in events.
const backend = "consul"

// ErrClosed is returned by the methods of a closed Registry.
var ErrClosed = errors.New("consul: registry closed")

// Option configures [New].
type Option interface{ applyConsul(*config) }

type option func(*config)

func (f option) applyConsul(c *config) { f(c) }

type checkMode int

const (
	checkHTTP checkMode = iota
	checkTTL
)

type config struct {
	logger     *slog.Logger
	onEvent    func(context.Context, registry.Event)
	onEventSet bool
	token      *string
	datacenter *string

	httpPath     string
	interval     time.Duration
	checkTimeout time.Duration
	ttl          time.Duration
	httpSet      bool
	ttlSet       bool
	deregAfter   time.Duration
	tags         []string
	timeout      time.Duration
	watchWait    time.Duration
}

// WithLogger sets the logger of registrations, keep-alive failures and
// watch retries; nil (the default) is the kit's JSON logger,
// logging.Default().
func WithLogger(l *slog.Logger) Option { return option(func(c *config) { c.logger = l }) }

// WithOnEvent sets a hook called with every registration event
// (registered, register_failed, heartbeat_failed, deregistered,
// deregister_failed), for metrics. It runs synchronously on the goroutine
// of Register and Deregister (with their context) or of the registration's
// keep-alive loop (with the loop's context) and must not block. fn must not
// be nil.
func WithOnEvent(fn func(context.Context, registry.Event)) Option {
	return option(func(c *config) { c.onEvent, c.onEventSet = fn, true })
}

// WithToken sets the ACL token sent with every request. Without it the
// token comes from CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE, as for
// Consul's own tools, else the agent's default token is used. It must not
// be empty.
func WithToken(token string) Option { return option(func(c *config) { c.token = &token }) }

// WithDatacenter sets the datacenter that discovery queries (default: the
// agent's own). Registration always goes to the local agent, so in its
// datacenter. It must not be empty.
func WithDatacenter(dc string) Option { return option(func(c *config) { c.datacenter = &dc }) }

// WithHTTPCheck sets the HTTP check Consul runs against each instance:
// GET http://<Address><path> every interval, failing after timeout; 2xx is
// passing, 429 warning, anything else critical. This is the default check,
// with [DefaultCheckPath], [DefaultCheckInterval] and [DefaultCheckTimeout].
// path must start with "/", interval be at least [MinCheckInterval], and
// 0 < timeout <= interval. It cannot be combined with [WithTTLCheck].
func WithHTTPCheck(path string, interval, timeout time.Duration) Option {
	return option(func(c *config) {
		c.httpPath, c.interval, c.checkTimeout, c.httpSet = path, interval, timeout, true
	})
}

// WithTTLCheck replaces the HTTP check by a TTL check that the registry
// passes itself every ttl/3, for services that Consul cannot reach: the
// instance turns critical ttl after its process stopped passing it. ttl
// must be at least [MinCheckInterval]. It cannot be combined with
// [WithHTTPCheck].
func WithTTLCheck(ttl time.Duration) Option {
	return option(func(c *config) { c.ttl, c.ttlSet = ttl, true })
}

// WithDeregisterCriticalAfter sets how long a check may stay critical
// before Consul removes the instance (default
// [DefaultDeregisterCriticalAfter]; 0 means never; otherwise at least
// [MinDeregisterCriticalAfter]). A live instance removed that way is
// registered again by its keep-alive loop.
func WithDeregisterCriticalAfter(d time.Duration) Option {
	return option(func(c *config) { c.deregAfter = d })
}

// WithTags adds tags to every registration, after "version=<Version>"
// (default none). Tags must not be empty.
func WithTags(tags ...string) Option {
	return option(func(c *config) { c.tags = append(c.tags, tags...) })
}

// WithTimeout bounds each call to the agent (default [DefaultTimeout]);
// Register and Deregister return within it, GetService too. It must be
// positive.
func WithTimeout(d time.Duration) Option { return option(func(c *config) { c.timeout = d }) }

// WithWatchWait sets how long one blocking query of a watcher waits for a
// change (default [DefaultWatchWait], at most [MaxWatchWait], at least
// 1 s). A watcher notices a hung agent only when a query times out: after
// this wait plus the timeout.
func WithWatchWait(d time.Duration) Option { return option(func(c *config) { c.watchWait = d }) }

// metaKey is the metadata key format Consul accepts.
var metaKey = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`).MatchString

func newConfig(opts []Option) (config, error) {
	cfg := config{
		httpPath:     DefaultCheckPath,
		interval:     DefaultCheckInterval,
		checkTimeout: DefaultCheckTimeout,
		deregAfter:   DefaultDeregisterCriticalAfter,
		timeout:      DefaultTimeout,
		watchWait:    DefaultWatchWait,
	}
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("consul: option %d is nil", i+1)
		}
		o.applyConsul(&cfg)
	}
	cfg.logger = logging.OrDefault(cfg.logger)
	if cfg.onEventSet && cfg.onEvent == nil {
		return cfg, errors.New("consul: WithOnEvent: nil function")
	}
	if cfg.token != nil && *cfg.token == "" {
		return cfg, errors.New("consul: WithToken: empty token")
	}
	if cfg.datacenter != nil && strings.TrimSpace(*cfg.datacenter) == "" {
		return cfg, errors.New("consul: WithDatacenter: empty datacenter")
	}
	if cfg.httpSet && cfg.ttlSet {
		return cfg, errors.New("consul: WithHTTPCheck and WithTTLCheck: choose one check")
	}
	if cfg.httpSet {
		switch {
		case !strings.HasPrefix(cfg.httpPath, "/"):
			return cfg, fmt.Errorf("consul: WithHTTPCheck: path %q must start with /", cfg.httpPath)
		case cfg.interval < MinCheckInterval:
			return cfg, fmt.Errorf("consul: WithHTTPCheck: interval %v is below %v", cfg.interval, MinCheckInterval)
		case cfg.checkTimeout <= 0 || cfg.checkTimeout > cfg.interval:
			return cfg, fmt.Errorf("consul: WithHTTPCheck: timeout %v must be > 0 and <= the interval %v", cfg.checkTimeout, cfg.interval)
		}
	}
	if cfg.ttlSet && cfg.ttl < MinCheckInterval {
		return cfg, fmt.Errorf("consul: WithTTLCheck: ttl %v is below %v", cfg.ttl, MinCheckInterval)
	}
	if cfg.deregAfter != 0 && cfg.deregAfter < MinDeregisterCriticalAfter {
		return cfg, fmt.Errorf("consul: WithDeregisterCriticalAfter: %v is below Consul's minimum %v (0 means never)", cfg.deregAfter, MinDeregisterCriticalAfter)
	}
	for _, tag := range cfg.tags {
		if strings.TrimSpace(tag) == "" {
			return cfg, errors.New("consul: WithTags: empty tag")
		}
	}
	if cfg.timeout <= 0 {
		return cfg, fmt.Errorf("consul: WithTimeout: %v must be positive", cfg.timeout)
	}
	if cfg.watchWait < time.Second || cfg.watchWait > MaxWatchWait {
		return cfg, fmt.Errorf("consul: WithWatchWait: %v must be between 1s and %v", cfg.watchWait, MaxWatchWait)
	}
	return cfg, nil
}

func (c *config) mode() checkMode {
	if c.ttlSet {
		return checkTTL
	}
	return checkHTTP
}

// keepPeriod is how often the keep-alive loop runs: a third of the check
// interval or TTL, so that a lost registration is back within one.
func (c *config) keepPeriod() time.Duration {
	if c.mode() == checkTTL {
		return c.ttl / 3
	}
	return c.interval / 3
}

// Registry is a Consul-backed [registry.Registrar] and [registry.Discovery].
// It is safe for concurrent use.
type Registry struct {
	client    *api.Client
	transport *http.Transport
	http      *http.Client // for the probe of the HTTP check at registration
	cfg       config

	mu       sync.Mutex
	closed   bool
	regs     map[string]*registration // by service ID
	watchers map[*watcher]struct{}
}

var (
	_ registry.Registry  = (*Registry)(nil)
	_ registry.Registrar = (*Registry)(nil)
	_ registry.Discovery = (*Registry)(nil)
)

// New returns a Registry that talks to the Consul agent at addr, its HTTP
// address ("127.0.0.1:8500", or a URL such as "https://10.0.0.2:8501").
// Nothing is sent until the first call: New does not fail when the agent
// is down. Close releases the registry's connections.
func New(addr string, opts ...Option) (*Registry, error) {
	if strings.TrimSpace(addr) == "" {
		return nil, errors.New("consul: empty agent address")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.timeout,
		ExpectContinueTimeout: time.Second,
	}
	ac := &api.Config{Address: addr, Transport: tr}
	if cfg.token != nil {
		ac.Token = *cfg.token
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul: client: %w", err)
	}
	return &Registry{
		client:    client,
		transport: tr,
		http:      &http.Client{Transport: tr},
		cfg:       cfg,
		regs:      map[string]*registration{},
		watchers:  map[*watcher]struct{}{},
	}, nil
}

// Backend names the backend ("consul"), as in its events.
func (r *Registry) Backend() string { return backend }

// Client returns the Consul API client the Registry uses.
func (r *Registry) Client() *api.Client { return r.client }

// Close stops every keep-alive loop and watcher and closes idle
// connections. Instances not deregistered first stay in Consul: with a TTL
// check they turn critical one TTL later; with an HTTP check they stay
// listed as long as they answer it. Close is safe to call more than once.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	regs := r.regs
	r.regs = map[string]*registration{}
	ws := r.watchers
	r.watchers = map[*watcher]struct{}{}
	r.mu.Unlock()

	for _, g := range regs {
		g.stop()
	}
	for w := range ws {
		w.stopWatch()
	}
	r.transport.CloseIdleConnections()
	return nil
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Registry) emit(ctx context.Context, kind registry.EventKind, ins *registry.ServiceInstance, err error) {
	if r.cfg.onEvent == nil {
		return
	}
	r.cfg.onEvent(ctx, registry.Event{Backend: backend, Kind: kind, Instance: ins, Err: err, Time: time.Now()})
}

// healthOptions are the options of one discovery query, bounded by ctx.
func (r *Registry) healthOptions(ctx context.Context) *api.QueryOptions {
	q := &api.QueryOptions{}
	if r.cfg.datacenter != nil {
		q.Datacenter = *r.cfg.datacenter
	}
	return q.WithContext(ctx)
}

// agentOptions are the options of one call to the local agent, bounded by
// ctx.
func agentOptions(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

// isNotFound reports whether err is the agent's 404 answer.
func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}
