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
type ServerOption func(*serverConfig) error

type serverConfig struct {
	registrars      []Registrar
	advertiseHost   string
	registerTimeout time.Duration
	retryMin        time.Duration
	retryMax        time.Duration
	deregTimeout    time.Duration
	drainDelay      time.Duration
	shutdownTimeout time.Duration
	onEvent         func(Event)
	logger          *slog.Logger
	health          *Health
	noProbes        bool
	httpServer      func(*http.Server)
}

func positive(opt string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("registry: %s: duration must be > 0, got %s", opt, d)
	}
	return nil
}

// WithRegistrar registers the instance with one more registry (for
// example Nacos and Eureka at once). Each is registered, retried and
// deregistered on its own.
func WithRegistrar(reg Registrar) ServerOption {
	return func(c *serverConfig) error {
		if reg == nil {
			return errors.New("registry: WithRegistrar: nil Registrar")
		}
		c.registrars = append(c.registrars, reg)
		return nil
	}
}

// WithAdvertiseHost sets the host registered when the instance's Address
// is empty or has port 0 (the port comes from the listener). Without it,
// the host of the instance's Address, else the listener's IP, else the
// first non-loopback IP of the machine is used.
func WithAdvertiseHost(host string) ServerOption {
	return func(c *serverConfig) error {
		if host == "" || host == "0.0.0.0" || host == "::" {
			return fmt.Errorf("registry: WithAdvertiseHost: %q is not a reachable host", host)
		}
		c.advertiseHost = host
		return nil
	}
}

// WithRegisterTimeout bounds one registration attempt (default
// [DefaultRegisterTimeout]).
func WithRegisterTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		c.registerTimeout = d
		return positive("WithRegisterTimeout", d)
	}
}

// WithRegisterRetry sets the wait between registration attempts: it starts
// at minWait and doubles up to maxWait, each wait drawn at random from its
// upper half, as [Backoff] computes it (defaults [DefaultRetryMin],
// [DefaultRetryMax]). Attempts go on until one succeeds or the server stops.
func WithRegisterRetry(minWait, maxWait time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if minWait <= 0 || maxWait < minWait {
			return fmt.Errorf("registry: WithRegisterRetry: need 0 < min <= max, got %s and %s", minWait, maxWait)
		}
		c.retryMin, c.retryMax = minWait, maxWait
		return nil
	}
}

// WithDeregisterTimeout bounds deregistration at shutdown (default
// [DefaultDeregisterTimeout]). A registrar that has not answered by then is
// reported as DeregisterFailed and shutdown goes on.
func WithDeregisterTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		c.deregTimeout = d
		return positive("WithDeregisterTimeout", d)
	}
}

// WithDrainDelay sets how long the server keeps serving after
// deregistering and before it stops accepting connections (default
// [DefaultDrainDelay]; 0 means none). Set it to how long clients of the
// registry take to drop an instance.
func WithDrainDelay(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if d < 0 {
			return fmt.Errorf("registry: WithDrainDelay: duration must be >= 0, got %s", d)
		}
		c.drainDelay = d
		return nil
	}
}

// WithShutdownTimeout bounds how long in-flight requests get to finish
// (default [DefaultShutdownTimeout]); connections still open then are
// closed and Run returns an error.
func WithShutdownTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		c.shutdownTimeout = d
		return positive("WithShutdownTimeout", d)
	}
}

// WithOnEvent calls fn for every registration attempt and deregistration
// the server makes (Registered, RegisterFailed, Deregistered,
// DeregisterFailed). Backends report their own events (heartbeats) through
// their own hooks; a backend hook pointed at the same function also sees
// the Register calls, so count registrations from one of the two. fn runs
// on the server's goroutines and must not block.
func WithOnEvent(fn func(Event)) ServerOption {
	return func(c *serverConfig) error {
		if fn == nil {
			return errors.New("registry: WithOnEvent: nil function")
		}
		c.onEvent = fn
		return nil
	}
}

