package registry

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
)

// Defaults of the Eureka backend, the same as a Spring Cloud client's.
const (
	// DefaultEurekaRenewalInterval is how often a registered instance
	// sends a heartbeat (leaseInfo.renewalIntervalInSecs).
	DefaultEurekaRenewalInterval = 30 * time.Second
	// DefaultEurekaLeaseDuration is how long the server keeps an instance
	// without a heartbeat before evicting it (leaseInfo.durationInSecs).
	DefaultEurekaLeaseDuration = 90 * time.Second
	// DefaultEurekaPollInterval is how often a Watch asks the server for
	// the service's instances (Eureka has no push).
	DefaultEurekaPollInterval = 30 * time.Second
	// DefaultEurekaTimeout bounds each HTTP request to one server.
	DefaultEurekaTimeout = 5 * time.Second
	// DefaultEurekaHealthPath is the path of the healthCheckUrl registered
	// with each instance: the liveness probe of the package's Server.
	DefaultEurekaHealthPath = DefaultLivenessPath
)

// EurekaStatus is an instance status as Eureka knows it.
type EurekaStatus string

// The statuses SetStatus accepts. Only UP instances are discovered.
const (
	EurekaUp           EurekaStatus = "UP"
	EurekaDown         EurekaStatus = "DOWN"
	EurekaOutOfService EurekaStatus = "OUT_OF_SERVICE"
)

// Eureka registers instances with, and discovers them from, Eureka servers
// (Netflix Eureka or Spring Cloud Netflix Eureka) over their REST API, with
// its own small JSON client over net/http.
//
// Register sends the instance, then a goroutine per instance renews its
// lease every renewal interval; when a heartbeat gets 404 (the server
// evicted the instance or restarted empty) it registers again at once, and
// on network errors it keeps trying every interval, never giving up, and
// reports [HeartbeatFailed]. Deregister stops the heartbeat, then removes
// the instance. With several server URLs each request goes to the server
// that last answered and fails over to the next one on a network error or
// a 5xx.
//
// How Spring Cloud clients find the service: the instance is registered
// under the application name strings.ToUpper(Name) with vipAddress and
// secureVipAddress strings.ToLower(Name), which is what a Spring Cloud
// client's service id (spring.application.name, lb://name, @FeignClient
// name) is matched against. hostName and ipAddr are the host of Address,
// port is its port, and healthCheckUrl is http://Address/healthz unless
// [WithEurekaHealthPath] says otherwise. The metadata map carries Metadata
// plus "version" and "weight", so those two keys are reserved.
//
// Eureka is safe for concurrent use. Close stops its goroutines; it does
// not deregister (the server evicts the instances when their leases end).
type Eureka struct {
	servers   []string // base URLs without a trailing slash
	preferred atomic.Int32

	client     *http.Client
	ownClient  bool
	timeout    time.Duration
	renew      time.Duration
	lease      time.Duration
	poll       time.Duration
	healthPath string
	logger     *slog.Logger
	onEvent    func(Event)
	// ctx is done once Close is called; heartbeats and watches derive
	// from it.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
	mu        sync.Mutex
	regs      map[string]*eurekaReg // by app/instanceId
	closed    bool
	now       func() time.Time
}

// eurekaReg is one registered instance and its heartbeat.
type eurekaReg struct {
	mu     sync.Mutex
	ins    ServiceInstance
	status EurekaStatus
	cancel context.CancelFunc
	done   chan struct{}
}

// EurekaOption configures NewEureka.
type EurekaOption func(*Eureka) error

// WithEurekaRenewalInterval sets how often each instance sends a heartbeat;
// default [DefaultEurekaRenewalInterval]. It must be at least a second and
// below the lease duration; the server is told it in whole seconds (rounded
// up).
func WithEurekaRenewalInterval(d time.Duration) EurekaOption {
	return func(e *Eureka) error {
		if d < time.Second {
			return fmt.Errorf("registry: eureka: renewal interval %v is below 1s", d)
		}
		e.renew = d
		return nil
	}
}

