// Package eureka registers Gin services with, and discovers them from,
// Eureka servers (Netflix Eureka or Spring Cloud Netflix Eureka) over their
// REST API, as a backend of gingov's registry package ([registry.Registrar]
// and [registry.Discovery]), with its own small JSON client over net/http:
// it links no SDK.
//
// # Registration
//
// [New] takes the servers' Eureka base URLs, as a Spring client's
// eureka.client.service-url.defaultZone lists them
// ("http://eureka-1:8761/eureka"). Each request goes to the server that
// last answered and fails over to the next one on a network error or a
// 5xx.
//
// Register sends the instance, then a goroutine per instance renews its
// lease every renewal interval; when a heartbeat gets 404 (the server
// evicted the instance or restarted empty) it registers again at once, and
// on network errors it keeps trying every interval, never giving up, and
// reports [registry.HeartbeatFailed]. [Registry.SetStatus] with
// [OutOfService] takes an instance out of every client's list (at the
// client's next registry fetch) while it keeps serving, for a drain.
//
// # Deregistration in a peered cluster
//
// Eureka servers replicate every registration, heartbeat and cancellation
// to their peers, in batches, and a peer that is sent a heartbeat for an
// instance it no longer has registers the instance again, with the status
// the sender holds. A server whose defaultZone names itself (Spring's
// standalone setup) is its own peer. So an instance cancelled just after a
// heartbeat comes back, and with a plain cancel it comes back UP, for a
// whole lease. Deregister therefore first sets the instance DOWN (PUT
// .../status?value=DOWN; a copy brought back by replication is then DOWN,
// which no client routes to), then cancels it (DELETE), then reads it back
// from every configured server (GET /apps/{APP}/{id}) and cancels it again
// where it is listed, in rounds until two replication batches after the
// last heartbeat have passed (at most [DeregisterAttempts] further
// cancels), all within the caller's context: a Deregister right after a
// heartbeat takes about 2 s. This is what Spring's own client does at
// shutdown (DOWN, then cancel), plus the read-back.
//
// # How Spring Cloud clients find the service
//
// The instance is registered under the application name
// strings.ToUpper(Name) with vipAddress and secureVipAddress
// strings.ToLower(Name), which is what a Spring Cloud client's service id
// (spring.application.name, lb://name, @FeignClient name) is matched
// against. hostName and ipAddr are the host of Address, port is its port,
// and healthCheckUrl is http://Address/healthz unless [WithHealthPath] says
// otherwise. The metadata map carries Metadata plus "version" and
// "weight", so those two keys are reserved.
//
// # Discovery
//
// [Registry.GetService] returns the UP instances; Eureka has no push, so a
// [Registry.Watch] watcher polls every [DefaultPollInterval]
// ([WithPollInterval]).
package eureka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
)

// Defaults of the options, the same as a Spring Cloud client's.
const (
	// DefaultRenewalInterval is how often a registered instance sends a
	// heartbeat (leaseInfo.renewalIntervalInSecs).
	DefaultRenewalInterval = 30 * time.Second
	// DefaultLeaseDuration is how long the server keeps an instance
	// without a heartbeat before evicting it (leaseInfo.durationInSecs).
	DefaultLeaseDuration = 90 * time.Second
	// DefaultPollInterval is how often a Watch asks the server for the
	// service's instances (Eureka has no push).
	DefaultPollInterval = 30 * time.Second
	// DefaultTimeout bounds each HTTP request to one server.
	DefaultTimeout = 5 * time.Second
	// DefaultHealthPath is the path of the healthCheckUrl registered with
	// each instance: the liveness probe of registry.Server.
	DefaultHealthPath = registry.DefaultLivenessPath
)

// DeregisterAttempts bounds how many times Deregister cancels an instance
// again after its first cancel, where a peer's replication has brought it
// back.
const DeregisterAttempts = 3

// Timing of Deregister's read-back. A Eureka server sends its replication
// to its peers in batches, every 500 ms; an instance brought back by the
// replication of a heartbeat shows about two batches after the cancel
// (1.1 s measured against Spring Cloud Netflix Eureka 4.1).
const (
	// replicationSettle is how long after the instance's last registration
	// or heartbeat a peer may still bring it back.
	replicationSettle = 2 * time.Second
	// deregisterRecheck spaces the read-back rounds: a bit more than one
	// replication batch, so that a round does not cancel on a peer the
	// copy that the first cancel's own replication is about to remove.
	deregisterRecheck = 700 * time.Millisecond
)

