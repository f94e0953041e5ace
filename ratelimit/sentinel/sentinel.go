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
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"

	sentinelapi "github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/base"
	sentinelcb "github.com/alibaba/sentinel-golang/core/circuitbreaker"
	"github.com/alibaba/sentinel-golang/core/config"
	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/reqinfo"
)

// Resource is the Sentinel resource of a route: "GET:/orders/:id".
// Requests that matched no route share one resource, [reqinfo.UnmatchedRoute].
func Resource(method, route string) string { return method + ":" + route }

// DefaultLogDir is where Sentinel writes its logs unless Init says otherwise:
// a directory under the system temp dir, never the working directory.
func DefaultLogDir() string { return filepath.Join(os.TempDir(), "gingov-sentinel") }

var (
	initMu   sync.Mutex
	initDone bool
	initWant *config.Entity // the settings of the first call, for comparison
	initErr  error
)

// InitOption configures [Init].
type InitOption interface{ applyInit(*config.Entity) }

type initOption func(*config.Entity)

func (f initOption) applyInit(e *config.Entity) { f(e) }

// WithLogDir sets Sentinel's log and metric-log directory (default
// [DefaultLogDir]; "" is an error).
func WithLogDir(dir string) InitOption {
	return initOption(func(e *config.Entity) { e.Sentinel.Log.Dir = dir })
}

// DefaultSystemStatsInterval is how often (ms) Sentinel samples load, CPU
// and memory for system rules unless WithSystemStats says otherwise.
const DefaultSystemStatsInterval uint32 = 1000

// WithSystemStats sets how often (ms) Sentinel samples load, CPU and memory
// for system rules (default [DefaultSystemStatsInterval]; 0 turns sampling
// off).
func WithSystemStats(intervalMs uint32) InitOption {
	return initOption(func(e *config.Entity) { e.Sentinel.Stat.System.CollectIntervalMs = intervalMs })
}

// WithCachedClock sets whether Sentinel reads the time from a clock cached
// per millisecond (Sentinel's useCacheTime: a goroutine refreshes it every
// millisecond for the life of the process) instead of reading the system
// clock several times per entry and exit. Default on: statistics and rules
// work in milliseconds either way, and reading the system clock was a
// fifth of the middleware's CPU time.
func WithCachedClock(on bool) InitOption {
	return initOption(func(e *config.Entity) { e.Sentinel.UseCacheTime = on })
}

// newInitConfig applies opts over gingov's defaults for Sentinel.
func newInitConfig(opts []InitOption) (*config.Entity, error) {
	e := config.NewDefaultConfig()
	e.Sentinel.App.Name = "gingov"
	e.Sentinel.UseCacheTime = true
	e.Sentinel.Log.Dir = DefaultLogDir()
	e.Sentinel.Log.Metric.FlushIntervalSec = 0 // no metric log files: gingov's metrics cover it
	e.Sentinel.Stat.System.CollectIntervalMs = DefaultSystemStatsInterval
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("sentinel: option %d is nil", i+1)
		}
		o.applyInit(e)
	}
	if e.Sentinel.Log.Dir == "" {
		return nil, errors.New("sentinel: WithLogDir: empty directory")
	}
	return e, nil
}

// Init sets Sentinel up once per process; later calls return the first
// call's result. Every call validates its options (an invalid one is an
// error, and does not count as the first call). Sentinel's settings cannot
// change once it runs: a later call with options that differ from those in
// force is an error (a later call without options, as New makes, is not).
// New calls it with no options if it has not run.
func Init(opts ...InitOption) error {
	want, err := newInitConfig(opts)
	if err != nil {
		return err
	}
	initMu.Lock()
	defer initMu.Unlock()
	if initDone {
		if len(opts) > 0 && !reflect.DeepEqual(want, initWant) {
			return fmt.Errorf("sentinel: Init: already initialised with other settings (log dir %q, system stats every %d ms); options must come with the first call",
				initWant.Sentinel.Log.Dir, initWant.Sentinel.Stat.System.CollectIntervalMs)
		}
		return initErr
	}
	initDone, initWant = true, want
	e, _ := newInitConfig(opts) // Sentinel may change the one it is given
	if err := os.MkdirAll(e.Sentinel.Log.Dir, 0o755); err != nil {
		initErr = fmt.Errorf("sentinel: log dir: %w", err)
		return initErr
	}
	if err := sentinelapi.InitWithConfig(e); err != nil {
		initErr = fmt.Errorf("sentinel: init: %w", err)
	}
	return initErr
}

