// Package deadline gives every request a deadline and carries the time
// that is left of it to the services the request calls.
//
// [Timeouts.Middleware] sets a deadline on c.Request's context before the
// handler runs: the route's timeout ([DefaultTimeout], or [WithRoute]),
// shortened — never lengthened — by the budget the caller sent in the
// [Header] (Request-Timeout) or [GRPCHeader] (grpc-timeout) header. A
// route may opt out ([WithExempt]), for example a stream.
//
// When the deadline passes before the handler committed an answer, the
// request is answered with the errcode envelope 504 DEADLINE_EXCEEDED
// (499 CLIENT_CLOSED_REQUEST when the client went away), written once, on
// the request's goroutine, after the handler returned: no timer goroutine
// ever writes the response. A handler that honours its context returns at
// the deadline; one that ignores it is answered when it returns, and what
// it wrote after the deadline is dropped (its writes fail with the
// context's error). An answer the handler committed before the deadline
// is the handler's. The middlewares after this one (rate limit, Sentinel,
// breaker) see the request as 504 through c.Writer.Status(), those before
// it (metrics, access log) see the 504 that was written.
//
// Outbound, [Propagate] (used by tracing.Transport, registry.Transport and
// circuitbreaker.Transport) sends the remaining budget of a request's
// context, minus [DefaultMargin], in the [Header] header, and fails fast
// with context.DeadlineExceeded when nothing is left.
//
// The middleware's place in the chain is after the access log and before
// the rate limit: Recovery, RequestID, tracing, metrics, AccessLog,
// deadline, rate limit, Sentinel, breaker.
package deadline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/reqinfo"
)

// DefaultTimeout is the deadline of a request when New is given no better
// figure: one second, as a Kratos HTTP server gives its requests.
const DefaultTimeout = time.Second

// Option configures [New].
type Option interface{ applyDeadline(*config) }

type option func(*config)

func (f option) applyDeadline(c *config) { f(c) }

type routeKey struct{ method, path string }

type routeRule struct {
	timeout time.Duration
	exempt  bool
}

type config struct {
	timeout   time.Duration
	routes    map[routeKey]routeRule
	onTimeout func(context.Context, Event)
	nilHook   bool
	errs      []error // problems found while applying the options, in order
}

// WithRoute gives the requests of one route template their own timeout,
// in place of New's. route is a method and a route template as Gin
// registered it, separated by one space: "GET /reports/:id" (matched
// against c.Request.Method and c.FullPath()). timeout must be > 0. There
// is no default: routes without WithRoute get New's timeout. A route
// given twice (or also to [WithExempt]) is an error.
func WithRoute(route string, timeout time.Duration) Option {
	return option(func(c *config) {
		if timeout <= 0 {
			c.errs = append(c.errs, fmt.Errorf("deadline: WithRoute: %q: timeout %v must be > 0", route, timeout))
			return
		}
		c.addRoute("WithRoute", route, routeRule{timeout: timeout})
	})
}

// WithExempt takes one route template ("GET /events", as for [WithRoute])
// out of the middleware: its requests get no deadline of this middleware
// and ignore the caller's budget. For streams and long polls. No route is
// exempt by default.
func WithExempt(route string) Option {
	return option(func(c *config) { c.addRoute("WithExempt", route, routeRule{exempt: true}) })
}

// WithOnTimeout calls fn for every request answered with 504 because its
// deadline passed (not for 499, the client going away: the access log and
// the HTTP metrics count those). It runs on the request's goroutine, with
// the request's context, after the 504 was written; it must not block.
// metrics.Governance.OnDeadline implements it. Default: none; nil is an
// error.
func WithOnTimeout(fn func(context.Context, Event)) Option {
	return option(func(c *config) {
		c.onTimeout = fn
		c.nilHook = fn == nil
	})
}

func (c *config) addRoute(opt, route string, r routeRule) {
	k, err := parseRoute(route)
	if err != nil {
		c.errs = append(c.errs, fmt.Errorf("deadline: %s: %w", opt, err))
		return
	}
	if _, dup := c.routes[k]; dup {
		c.errs = append(c.errs, fmt.Errorf("deadline: %s: route %q is configured twice", opt, route))
		return
	}
	c.routes[k] = r
}

// parseRoute splits "GET /reports/:id".
func parseRoute(route string) (routeKey, error) {
	method, path, ok := strings.Cut(route, " ")
	if !ok || method == "" || !reqinfo.ValidHeaderName(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t") {
		return routeKey{}, fmt.Errorf("route %q must be a method and a route template, as in \"GET /reports/:id\"", route)
	}
	return routeKey{method: method, path: path}, nil
}

