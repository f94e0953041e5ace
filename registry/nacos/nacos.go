// Package nacos registers Gin services with Nacos and discovers them
// through it, with nacos-sdk-go/v2 (v2.3.5) over the Nacos 2.x gRPC
// protocol.
//
// A [Registry] is one SDK naming client, made by [New] with With...
// options. It is a [registry.Registry] (Registrar, Discovery, Close, and
// Backend "nacos"):
//
//   - Instances are ephemeral: the server keeps them while the client's
//     gRPC connection lives, and drops them when it ends (Close, a crash).
//     After the server restarts, the SDK connects again and registers them
//     again by itself ("redo"), subscriptions included, without a call from
//     the application.
//   - Service names are used as they are, never with a suffix, in the
//     configured group (default DEFAULT_GROUP) and cluster (default
//     DEFAULT): what Hertz, Kitex, Spring Cloud and Kratos clients look up.
//   - Version goes into the metadata under "version" and the instance ID
//     under "instance_id"; [WithKratos] adds "kind": "http" as well, so
//     that Kratos HTTP clients take the instance.
//   - Weight maps to the Nacos weight divided by 100:
//     [registry.DefaultWeight] (100) is the Nacos default weight 1.0, and a
//     Nacos weight w reads back as round(w*100), at least 1.
//   - GetService and Watch return healthy, enabled instances with a
//     positive weight. After the first request for a service they read the
//     SDK's copy, which the server keeps current by push: during a Nacos
//     outage they keep answering with the last known instances.
//
// No SDK call takes a context. Every call made here runs in its own
// goroutine and is waited for until it returns or the caller's context is
// done; in the latter case the call may still complete in the background
// (each SDK request is bounded by [the timeout (WithTimeout)]), and Close waits for
// it. The calls of one Registry run one at a time (see below).
//
// What the SDK leaves behind, whatever the caller does:
//
//   - Each client listens on a random UDP port between 54951 and 55950 on
//     all interfaces (its Nacos 1.x push receiver) and keeps it, with a
//     goroutine blocked reading it, until the process exits; CloseClient
//     does not stop it.
//   - Its log file rotation goroutine (lumberjack) runs until the process
//     exits.
//   - It writes a log and a cache of service lists to disk: under
//     [DefaultSDKDir] (os.TempDir()/gingov-nacos) unless [WithLogDir] and
//     [WithCacheDir] say otherwise (the SDK's default is next to the
//     executable).
//   - Its reconnection code reads and writes the connection state without
//     synchronisation (a data race the race detector reports when the
//     server goes away under a live client). This package runs its calls
//     one at a time so that they do not race each other; they can still
//     race the SDK's reconnection goroutine while the server is away.
package nacos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
)

// Defaults of the options.
const (
	// DefaultGroup is the group of registered and discovered services.
	DefaultGroup = "DEFAULT_GROUP"
	// DefaultCluster is the cluster instances register in.
	DefaultCluster = "DEFAULT"
	// DefaultTimeout bounds each SDK request.
	DefaultTimeout = 3 * time.Second
	// DefaultLogLevel is the level of the SDK's own log.
	DefaultLogLevel = "warn"
)

// DefaultSDKDir is where the SDK writes its log ("log") and its cache of
// service lists ("cache") unless [WithLogDir] and [WithCacheDir] say
// otherwise (the SDK's own default is next to the executable).
var DefaultSDKDir = filepath.Join(os.TempDir(), "gingov-nacos")

// Metadata keys this package writes.
const (
	// MetadataVersion holds ServiceInstance.Version.
	MetadataVersion = "version"
	// MetadataID holds ServiceInstance.ID, so that discovery returns the ID
	// the instance registered with. Instances registered by other clients
	// lack it; their ID is the one Nacos assigned.
	MetadataID = "instance_id"
	// MetadataKind is "http" in Kratos-compatible mode.
	MetadataKind = "kind"
)

// maxWeight is the largest ServiceInstance.Weight: Nacos accepts weights
// up to 10000, which is 1,000,000 here.
const maxWeight = 10000 * 100

// backend names this package in [registry.Event]s.
const backend = "nacos"

// Retries of failed SDK requests wait by registry.Backoff from minBackoff
// doubling to maxBackoff, with jitter.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// Option configures [New].
type Option interface{ applyNacos(*config) }

