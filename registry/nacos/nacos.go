// Package nacos registers Gin services with Nacos and discovers them
// through it, with nacos-sdk-go/v2 over the Nacos 2.x gRPC protocol.
//
// A [Registry] is one SDK naming client. It implements
// [registry.Registrar] and [registry.Discovery]:
//
//   - Instances are ephemeral: the server keeps them while the client's
//     gRPC connection lives, and drops them when it ends (Close, a crash).
//     After the server restarts, the SDK connects again and registers them
//     again by itself ("redo"), without a call from the application.
//   - Service names are used as they are, never with a suffix, in the
//     configured group (default DEFAULT_GROUP) and cluster (default
//     DEFAULT): what Hertz, Kitex, Spring Cloud and Kratos clients look up.
//   - Version goes into the metadata under "version"; [Config.Kratos] adds
//     "kind": "http" as well, so that Kratos HTTP clients take the instance.
//   - Weight maps to the Nacos weight divided by 100:
//     [registry.DefaultWeight] (100) is the Nacos default weight 1.0, and a
//     Nacos weight w reads back as round(w*100).
//
// No SDK call takes a context. Every call made here runs in its own
// goroutine and is waited for until it returns or the caller's context is
// done; in the latter case the call may still complete in the background
// (bounded by [Config.Timeout]), and Close waits for it.
//
// The SDK keeps one registered instance per service and client: a
// Registry registers at most one instance of each service (a second
// address for the same name is an error; use a second Registry).
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

	"github.com/gingov/gingov/registry"
)

// Defaults of [Config].
const (
	DefaultGroup    = "DEFAULT_GROUP"
	DefaultCluster  = "DEFAULT"
	DefaultTimeout  = 3 * time.Second
	DefaultLogLevel = "warn"
)

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

// Config configures a [Registry]. Only Servers is required.
type Config struct {
	// Servers lists the HTTP host:port of each Nacos server. The SDK talks
	// gRPC on port+1000 (the Nacos 2.x convention), so port must be at most
	// 64535.
	Servers []string
	// Namespace is the namespace ID; empty means the public namespace.
	Namespace string
	// Group of registered and discovered services; default DefaultGroup.
	Group string
	// Cluster that instances register in; default DefaultCluster.
	Cluster string
	// DiscoveryClusters restricts GetService and Watch to instances in
	// these clusters; empty means every cluster.
	DiscoveryClusters []string
	// Username and Password, when the server has authentication on.
	Username string
	Password string
	// Timeout bounds each SDK request (default DefaultTimeout). Register
	// and GetService retry failed requests until their context is done.
	Timeout time.Duration
	// LogDir and CacheDir are where the SDK writes its log and its cache
	// of service lists. Default: "log" and "cache" in a "gingov-nacos"
	// directory under os.TempDir() (the SDK's own default is next to the
	// executable).
	LogDir   string
	CacheDir string
	// LogLevel of the SDK's own log: "debug", "info", "warn" or "error";
	// default DefaultLogLevel.
	LogLevel string
	// Kratos adds the metadata "kind": "http" that Kratos clients select
	// HTTP endpoints by. Names stay plain (no ".http" suffix): Kratos
	// clients look up plain names.
	Kratos bool
	// OnEvent, when set, is called for each registration event
	// (Registered, RegisterFailed per failed attempt, Deregistered,
	// DeregisterFailed), synchronously in the goroutine of Register or
	// Deregister: it must return quickly.
	OnEvent func(registry.Event)
	// Logger logs failed attempts; default slog.Default().
	Logger *slog.Logger
}

// Registry is a Nacos naming client. It is safe for concurrent use.
type Registry struct {
	cfg    Config
	client naming_client.INamingClient
	logger *slog.Logger

	mu         sync.Mutex
	registered map[string]*registry.ServiceInstance // by service name
	watchers   map[*watcher]struct{}
	closed     bool

	subs map[string]*vo.SubscribeParam // GetService's subscriptions, by service name

	sdkMu sync.Mutex     // held by each SDK request; see call
	calls sync.WaitGroup // SDK calls still running
}

var (
	_ registry.Registrar = (*Registry)(nil)
	_ registry.Discovery = (*Registry)(nil)
)

// ErrClosed is returned by calls on a closed Registry.
var ErrClosed = errors.New("nacos: registry closed")

