// Package etcd registers Gin services in etcd and discovers them there, as
// a backend of gingov's registry package ([registry.Registrar] and
// [registry.Discovery]).
//
// An instance is stored at <prefix>/<name>/<id> as a JSON document (id,
// name, version, address, endpoints, metadata, weight) under a lease of the
// configured TTL. The registry keeps the lease alive for as long as the
// instance is registered and never gives up: when the keep-alive ends — the
// lease expired during an outage, etcd restarted without its data, the
// connection stayed down longer than the TTL — it grants a new lease and
// puts the key again, with capped, jittered backoff, until [Registry.Deregister]
// or [Registry.Close]. Every step is reported through the WithOnEvent hook
// (registered, register_failed, heartbeat_failed, deregistered,
// deregister_failed) and logged with slog.
//
// Discovery reads the same keys: [Registry.GetService] is one prefix read;
// [Registry.Watch] follows the prefix with an etcd watch, returning the
// whole set each time it changes. The watch is rebuilt after a compaction
// or a cancelled watch, and a periodic read (WithResyncInterval) catches
// what a resumed watch cannot see, such as an etcd that came back without
// its data.
//
// The package works with etcd 3.4 and later servers.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
)

// Defaults of the options.
const (
	// DefaultPrefix is the key prefix under which services are stored.
	DefaultPrefix = "/gingov/services"
	// DefaultTTL is the lease TTL of a registration: how long an instance
	// stays listed after its process died without deregistering.
	DefaultTTL = 15 * time.Second
	// MinTTL is the shortest TTL accepted.
	MinTTL = 2 * time.Second
	// DefaultTimeout bounds each etcd call the registry makes on its own
	// (keep-alive re-registration, discovery reads, and each call of
	// Register and Deregister within their context).
	DefaultTimeout = 3 * time.Second
	// DefaultResyncInterval is how often a watcher re-reads its service.
	DefaultResyncInterval = 10 * time.Second
	// MaxBackoff caps the wait between re-registration attempts; the cap is
	// also at most a third of the TTL.
	MaxBackoff = 5 * time.Second
)

// minBackoff is the base wait after a first failed attempt; it doubles up
// to the cap (registry.Backoff).
const minBackoff = 100 * time.Millisecond

// backend names this backend in events.
const backend = "etcd"

// ErrClosed is returned by the methods of a closed Registry.
var ErrClosed = errors.New("etcd: registry closed")

// Option configures [New].
type Option interface{ applyEtcd(*config) }

// ClientOption configures [NewFromClient].
type ClientOption interface{ applyEtcdClient(*config) }

// CommonOption is an option of both [New] and [NewFromClient].
type CommonOption func(*config)

func (f CommonOption) applyEtcd(c *config)       { f(c) }
func (f CommonOption) applyEtcdClient(c *config) { f(c) }

// dialOption is an option of New only.
type dialOption func(*config)

func (f dialOption) applyEtcd(c *config) { f(c) }

type config struct {
	prefix     string
	ttl        time.Duration
	timeout    time.Duration
	resync     time.Duration
	logger     *slog.Logger
	onEvent    func(context.Context, registry.Event)
	onEventSet bool
	dialCfg    *clientv3.Config
}

// WithPrefix sets the key prefix (default [DefaultPrefix]). It must start
// with "/"; a trailing "/" is dropped.
func WithPrefix(p string) CommonOption { return func(c *config) { c.prefix = p } }

// WithTTL sets the lease TTL (default [DefaultTTL], at least [MinTTL]). etcd
// leases count whole seconds: the TTL is rounded up to one.
func WithTTL(d time.Duration) CommonOption { return func(c *config) { c.ttl = d } }

// WithTimeout bounds each etcd call (default [DefaultTimeout]; must be > 0).
func WithTimeout(d time.Duration) CommonOption { return func(c *config) { c.timeout = d } }

