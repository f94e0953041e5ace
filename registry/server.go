package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gingov/gingov/logging"
)

// Defaults of [Server].
const (
	// DefaultRegisterTimeout bounds one registration attempt.
	DefaultRegisterTimeout = 5 * time.Second
	// DefaultRetryMin and DefaultRetryMax bound the wait between
	// registration attempts; it doubles from min to max, with jitter.
	DefaultRetryMin = 500 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
	// DefaultDeregisterTimeout bounds deregistration at shutdown.
	DefaultDeregisterTimeout = 5 * time.Second
	// DefaultDrainDelay is how long the server keeps serving after
	// deregistering, while clients' caches drop the instance.
	DefaultDrainDelay = 3 * time.Second
	// DefaultShutdownTimeout bounds http.Server.Shutdown: how long
	// in-flight requests get to finish.
	DefaultShutdownTimeout = 15 * time.Second
	// DefaultReadHeaderTimeout is the http.Server's ReadHeaderTimeout
	// unless WithHTTPServer sets one.
	DefaultReadHeaderTimeout = 10 * time.Second
)

// ServerOption configures [NewServer] and [Serve].
type ServerOption interface{ applyServer(*serverConfig) }

type serverOption func(*serverConfig)

func (f serverOption) applyServer(c *serverConfig) { f(c) }

type serverConfig struct {
	registrars      []Registrar
	advertiseHost   *string
	registerTimeout time.Duration
	retryMin        time.Duration
	retryMax        time.Duration
	deregTimeout    time.Duration
	drainDelay      time.Duration
	shutdownTimeout time.Duration
	onEvent         func(context.Context, Event)
	onEventSet      bool
	logger          *slog.Logger
	health          *Health
	healthSet       bool
	noProbes        bool
	httpServer      func(*http.Server)
	httpServerSet   bool
	nilRegistrar    bool
}

// newServerConfig applies opts over the defaults and checks the result.
func newServerConfig(reg Registrar, opts []ServerOption) (serverConfig, error) {
	c := serverConfig{
		registerTimeout: DefaultRegisterTimeout,
		retryMin:        DefaultRetryMin,
		retryMax:        DefaultRetryMax,
		deregTimeout:    DefaultDeregisterTimeout,
		drainDelay:      DefaultDrainDelay,
		shutdownTimeout: DefaultShutdownTimeout,
	}
	if reg != nil {
		c.registrars = append(c.registrars, reg)
	}
	for i, o := range opts {
		if o == nil {
			return c, fmt.Errorf("registry: option %d is nil", i+1)
		}
		o.applyServer(&c)
	}
	switch {
	case c.nilRegistrar:
		return c, errors.New("registry: WithRegistrar: nil Registrar")
	case c.advertiseHost != nil && (*c.advertiseHost == "" || *c.advertiseHost == "0.0.0.0" || *c.advertiseHost == "::"):
		return c, fmt.Errorf("registry: WithAdvertiseHost: %q is not a reachable host", *c.advertiseHost)
	case c.registerTimeout <= 0:
		return c, positive("WithRegisterTimeout", c.registerTimeout)
	case c.retryMin <= 0 || c.retryMax < c.retryMin:
		return c, fmt.Errorf("registry: WithRegisterRetry: need 0 < min <= max, got %s and %s", c.retryMin, c.retryMax)
	case c.deregTimeout <= 0:
		return c, positive("WithDeregisterTimeout", c.deregTimeout)
	case c.drainDelay < 0:
		return c, fmt.Errorf("registry: WithDrainDelay: duration must be >= 0, got %s", c.drainDelay)
	case c.shutdownTimeout <= 0:
		return c, positive("WithShutdownTimeout", c.shutdownTimeout)
	case c.onEventSet && c.onEvent == nil:
		return c, errors.New("registry: WithOnEvent: nil function")
	case c.healthSet && c.health == nil:
		return c, errors.New("registry: WithHealth: nil Health")
	case c.httpServerSet && c.httpServer == nil:
		return c, errors.New("registry: WithHTTPServer: nil function")
	}
	c.logger = logging.OrDefault(c.logger)
	return c, nil
}