// WithLogger sets the logger; the http.Server's own errors go to it too,
// at WARN. The default, and a nil l, is the kit's JSON logger
// ([logging.Default]), so that the lifecycle's lines match the access log.
func WithLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) error {
		c.logger = l
		return nil
	}
}

// WithHealth uses h for the probes (default: NewHealth() with no checks).
func WithHealth(h *Health) ServerOption {
	return func(c *serverConfig) error {
		if h == nil {
			return errors.New("registry: WithHealth: nil Health")
		}
		c.health = h
		return nil
	}
}

// WithoutProbeRoutes leaves the probe paths to the handler: the server
// does not answer them in front of it (mount Health yourself, e.g.
// srv.Health().MountGin(r)). Draining still turns readiness to 503.
func WithoutProbeRoutes() ServerOption {
	return func(c *serverConfig) error {
		c.noProbes = true
		return nil
	}
}

// WithHTTPServer lets fn adjust the http.Server before it serves (timeouts,
// TLS config, ConnState). fn must not set Handler or Addr.
func WithHTTPServer(fn func(*http.Server)) ServerOption {
	return func(c *serverConfig) error {
		if fn == nil {
			return errors.New("registry: WithHTTPServer: nil function")
		}
		c.httpServer = fn
		return nil
	}
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
	cfg := serverConfig{
		registerTimeout: DefaultRegisterTimeout,
		retryMin:        DefaultRetryMin,
		retryMax:        DefaultRetryMax,
		deregTimeout:    DefaultDeregisterTimeout,
		drainDelay:      DefaultDrainDelay,
		shutdownTimeout: DefaultShutdownTimeout,
	}
	if reg != nil {
		cfg.registrars = append(cfg.registrars, reg)
	}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("registry: nil ServerOption")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
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
	cfg.logger = logging.OrDefault(cfg.logger)
	if cfg.health == nil {
		cfg.health, _ = NewHealth(WithHealthLogger(cfg.logger))
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
	case s.cfg.advertiseHost != "":
		if s.ins.Address == "" || host == "" || host == "0.0.0.0" || host == "::" {
			host = s.cfg.advertiseHost
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
	if s.cfg.drainDelay > 0 {
		time.Sleep(s.cfg.drainDelay)
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
			s.event(r, Registered, nil)
			s.logger.LogAttrs(ctx, slog.LevelInfo, "registry: registered", s.attrs(r, slog.Int("attempt", attempt))...)
			return
		}
		if ctx.Err() != nil {
			return
		}
		sleep := bo.Delay(attempt - 1)
		s.event(r, RegisterFailed, err)
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
				s.event(r, DeregisterFailed, err)
				s.logger.LogAttrs(ctx, slog.LevelError, "registry: deregister failed", s.attrs(r, slog.String("error", err.Error()))...)
				return
			}
			s.health.SetRegistration(r.backend, RegistrationDeregistered)
			s.event(r, Deregistered, nil)
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

func (s *Server) event(r *registration, kind EventKind, err error) {
	if s.cfg.onEvent == nil {
		return
	}
	ins := *r.ins
	ins.Metadata = maps.Clone(r.ins.Metadata)
	s.cfg.onEvent(Event{Backend: r.backend, Kind: kind, Instance: &ins, Err: err, Time: time.Now()})
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

// SignalContext returns a context that ends at the first SIGINT or
// SIGTERM, for Run; cancel releases the signal handling. After the first
// signal the handling is released too, so a second signal gets the
// default behaviour (the process exits) and an operator can cut a drain
// short.
func SignalContext(parent context.Context) (ctx context.Context, cancel context.CancelFunc) {
	ctx, cancel = context.WithCancel(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
		case <-ctx.Done():
		}
		signal.Stop(ch)
		cancel()
	}()
	return ctx, cancel
}