// WithResyncInterval sets how often a watcher re-reads its service to catch
// changes a resumed etcd watch cannot report (default
// [DefaultResyncInterval], at least 100 ms).
func WithResyncInterval(d time.Duration) CommonOption { return func(c *config) { c.resync = d } }

// WithLogger sets the logger of registrations, keep-alive failures and
// watch rebuilds (default, and for a nil l, the kit's JSON logger
// logging.Default()).
func WithLogger(l *slog.Logger) CommonOption { return func(c *config) { c.logger = l } }

// WithOnEvent sets a hook called with every registration event, for
// metrics, with the context of Register or Deregister, or the registry's
// own background context for the keep-alive's events. It is called
// synchronously from the registration's goroutine (or from Register and
// Deregister) and must not block. Default: none; a nil fn is an error.
func WithOnEvent(fn func(context.Context, registry.Event)) CommonOption {
	return func(c *config) { c.onEvent, c.onEventSet = fn, true }
}

// WithClientConfig is the base configuration of the client [New] creates
// (TLS, credentials, ...). Its Endpoints are replaced by New's; zero
// DialTimeout, Logger and reconnect backoff get the defaults documented on
// New. Default: a zero clientv3.Config.
func WithClientConfig(cfg clientv3.Config) Option {
	return dialOption(func(c *config) { c.dialCfg = &cfg })
}

// Registry is an etcd-backed [registry.Registrar] and [registry.Discovery].
// It is safe for concurrent use.
type Registry struct {
	client     *clientv3.Client
	ownsClient bool
	cfg        config
	ttlSeconds int64
	retry      registry.Backoff // between re-registration attempts and watch rebuilds

	mu       sync.Mutex
	closed   bool
	regs     map[string]*registration // by key
	watchers map[*watcher]struct{}
}

var _ registry.Registry = (*Registry)(nil)

// NewFromClient returns a Registry that uses client. The caller keeps
// ownership of the client: Close does not close it. The client should
// reconnect quickly after an outage (a gRPC reconnect backoff capped at a
// few seconds, see New), or re-registration waits for its reconnect.
func NewFromClient(client *clientv3.Client, opts ...ClientOption) (*Registry, error) {
	if client == nil {
		return nil, errors.New("etcd: nil client")
	}
	cfg, err := newConfig(func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("etcd: option %d is nil", i+1)
			}
			o.applyEtcdClient(c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return newRegistry(client, false, cfg), nil
}

// New creates an etcd client for endpoints and returns a Registry that
// owns it (Close closes it). The client dials in the background: New does
// not fail when etcd is down, and Register waits for it within its context.
// Unless set by WithClientConfig, the client has a 5 s dial timeout, no
// logging of its own (the Registry logs through slog), and a gRPC reconnect
// backoff capped at the re-registration backoff (at most [MaxBackoff]), so
// that an instance comes back soon after etcd does.
func New(endpoints []string, opts ...Option) (*Registry, error) {
	cfg, err := newConfig(func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("etcd: option %d is nil", i+1)
			}
			o.applyEtcd(c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	for _, ep := range endpoints {
		if strings.TrimSpace(ep) == "" {
			return nil, errors.New("etcd: empty endpoint")
		}
	}
	var cc clientv3.Config
	if cfg.dialCfg != nil {
		cc = *cfg.dialCfg
	}
	cc.Endpoints = append([]string(nil), endpoints...)
	if cc.DialTimeout == 0 {
		cc.DialTimeout = 5 * time.Second
	}
	if cc.Logger == nil && cc.LogConfig == nil {
		cc.Logger = zap.NewNop()
	}
	bo := backoffCap(cfg.ttl)
	cc.DialOptions = append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  100 * time.Millisecond,
			Multiplier: 1.6,
			Jitter:     0.2,
			MaxDelay:   bo,
		},
		MinConnectTimeout: cfg.timeout,
	})}, cc.DialOptions...) // the caller's own options come later and win
	client, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd: client: %w", err)
	}
	return newRegistry(client, true, cfg), nil
}

