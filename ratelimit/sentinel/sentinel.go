// Package sentinel puts Alibaba Sentinel flow control in front of Gin
// routes: per-route flow rules (reject, warm-up, throttling), hotspot
// parameters, system adaptive protection, isolation and Sentinel's circuit
// breakers, with rules from code, a file (hot reload) or the Nacos config
// center.
//
// Unlike Sentinel's own Gin adapter, the resource is the route template
// (unmatched paths share one bounded resource), handler failures (5xx,
// panics, errors) are traced into the entry so error-ratio and slow-request
// breakers see them, and each block type gets its own answer through the
// errcode envelope: flow and hotspot 429 FLOW_BLOCKED, system 503
// SYSTEM_OVERLOAD, isolation 503 CONCURRENCY_LIMITED, breaker 503
// CIRCUIT_OPEN.
//
// This is a separate module, so that importing gingov's core never links
// Sentinel.
package sentinel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	sentinelapi "github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/base"
	sentinelcb "github.com/alibaba/sentinel-golang/core/circuitbreaker"
	"github.com/alibaba/sentinel-golang/core/config"
	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/reqstate"
)

// UnmatchedResource is the one resource of requests that matched no route.
const UnmatchedResource = "unmatched"

// Resource is the Sentinel resource of a route: "GET:/orders/:id".
func Resource(method, route string) string { return method + ":" + route }

// DefaultLogDir is where Sentinel writes its logs unless Init says otherwise:
// a directory under the system temp dir, never the working directory.
func DefaultLogDir() string { return filepath.Join(os.TempDir(), "gingov-sentinel") }

var (
	initOnce sync.Once
	initErr  error
)

// InitOption configures Init.
type InitOption func(*config.Entity)

// WithLogDir sets Sentinel's log and metric-log directory.
func WithLogDir(dir string) InitOption {
	return func(e *config.Entity) { e.Sentinel.Log.Dir = dir }
}

// WithSystemStats sets how often (ms) Sentinel samples load, CPU and memory
// for system rules (default 1000; 0 turns sampling off).
func WithSystemStats(intervalMs uint32) InitOption {
	return func(e *config.Entity) { e.Sentinel.Stat.System.CollectIntervalMs = intervalMs }
}

// Init sets Sentinel up once per process; later calls return the first
// call's result. New calls it with no options if it has not run.
func Init(opts ...InitOption) error {
	initOnce.Do(func() {
		e := config.NewDefaultConfig()
		e.Sentinel.App.Name = "gingov"
		e.Sentinel.Log.Dir = DefaultLogDir()
		e.Sentinel.Log.Metric.FlushIntervalSec = 0 // no metric log files: gingov's metrics cover it
		for _, o := range opts {
			o(e)
		}
		if err := os.MkdirAll(e.Sentinel.Log.Dir, 0o755); err != nil {
			initErr = fmt.Errorf("sentinel: log dir: %w", err)
			return
		}
		if err := sentinelapi.InitWithConfig(e); err != nil {
			initErr = fmt.Errorf("sentinel: init: %w", err)
		}
	})
	return initErr
}

// Param extracts a hotspot parameter from a request; ok false passes none
// (the hotspot rules on that index then do not apply).
type Param func(c *gin.Context) (value string, ok bool)

// ParamIP is the client IP (Gin's trusted-proxy rules).
func ParamIP() Param { return func(c *gin.Context) (string, bool) { return c.ClientIP(), true } }

// ParamHeader is a request header.
func ParamHeader(name string) Param {
	return func(c *gin.Context) (string, bool) { v := c.GetHeader(name); return v, v != "" }
}

// ParamQuery is a query parameter.
func ParamQuery(name string) Param {
	return func(c *gin.Context) (string, bool) { return c.GetQuery(name) }
}

// ParamPath is a path parameter of the route (":id").
func ParamPath(name string) Param {
	return func(c *gin.Context) (string, bool) { v := c.Param(name); return v, v != "" }
}

// Option configures New.
type Option func(*Flow)

// WithParams passes hotspot parameters, in this order (a HotspotRule's
// Param is an index into them).
func WithParams(p ...Param) Option { return func(f *Flow) { f.params = p } }

// WithFallback serves a route's blocked requests with fb (route as
// registered; "" for every route without its own).
func WithFallback(route string, fb circuitbreaker.Fallback) Option {
	return func(f *Flow) { f.fallbacks[route] = fb }
}

// WithBlockHandler replaces how blocked requests are answered (after
// fallbacks). It must write a response.
func WithBlockHandler(h func(c *gin.Context, block *base.BlockError)) Option {
	return func(f *Flow) { f.blockHandler = h }
}

// WithLogger sets the logger of failed fallbacks (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(f *Flow) { f.logger = l } }

// WithOnBlock calls fn for every blocked request, before it is answered,
// with the request's context, the resource ("GET:/orders/:id") and the
// block type as [BlockTypeName] names it. fn runs on the request's
// goroutine and must be fast; metrics.Governance.OnSentinelBlock fits.
func WithOnBlock(fn func(ctx context.Context, resource, blockType string)) Option {
	return func(f *Flow) {
		if fn == nil {
			f.nilOnBlock = true
		}
		f.onBlock = fn
	}
}