type option func(*config)

func (f option) applyNacos(c *config) { f(c) }

type config struct {
	namespace         string
	group             string
	cluster           string
	discoveryClusters []string
	username          string
	password          string
	timeout           time.Duration
	logDir            string
	cacheDir          string
	logLevel          string
	kratos            bool
	onEvent           func(context.Context, registry.Event)
	onEventSet        bool
	logger            *slog.Logger
}

// WithNamespace sets the namespace ID (default: empty, the public
// namespace). It must have no space or slash.
func WithNamespace(id string) Option { return option(func(c *config) { c.namespace = id }) }

// WithGroup sets the group of registered and discovered services (default
// [DefaultGroup]). It must be non-empty, without spaces, commas or "@@".
func WithGroup(g string) Option { return option(func(c *config) { c.group = g }) }

// WithCluster sets the cluster that instances register in (default
// [DefaultCluster]); same rules as WithGroup.
func WithCluster(cl string) Option { return option(func(c *config) { c.cluster = cl }) }

// WithDiscoveryClusters restricts GetService and Watch to instances in
// these clusters (default: none given, every cluster); same rules as
// WithGroup for each.
func WithDiscoveryClusters(clusters ...string) Option {
	return option(func(c *config) { c.discoveryClusters = append([]string(nil), clusters...) })
}

// WithAuth sets the username and password, for a server with
// authentication on (default: none).
func WithAuth(username, password string) Option {
	return option(func(c *config) { c.username, c.password = username, password })
}

// WithTimeout bounds each SDK request (default [DefaultTimeout]; at least
// 1 ms). Register and GetService retry failed requests until their
// context is done.
func WithTimeout(d time.Duration) Option { return option(func(c *config) { c.timeout = d }) }

// WithLogDir sets where the SDK writes its log (default "log" under
// [DefaultSDKDir]).
func WithLogDir(dir string) Option { return option(func(c *config) { c.logDir = dir }) }

// WithCacheDir sets where the SDK writes its cache of service lists
// (default "cache" under [DefaultSDKDir]).
func WithCacheDir(dir string) Option { return option(func(c *config) { c.cacheDir = dir }) }

// WithLogLevel sets the level of the SDK's own log: "debug", "info",
// "warn" or "error" (default [DefaultLogLevel]).
func WithLogLevel(level string) Option { return option(func(c *config) { c.logLevel = level }) }

// WithKratos adds the metadata "kind": "http" that Kratos clients select
// HTTP endpoints by, and "version" even when empty. Names stay plain (no
// ".http" suffix): Kratos clients look up plain names. Default: off.
func WithKratos() Option { return option(func(c *config) { c.kratos = true }) }

// WithOnEvent sets a hook called for each registration event (Registered,
// RegisterFailed per failed attempt, Deregistered, DeregisterFailed), with
// the context of Register or Deregister, synchronously on their
// goroutine: it must not block. Default: none; a nil fn is an error.
func WithOnEvent(fn func(context.Context, registry.Event)) Option {
	return option(func(c *config) { c.onEvent, c.onEventSet = fn, true })
}

// WithLogger sets the logger of failed attempts (default, and for a nil
// l: the kit's JSON logger, logging.Default()).
func WithLogger(l *slog.Logger) Option { return option(func(c *config) { c.logger = l }) }

