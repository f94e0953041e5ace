package circuitbreaker

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/cowmap"
	"github.com/gingov/gingov/reqinfo"
)

// OverflowName names the breaker shared by names past the bound.
const OverflowName = "overflow"

// breakerKey is what a group keys its breakers by.
type breakerKey interface {
	comparable
	breakerName() string
}

// group holds the breakers by name, bounded.
type group[K breakerKey] struct {
	cfg *config
	// breakers is read on every request and written once per name: a
	// copy-on-write map reads without a lock or an interface key. It holds
	// the first cowBreakers names; a group with more (a Transport calling
	// many hosts) keeps the rest in more, where adding one copies nothing.
	breakers cowmap.Map[K, breaker]
	more     sync.Map // K -> breaker, past breakers' limit
	nMore    atomic.Int64
	overflow breaker
	shared   *sharedState // nil unless WithShared
}

// cowBreakers is how many breakers a group keeps in its copy-on-write map.
const cowBreakers = 4096

func newGroup[K breakerKey](cfg *config) *group[K] {
	g := &group[K]{cfg: cfg}
	g.breakers.Limit = min(cfg.maxBreakers, cowBreakers)
	if cfg.shared != nil {
		g.shared = startShared(*cfg.shared)
	}
	g.overflow = g.newBreaker(OverflowName)
	return g
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

// load returns the breaker of k, if it has one.
func (g *group[K]) load(k K) (breaker, bool) {
	if b, ok := g.breakers.Load(k); ok {
		return b, true
	}
	if g.nMore.Load() == 0 {
		return nil, false
	}
	if b, ok := g.more.Load(k); ok {
		return b.(breaker), true
	}
	return nil, false
}

func (g *group[K]) get(k K) breaker {
	if b, ok := g.load(k); ok {
		return b
	}
	if int64(g.breakers.Len())+g.nMore.Load() >= int64(g.cfg.maxBreakers) {
		return g.overflow
	}
	nb := g.newBreaker(k.breakerName())
	b, loaded := g.breakers.LoadOrStore(k, nb)
	if loaded {
		return b
	}
	if _, kept := g.breakers.Load(k); kept {
		return b
	}
	// The copy-on-write map is full (it never shrinks, so k is not in it).
	m, loaded := g.more.LoadOrStore(k, nb)
	if !loaded {
		g.nMore.Add(1)
	}
	return m.(breaker)
}

func (g *group[K]) changed(ctx context.Context, ev Event) {
	level := slog.LevelInfo
	if ev.To == StateOpen {
		level = slog.LevelWarn
	}
	g.cfg.logger.Log(ctx, level, "circuit breaker state changed",
		"breaker", ev.Name, "from", ev.From.String(), "to", ev.To.String())
	if ev.To == StateOpen && g.shared != nil {
		g.shared.tripped(ev.Name, ev.At)
	}
	if g.cfg.onChange != nil {
		g.cfg.onChange(ctx, ev)
	}
}

// Server is the server-side breaker: one per route template and method.
type Server struct {
	cfg   serverConfig
	group *group[routeKey]
}

type routeKey struct{ method, route string }

func (k routeKey) breakerName() string { return k.method + " " + k.route }

// New returns a server breaker. It fails for an invalid policy or option.
func New(opts ...Option) (*Server, error) {
	cfg, err := newServerConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	s.group = newGroup[routeKey](&s.cfg.config)
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
	if b, ok := s.group.load(routeKey{method, route}); ok {
		return b.state()
	}
	return StateClosed
}

// Middleware breaks per route (requests no route matched share the
// breaker of [reqinfo.UnmatchedRoute]): a rejected request is answered by
// the route's fallback, else by the errcode envelope 503 CIRCUIT_OPEN with
// Retry-After. Put it after logging and metrics, so rejections are seen.
func (s *Server) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		route := reqinfo.Route(c)
		ctx := c.Request.Context()
		b := s.group.get(routeKey{c.Request.Method, route})
		t, err := b.allow(ctx)
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
				if reqinfo.ObservePanic(c, p) == reqinfo.StatusClientClosedRequest {
					b.done(ctx, t, excluded)
				} else {
					b.done(ctx, t, failed)
				}
				panic(p)
			}
			b.done(ctx, t, excluded) // runtime.Goexit: no outcome to learn from
		}()
		c.Next()
		completed = true
		b.done(ctx, t, s.outcome(c))
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
	if fb != nil {
		answered, err := errcode.RunFallback(c, fb, cause)
		errcode.LogFallbackError(c.Request.Context(), s.cfg.logger, err, "circuit breaker fallback failed",
			slog.String("route", route))
		if answered {
			return
		}
	}
	writeRejection(c, cause)
}

// writeRejection answers a rejected request with the errcode envelope
// 503 CIRCUIT_OPEN and a Retry-After from the *OpenError in cause.
func writeRejection(c *gin.Context, cause error) {
	retry := 1.0
	var oe *OpenError
	if errors.As(cause, &oe) {
		retry = math.Max(1, math.Ceil(oe.RetryAfter.Seconds()))
	}
	c.Writer.Header()["Retry-After"] = []string{strconv.Itoa(int(retry))}
	errcode.Write(c, errcode.CircuitOpen.Wrap(cause))
}