func positive(opt string, d time.Duration) error {
	return fmt.Errorf("registry: %s: duration must be > 0, got %s", opt, d)
}

// WithRegistrar registers the instance with one more registry (for
// example Nacos and Eureka at once). Each is registered, retried and
// deregistered on its own. A nil reg is an error.
func WithRegistrar(reg Registrar) ServerOption {
	return serverOption(func(c *serverConfig) {
		if reg == nil {
			c.nilRegistrar = true
			return
		}
		c.registrars = append(c.registrars, reg)
	})
}

// WithAdvertiseHost sets the host registered when the instance's Address
// is empty or has port 0 (the port comes from the listener). Without it,
// the host of the instance's Address, else the listener's IP, else the
// first non-loopback IP of the machine is used. An empty or unspecified
// host (0.0.0.0, ::) is an error.
func WithAdvertiseHost(host string) ServerOption {
	return serverOption(func(c *serverConfig) { c.advertiseHost = &host })
}

// WithRegisterTimeout bounds one registration attempt (default
// [DefaultRegisterTimeout]; must be > 0).
func WithRegisterTimeout(d time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.registerTimeout = d })
}

// WithRegisterRetry sets the wait between registration attempts: it starts
// at minWait and doubles up to maxWait, each wait drawn at random from its
// upper half, as [Backoff] computes it (defaults [DefaultRetryMin],
// [DefaultRetryMax]; need 0 < minWait <= maxWait). Attempts go on until
// one succeeds or the server stops.
func WithRegisterRetry(minWait, maxWait time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.retryMin, c.retryMax = minWait, maxWait })
}

// WithDeregisterTimeout bounds deregistration at shutdown (default
// [DefaultDeregisterTimeout]; must be > 0). A registrar that has not
// answered by then is reported as DeregisterFailed and shutdown goes on.
func WithDeregisterTimeout(d time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.deregTimeout = d })
}

// WithDrainDelay sets how long the server keeps serving after
// deregistering and before it stops accepting connections (default
// [DefaultDrainDelay]; 0 means none; negative is an error). Set it to how
// long clients of the registry take to drop an instance. The wait is cut
// short by a second SIGINT or SIGTERM when Run's context comes from
// [SignalContext], and by that context's cancel function.
func WithDrainDelay(d time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.drainDelay = d })
}

// WithShutdownTimeout bounds how long in-flight requests get to finish
// (default [DefaultShutdownTimeout]; must be > 0); connections still open
// then are closed and Run returns an error.
func WithShutdownTimeout(d time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.shutdownTimeout = d })
}

// WithHealth uses h for the probes (default: NewHealth() with no checks;
// a nil h is an error).
func WithHealth(h *Health) ServerOption {
	return serverOption(func(c *serverConfig) { c.health, c.healthSet = h, true })
}

// WithoutProbeRoutes leaves the probe paths to the handler: the server
// does not answer them in front of it (mount Health yourself, e.g.
// srv.Health().MountGin(r)). Draining still turns readiness to 503.
func WithoutProbeRoutes() ServerOption {
	return serverOption(func(c *serverConfig) { c.noProbes = true })
}

// WithHTTPServer lets fn adjust the http.Server before it serves (timeouts,
// TLS config, ConnState). fn must not set Handler or Addr. A nil fn is an
// error.
func WithHTTPServer(fn func(*http.Server)) ServerOption {
	return serverOption(func(c *serverConfig) { c.httpServer, c.httpServerSet = fn, true })
}

// Server runs an http.Handler as a registered instance of a service:
// listen, serve, register (retrying, while serving), and on shutdown turn
// readiness to 503, deregister, drain, and shut down gracefully. Build it
// with [NewServer] and start it with Run, or do both with [Serve].
type Server struct {
	cfg     serverConfig
	handler http.Handler
	addr    string
	ins     ServiceInstance
	health  *Health
	logger  *slog.Logger
	srv     *http.Server

	mu  sync.Mutex
	ln  net.Listener
	ran atomic.Bool
}