// newConfig applies opts over the defaults, checks the result and returns
// the SDK's server configs.
func newConfig(servers []string, opts []Option) (config, []constant.ServerConfig, error) {
	c := config{
		group:    DefaultGroup,
		cluster:  DefaultCluster,
		timeout:  DefaultTimeout,
		logDir:   filepath.Join(DefaultSDKDir, "log"),
		cacheDir: filepath.Join(DefaultSDKDir, "cache"),
		logLevel: DefaultLogLevel,
	}
	for i, o := range opts {
		if o == nil {
			return c, nil, fmt.Errorf("nacos: option %d is nil", i+1)
		}
		o.applyNacos(&c)
	}
	if len(servers) == 0 {
		return c, nil, errors.New("nacos: no servers")
	}
	scs := make([]constant.ServerConfig, 0, len(servers))
	for _, s := range servers {
		host, portStr, err := net.SplitHostPort(s)
		if err != nil {
			return c, nil, fmt.Errorf("nacos: server %q is not host:port: %w", s, err)
		}
		if host == "" {
			return c, nil, fmt.Errorf("nacos: server %q has no host", s)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 || port > 65535-1000 {
			return c, nil, fmt.Errorf("nacos: server %q: port must be 1..64535 (gRPC is on port+1000)", s)
		}
		scs = append(scs, *constant.NewServerConfig(host, port))
	}
	if strings.ContainsAny(c.namespace, " \t\n/") {
		return c, nil, fmt.Errorf("nacos: WithNamespace: %q has a space or slash", c.namespace)
	}
	if err := checkName("WithGroup", c.group); err != nil {
		return c, nil, err
	}
	if err := checkName("WithCluster", c.cluster); err != nil {
		return c, nil, err
	}
	for _, cl := range c.discoveryClusters {
		if err := checkName("WithDiscoveryClusters", cl); err != nil {
			return c, nil, err
		}
	}
	if c.timeout < time.Millisecond {
		return c, nil, fmt.Errorf("nacos: WithTimeout: %v is under 1 ms", c.timeout)
	}
	if c.logDir == "" {
		return c, nil, errors.New("nacos: WithLogDir: empty directory")
	}
	if c.cacheDir == "" {
		return c, nil, errors.New("nacos: WithCacheDir: empty directory")
	}
	switch c.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, nil, fmt.Errorf("nacos: WithLogLevel: %q is not debug, info, warn or error", c.logLevel)
	}
	if c.onEventSet && c.onEvent == nil {
		return c, nil, errors.New("nacos: WithOnEvent: nil function")
	}
	c.logger = logging.OrDefault(c.logger)
	return c, scs, nil
}

// Registry is a Nacos naming client. It is safe for concurrent use.
type Registry struct {
	cfg    config
	client naming_client.INamingClient
	logger *slog.Logger

	mu         sync.Mutex
	registered map[string][]*registry.ServiceInstance // by service name
	regSem     chan struct{}                          // see lockRegistrations
	watchers   map[*watcher]struct{}
	closed     bool

	subs map[string]*vo.SubscribeParam // GetService's subscriptions, by service name

	sdkMu sync.Mutex     // held by each SDK request; see call
	calls sync.WaitGroup // SDK calls still running
}

var _ registry.Registry = (*Registry)(nil)

// ErrClosed is returned by calls on a closed Registry.
var ErrClosed = errors.New("nacos: registry closed")

// New creates the SDK client for servers, the HTTP host:port of each
// Nacos server (the SDK talks gRPC on port+1000, the Nacos 2.x
// convention, so port must be at most 64535). The client connects in the
// background: New does not wait for the server (Register and GetService
// retry until it answers).
func New(servers []string, opts ...Option) (*Registry, error) {
	cfg, scs, err := newConfig(servers, opts)
	if err != nil {
		return nil, err
	}
	ccfg := constant.NewClientConfig(
		constant.WithNamespaceId(cfg.namespace),
		constant.WithUsername(cfg.username),
		constant.WithPassword(cfg.password),
		constant.WithTimeoutMs(uint64(cfg.timeout/time.Millisecond)),
		constant.WithLogDir(cfg.logDir),
		constant.WithCacheDir(cfg.cacheDir),
		constant.WithLogLevel(cfg.logLevel),
		// Start from what the server says, not a cache left on disk.
		constant.WithNotLoadCacheAtStart(true),
		// Without this the SDK ignores a push with no instances: the last
		// instance to go would stay in GetService and Watch.
		constant.WithUpdateCacheWhenEmpty(true),
	)
	client, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: ccfg, ServerConfigs: scs})
	if err != nil {
		return nil, fmt.Errorf("nacos: create client: %w", err)
	}
	return &Registry{
		cfg:        cfg,
		client:     client,
		logger:     cfg.logger,
		registered: map[string][]*registry.ServiceInstance{},
		regSem:     make(chan struct{}, 1),
		watchers:   map[*watcher]struct{}{},
		subs:       map[string]*vo.SubscribeParam{},
	}, nil
}

// Backend returns "nacos", the name of this backend in events, readiness
// and metric labels.
func (r *Registry) Backend() string { return backend }