func newConfig(timeout time.Duration, opts []Option) (config, error) {
	cfg := config{timeout: timeout, routes: map[routeKey]routeRule{}}
	if timeout <= 0 {
		return cfg, fmt.Errorf("deadline: New: timeout %v must be > 0 (DefaultTimeout is %v)", timeout, DefaultTimeout)
	}
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("deadline: option %d is nil", i+1)
		}
		if f, ok := o.(option); ok && f == nil {
			return cfg, fmt.Errorf("deadline: option %d is nil", i+1)
		}
		o.applyDeadline(&cfg)
	}
	if len(cfg.errs) > 0 {
		return cfg, cfg.errs[0]
	}
	if cfg.nilHook {
		return cfg, errors.New("deadline: WithOnTimeout: nil function")
	}
	return cfg, nil
}

// Event describes a request answered with 504 because its deadline passed.
type Event struct {
	// Method and Route are the request's method and route template
	// (reqinfo.Route: reqinfo.UnmatchedRoute when no route matched).
	Method, Route string
	// Timeout is the deadline the request got, counted from when the
	// middleware saw it: the route's timeout or the caller's shorter
	// budget.
	Timeout time.Duration
	// Caller reports that the caller's budget (Request-Timeout or
	// grpc-timeout) set the deadline, being shorter than the route's.
	Caller bool
	// Elapsed is the time from the middleware's start to the handler's
	// return: about Timeout for a handler that honours its context, more
	// for one that does not.
	Elapsed time.Duration
}

// Timeouts is the deadline middleware: the timeout of every route, applied
// by Middleware. It is safe for concurrent use.
type Timeouts struct {
	cfg config
}

// New returns the middleware giving every request timeout (> 0; use
// [DefaultTimeout] for Kratos's one second) unless an option says
// otherwise. It fails for a non-positive timeout and for an invalid or nil
// option.
func New(timeout time.Duration, opts ...Option) (*Timeouts, error) {
	cfg, err := newConfig(timeout, opts)
	if err != nil {
		return nil, err
	}
	return &Timeouts{cfg: cfg}, nil
}

// Middleware returns the Gin middleware. Put it after the access log and
// the metrics (so they see the 504) and before the rate limit, Sentinel
// and breakers (so they see the deadline and the 504).
//
// The 504 carries the header fields that were set before the middleware
// ran (the request ID, say), not those set after it by the handler or the
// middlewares after this one (Content-Length, Set-Cookie, rate-limit
// headers): they belonged to an answer that was never sent. After the
// middleware returns, c.Request is the request it was given again.
func (d *Timeouts) Middleware() gin.HandlerFunc {
	return d.serve
}

func (d *Timeouts) serve(c *gin.Context) {
	timeout := d.cfg.timeout
	if len(d.cfg.routes) > 0 {
		if r, ok := d.cfg.routes[routeKey{c.Request.Method, c.FullPath()}]; ok {
			if r.exempt {
				c.Next()
				return
			}
			timeout = r.timeout
		}
	}
	start := time.Now()
	req := c.Request
	caller := false
	if b, ok := callerBudget(req.Header); ok && b < timeout {
		timeout, caller = b, true
	}
	parent := req.Context()
	ctx, cancel := context.WithDeadline(parent, start.Add(timeout))
	orig := c.Writer
	g := gatePool.Get().(*gate)
	g.reset(orig, ctx)
	c.Writer = g
	c.Request = req.WithContext(ctx)

	completed := false
	defer func() {
		if !completed {
			// A panic (or runtime.Goexit) on its way to Recovery, which
			// must write through the real writer. g is not pooled: the
			// panicking code may still hold it.
			c.Writer, c.Request = orig, req
			cancel()
		}
	}()
	c.Next()
	completed = true

	expired := g.expired || ctx.Err() != nil
	c.Writer, c.Request = orig, req
	if expired && !orig.Written() {
		g.dropAddedHeaders()
		if errors.Is(parent.Err(), context.Canceled) {
			errcode.Write(c, errcode.ClientClosed.Wrap(context.Canceled))
		} else {
			elapsed := time.Since(start)
			errcode.Write(c, errcode.DeadlineExceeded.Wrap(&exceededError{timeout: timeout, elapsed: elapsed, caller: caller}))
			if d.cfg.onTimeout != nil {
				d.cfg.onTimeout(parent, Event{
					Method:  req.Method,
					Route:   reqinfo.Route(c),
					Timeout: timeout,
					Caller:  caller,
					Elapsed: elapsed,
				})
			}
		}
	}
	cancel()
	g.release()
}

// exceededError is the cause of a 504, for the access log.
type exceededError struct {
	timeout, elapsed time.Duration
	caller           bool
}

func (e *exceededError) Error() string {
	src := "the route's"
	if e.caller {
		src = "the caller's"
	}
	return fmt.Sprintf("deadline: %s deadline of %v passed; the handler returned after %v",
		src, e.timeout, e.elapsed.Round(time.Microsecond))
}

func (e *exceededError) Unwrap() error { return context.DeadlineExceeded }