// Param extracts a hotspot parameter from a request; ok false passes none
// (the hotspot rules on that index then do not apply).
type Param func(c *gin.Context) (value string, ok bool)

// ParamIP is the client IP (Gin's trusted-proxy rules).
func ParamIP() Param { return func(c *gin.Context) (string, bool) { return reqinfo.ClientIP(c), true } }

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

// Option configures [New].
type Option interface{ applyFlow(*flowConfig) }

type flowOption func(*flowConfig)

func (f flowOption) applyFlow(c *flowConfig) { f(c) }

type flowConfig struct {
	params       []Param
	fallbacks    map[string]errcode.Fallback
	nilFallback  *string
	blockHandler func(c *gin.Context, block *base.BlockError)
	nilHandler   bool
	logger       *slog.Logger
	onBlock      func(context.Context, Event)
	nilOnBlock   bool
}

// newFlowConfig applies opts over the defaults and checks the result.
func newFlowConfig(opts []Option) (flowConfig, error) {
	cfg := flowConfig{fallbacks: map[string]errcode.Fallback{}}
	for i, o := range opts {
		if nilOption(o) {
			return cfg, fmt.Errorf("sentinel: option %d is nil", i+1)
		}
		o.applyFlow(&cfg)
	}
	switch {
	case cfg.nilFallback != nil:
		return cfg, fmt.Errorf("sentinel: WithFallback: nil fallback for route %q", *cfg.nilFallback)
	case cfg.nilHandler:
		return cfg, errors.New("sentinel: WithBlockHandler: nil function")
	case cfg.nilOnBlock:
		return cfg, errors.New("sentinel: WithOnBlock: nil function")
	}
	for i, p := range cfg.params {
		if p == nil {
			return cfg, fmt.Errorf("sentinel: WithParams: param %d is nil", i)
		}
	}
	cfg.logger = logging.OrDefault(cfg.logger)
	return cfg, nil
}

// WithParams passes hotspot parameters, in this order (a HotspotRule's
// Param is an index into them; default none). A nil Param is an error.
func WithParams(p ...Param) Option { return flowOption(func(c *flowConfig) { c.params = p }) }

// WithFallback serves a route's blocked requests with fb (route as
// registered; "" for every route without its own; default none: the
// envelope answers). A nil fb is an error.
func WithFallback(route string, fb errcode.Fallback) Option {
	return flowOption(func(c *flowConfig) {
		if fb == nil {
			c.nilFallback = &route
			return
		}
		c.fallbacks[route] = fb
	})
}

// WithBlockHandler replaces how blocked requests are answered (after
// fallbacks; default: the errcode envelope). It must write a response. A
// nil h is an error.
func WithBlockHandler(h func(c *gin.Context, block *base.BlockError)) Option {
	return flowOption(func(c *flowConfig) { c.blockHandler, c.nilHandler = h, h == nil })
}

// LoggerOption is an option of both [New] and the rule sources
// ([WatchFile], [WatchFileFunc], [WatchNacos], [WatchNacosFunc]): an
// [Option] and a [SourceOption].
type LoggerOption func(**slog.Logger)

func (f LoggerOption) applyFlow(c *flowConfig)     { f(&c.logger) }
func (f LoggerOption) applySource(c *sourceConfig) { f(&c.logger) }

// WithLogger sets the logger of failed fallbacks (New) and of rule loads
// and rejections (the sources); default, and for nil, the kit's JSON
// logger, logging.Default().
func WithLogger(l *slog.Logger) LoggerOption { return func(p **slog.Logger) { *p = l } }

// nilOption reports a nil option, or a nil function of an exported option
// type (which a caller can write as a zero value).
func nilOption(o any) bool {
	if f, ok := o.(LoggerOption); ok {
		return f == nil
	}
	return o == nil
}