// Status is an instance status as Eureka knows it.
type Status string

// The statuses SetStatus accepts. Only UP instances are discovered.
const (
	Up           Status = "UP"
	Down         Status = "DOWN"
	OutOfService Status = "OUT_OF_SERVICE"
)

// backend names this backend in events.
const backend = "eureka"

// ErrClosed is returned by Register after Close.
var ErrClosed = errors.New("eureka: registry closed")

// Option configures [New].
type Option interface{ applyEureka(*config) }

type option func(*config)

func (f option) applyEureka(c *config) { f(c) }

type config struct {
	renew      time.Duration
	lease      time.Duration
	poll       time.Duration
	timeout    time.Duration
	client     *http.Client
	clientSet  bool
	healthPath string
	logger     *slog.Logger
	onEvent    func(context.Context, registry.Event)
	onEventSet bool
}

// WithRenewalInterval sets how often each instance sends a heartbeat;
// default [DefaultRenewalInterval]. It must be at least a second and below
// the lease duration; the server is told it in whole seconds (rounded up).
func WithRenewalInterval(d time.Duration) Option {
	return option(func(c *config) { c.renew = d })
}

// WithLeaseDuration sets how long the server keeps an instance whose
// heartbeats stopped; default [DefaultLeaseDuration]. It must be at least a
// second and longer than the renewal interval; sent in whole seconds
// (rounded up).
func WithLeaseDuration(d time.Duration) Option {
	return option(func(c *config) { c.lease = d })
}

// WithPollInterval sets how often a Watch polls the server; default
// [DefaultPollInterval]. It must be positive.
func WithPollInterval(d time.Duration) Option {
	return option(func(c *config) { c.poll = d })
}

// WithTimeout bounds each HTTP request to one server (a failover to the
// next server gets a fresh timeout); default [DefaultTimeout]. The
// caller's context bounds the whole call as well. It must be positive.
func WithTimeout(d time.Duration) Option {
	return option(func(c *config) { c.timeout = d })
}

// WithHTTPClient sets the client for every request (TLS, proxies, auth
// transports). Default: a client of the registry's own, whose idle
// connections Close releases. A client given here is left open by Close.
// It must not be nil.
func WithHTTPClient(hc *http.Client) Option {
	return option(func(c *config) { c.client, c.clientSet = hc, true })
}

// WithLogger logs registrations and failures (heartbeat failures at WARN);
// nil (the default) is the kit's JSON logger, logging.Default().
func WithLogger(l *slog.Logger) Option {
	return option(func(c *config) { c.logger = l })
}

// WithOnEvent sets a hook called with every registration event
// (registered, register_failed, heartbeat_failed, deregistered,
// deregister_failed), for metrics. It runs synchronously on the goroutine
// that saw the event: that of Register and Deregister (with their context)
// or an instance's heartbeat goroutine (with the registry's own background
// context); it must not block. fn must not be nil.
func WithOnEvent(fn func(context.Context, registry.Event)) Option {
	return option(func(c *config) { c.onEvent, c.onEventSet = fn, true })
}

// WithHealthPath sets the path of the registered healthCheckUrl; default
// [DefaultHealthPath]. It must start with "/".
func WithHealthPath(p string) Option {
	return option(func(c *config) { c.healthPath = p })
}