// Serve is NewServer followed by Run: it serves handler on addr as an
// instance of ins.Name registered with reg until ctx ends, then drains and
// shuts down. reg may be nil (no registry: probes and graceful shutdown
// only).
//
//	ctx, stop := registry.SignalContext(context.Background())
//	defer stop()
//	err := registry.Serve(ctx, r, ":8080", reg, registry.ServiceInstance{Name: "orders", Version: "v1"})
func Serve(ctx context.Context, handler http.Handler, addr string, reg Registrar, ins ServiceInstance, opts ...ServerOption) error {
	s, err := NewServer(handler, addr, reg, ins, opts...)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// NewServer validates its inputs; nothing is bound or registered until
// Listen or Run. ins.Address may be empty or have port 0: it is completed
// from the listener (see [WithAdvertiseHost]). reg may be nil.
func NewServer(handler http.Handler, addr string, reg Registrar, ins ServiceInstance, opts ...ServerOption) (*Server, error) {
	cfg, err := newServerConfig(reg, opts)
	if err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("registry: nil handler")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("registry: listen address %q is not host:port: %w", addr, err)
	}
	if ins.Name == "" {
		return nil, errors.New("registry: ServiceInstance.Name is empty")
	}
	if ins.Address != "" {
		if _, _, err := net.SplitHostPort(ins.Address); err != nil {
			return nil, fmt.Errorf("registry: ServiceInstance.Address %q is not host:port: %w", ins.Address, err)
		}
	}
	if ins.Weight < 0 {
		return nil, fmt.Errorf("registry: ServiceInstance.Weight %d is negative", ins.Weight)
	}
	if cfg.health == nil {
		cfg.health, _ = NewHealth(WithLogger(cfg.logger))
	}
	ins.Metadata = maps.Clone(ins.Metadata)
	s := &Server{cfg: cfg, addr: addr, ins: ins, health: cfg.health, logger: cfg.logger}
	s.handler = handler
	if !cfg.noProbes {
		s.handler = cfg.health.Wrap(handler)
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.logger.Handler(), slog.LevelWarn),
	}
	if cfg.httpServer != nil {
		cfg.httpServer(s.srv)
		s.srv.Handler = s.handler
	}
	return s, nil
}

// Health returns the server's probes.
func (s *Server) Health() *Health { return s.health }

// Listen binds the listen address, if not done yet, and completes the
// instance's Address. Run calls it; call it first to learn the address
// (Addr, Instance) before serving. A server that listened must Run, or
// the listener stays open.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("registry: listen on %s: %w", s.addr, err)
	}
	if err := s.completeAddress(ln.Addr().(*net.TCPAddr)); err != nil {
		_ = ln.Close()
		return err
	}
	if err := s.ins.Validate(); err != nil {
		_ = ln.Close()
		return err
	}
	s.ln = ln
	return nil
}

// completeAddress fills the instance's Address host and port where missing.
func (s *Server) completeAddress(bound *net.TCPAddr) error {
	host, port := "", "0"
	if s.ins.Address != "" {
		host, port, _ = net.SplitHostPort(s.ins.Address)
	}
	if port == "0" || port == "" {
		port = strconv.Itoa(bound.Port)
	}
	switch {
	case s.cfg.advertiseHost != nil:
		if s.ins.Address == "" || host == "" || host == "0.0.0.0" || host == "::" {
			host = *s.cfg.advertiseHost
		}
	case host != "" && host != "0.0.0.0" && host != "::":
	case !bound.IP.IsUnspecified():
		host = bound.IP.String()
	default:
		ip, err := machineIP()
		if err != nil {
			return err
		}
		host = ip
	}
	s.ins.Address = net.JoinHostPort(host, port)
	return nil
}

// machineIP returns the first global unicast IP of the machine, IPv4 first.
func machineIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("registry: cannot list interface addresses (use WithAdvertiseHost): %w", err)
	}
	var v6 string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || !ipn.IP.IsGlobalUnicast() {
			continue
		}
		if ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
		if v6 == "" {
			v6 = ipn.IP.String()
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "", errors.New("registry: no non-loopback address to advertise; use WithAdvertiseHost")
}