// WithEurekaLeaseDuration sets how long the server keeps an instance whose
// heartbeats stopped; default [DefaultEurekaLeaseDuration]. It must be at
// least a second and longer than the renewal interval; sent in whole
// seconds (rounded up).
func WithEurekaLeaseDuration(d time.Duration) EurekaOption {
	return func(e *Eureka) error {
		if d < time.Second {
			return fmt.Errorf("registry: eureka: lease duration %v is below 1s", d)
		}
		e.lease = d
		return nil
	}
}

// WithEurekaPollInterval sets how often a Watch polls the server; default
// [DefaultEurekaPollInterval]. It must be positive.
func WithEurekaPollInterval(d time.Duration) EurekaOption {
	return func(e *Eureka) error {
		if d <= 0 {
			return fmt.Errorf("registry: eureka: poll interval %v is not positive", d)
		}
		e.poll = d
		return nil
	}
}

// WithEurekaTimeout bounds each HTTP request to one server (a failover to
// the next server gets a fresh timeout); default [DefaultEurekaTimeout].
// The caller's context bounds the whole call as well.
func WithEurekaTimeout(d time.Duration) EurekaOption {
	return func(e *Eureka) error {
		if d <= 0 {
			return fmt.Errorf("registry: eureka: timeout %v is not positive", d)
		}
		e.timeout = d
		return nil
	}
}

// WithEurekaHTTPClient sets the client for every request (TLS, proxies,
// auth transports). Default: a client of its own, whose idle connections
// Close releases. A client given here is left open by Close.
func WithEurekaHTTPClient(c *http.Client) EurekaOption {
	return func(e *Eureka) error {
		if c == nil {
			return errors.New("registry: eureka: nil http client")
		}
		e.client, e.ownClient = c, false
		return nil
	}
}

// WithEurekaLogger logs registrations and failures (heartbeat failures at
// WARN); default, and for a nil l, the kit's JSON logger
// ([logging.Default]).
func WithEurekaLogger(l *slog.Logger) EurekaOption {
	return func(e *Eureka) error {
		e.logger = logging.OrDefault(l)
		return nil
	}
}

// WithEurekaOnEvent calls fn for every [Event] (registered, heartbeat
// failed, ...). fn runs on the goroutine that saw the event, a heartbeat
// goroutine included: it must return quickly.
func WithEurekaOnEvent(fn func(Event)) EurekaOption {
	return func(e *Eureka) error {
		e.onEvent = fn
		return nil
	}
}

// WithEurekaHealthPath sets the path of the registered healthCheckUrl;
// default [DefaultEurekaHealthPath]. It must start with "/".
func WithEurekaHealthPath(p string) EurekaOption {
	return func(e *Eureka) error {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("registry: eureka: health path %q does not start with /", p)
		}
		e.healthPath = p
		return nil
	}
}

// NewEureka returns a client of the Eureka servers at serverURLs, each the
// server's Eureka base URL as a Spring client's defaultZone names it
// (e.g. "http://127.0.0.1:8761/eureka"). Requests go to the first; the
// others are failovers. NewEureka starts nothing and contacts no server.
func NewEureka(serverURLs []string, opts ...EurekaOption) (*Eureka, error) {
	if len(serverURLs) == 0 {
		return nil, errors.New("registry: eureka: no server URL")
	}
	e := &Eureka{
		timeout:    DefaultEurekaTimeout,
		renew:      DefaultEurekaRenewalInterval,
		lease:      DefaultEurekaLeaseDuration,
		poll:       DefaultEurekaPollInterval,
		healthPath: DefaultEurekaHealthPath,
		logger:     logging.Default(),
		regs:       map[string]*eurekaReg{},
		now:        time.Now,
	}
	for i, s := range serverURLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("registry: eureka: server URL %d %q: %w", i, s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("registry: eureka: server URL %d %q: scheme must be http or https", i, s)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("registry: eureka: server URL %d %q has no host", i, s)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("registry: eureka: server URL %d %q has a query or fragment", i, s)
		}
		e.servers = append(e.servers, strings.TrimRight(u.String(), "/"))
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(e); err != nil {
			return nil, err
		}
	}
	if e.lease <= e.renew {
		return nil, fmt.Errorf("registry: eureka: lease duration %v must be longer than the renewal interval %v", e.lease, e.renew)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if e.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 4
		e.client, e.ownClient = &http.Client{Transport: tr}, true
	}
	return e, nil
}