// BlockTypeName names a block type for metrics and logs: "flow",
// "isolation", "circuit_breaking", "system", "hotspot", else "unknown".
func BlockTypeName(t base.BlockType) string {
	switch t {
	case base.BlockTypeFlow:
		return "flow"
	case base.BlockTypeIsolation:
		return "isolation"
	case base.BlockTypeCircuitBreaking:
		return "circuit_breaking"
	case base.BlockTypeSystemFlow:
		return "system"
	case base.BlockTypeHotSpotParamFlow:
		return "hotspot"
	}
	return "unknown"
}

// Flow is the Sentinel middleware.
type Flow struct {
	baseOpts     []sentinelapi.EntryOption // the same for every request
	resources    sync.Map                  // routeKey -> resource name, built once per route
	params       []Param
	fallbacks    map[string]circuitbreaker.Fallback
	blockHandler func(c *gin.Context, block *base.BlockError)
	logger       *slog.Logger
	onBlock      func(ctx context.Context, resource, blockType string)
	nilOnBlock   bool
}

// New returns the middleware, initialising Sentinel (Init) if needed.
func New(opts ...Option) (*Flow, error) {
	f := &Flow{fallbacks: map[string]circuitbreaker.Fallback{}, logger: slog.Default()}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("sentinel: nil option")
		}
		o(f)
	}
	for route, fb := range f.fallbacks {
		if fb == nil {
			return nil, fmt.Errorf("sentinel: nil fallback for route %q", route)
		}
	}
	for i, p := range f.params {
		if p == nil {
			return nil, fmt.Errorf("sentinel: nil param %d", i)
		}
	}
	if f.nilOnBlock {
		return nil, errors.New("sentinel: WithOnBlock: nil function")
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	f.baseOpts = []sentinelapi.EntryOption{sentinelapi.WithTrafficType(base.Inbound), sentinelapi.WithResourceType(base.ResTypeWeb)}
	if err := Init(); err != nil {
		return nil, err
	}
	return f, nil
}

// BlockedError is the cause given to fallbacks and logs for a blocked request.
type BlockedError struct{ Block *base.BlockError }

func (e *BlockedError) Error() string { return "sentinel: blocked by " + e.Block.BlockType().String() }

// Middleware guards every request with its route's resource.
func (f *Flow) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		route := c.FullPath()
		resource := f.resource(c.Request.Method, route)
		opts := f.baseOpts
		if len(f.params) > 0 {
			opts = append(opts[:len(opts):len(opts)], nil) // a copy: baseOpts is shared
			args := make([]interface{}, len(f.params))
			for i, p := range f.params {
				if v, ok := p(c); ok {
					args[i] = v
				}
			}
			opts[len(opts)-1] = sentinelapi.WithArgs(args...)
		}
		entry, block := sentinelapi.Entry(resource, opts...)
		if block != nil {
			f.blocked(c, route, resource, block)
			return
		}
		completed := false
		defer func() {
			if !completed {
				if p := recover(); p != nil {
					if reqstate.ObservePanic(c, p) != reqstate.StatusClientClosedRequest {
						sentinelapi.TraceError(entry, fmt.Errorf("panic: %v", p))
					}
					entry.Exit()
					panic(p)
				}
			}
			entry.Exit()
		}()
		c.Next()
		completed = true
		if status := c.Writer.Status(); status >= 500 {
			err := errors.New("status " + strconv.Itoa(status))
			if len(c.Errors) > 0 {
				err = c.Errors.Last()
			}
			sentinelapi.TraceError(entry, err)
		}
	}
}

type routeKey struct{ method, route string }

// resource names a route's resource once, not per request; routes are the
// engine's, so the cache is bounded.
func (f *Flow) resource(method, route string) string {
	if route == "" {
		return UnmatchedResource
	}
	k := routeKey{method, route}
	if r, ok := f.resources.Load(k); ok {
		return r.(string)
	}
	r := Resource(method, route)
	f.resources.Store(k, r)
	return r
}

func (f *Flow) blocked(c *gin.Context, route, resource string, block *base.BlockError) {
	if f.onBlock != nil {
		f.onBlock(c.Request.Context(), resource, BlockTypeName(block.BlockType()))
	}
	cause := &BlockedError{Block: block}
	fb := f.fallbacks[route]
	if fb == nil {
		fb = f.fallbacks[""]
	}
	if fb != nil && circuitbreaker.RunFallback(c, fb, cause, f.logger) {
		return
	}
	if f.blockHandler != nil {
		f.blockHandler(c, block)
		c.Abort()
		return
	}
	code := errcode.FlowBlocked
	switch block.BlockType() {
	case base.BlockTypeSystemFlow:
		code = errcode.SystemOverload
	case base.BlockTypeIsolation:
		code = errcode.ConcurrencyLimited
	case base.BlockTypeCircuitBreaking:
		code = errcode.CircuitOpen
	}
	c.Writer.Header()["Retry-After"] = []string{strconv.Itoa(retryAfterSecs(block))}
	errcode.Write(c, code.Wrap(cause))
}

// retryAfterSecs is when a blocked request could pass, as far as the rule
// tells: a breaker's retry timeout, a flow rule's statistic window; else 1.
func retryAfterSecs(block *base.BlockError) int {
	ms := uint32(1000)
	switch r := block.TriggeredRule().(type) {
	case *sentinelcb.Rule:
		ms = r.RetryTimeoutMs
	case *flow.Rule:
		ms = r.StatIntervalInMs
	}
	return max(1, int((ms+999)/1000))
}