// newConfig applies the options (through apply) over the defaults and
// checks the result.
func newConfig(apply func(*config) error) (config, error) {
	cfg := config{
		prefix:  DefaultPrefix,
		ttl:     DefaultTTL,
		timeout: DefaultTimeout,
		resync:  DefaultResyncInterval,
	}
	if err := apply(&cfg); err != nil {
		return cfg, err
	}
	if !strings.HasPrefix(cfg.prefix, "/") {
		return cfg, fmt.Errorf("etcd: WithPrefix %q must start with /", cfg.prefix)
	}
	cfg.prefix = strings.TrimRight(cfg.prefix, "/")
	if cfg.prefix == "" {
		return cfg, errors.New("etcd: WithPrefix must name a key prefix below /")
	}
	if cfg.ttl < MinTTL {
		return cfg, fmt.Errorf("etcd: WithTTL %v is below the minimum %v", cfg.ttl, MinTTL)
	}
	if cfg.timeout <= 0 {
		return cfg, fmt.Errorf("etcd: WithTimeout %v must be positive", cfg.timeout)
	}
	if cfg.resync < 100*time.Millisecond {
		return cfg, fmt.Errorf("etcd: WithResyncInterval %v is below 100ms", cfg.resync)
	}
	if cfg.onEventSet && cfg.onEvent == nil {
		return cfg, errors.New("etcd: WithOnEvent: nil function")
	}
	cfg.logger = logging.OrDefault(cfg.logger)
	return cfg, nil
}

// backoffCap is the longest wait between re-registration attempts: a third
// of the TTL, at most MaxBackoff, so that at least two attempts fit in one
// TTL after etcd returns.
func backoffCap(ttl time.Duration) time.Duration {
	return min(ttl/3, MaxBackoff)
}

func newRegistry(client *clientv3.Client, owns bool, cfg config) *Registry {
	secs := int64((cfg.ttl + time.Second - 1) / time.Second)
	return &Registry{
		client:     client,
		ownsClient: owns,
		cfg:        cfg,
		ttlSeconds: secs,
		retry:      registry.Backoff{Min: minBackoff, Max: backoffCap(cfg.ttl)},
		regs:       map[string]*registration{},
		watchers:   map[*watcher]struct{}{},
	}
}

// Backend names the backend ("etcd"), as in its events.
func (r *Registry) Backend() string { return backend }

// Client returns the etcd client the Registry uses.
func (r *Registry) Client() *clientv3.Client { return r.client }

// Close stops every keep-alive and watcher and closes the client when New
// created it. Instances not deregistered first stay in etcd until their
// lease expires (one TTL). Close is safe to call more than once.
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

	for _, reg := range regs {
		reg.stop()
	}
	for w := range ws {
		w.stopWatch()
	}
	if r.ownsClient {
		// The client reports its own cancelled context when it had no
		// connection left to close; that is not a failure.
		if err := r.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("etcd: close client: %w", err)
		}
	}
	return nil
}

// key is the etcd key of an instance.
func (r *Registry) key(name, id string) string {
	return r.cfg.prefix + "/" + name + "/" + id
}

// servicePrefix is the prefix of every instance key of a service.
func (r *Registry) servicePrefix(name string) string {
	return r.cfg.prefix + "/" + name + "/"
}

func (r *Registry) emit(ctx context.Context, kind registry.EventKind, ins *registry.ServiceInstance, err error) {
	if r.cfg.onEvent == nil {
		return
	}
	r.cfg.onEvent(ctx, registry.Event{Backend: backend, Kind: kind, Instance: ins, Err: err, Time: time.Now()})
}

// validSegment reports what is wrong with a service name or instance ID used
// as a key segment.
func validSegment(field, s string) error {
	if s == "" {
		return fmt.Errorf("etcd: %s is empty", field)
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("etcd: %s %q contains /", field, s)
	}
	return nil
}