func newConfig(opts []Option) (config, error) {
	cfg := config{
		renew:      DefaultRenewalInterval,
		lease:      DefaultLeaseDuration,
		poll:       DefaultPollInterval,
		timeout:    DefaultTimeout,
		healthPath: DefaultHealthPath,
	}
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("eureka: option %d is nil", i+1)
		}
		o.applyEureka(&cfg)
	}
	cfg.logger = logging.OrDefault(cfg.logger)
	switch {
	case cfg.renew < time.Second:
		return cfg, fmt.Errorf("eureka: WithRenewalInterval: %v is below 1s", cfg.renew)
	case cfg.lease < time.Second:
		return cfg, fmt.Errorf("eureka: WithLeaseDuration: %v is below 1s", cfg.lease)
	case cfg.lease <= cfg.renew:
		return cfg, fmt.Errorf("eureka: WithLeaseDuration: %v must be longer than the renewal interval %v", cfg.lease, cfg.renew)
	case cfg.poll <= 0:
		return cfg, fmt.Errorf("eureka: WithPollInterval: %v is not positive", cfg.poll)
	case cfg.timeout <= 0:
		return cfg, fmt.Errorf("eureka: WithTimeout: %v is not positive", cfg.timeout)
	case cfg.clientSet && cfg.client == nil:
		return cfg, errors.New("eureka: WithHTTPClient: nil client")
	case !strings.HasPrefix(cfg.healthPath, "/"):
		return cfg, fmt.Errorf("eureka: WithHealthPath: %q does not start with /", cfg.healthPath)
	case cfg.onEventSet && cfg.onEvent == nil:
		return cfg, errors.New("eureka: WithOnEvent: nil function")
	}
	return cfg, nil
}

// Registry is a Eureka-backed [registry.Registry] (a [registry.Registrar]
// and a [registry.Discovery]).
// It is safe for concurrent use. Close stops its goroutines; it does not
// deregister (the servers evict the instances when their leases end).
type Registry struct {
	servers   []string // base URLs without a trailing slash
	preferred atomic.Int32

	cfg       config
	client    *http.Client
	ownClient bool
	logger    *slog.Logger
	// ctx is done once Close is called; heartbeats and watches derive
	// from it.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
	mu        sync.Mutex
	regs      map[string]*reg // by app/instanceId
	closed    bool
	now       func() time.Time
}

var _ registry.Registry = (*Registry)(nil)

// reg is one registered instance and its heartbeat.
type reg struct {
	mu     sync.Mutex
	ins    registry.ServiceInstance
	status Status
	// lastWrite is when the last registration or heartbeat of ins was
	// answered (or given up): until replicationSettle after it, a peer may
	// replicate it after a cancel.
	lastWrite time.Time
	cancel    context.CancelFunc
	done      chan struct{}
}

func (r *reg) wrote() {
	r.mu.Lock()
	r.lastWrite = time.Now()
	r.mu.Unlock()
}

// New returns a client of the Eureka servers at serverURLs, each the
// server's Eureka base URL as a Spring client's defaultZone names it
// (e.g. "http://127.0.0.1:8761/eureka"). Requests go to the first; the
// others are failovers. New starts nothing and contacts no server.
func New(serverURLs []string, opts ...Option) (*Registry, error) {
	if len(serverURLs) == 0 {
		return nil, errors.New("eureka: no server URL")
	}
	e := &Registry{
		regs: map[string]*reg{},
		now:  time.Now,
	}
	for i, s := range serverURLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("eureka: server URL %d %q: %w", i, s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("eureka: server URL %d %q: scheme must be http or https", i, s)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("eureka: server URL %d %q has no host", i, s)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("eureka: server URL %d %q has a query or fragment", i, s)
		}
		e.servers = append(e.servers, strings.TrimRight(u.String(), "/"))
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	e.cfg, e.logger = cfg, cfg.logger
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if cfg.client != nil {
		e.client = cfg.client
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 4
		e.client, e.ownClient = &http.Client{Transport: tr}, true
	}
	return e, nil
}

// Close stops every heartbeat and watch and waits for the heartbeat
// goroutines to end. It does not deregister. Later calls of Register fail
// with [ErrClosed]; Close is safe to call more than once.
func (e *Registry) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		e.cancel()
		e.wg.Wait()
		if e.ownClient {
			e.client.CloseIdleConnections()
		}
	})
	return nil
}

// Backend names the backend ("eureka"), as in its events.
func (e *Registry) Backend() string { return backend }

func appName(name string) string { return strings.ToUpper(name) }

func regKey(ins *registry.ServiceInstance) string {
	return appName(ins.Name) + "/" + ins.InstanceID()
}

// instancePath is /apps/{APP}/{id}.
func instancePath(ins *registry.ServiceInstance) string {
	return "/apps/" + url.PathEscape(appName(ins.Name)) + "/" + url.PathEscape(ins.InstanceID())
}