// checkName rejects group and cluster names that Nacos would split or
// reject: empty, with whitespace, or with its "@@" and "," separators.
func checkName(field, v string) error {
	if v == "" || strings.ContainsAny(v, " \t\n,") || strings.Contains(v, "@@") {
		return fmt.Errorf("nacos: %s %q is empty or has a space, comma or \"@@\"", field, v)
	}
	return nil
}

// Register registers ins as an ephemeral instance and returns once the
// server has accepted it. Failed attempts (the client still connecting,
// the server down) are retried with backoff until ctx is done; each one is
// reported as a RegisterFailed event. When Register fails, the server and
// the SDK's redo list are put back as they were before (in the
// background, once the last attempt is over), so the instance does not
// appear later.
//
// Registering the same address again updates its weight and metadata. A
// Registry may register several instances of one service: the SDK keeps
// one registration per service and client, so the second one on makes it
// a batch registration of all of them.
func (r *Registry) Register(ctx context.Context, ins *registry.ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	if ins.Weight > maxWeight {
		return fmt.Errorf("nacos: ServiceInstance.Weight %d is over %d (Nacos weight 10000)", ins.Weight, maxWeight)
	}
	param := r.registerParam(ins)
	unlock, err := r.lockRegistrations(ctx)
	if err != nil {
		return fmt.Errorf("nacos: register %s at %s: %w", ins.Name, ins.Address, err)
	}
	defer unlock()
	committed := r.registeredOf(ins.Name)
	next := append(without(committed, ins.Address), clone(ins))
	params := r.paramsOf(next)

	done, err := r.retryCall(ctx, func() error { return r.publish(params) }, func(attempt int, err error) {
		r.emit(ctx, registry.RegisterFailed, ins, err)
		r.logger.WarnContext(ctx, "nacos: register failed, retrying",
			slog.String("service", ins.Name), slog.String("addr", ins.Address),
			slog.Int("attempt", attempt), slog.String("error", err.Error()))
	})
	if err == nil {
		r.setRegistered(ins.Name, next)
		r.emit(ctx, registry.Registered, ins, nil)
		return nil
	}
	// Given up. The SDK put the registration in its redo list before its
	// request, and would make it after the next reconnect.
	r.restore(done, param, committed)
	return fmt.Errorf("nacos: register %s at %s: %w", ins.Name, ins.Address, err)
}

// publish registers the set of one service's instances of this Registry:
// one with RegisterInstance, several with BatchRegisterInstance. The SDK
// keeps the last call per service for its redo after a reconnect.
func (r *Registry) publish(params []vo.RegisterInstanceParam) error {
	var ok bool
	var err error
	if len(params) == 1 {
		ok, err = r.client.RegisterInstance(params[0])
	} else {
		ok, err = r.client.BatchRegisterInstance(vo.BatchRegisterInstanceParam{
			ServiceName: params[0].ServiceName, GroupName: params[0].GroupName, Instances: params,
		})
	}
	if err == nil && !ok {
		err = errors.New("server refused the registration")
	}
	return err
}

// unpublish deregisters one instance. The SDK drops its redo entry for the
// whole service, and a Nacos server drops every instance the client
// registered in it: the caller publishes the others again.
func (r *Registry) unpublish(p vo.RegisterInstanceParam) error {
	ok, err := r.client.DeregisterInstance(vo.DeregisterInstanceParam{
		Ip: p.Ip, Port: p.Port, Cluster: p.ClusterName, ServiceName: p.ServiceName,
		GroupName: p.GroupName, Ephemeral: true,
	})
	if err == nil && !ok {
		err = errors.New("server refused the deregistration")
	}
	return err
}

// restore brings the server and the SDK's redo list back to committed
// once the attempt that done closes for is over, in the background: it
// removes dropped and publishes committed again.
func (r *Registry) restore(done <-chan struct{}, dropped vo.RegisterInstanceParam, committed []*registry.ServiceInstance) {
	params := r.paramsOf(committed)
	r.calls.Add(1)
	go func() {
		defer r.calls.Done()
		<-done
		r.sdkMu.Lock()
		defer r.sdkMu.Unlock()
		_ = r.unpublish(dropped)
		if len(params) > 0 {
			_ = r.publish(params) // in the redo list even if it fails now
		}
	}()
}