// Addr returns the address the server listens on ("" before Listen).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Instance returns the instance as registered (Address complete after
// Listen).
func (s *Server) Instance() ServiceInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	ins := s.ins
	ins.Metadata = maps.Clone(s.ins.Metadata)
	return ins
}

// registration is one registrar's state during Run.
type registration struct {
	reg     Registrar
	backend string
	ins     *ServiceInstance // the one pointer given to Register and Deregister
	tried   atomic.Bool      // Register was called at least once
	done    atomic.Bool      // Register succeeded
}

// Run listens (if Listen was not called), serves, and registers the
// instance with every registrar, retrying failed attempts with backoff
// while serving. When ctx ends it shuts down in this order: readiness
// turns 503 and keep-alives stop; each registrar deregisters (bounded by
// the deregister timeout; a failure is logged and reported, never
// blocking); the drain delay passes; http.Server.Shutdown lets in-flight
// requests finish (bounded by the shutdown timeout). Run returns nil after
// a clean shutdown, or the error that stopped it. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("registry: Server.Run called twice")
	}
	if err := s.Listen(); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(s.ln) }()
	s.logger.LogAttrs(ctx, slog.LevelInfo, "registry: serving",
		slog.String("service", s.ins.Name), slog.String("address", s.ins.Address), slog.String("listen", s.Addr()))

	regs := make([]*registration, len(s.cfg.registrars))
	regCtx, stopRegistering := context.WithCancel(ctx)
	defer stopRegistering()
	var wg sync.WaitGroup
	for i, reg := range s.cfg.registrars {
		ins := s.Instance()
		r := &registration{reg: reg, backend: backendName(reg), ins: &ins}
		regs[i] = r
		s.health.SetRegistration(r.backend, RegistrationPending)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.register(regCtx, r)
		}()
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		s.logger.LogAttrs(ctx, slog.LevelError, "registry: serving failed", slog.String("error", serveErr.Error()))
	}
	s.logger.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "registry: draining",
		slog.String("service", s.ins.Name), slog.String("address", s.ins.Address))
	s.health.SetDraining()
	s.srv.SetKeepAlivesEnabled(false)
	stopRegistering()
	// An attempt in flight gets the deregister timeout to end, so that
	// it cannot complete after the deregistration below.
	waitTimeout(&wg, s.cfg.deregTimeout)
	s.deregister(context.WithoutCancel(ctx), regs)

	if serveErr != nil {
		_ = s.srv.Close()
		return fmt.Errorf("registry: serve: %w", serveErr)
	}
	if s.cfg.drainDelay > 0 && !waitDrain(ctx, s.cfg.drainDelay) {
		s.logger.LogAttrs(context.WithoutCancel(ctx), slog.LevelWarn, "registry: drain delay cut short",
			slog.String("service", s.ins.Name), slog.Duration("drain_delay", s.cfg.drainDelay))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		_ = s.srv.Close()
		err = fmt.Errorf("registry: shutdown: %w", err)
	}
	<-served // http.ErrServerClosed
	s.logger.LogAttrs(sctx, slog.LevelInfo, "registry: stopped", slog.String("service", s.ins.Name))
	return err
}