// Register registers ins and returns once a server accepted it (204); from
// then on a heartbeat goroutine keeps it registered until Deregister or
// Close. Registering an instance that is registered already sends it again
// (new address, metadata, ...) and keeps its heartbeat and status. ins is
// copied; later changes to it have no effect.
func (e *Registry) Register(ctx context.Context, ins *registry.ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	key := regKey(ins)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	r, existing := e.regs[key]
	e.mu.Unlock()

	if existing {
		r.mu.Lock()
		r.ins = copyInstance(ins)
		r.mu.Unlock()
		return e.register(ctx, r)
	}
	r = &reg{ins: copyInstance(ins), status: Up}
	if err := e.register(ctx, r); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if old, ok := e.regs[key]; ok {
		// A concurrent Register of the same instance won; keep its heartbeat.
		old.mu.Lock()
		old.ins = r.ins
		old.mu.Unlock()
		return nil
	}
	hctx, cancel := context.WithCancel(e.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	e.regs[key] = r
	e.wg.Add(1)
	go e.heartbeat(hctx, r)
	return nil
}

// register POSTs r's instance and reports the outcome as an event.
func (e *Registry) register(ctx context.Context, r *reg) error {
	r.mu.Lock()
	ins, status := r.ins, r.status
	r.mu.Unlock()
	body, err := json.Marshal(envelope{Instance: e.instanceInfo(&ins, status)})
	if err != nil {
		return fmt.Errorf("eureka: encode %s: %w", ins.InstanceID(), err)
	}
	code, resp, err := e.do(ctx, http.MethodPost, "/apps/"+url.PathEscape(appName(ins.Name)), body)
	r.wrote()
	if err == nil && code != http.StatusNoContent && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, snippet(resp))
	}
	if err != nil {
		err = fmt.Errorf("eureka: register %s: %w", ins.InstanceID(), err)
		e.emit(ctx, registry.RegisterFailed, &ins, err)
		e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka register failed",
			slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("error", err.Error()))
		return err
	}
	e.emit(ctx, registry.Registered, &ins, nil)
	e.logger.LogAttrs(ctx, slog.LevelInfo, "eureka registered",
		slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("address", ins.Address),
		slog.String("status", string(status)))
	return nil
}

// heartbeat renews r's lease every renewal interval until ctx ends; on 404
// it registers again at once.
func (e *Registry) heartbeat(ctx context.Context, r *reg) {
	defer e.wg.Done()
	defer close(r.done)
	t := time.NewTicker(e.cfg.renew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		ins := r.ins
		r.mu.Unlock()
		code, resp, err := e.do(ctx, http.MethodPut, instancePath(&ins), nil)
		r.wrote()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && code == http.StatusOK:
			continue
		case err == nil && code == http.StatusNotFound:
			e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka instance unknown to the server; registering again",
				slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()))
			// A failure is reported by register; the next tick tries again.
			_ = e.register(ctx, r)
			continue
		case err == nil:
			err = fmt.Errorf("status %d: %s", code, snippet(resp))
		}
		err = fmt.Errorf("eureka: heartbeat %s: %w", ins.InstanceID(), err)
		e.emit(ctx, registry.HeartbeatFailed, &ins, err)
		e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka heartbeat failed",
			slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("error", err.Error()))
	}
}