// Close stops every heartbeat and watch of e and waits for the heartbeat
// goroutines to end. It does not deregister. Later calls of Register fail;
// Close is safe to call more than once.
func (e *Eureka) Close() error {
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

// eurekaBackend names the backend in events.
const eurekaBackend = "eureka"

// Backend names the backend ("eureka"), as in its events.
func (e *Eureka) Backend() string { return eurekaBackend }

func eurekaApp(name string) string { return strings.ToUpper(name) }

func regKey(ins *ServiceInstance) string {
	return eurekaApp(ins.Name) + "/" + ins.InstanceID()
}

// Register registers ins and returns once a server accepted it (204); from
// then on a heartbeat goroutine keeps it registered until Deregister or
// Close. Registering an instance that is registered already sends it again
// (new address, metadata, ...) and keeps its heartbeat and status. ins is
// copied; later changes to it have no effect.
func (e *Eureka) Register(ctx context.Context, ins *ServiceInstance) error {
	if err := ins.Validate(); err != nil {
		return err
	}
	key := regKey(ins)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("registry: eureka: Register after Close")
	}
	r, existing := e.regs[key]
	e.mu.Unlock()

	if existing {
		r.mu.Lock()
		r.ins = copyInstance(ins)
		r.mu.Unlock()
		return e.register(ctx, r)
	}
	r = &eurekaReg{ins: copyInstance(ins), status: EurekaUp}
	if err := e.register(ctx, r); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("registry: eureka: Register after Close")
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
func (e *Eureka) register(ctx context.Context, r *eurekaReg) error {
	r.mu.Lock()
	ins, status := r.ins, r.status
	r.mu.Unlock()
	body, err := json.Marshal(eurekaEnvelope{Instance: e.instanceInfo(&ins, status)})
	if err != nil {
		return fmt.Errorf("registry: eureka: encode %s: %w", ins.InstanceID(), err)
	}
	code, resp, err := e.do(ctx, http.MethodPost, "/apps/"+url.PathEscape(eurekaApp(ins.Name)), body)
	if err == nil && code != http.StatusNoContent && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, snippet(resp))
	}
	if err != nil {
		err = fmt.Errorf("registry: eureka: register %s: %w", ins.InstanceID(), err)
		e.emit(RegisterFailed, &ins, err)
		e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka register failed",
			slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("error", err.Error()))
		return err
	}
	e.emit(Registered, &ins, nil)
	e.logger.LogAttrs(ctx, slog.LevelInfo, "eureka registered",
		slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("address", ins.Address),
		slog.String("status", string(status)))
	return nil
}

// heartbeat renews r's lease every renewal interval until ctx ends; on 404
// it registers again at once.
func (e *Eureka) heartbeat(ctx context.Context, r *eurekaReg) {
	defer e.wg.Done()
	defer close(r.done)
	t := time.NewTicker(e.renew)
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
		path := "/apps/" + url.PathEscape(eurekaApp(ins.Name)) + "/" + url.PathEscape(ins.InstanceID())
		code, resp, err := e.do(ctx, http.MethodPut, path, nil)
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
		err = fmt.Errorf("registry: eureka: heartbeat %s: %w", ins.InstanceID(), err)
		e.emit(HeartbeatFailed, &ins, err)
		e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka heartbeat failed",
			slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("error", err.Error()))
	}
}

// Deregister stops the heartbeat of ins, then removes it from the server
// (DELETE, bounded by ctx). An instance the server does not know counts as
// removed. ins need not have been registered by e (an instance left by an
// earlier process can be removed by its ID).
func (e *Eureka) Deregister(ctx context.Context, ins *ServiceInstance) error {
	if ins == nil || ins.Name == "" {
		return errors.New("registry: eureka: Deregister needs an instance with a Name")
	}
	key := regKey(ins)
	e.mu.Lock()
	r, ok := e.regs[key]
	delete(e.regs, key)
	e.mu.Unlock()
	if ok {
		r.cancel()
		select {
		case <-r.done:
		case <-ctx.Done():
			// The heartbeat ends on its own at its next check of its context.
		}
	}
	path := "/apps/" + url.PathEscape(eurekaApp(ins.Name)) + "/" + url.PathEscape(ins.InstanceID())
	code, resp, err := e.do(ctx, http.MethodDelete, path, nil)
	if err == nil && code != http.StatusOK && code != http.StatusNoContent && code != http.StatusNotFound {
		err = fmt.Errorf("status %d: %s", code, snippet(resp))
	}
	if err != nil {
		err = fmt.Errorf("registry: eureka: deregister %s: %w", ins.InstanceID(), err)
		e.emit(DeregisterFailed, ins, err)
		e.logger.LogAttrs(ctx, slog.LevelWarn, "eureka deregister failed",
			slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("error", err.Error()))
		return err
	}
	e.emit(Deregistered, ins, nil)
	e.logger.LogAttrs(ctx, slog.LevelInfo, "eureka deregistered",
		slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()))
	return nil
}