// Deregister removes ins, retrying failed attempts until ctx is done. It
// reports Deregistered, or DeregisterFailed when ctx ends first. Other
// instances of the same service registered by this Registry are
// registered again right after (Nacos removes them with ins).
func (r *Registry) Deregister(ctx context.Context, ins *registry.ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	unlock, err := r.lockRegistrations(ctx)
	if err != nil {
		err = fmt.Errorf("nacos: deregister %s at %s: %w", ins.Name, ins.Address, err)
		r.emit(ctx, registry.DeregisterFailed, ins, err)
		return err
	}
	defer unlock()
	rest := without(r.registeredOf(ins.Name), ins.Address)
	r.setRegistered(ins.Name, rest)
	param := r.registerParam(ins)
	_, err = r.retryCall(ctx, func() error { return r.unpublish(param) }, func(_ int, err error) {
		r.logger.WarnContext(ctx, "nacos: deregister failed, retrying",
			slog.String("service", ins.Name), slog.String("addr", ins.Address), slog.String("error", err.Error()))
	})
	if err != nil {
		err = fmt.Errorf("nacos: deregister %s at %s: %w", ins.Name, ins.Address, err)
		r.emit(ctx, registry.DeregisterFailed, ins, err)
		return err
	}
	r.emit(ctx, registry.Deregistered, ins, nil)
	if len(rest) == 0 {
		return nil
	}
	params := r.paramsOf(rest)
	if _, err := r.retryCall(ctx, func() error { return r.publish(params) }, func(int, error) {}); err != nil {
		// In the SDK's redo list all the same: registered at the next
		// reconnect at the latest.
		r.logger.ErrorContext(ctx, "nacos: registering the service's other instances again failed",
			slog.String("service", ins.Name), slog.Int("instances", len(rest)), slog.String("error", err.Error()))
		return fmt.Errorf("nacos: deregister %s at %s: registering the other %d instances again: %w", ins.Name, ins.Address, len(rest), err)
	}
	return nil
}

// lockRegistrations serialises Register and Deregister, which read and
// write the set of instances of a service as one step.
func (r *Registry) lockRegistrations(ctx context.Context) (unlock func(), err error) {
	select {
	case r.regSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.isClosed() {
		<-r.regSem
		return nil, ErrClosed
	}
	return func() { <-r.regSem }, nil
}

func (r *Registry) registeredOf(name string) []*registry.ServiceInstance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registered[name]
}

func (r *Registry) setRegistered(name string, set []*registry.ServiceInstance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(set) == 0 {
		delete(r.registered, name)
		return
	}
	r.registered[name] = set
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Registry) paramsOf(set []*registry.ServiceInstance) []vo.RegisterInstanceParam {
	params := make([]vo.RegisterInstanceParam, len(set))
	for i, ins := range set {
		params[i] = r.registerParam(ins)
	}
	return params
}

// without returns a new slice of the instances of set not at addr.
func without(set []*registry.ServiceInstance, addr string) []*registry.ServiceInstance {
	out := make([]*registry.ServiceInstance, 0, len(set)+1)
	for _, in := range set {
		if in.Address != addr {
			out = append(out, in)
		}
	}
	return out
}

// Close stops every watcher and closes the SDK client; the server drops
// the instances still registered when the connection ends. Close waits for
// SDK calls still running, up to the timeout (WithTimeout) plus one second.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ws := make([]*watcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	for _, w := range ws {
		_ = w.stop(ErrClosed)
	}
	done := make(chan struct{})
	go func() {
		r.calls.Wait()
		r.sdkMu.Lock()
		r.client.CloseClient()
		r.sdkMu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(r.cfg.timeout + time.Second):
		return errors.New("nacos: close: SDK calls still running after the timeout; the client closes when they end")
	}
}