// register tries until the registrar accepts the instance or ctx ends.
func (s *Server) register(ctx context.Context, r *registration) {
	bo := Backoff{Min: s.cfg.retryMin, Max: s.cfg.retryMax}
	for attempt := 1; ; attempt++ {
		r.tried.Store(true)
		actx, cancel := context.WithTimeout(ctx, s.cfg.registerTimeout)
		err := r.reg.Register(actx, r.ins)
		cancel()
		if err == nil {
			r.done.Store(true)
			s.health.SetRegistration(r.backend, RegistrationRegistered)
			s.event(ctx, r, Registered, nil)
			s.logger.LogAttrs(ctx, slog.LevelInfo, "registry: registered", s.attrs(r, slog.Int("attempt", attempt))...)
			return
		}
		if ctx.Err() != nil {
			return
		}
		sleep := bo.Delay(attempt - 1)
		s.event(ctx, r, RegisterFailed, err)
		s.logger.LogAttrs(ctx, slog.LevelWarn, "registry: register failed, retrying",
			s.attrs(r, slog.Int("attempt", attempt), slog.Duration("retry_in", sleep), slog.String("error", err.Error()))...)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// deregister removes the instance from every registrar that was, or may
// have been, registered, in parallel, each bounded by the timeout.
func (s *Server) deregister(ctx context.Context, regs []*registration) {
	var wg sync.WaitGroup
	for _, r := range regs {
		if !r.tried.Load() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, s.cfg.deregTimeout)
			defer cancel()
			res := make(chan error, 1) // a registrar that ignores dctx does not hold shutdown
			go func() { res <- r.reg.Deregister(dctx, r.ins) }()
			var err error
			select {
			case err = <-res:
			case <-dctx.Done():
				err = fmt.Errorf("registry: deregister not answered within %s: %w", s.cfg.deregTimeout, dctx.Err())
			}
			if err != nil {
				s.health.SetRegistration(r.backend, RegistrationFailed)
				s.event(ctx, r, DeregisterFailed, err)
				s.logger.LogAttrs(ctx, slog.LevelError, "registry: deregister failed", s.attrs(r, slog.String("error", err.Error()))...)
				return
			}
			s.health.SetRegistration(r.backend, RegistrationDeregistered)
			s.event(ctx, r, Deregistered, nil)
			s.logger.LogAttrs(ctx, slog.LevelInfo, "registry: deregistered", s.attrs(r)...)
		}()
	}
	wg.Wait()
}

func (s *Server) attrs(r *registration, extra ...slog.Attr) []slog.Attr {
	return append([]slog.Attr{
		slog.String("backend", r.backend),
		slog.String("service", r.ins.Name),
		slog.String("instance_id", r.ins.InstanceID()),
		slog.String("address", r.ins.Address),
	}, extra...)
}

func (s *Server) event(ctx context.Context, r *registration, kind EventKind, err error) {
	if s.cfg.onEvent == nil {
		return
	}
	ins := *r.ins
	ins.Metadata = maps.Clone(r.ins.Metadata)
	s.cfg.onEvent(ctx, Event{Backend: r.backend, Kind: kind, Instance: &ins, Err: err, Time: time.Now()})
}

// waitTimeout waits for wg, at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// backendName is reg's Backend() when it has that method, else its type.
func backendName(reg any) string {
	if b, ok := reg.(interface{ Backend() string }); ok {
		if name := b.Backend(); name != "" {
			return name
		}
	}
	return fmt.Sprintf("%T", reg)
}

// drainCutKey keys the context that cuts the drain wait short, which
// SignalContext puts in its context.
type drainCutKey struct{}

// waitDrain waits d, or less when the drain-cut context that ctx carries
// (see SignalContext) ends first; it reports whether the whole d passed.
func waitDrain(ctx context.Context, d time.Duration) bool {
	var cut <-chan struct{}
	if c, ok := ctx.Value(drainCutKey{}).(context.Context); ok {
		cut = c.Done()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cut:
		return false
	}
}

// SignalContext returns a context that ends at the first SIGINT or
// SIGTERM, for Run; cancel ends it too and releases the signal handling.
// A second signal cuts the drain delay of a Server running on ctx short
// (shutdown goes on, in-flight requests still get the shutdown timeout),
// and so does cancel or the end of parent. After the second signal the
// handling is released, so a third one gets the default behaviour (the
// process exits).
func SignalContext(parent context.Context) (ctx context.Context, cancel context.CancelFunc) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return signalContext(parent, ch, func() { signal.Stop(ch) })
}

// signalContext is SignalContext over the signals of ch; release stops
// their delivery.
func signalContext(parent context.Context, ch <-chan os.Signal, release func()) (context.Context, context.CancelFunc) {
	cut, cutCancel := context.WithCancel(parent)
	ctx, stop := context.WithCancel(context.WithValue(parent, drainCutKey{}, cut))
	go func() {
		defer release()
		select {
		case <-ch:
			stop()
		case <-ctx.Done():
			cutCancel()
			return
		}
		select {
		case <-ch:
			cutCancel()
		case <-cut.Done():
		}
	}()
	return ctx, func() { stop(); cutCancel() }
}
