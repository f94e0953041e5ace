package circuitbreaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/reqstate"
)

// DefaultMaxBreakers bounds the breakers of a Server or Transport; names
// past it share one breaker named OverflowName.
const DefaultMaxBreakers = 1024

// OverflowName names the breaker shared by names past the bound.
const OverflowName = "overflow"

// UnmatchedRoute is the route of requests no route matched (one breaker).
const UnmatchedRoute = "unmatched"

// Option configures a Server or a Transport.
type Option func(*config)

type config struct {
	policy      Policy
	onChange    func(Change)
	logger      *slog.Logger
	maxBreakers int
	isFailure   func(c *gin.Context, status int) bool
	fallbacks   map[string]Fallback
	fallbackAll Fallback
	shared      *Shared
}

// WithPolicy sets the policy (default Classic{}).
func WithPolicy(p Policy) Option { return func(c *config) { c.policy = p } }

// WithOnStateChange calls fn on every state change, outside the breaker's
// lock, on the goroutine of the request that caused it. fn must be fast.
func WithOnStateChange(fn func(Change)) Option { return func(c *config) { c.onChange = fn } }

// WithLogger logs state changes (opened at WARN, others at INFO); default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMaxBreakers bounds the number of breakers (default DefaultMaxBreakers).
func WithMaxBreakers(n int) Option { return func(c *config) { c.maxBreakers = n } }

// WithFailure replaces what counts as a failed request for the server
// breaker. The default counts 5xx answers and requests whose context
// deadline passed; 4xx (429 included) and 499 are not failures. Panics
// always count.
func WithFailure(fn func(c *gin.Context, status int) bool) Option {
	return func(c *config) { c.isFailure = fn }
}

// WithFallback serves requests of the route template (as registered, e.g.
// "/orders/:id"; "" for every route without one of its own) with fb while
// its breaker rejects them, instead of the 503 envelope.
func WithFallback(route string, fb Fallback) Option {
	return func(c *config) {
		if route == "" {
			c.fallbackAll = fb
			return
		}
		c.fallbacks[route] = fb
	}
}

func newConfig(opts []Option) (config, error) {
	cfg := config{policy: Classic{}, maxBreakers: DefaultMaxBreakers, fallbacks: map[string]Fallback{}}
	for _, o := range opts {
		if o == nil {
			return cfg, errors.New("circuitbreaker: nil option")
		}
		o(&cfg)
	}
	if cfg.policy == nil {
		return cfg, errors.New("circuitbreaker: nil policy")
	}
	if v, ok := cfg.policy.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return cfg, err
		}
	}
	if cfg.maxBreakers < 1 {
		return cfg, fmt.Errorf("circuitbreaker: max breakers must be >= 1, got %d", cfg.maxBreakers)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	for route, fb := range cfg.fallbacks {
		if fb == nil {
			return cfg, fmt.Errorf("circuitbreaker: nil fallback for route %q", route)
		}
	}
	return cfg, nil
}

// group holds the breakers by name, bounded.
type group[K comparable] struct {
	cfg      *config
	breakers sync.Map // K -> breaker
	n        atomic.Int64
	overflow breaker
	shared   *sharedState // nil unless WithShared
}

func newGroup[K comparable](cfg *config) (*group[K], error) {
	g := &group[K]{cfg: cfg}
	if cfg.shared != nil {
		st, err := startShared(*cfg.shared)
		if err != nil {
			return nil, err
		}
		g.shared = st
	}
	g.overflow = g.newBreaker(OverflowName)
	return g, nil
}

func (g *group[K]) newBreaker(name string) breaker {
	b := g.cfg.policy.newBreaker(name, g.changed)
	if g.shared != nil {
		var openFor time.Duration
		if c, ok := g.cfg.policy.(Classic); ok { // SRE has no open period to share
			openFor = c.withDefaults().OpenTimeout
		}
		b = g.shared.wrap(name, b, openFor)
	}
	return b
}