// Deregister stops the heartbeat of ins and removes it from the servers,
// all bounded by ctx:
//
//  1. it sets the instance DOWN (PUT .../status?value=DOWN), so that a copy
//     that a peer's replication brings back afterwards is DOWN, never UP;
//  2. it cancels the lease (DELETE), failing over between servers as every
//     call does;
//  3. it reads the instance back from every server (GET /apps/{APP}/{id})
//     and cancels it again on each server that lists it, in rounds about a
//     replication batch apart, until a round finds it on none once 2 s
//     have passed since its last heartbeat (a peer may bring it back until
//     then), at most [DeregisterAttempts] further cancels. So Deregister
//     right after a heartbeat takes about 2 s, and one long after the last
//     heartbeat reads back once.
//
// The cancel (2) decides the outcome: an instance the server does not know
// counts as removed; a failure of (1) is logged and (2) goes on; the
// read-back (3) only logs what it could not remove (the copies left are
// DOWN and expire with their lease). ins need not have been registered by
// e (an instance left by an earlier process can be removed by its ID).
func (e *Registry) Deregister(ctx context.Context, ins *registry.ServiceInstance) error {
	if ins == nil || ins.Name == "" {
		return errors.New("eureka: Deregister needs an instance with a Name")
	}
	key := regKey(ins)
	e.mu.Lock()
	r, ok := e.regs[key]
	delete(e.regs, key)
	e.mu.Unlock()
	var settle time.Time // until when a peer may replicate a heartbeat
	if ok {
		r.cancel()
		select {
		case <-r.done:
		case <-ctx.Done():
			// The heartbeat ends on its own at its next check of its context.
		}
		r.mu.Lock()
		settle = r.lastWrite.Add(replicationSettle)
		r.mu.Unlock()
	}
	path := instancePath(ins)
	// 1. DOWN first. 404: this server does not know the instance.
	code, resp, err := e.do(ctx, http.MethodPut, path+"/status?value="+string(Down), nil)
	if err == nil && code != http.StatusOK && code != http.StatusNotFound {
		err = fmt.Errorf("status %d: %s", code, snippet(resp))
	}
	if err != nil {
		e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka: setting the instance DOWN before its cancel failed",
			slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("error", err.Error()))
	}
	// 2. Cancel.
	code, resp, err = e.do(ctx, http.MethodDelete, path, nil)
	if err == nil && code != http.StatusOK && code != http.StatusNoContent && code != http.StatusNotFound {
		err = fmt.Errorf("status %d: %s", code, snippet(resp))
	}
	if err != nil {
		err = fmt.Errorf("eureka: deregister %s: %w", ins.InstanceID(), err)
		e.emit(ctx, registry.DeregisterFailed, ins, err)
		e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka deregister failed",
			slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("error", err.Error()))
		return err
	}
	// 3. Read back, cancel again where a replication brought it back.
	e.recancel(ctx, ins, path, settle)
	e.emit(ctx, registry.Deregistered, ins, nil)
	e.logger.LogAttrs(ctx, slog.LevelInfo, "eureka deregistered",
		slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()))
	return nil
}

// recancel reads the cancelled instance at path back from every server and
// cancels it again on each that lists it, in rounds deregisterRecheck
// apart, until a round finds it on none once settle has passed (a peer may
// bring it back until then), DeregisterAttempts cancels were made, or ctx
// ends. With settle passed already (no recent heartbeat, or an instance e
// did not register) there is one round, at once.
func (e *Registry) recancel(ctx context.Context, ins *registry.ServiceInstance, path string, settle time.Time) {
	wait := time.Duration(0)
	if time.Now().Before(settle) {
		// Let the replication of the cancel reach the peers first.
		wait = deregisterRecheck
	}
	attempts := 0
	for round := 1; ; round++ {
		if wait > 0 && !sleep(ctx, wait) {
			return
		}
		wait = deregisterRecheck
		listed := 0
		for _, s := range e.servers {
			code, _, err := e.try(ctx, s+path, http.MethodGet, nil)
			if err != nil || code != http.StatusOK {
				continue // gone (404), or this server cannot tell: nothing to cancel there
			}
			listed++
			if attempts == DeregisterAttempts {
				e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka: instance still listed after its cancels; it is DOWN until its lease ends",
					slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("server", s))
				return
			}
			attempts++
			code, resp, err := e.try(ctx, s+path, http.MethodDelete, nil)
			if err == nil && code != http.StatusOK && code != http.StatusNotFound {
				err = fmt.Errorf("status %d: %s", code, snippet(resp))
			}
			if err != nil {
				e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka: cancelling an instance listed again failed",
					slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()),
					slog.String("server", s), slog.String("error", err.Error()))
				continue
			}
			e.logger.LogAttrs(ctx, slog.LevelInfo, "eureka: instance listed again after its cancel; cancelled it again",
				slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()),
				slog.String("server", s), slog.Int("round", round))
		}
		if listed == 0 && !time.Now().Before(settle) {
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// SetStatus sets the status of ins on the server (PUT .../status?value=),
// e.g. [OutOfService] to take it out of discovery while it keeps running
// (before a drain), and [Up] to bring it back. An instance registered by e
// keeps the status when it registers again after a server lost it.
func (e *Registry) SetStatus(ctx context.Context, ins *registry.ServiceInstance, status Status) error {
	if ins == nil || ins.Name == "" {
		return errors.New("eureka: SetStatus needs an instance with a Name")
	}
	switch status {
	case Up, Down, OutOfService:
	default:
		return fmt.Errorf("eureka: SetStatus: status %q is not UP, DOWN or OUT_OF_SERVICE", status)
	}
	e.mu.Lock()
	r, ok := e.regs[regKey(ins)]
	e.mu.Unlock()
	if ok {
		r.mu.Lock()
		r.status = status
		r.mu.Unlock()
	}
	code, resp, err := e.do(ctx, http.MethodPut, instancePath(ins)+"/status?value="+url.QueryEscape(string(status)), nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, snippet(resp))
	}
	if err != nil {
		return fmt.Errorf("eureka: set status of %s to %s: %w", ins.InstanceID(), status, err)
	}
	e.logger.LogAttrs(ctx, slog.LevelInfo, "eureka status set",
		slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("status", string(status)))
	return nil
}