// EventKind says what an [Event] reports.
type EventKind uint8

const (
	// EventBlock is a blocked request, reported to the WithOnBlock hook
	// (Resource, BlockType and Block are set).
	EventBlock EventKind = iota + 1
	// EventReload is a load attempt of a rule source, reported to the
	// WithOnReload hook (Source and Err are set).
	EventReload
)

func (k EventKind) String() string {
	switch k {
	case EventBlock:
		return "block"
	case EventReload:
		return "reload"
	}
	return "unknown"
}

// Event is what the package reports to its hooks: a blocked request
// (WithOnBlock) or a load attempt of a rule source (WithOnReload).
type Event struct {
	Kind EventKind

	// Resource is the Sentinel resource: "GET:/orders/:id", or
	// reqinfo.UnmatchedRoute (EventBlock).
	Resource string
	// BlockType is the block's type as [BlockTypeName] names it: "flow",
	// "hotspot", "system", "isolation", "circuit_breaking" (EventBlock).
	BlockType string
	// Block is Sentinel's own account: the rule that blocked, and more
	// (EventBlock).
	Block *base.BlockError

	// Source names the rule source: "file:<path>" or
	// "nacos:<group>/<dataID>" (EventReload).
	Source string
	// Err is why the document was rejected; nil: it was loaded
	// (EventReload).
	Err error
}

// WithOnBlock calls fn for every blocked request, before it is answered,
// with the request's context. fn runs on the request's goroutine and must
// not block. Default none; a nil fn is an error. For metrics.Governance, which cannot
// name this module's Event:
//
//	sentinel.WithOnBlock(func(ctx context.Context, e sentinel.Event) {
//		gov.OnSentinelBlock(ctx, e.Resource, e.BlockType)
//	})
func WithOnBlock(fn func(ctx context.Context, e Event)) Option {
	return flowOption(func(c *flowConfig) { c.onBlock, c.nilOnBlock = fn, fn == nil })
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
	flowConfig
	baseOpts []sentinelapi.EntryOption // the same for every request
	// resources names each route's resource once: read on every request,
	// written once per route (routes are the engine's, so it is bounded),
	// copied on write so that a read takes no lock.
	resources atomic.Pointer[map[routeKey]string]
	resMu     sync.Mutex
}

// New returns the middleware, initialising Sentinel (Init) if needed. It
// fails for an invalid option.
func New(opts ...Option) (*Flow, error) {
	cfg, err := newFlowConfig(opts)
	if err != nil {
		return nil, err
	}
	f := &Flow{flowConfig: cfg}
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
					if reqinfo.ObservePanic(c, p) != reqinfo.StatusClientClosedRequest {
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
		return reqinfo.UnmatchedRoute
	}
	k := routeKey{method, route}
	if m := f.resources.Load(); m != nil {
		if r, ok := (*m)[k]; ok {
			return r
		}
	}
	f.resMu.Lock()
	defer f.resMu.Unlock()
	var old map[routeKey]string
	if m := f.resources.Load(); m != nil {
		old = *m
	}
	if r, ok := old[k]; ok {
		return r
	}
	m := make(map[routeKey]string, len(old)+1)
	for kk, v := range old {
		m[kk] = v
	}
	r := Resource(method, route)
	m[k] = r
	f.resources.Store(&m)
	return r
}

func (f *Flow) blocked(c *gin.Context, route, resource string, block *base.BlockError) {
	ctx := c.Request.Context()
	if f.onBlock != nil {
		f.onBlock(ctx, Event{Kind: EventBlock, Resource: resource, BlockType: BlockTypeName(block.BlockType()), Block: block})
	}
	cause := &BlockedError{Block: block}
	fb := f.fallbacks[route]
	if fb == nil {
		fb = f.fallbacks[""]
	}
	if fb != nil {
		answered, err := errcode.RunFallback(c, fb, cause)
		errcode.LogFallbackError(ctx, f.logger, err, "sentinel fallback failed", slog.String("resource", resource))
		if answered {
			return
		}
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