// call runs fn in its own goroutine (no SDK call takes a context) and
// waits until it returns or ctx is done. done is closed when fn returns,
// which may be after call did.
//
// The calls of one Registry run one at a time: nacos-sdk-go v2.3.5 reads
// its connection state without synchronisation while a request waits for
// a connection, which is a data race between concurrent requests. A call
// whose ctx ends while it waits for its turn does not run fn.
func (r *Registry) call(ctx context.Context, fn func() error) (done <-chan struct{}, err error) {
	ch := make(chan struct{})
	errc := make(chan error, 1)
	r.calls.Add(1)
	go func() {
		defer r.calls.Done()
		defer close(ch)
		r.sdkMu.Lock()
		defer r.sdkMu.Unlock()
		if err := ctx.Err(); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	select {
	case err := <-errc:
		return ch, err
	case <-ctx.Done():
		// fn may have succeeded at the same moment: a request the server
		// answered is not reported as failed. A failure is the context's.
		select {
		case err := <-errc:
			if err == nil {
				return ch, nil
			}
		default:
		}
		return ch, ctx.Err()
	}
}

// retryCall calls fn (through call) until it succeeds or ctx is done,
// with backoff; failed is told of each failure that will be retried. When
// ctx ends first the error is the context's (wrapping the last failure
// when no attempt was running), so callers see why they gave up.
func (r *Registry) retryCall(ctx context.Context, fn func() error, failed func(attempt int, err error)) (done <-chan struct{}, err error) {
	backoff := registry.Backoff{Min: minBackoff, Max: maxBackoff}
	for attempt := 1; ; attempt++ {
		done, err = r.call(ctx, fn)
		if err == nil {
			return done, nil
		}
		if ctx.Err() != nil {
			return done, givenUp(ctx, err)
		}
		if failed != nil {
			failed(attempt, err)
		}
		if !sleep(ctx, backoff.Delay(attempt-1)) {
			return done, givenUp(ctx, err)
		}
	}
}

// givenUp is the error of a retry loop whose context ended: the context's
// error, saying whether the last attempt was still running or how it failed.
func givenUp(ctx context.Context, last error) error {
	if errors.Is(last, ctx.Err()) {
		return fmt.Errorf("%w (the last attempt was still running)", last)
	}
	return fmt.Errorf("%w (the last attempt failed: %w)", ctx.Err(), last)
}

// registerParam maps a validated instance.
func (r *Registry) registerParam(ins *registry.ServiceInstance) vo.RegisterInstanceParam {
	host, port, _ := splitAddr(ins.Address) // checked by Validate
	md := make(map[string]string, len(ins.Metadata)+3)
	for k, v := range ins.Metadata {
		md[k] = v
	}
	if ins.Version != "" || r.cfg.kratos {
		md[MetadataVersion] = ins.Version
	}
	if r.cfg.kratos {
		md[MetadataKind] = "http"
	}
	md[MetadataID] = ins.InstanceID()
	return vo.RegisterInstanceParam{
		Ip:          host,
		Port:        port,
		Weight:      toNacosWeight(ins.EffectiveWeight()),
		Enable:      true,
		Healthy:     true,
		Metadata:    md,
		ClusterName: r.cfg.cluster,
		ServiceName: ins.Name,
		GroupName:   r.cfg.group,
		Ephemeral:   true, // over gRPC; false would be a persistent instance over HTTP
	}
}

// toNacosWeight maps a registry weight (100 = default) to a Nacos weight
// (1.0 = default).
func toNacosWeight(w int) float64 { return float64(w) / 100 }

// fromNacosWeight is the inverse of toNacosWeight, rounded; a positive
// Nacos weight never maps to 0 (which would mean DefaultWeight).
func fromNacosWeight(w float64) int {
	n := int(w*100 + 0.5)
	if n < 1 {
		return 1
	}
	return n
}

func splitAddr(addr string) (string, uint64, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("nacos: address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("nacos: address %q: %w", addr, err)
	}
	return host, port, nil
}

func (r *Registry) emit(ctx context.Context, kind registry.EventKind, ins *registry.ServiceInstance, err error) {
	if r.cfg.onEvent == nil {
		return
	}
	r.cfg.onEvent(ctx, registry.Event{Backend: backend, Kind: kind, Instance: ins, Err: err, Time: time.Now()})
}

func clone(ins *registry.ServiceInstance) *registry.ServiceInstance {
	c := *ins
	if ins.Metadata != nil {
		c.Metadata = make(map[string]string, len(ins.Metadata))
		for k, v := range ins.Metadata {
			c.Metadata[k] = v
		}
	}
	return &c
}

// sleep waits d and reports true, or reports false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