// New validates cfg and creates the SDK client, which connects in the
// background: New does not wait for the server (Register and GetService
// retry until it answers).
func New(cfg Config) (*Registry, error) {
	servers, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ccfg := constant.NewClientConfig(
		constant.WithNamespaceId(cfg.Namespace),
		constant.WithUsername(cfg.Username),
		constant.WithPassword(cfg.Password),
		constant.WithTimeoutMs(uint64(cfg.Timeout/time.Millisecond)),
		constant.WithLogDir(cfg.LogDir),
		constant.WithCacheDir(cfg.CacheDir),
		constant.WithLogLevel(cfg.LogLevel),
		// Start from what the server says, not a cache left on disk.
		constant.WithNotLoadCacheAtStart(true),
		// Without this the SDK ignores a push with no instances: the last
		// instance to go would stay in GetService and Watch.
		constant.WithUpdateCacheWhenEmpty(true),
	)
	client, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: ccfg, ServerConfigs: servers})
	if err != nil {
		return nil, fmt.Errorf("nacos: create client: %w", err)
	}
	return &Registry{
		cfg:        cfg,
		client:     client,
		logger:     cfg.Logger,
		registered: map[string]*registry.ServiceInstance{},
		watchers:   map[*watcher]struct{}{},
		subs:       map[string]*vo.SubscribeParam{},
	}, nil
}