func (g *group[K]) close() {
	if g.shared != nil {
		g.shared.close()
	}
}

func (g *group[K]) get(k K, name func() string) breaker {
	if b, ok := g.breakers.Load(k); ok {
		return b.(breaker)
	}
	if g.n.Load() >= int64(g.cfg.maxBreakers) {
		return g.overflow
	}
	b, loaded := g.breakers.LoadOrStore(k, g.newBreaker(name()))
	if !loaded {
		g.n.Add(1)
	}
	return b.(breaker)
}

func (g *group[K]) changed(ch Change) {
	level := slog.LevelInfo
	if ch.To == StateOpen {
		level = slog.LevelWarn
	}
	g.cfg.logger.Log(context.Background(), level, "circuit breaker state changed",
		"breaker", ch.Name, "from", ch.From.String(), "to", ch.To.String())
	if ch.To == StateOpen && g.shared != nil {
		g.shared.tripped(ch.Name, ch.At)
	}
	if g.cfg.onChange != nil {
		g.cfg.onChange(ch)
	}
}

// Server is the server-side breaker: one per route template and method.
type Server struct {
	cfg   config
	group *group[routeKey]
}

type routeKey struct{ method, route string }

// New returns a server breaker. It fails for an invalid policy or option.
func New(opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	if s.group, err = newGroup[routeKey](&s.cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the shared-state sync loop (WithShared); without it, Close
// does nothing.
func (s *Server) Close() error {
	s.group.close()
	return nil
}

// State returns the state of the breaker of a method and route template.
func (s *Server) State(method, route string) State {
	if b, ok := s.group.breakers.Load(routeKey{method, route}); ok {
		return b.(breaker).state()
	}
	return StateClosed
}

// Middleware breaks per route: a rejected request is answered by the
// route's fallback, else by the errcode envelope 503 CIRCUIT_OPEN with
// Retry-After. Put it after logging and metrics, so rejections are seen.
func (s *Server) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		route := c.FullPath()
		if route == "" {
			route = UnmatchedRoute
		}
		b := s.group.get(routeKey{c.Request.Method, route}, func() string { return c.Request.Method + " " + route })
		done, err := b.allow()
		if err != nil {
			s.reject(c, route, err)
			return
		}
		completed := false
		defer func() {
			if completed {
				return
			}
			if p := recover(); p != nil {
				if reqstate.ObservePanic(c, p) == reqstate.StatusClientClosedRequest {
					done(excluded)
				} else {
					done(failed)
				}
				panic(p)
			}
			done(excluded) // runtime.Goexit: no outcome to learn from
		}()
		c.Next()
		completed = true
		done(s.outcome(c))
	}
}

func (s *Server) outcome(c *gin.Context) outcome {
	status := c.Writer.Status()
	var bad bool
	if s.cfg.isFailure != nil {
		bad = s.cfg.isFailure(c, status)
	} else {
		bad = status >= 500 || errors.Is(c.Request.Context().Err(), context.DeadlineExceeded)
	}
	if bad {
		return failed
	}
	return succeeded
}

func (s *Server) reject(c *gin.Context, route string, cause error) {
	fb := s.cfg.fallbacks[route]
	if fb == nil {
		fb = s.cfg.fallbackAll
	}
	if fb != nil && RunFallback(c, fb, cause, s.cfg.logger) {
		return
	}
	WriteRejection(c, cause)
}

// WriteRejection answers a rejected request with the errcode envelope
// 503 CIRCUIT_OPEN and a Retry-After from the *OpenError in cause.
func WriteRejection(c *gin.Context, cause error) {
	retry := 1.0
	var oe *OpenError
	if errors.As(cause, &oe) {
		retry = math.Max(1, math.Ceil(oe.RetryAfter.Seconds()))
	}
	c.Writer.Header()["Retry-After"] = []string{strconv.Itoa(int(retry))}
	errcode.Write(c, errcode.CircuitOpen.Wrap(cause))
}