func (e *Registry) emit(ctx context.Context, kind registry.EventKind, ins *registry.ServiceInstance, err error) {
	if e.cfg.onEvent == nil {
		return
	}
	c := copyInstance(ins)
	e.cfg.onEvent(ctx, registry.Event{Backend: backend, Kind: kind, Instance: &c, Err: err, Time: e.now()})
}

// do sends one request to the preferred server and fails over to the next
// ones on a network error or a 5xx. It returns the first other answer, or
// the last failure. Each attempt is bounded by the timeout and by ctx.
func (e *Registry) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	n := len(e.servers)
	start := int(e.preferred.Load())
	var lastErr error
	for i := range n {
		if err := ctx.Err(); err != nil {
			if lastErr == nil {
				lastErr = err
			}
			break
		}
		idx := (start + i) % n
		code, resp, err := e.try(ctx, e.servers[idx]+path, method, body)
		if err == nil && code < 500 {
			if idx != start {
				e.preferred.Store(int32(idx))
			}
			return code, resp, nil
		}
		if err == nil {
			err = fmt.Errorf("status %d: %s", code, snippet(resp))
		}
		lastErr = fmt.Errorf("%s: %w", e.servers[idx], err)
	}
	return 0, nil, lastErr
}

func (e *Registry) try(ctx context.Context, u, method string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// maxBody caps what is read of one answer (a large application
// with thousands of instances fits).
const maxBody = 32 << 20

// snippet shortens an error body for an error message.
func snippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func copyInstance(ins *registry.ServiceInstance) registry.ServiceInstance {
	c := *ins
	if ins.Metadata != nil {
		c.Metadata = make(map[string]string, len(ins.Metadata))
		for k, v := range ins.Metadata {
			c.Metadata[k] = v
		}
	}
	return c
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// instanceInfo is the registration body for ins.
func (e *Registry) instanceInfo(ins *registry.ServiceInstance, status Status) *instance {
	host, portStr, _ := net.SplitHostPort(ins.Address) // validated by Register
	port, _ := strconv.Atoi(portStr)
	base := "http://" + ins.Address
	md := make(map[string]string, len(ins.Metadata)+2)
	for k, v := range ins.Metadata {
		md[k] = v
	}
	if ins.Version != "" {
		md["version"] = ins.Version
	}
	md["weight"] = strconv.Itoa(ins.EffectiveWeight())
	ms := strconv.FormatInt(e.now().UnixMilli(), 10)
	return &instance{
		InstanceID:       ins.InstanceID(),
		HostName:         host,
		App:              appName(ins.Name),
		IPAddr:           host,
		VIPAddress:       strings.ToLower(ins.Name),
		SecureVIPAddress: strings.ToLower(ins.Name),
		Status:           string(status),
		Port:             &portInfo{Port: port, Enabled: true},
		SecurePort:       &portInfo{Port: 443, Enabled: false},
		HomePageURL:      base + "/",
		StatusPageURL:    base + "/",
		HealthCheckURL:   base + e.cfg.healthPath,
		DataCenterInfo: &dataCenter{
			Class: "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
			Name:  "MyOwn",
		},
		LeaseInfo: &leaseInfo{
			RenewalIntervalInSecs: ceilSeconds(e.cfg.renew),
			DurationInSecs:        ceilSeconds(e.cfg.lease),
		},
		Metadata:           md,
		LastUpdatedTime:    jsonString(ms),
		LastDirtyTimestamp: jsonString(ms),
	}
}