// validate fills in the defaults and returns the SDK's server configs.
func (c *Config) validate() ([]constant.ServerConfig, error) {
	if len(c.Servers) == 0 {
		return nil, errors.New("nacos: Config.Servers is empty")
	}
	servers := make([]constant.ServerConfig, 0, len(c.Servers))
	for _, s := range c.Servers {
		host, portStr, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("nacos: Config.Servers: %q is not host:port: %w", s, err)
		}
		if host == "" {
			return nil, fmt.Errorf("nacos: Config.Servers: %q has no host", s)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 || port > 65535-1000 {
			return nil, fmt.Errorf("nacos: Config.Servers: %q: port must be 1..64535 (gRPC is on port+1000)", s)
		}
		servers = append(servers, *constant.NewServerConfig(host, port))
	}
	if strings.ContainsAny(c.Namespace, " \t\n/") {
		return nil, fmt.Errorf("nacos: Config.Namespace %q has a space or slash", c.Namespace)
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if err := checkName("Config.Group", c.Group); err != nil {
		return nil, err
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if err := checkName("Config.Cluster", c.Cluster); err != nil {
		return nil, err
	}
	for _, cl := range c.DiscoveryClusters {
		if err := checkName("Config.DiscoveryClusters", cl); err != nil {
			return nil, err
		}
	}
	switch {
	case c.Timeout < 0:
		return nil, fmt.Errorf("nacos: Config.Timeout %v is negative", c.Timeout)
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < time.Millisecond:
		return nil, fmt.Errorf("nacos: Config.Timeout %v is under 1 ms", c.Timeout)
	}
	dir := filepath.Join(os.TempDir(), "gingov-nacos")
	if c.LogDir == "" {
		c.LogDir = filepath.Join(dir, "log")
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(dir, "cache")
	}
	switch c.LogLevel {
	case "":
		c.LogLevel = DefaultLogLevel
	case "debug", "info", "warn", "error":
	default:
		return nil, fmt.Errorf("nacos: Config.LogLevel %q is not debug, info, warn or error", c.LogLevel)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return servers, nil
}

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
// reported as a RegisterFailed event. When Register fails, the instance is
// removed from the SDK's redo list so that it does not appear later.
//
// Registering the same instance again updates its weight and metadata.
func (r *Registry) Register(ctx context.Context, ins *registry.ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	if ins.Weight > maxWeight {
		return fmt.Errorf("nacos: ServiceInstance.Weight %d is over %d (Nacos weight 10000)", ins.Weight, maxWeight)
	}
	param, err := r.registerParam(ins)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if prev, ok := r.registered[ins.Name]; ok && prev.Address != ins.Address {
		r.mu.Unlock()
		return fmt.Errorf("nacos: %s is already registered at %s by this Registry; use one Registry per instance of a service", ins.Name, prev.Address)
	}
	r.mu.Unlock()

	backoff := newBackoff()
	for attempt := 1; ; attempt++ {
		done, err := r.call(ctx, func() error {
			ok, err := r.client.RegisterInstance(param)
			if err == nil && !ok {
				err = errors.New("server refused the instance")
			}
			return err
		})
		if err == nil {
			r.mu.Lock()
			r.registered[ins.Name] = clone(ins)
			r.mu.Unlock()
			r.emit(registry.Registered, ins, nil)
			return nil
		}
		if ctx.Err() == nil {
			r.emit(registry.RegisterFailed, ins, err)
			r.logger.WarnContext(ctx, "nacos: register failed, retrying",
				slog.String("service", ins.Name), slog.String("addr", ins.Address),
				slog.Int("attempt", attempt), slog.String("error", err.Error()))
			if wait := backoff(); sleep(ctx, wait) {
				continue
			}
		}
		// Given up: the SDK put the instance in its redo list before its
		// request, and would register it after the next reconnect.
		r.forget(done, param)
		r.mu.Lock()
		if prev, ok := r.registered[ins.Name]; ok && prev.Address == ins.Address {
			delete(r.registered, ins.Name)
		}
		r.mu.Unlock()
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (last attempt still running)", err)
		}
		return fmt.Errorf("nacos: register %s at %s: %w", ins.Name, ins.Address, err)
	}
}

// forget deregisters param once the attempt that done closes for is over,
// in the background, so that the SDK neither keeps nor redoes a
// registration that Register reported as failed.
func (r *Registry) forget(done <-chan struct{}, p vo.RegisterInstanceParam) {
	r.calls.Add(1)
	go func() {
		defer r.calls.Done()
		<-done
		r.sdkMu.Lock()
		defer r.sdkMu.Unlock()
		_, _ = r.client.DeregisterInstance(vo.DeregisterInstanceParam{
			Ip: p.Ip, Port: p.Port, Cluster: p.ClusterName, ServiceName: p.ServiceName,
			GroupName: p.GroupName, Ephemeral: true,
		})
	}()
}

// Deregister removes ins, retrying failed attempts until ctx is done. It
// reports Deregistered, or DeregisterFailed when ctx ends first.
func (r *Registry) Deregister(ctx context.Context, ins *registry.ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	host, port, _ := splitAddr(ins.Address) // checked by Validate
	param := vo.DeregisterInstanceParam{
		Ip: host, Port: port, Cluster: r.cfg.Cluster, ServiceName: ins.Name,
		GroupName: r.cfg.Group, Ephemeral: true,
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if prev, ok := r.registered[ins.Name]; ok && prev.Address == ins.Address {
		delete(r.registered, ins.Name)
	}
	r.mu.Unlock()

	backoff := newBackoff()
	for {
		_, err := r.call(ctx, func() error {
			ok, err := r.client.DeregisterInstance(param)
			if err == nil && !ok {
				err = errors.New("server refused the deregistration")
			}
			return err
		})
		if err == nil {
			r.emit(registry.Deregistered, ins, nil)
			return nil
		}
		if ctx.Err() == nil {
			r.logger.WarnContext(ctx, "nacos: deregister failed, retrying",
				slog.String("service", ins.Name), slog.String("addr", ins.Address), slog.String("error", err.Error()))
			if sleep(ctx, backoff()) {
				continue
			}
		}
		err = fmt.Errorf("nacos: deregister %s at %s: %w", ins.Name, ins.Address, err)
		r.emit(registry.DeregisterFailed, ins, err)
		return err
	}
}

// Close stops every watcher and closes the SDK client; the server drops
// the instances still registered when the connection ends. Close waits for
// SDK calls still running, up to Config.Timeout plus one second.
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
		w.cancel(ErrClosed)
		_ = w.Stop()
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
	case <-time.After(r.cfg.Timeout + time.Second):
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
		return ch, ctx.Err()
	}
}

func (r *Registry) registerParam(ins *registry.ServiceInstance) (vo.RegisterInstanceParam, error) {
	host, port, err := splitAddr(ins.Address)
	if err != nil {
		return vo.RegisterInstanceParam{}, err
	}
	md := make(map[string]string, len(ins.Metadata)+3)
	for k, v := range ins.Metadata {
		md[k] = v
	}
	if ins.Version != "" || r.cfg.Kratos {
		md[MetadataVersion] = ins.Version
	}
	if r.cfg.Kratos {
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
		ClusterName: r.cfg.Cluster,
		ServiceName: ins.Name,
		GroupName:   r.cfg.Group,
		Ephemeral:   true, // over gRPC; false would be a persistent instance over HTTP
	}, nil
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

func (r *Registry) emit(kind registry.EventKind, ins *registry.ServiceInstance, err error) {
	if r.cfg.OnEvent == nil {
		return
	}
	r.cfg.OnEvent(registry.Event{Backend: backend, Kind: kind, Instance: ins, Err: err, Time: time.Now()})
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

// newBackoff returns waits from 50 ms doubling to 1 s.
func newBackoff() func() time.Duration {
	d := 25 * time.Millisecond
	return func() time.Duration {
		d = min(2*d, time.Second)
		return d
	}
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