// SetStatus sets the status of ins on the server (PUT .../status?value=),
// e.g. [EurekaOutOfService] to take it out of discovery while it keeps
// running (before a drain), and [EurekaUp] to bring it back. An instance
// registered by e keeps the status when it registers again after a server
// lost it.
func (e *Eureka) SetStatus(ctx context.Context, ins *ServiceInstance, status EurekaStatus) error {
	if ins == nil || ins.Name == "" {
		return errors.New("registry: eureka: SetStatus needs an instance with a Name")
	}
	switch status {
	case EurekaUp, EurekaDown, EurekaOutOfService:
	default:
		return fmt.Errorf("registry: eureka: status %q is not UP, DOWN or OUT_OF_SERVICE", status)
	}
	e.mu.Lock()
	r, ok := e.regs[regKey(ins)]
	e.mu.Unlock()
	if ok {
		r.mu.Lock()
		r.status = status
		r.mu.Unlock()
	}
	path := "/apps/" + url.PathEscape(eurekaApp(ins.Name)) + "/" + url.PathEscape(ins.InstanceID()) +
		"/status?value=" + url.QueryEscape(string(status))
	code, resp, err := e.do(ctx, http.MethodPut, path, nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, snippet(resp))
	}
	if err != nil {
		return fmt.Errorf("registry: eureka: set status of %s to %s: %w", ins.InstanceID(), status, err)
	}
	e.logger.LogAttrs(ctx, slog.LevelInfo, "eureka status set",
		slog.String("service", ins.Name), slog.String("instance_id", ins.InstanceID()), slog.String("status", string(status)))
	return nil
}

func (e *Eureka) emit(kind EventKind, ins *ServiceInstance, err error) {
	if e.onEvent == nil {
		return
	}
	c := copyInstance(ins)
	e.onEvent(Event{Backend: eurekaBackend, Kind: kind, Instance: &c, Err: err, Time: e.now()})
}

// do sends one request to the preferred server and fails over to the next
// ones on a network error or a 5xx. It returns the first other answer, or
// the last failure. Each attempt is bounded by the timeout and by ctx.
func (e *Eureka) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
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

func (e *Eureka) try(ctx context.Context, u, method string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxEurekaBody))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// maxEurekaBody caps what is read of one answer (a large application
// with thousands of instances fits).
const maxEurekaBody = 32 << 20

// snippet shortens an error body for an error message.
func snippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func copyInstance(ins *ServiceInstance) ServiceInstance {
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
func (e *Eureka) instanceInfo(ins *ServiceInstance, status EurekaStatus) *eurekaInstance {
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
	return &eurekaInstance{
		InstanceID:       ins.InstanceID(),
		HostName:         host,
		App:              eurekaApp(ins.Name),
		IPAddr:           host,
		VIPAddress:       strings.ToLower(ins.Name),
		SecureVIPAddress: strings.ToLower(ins.Name),
		Status:           string(status),
		Port:             &eurekaPort{Port: port, Enabled: true},
		SecurePort:       &eurekaPort{Port: 443, Enabled: false},
		HomePageURL:      base + "/",
		StatusPageURL:    base + "/",
		HealthCheckURL:   base + e.healthPath,
		DataCenterInfo: &eurekaDataCenter{
			Class: "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
			Name:  "MyOwn",
		},
		LeaseInfo: &eurekaLease{
			RenewalIntervalInSecs: ceilSeconds(e.renew),
			DurationInSecs:        ceilSeconds(e.lease),
		},
		Metadata:           md,
		LastUpdatedTime:    eurekaString(ms),
		LastDirtyTimestamp: eurekaString(ms),
	}
}
