// Package setup builds the whole gingov chain on a Gin engine from one
// configuration, read from YAML with environment overrides:
//
//	cfg, err := setup.Load("gingov.yaml")
//	if err != nil { ... }
//	chain, err := setup.Use(ctx, r, cfg)
//	if err != nil { ... }
//	defer chain.Close(context.Background())
//
// The middlewares go on in the documented order — recovery, request id,
// tracing, metrics, access log, deadline, the error envelope, rate limit, Sentinel,
// circuit breaker — and each section of the configuration is optional.
// The metrics endpoint and the health probes are exempt from the access
// log, the rate limiter, Sentinel and the breaker (see [Exempt]).
//
// [Chain.NewClient] builds the client for calls to other services. With
// Config.Mesh "sidecar" an Envoy sidecar takes over their discovery,
// balancing, retries and breakers, and rules with Enforce "sidecar" are
// left to Envoy's rate-limit filter (docs/mesh.md).
//
// # Reload sources
//
// The rate-limit rules and the inline Sentinel rules are reloaded, all or
// nothing, from the sources [Reload] names: the file (and its profile
// overlay), a Nacos data ID, an etcd key (etcd's Watch plus a re-read every
// interval) or a Consul KV key (blocking queries). A document that does
// not parse or validate never replaces the rules in force, and is logged
// at ERROR once however long it stays in place (the next good one is logged
// at INFO); gingov_config_reloads_total{source,result} counts both. Every
// call to a config centre is bounded by a timeout. A source that does not
// answer at start is an error naming it ("setup: reload.etcd: ..."); one
// lost later keeps the rules in force (a WARN), is retried with backoff,
// and its changes apply when it is back.
//
// # Profiles and precedence
//
// GINGOV_PROFILE (or [LoadProfile]'s argument) names a profile: the overlay
// gingov.<profile>.yaml next to the file is merged over it (maps merge key
// by key; lists, scalars and null replace), an empty Nacos namespace means
// the profile's, and "{profile}" in an etcd or Consul key is replaced by
// it. The precedence, lowest first:
//
//  1. the defaults,
//  2. the file (gingov.yaml),
//  3. the profile overlay (gingov.<profile>.yaml),
//  4. the config centre's document (merged over the files),
//  5. the GINGOV_ environment variables, applied again after every reload.
//
// setup is its own module because it links everything, Sentinel, the Nacos
// SDK and the etcd and Consul clients included; the packages it wires stay
// usable one by one.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gingov/gingov/circuitbreaker"
	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/ratelimit"
	"github.com/gingov/gingov/ratelimit/sentinel"
	"github.com/gingov/gingov/reqinfo"
	"github.com/gingov/gingov/tracing"
	"github.com/gingov/gingov/tracing/otlpgrpc"
	"github.com/gingov/gingov/tracing/otlphttp"
	"github.com/gingov/gingov/tracing/stdout"
)

// DefaultMetricsPath serves the metrics when Metrics.Path is empty.
const DefaultMetricsPath = "/metrics"

// DefaultReloadInterval is how often reloadable sources are read.
const DefaultReloadInterval = time.Second

// Chain is the governance chain Use put on an engine.
type Chain struct {
	// Logger is the kit's JSON logger; handlers log through
	// logging.FromContext(c.Request.Context()) to get the request's IDs.
	Logger *slog.Logger
	// Registry holds the metrics (nil when metrics are off).
	Registry *prometheus.Registry
	// Tracing is the tracer provider (nil when tracing is off); its
	// Client() continues a request's trace in outbound calls.
	Tracing *tracing.Provider

	opts    options
	rdb     redis.UniversalClient
	ownRDB  bool
	guard   atomic.Pointer[guardHandle]
	metrics *metrics.HTTP
	gov     *metrics.Governance

	mu      sync.Mutex // serialises reloads
	cfg     Config
	retired []*ratelimit.Guard

	cancel  context.CancelFunc
	waits   []func()
	closers []func(context.Context) error
	closed  atomic.Bool
}

type guardHandle struct {
	guard   *ratelimit.Guard
	handler gin.HandlerFunc
}

// Use validates cfg, builds every configured middleware and puts them on r
// in the documented order, with the error envelope for 404/405 and handler
// errors, and the metrics endpoint. Nothing is put on r when it fails.
// Watchers of reloadable sources run until Close.
func Use(ctx context.Context, r *gin.Engine, cfg Config, opts ...Option) (_ *Chain, err error) {
	if r == nil {
		return nil, errors.New("setup: nil engine")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	ch := &Chain{opts: o, cfg: cfg}
	defer func() {
		if err != nil {
			_ = ch.Close(context.Background())
		}
	}()
	ch.Logger = o.logger
	if ch.Logger == nil {
		out := o.logOut
		if out == nil {
			out = os.Stdout
		}
		ch.Logger = logging.New(out, logLevel(cfg.Log.Level))
	}
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ch.cancel = cancel

	rid, err := requestID(cfg.Log)
	if err != nil {
		return nil, err
	}
	chain := []gin.HandlerFunc{logging.Recovery(ch.Logger), rid}

	metricsPath := cfg.Metrics.Path
	if metricsPath == "" {
		metricsPath = DefaultMetricsPath
	}
	if !cfg.Tracing.Disabled {
		mw, err := ch.tracing(ctx, cfg, metricsPath)
		if err != nil {
			return nil, err
		}
		chain = append(chain, mw)
	}
	if !cfg.Metrics.Disabled {
		ch.Registry = o.registry
		if ch.Registry == nil {
			ch.Registry = prometheus.NewRegistry()
			ch.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		}
		mopts := []metrics.HTTPOption{metrics.WithNamespace(cfg.Metrics.Namespace)}
		if metricsPath != "-" {
			mopts = append(mopts, metrics.WithSkipPaths(metricsPath))
		}
		if ch.metrics, err = metrics.NewHTTP(ch.Registry, mopts...); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
		if ch.gov, err = metrics.NewGovernance(ch.Registry, metrics.WithNamespace(cfg.Metrics.Namespace)); err != nil {
			return nil, fmt.Errorf("setup: metrics: %w", err)
		}
		chain = append(chain, ch.metrics.Middleware())
	}

	skip := cfg.logSkipPaths(metricsPath)
	access, err := logging.NewAccessLog(ch.Logger, accessLogOptions(cfg.Log, skip)...)
	if err != nil {
		return nil, fmt.Errorf("setup: log: %w", err)
	}
	chain = append(chain, access.Middleware())
	if cfg.Deadline.enabled() {
		dl, err := ch.deadline(cfg.Deadline)
		if err != nil {
			return nil, err
		}
		chain = append(chain, dl.Middleware())
	}
	tail := []gin.HandlerFunc{}

	if len(cfg.RateLimit.Rules) > 0 {
		if ch.rdb = o.rdb; ch.rdb == nil && len(cfg.RateLimit.Redis.Addrs) > 0 {
			ch.rdb, ch.ownRDB = newRedis(cfg.RateLimit.Redis), true
		}
		g, err := ch.newGuard(cfg)
		if err != nil {
			return nil, err
		}
		ch.guard.Store(g)
		tail = append(tail, func(c *gin.Context) { ch.guard.Load().handler(c) })
	}

	if cfg.Sentinel.Enabled {
		mw, err := ch.sentinel(watchCtx, cfg)
		if err != nil {
			return nil, err
		}
		tail = append(tail, mw)
	}

	if cfg.Breaker.Enabled {
		pol, _ := cfg.Breaker.policy() // validated
		bopts := []circuitbreaker.Option{circuitbreaker.WithPolicy(pol), circuitbreaker.WithLogger(ch.Logger)}
		if ch.gov != nil {
			bopts = append(bopts, circuitbreaker.WithOnStateChange(ch.gov.OnBreakerChange))
		}
		srv, err := circuitbreaker.New(bopts...)
		if err != nil {
			return nil, fmt.Errorf("setup: circuitbreaker: %w", err)
		}
		ch.closers = append(ch.closers, func(context.Context) error { return srv.Close() })
		tail = append(tail, srv.Middleware())
	}

	if err := ch.watchConfig(watchCtx, cfg); err != nil {
		return nil, err
	}

	r.Use(chain...)
	errcode.Handle(r)
	r.Use(exempting(cfg.exemptPaths(metricsPath), tail)...)
	if ch.Registry != nil && metricsPath != "-" {
		r.GET(metricsPath, gin.WrapH(metrics.Handler(ch.Registry)))
	}
	return ch, nil
}

func (ch *Chain) tracing(ctx context.Context, cfg Config, metricsPath string) (gin.HandlerFunc, error) {
	t := cfg.Tracing
	var opts []tracing.Option
	exp, err := traceExporter(ctx, t, ch.opts.logOut)
	if err != nil {
		return nil, fmt.Errorf("setup: tracing: %w", err)
	}
	if exp != nil {
		opts = append(opts, tracing.WithSpanExporter(exp))
	}
	if t.SampleRatio != nil {
		opts = append(opts, tracing.WithSampleRatio(*t.SampleRatio))
	}
	if cfg.Service.Version != "" {
		opts = append(opts, tracing.WithServiceVersion(cfg.Service.Version))
	}
	if cfg.Service.Instance != "" {
		opts = append(opts, tracing.WithServiceInstance(cfg.Service.Instance))
	}
	opts = append(opts, propagatorOptions(cfg)...)
	opts = append(opts, ch.opts.tracing...)
	tp, err := tracing.New(ctx, cfg.Service.Name, opts...)
	if err != nil {
		return nil, fmt.Errorf("setup: tracing: %w", err)
	}
	ch.Tracing = tp
	ch.closers = append(ch.closers, tp.Shutdown)
	skip := t.SkipPaths
	if skip == nil && !cfg.Metrics.Disabled && metricsPath != "-" {
		skip = []string{metricsPath}
	}
	sopts := []tracing.ServerOption{tracing.WithProvider(tp), tracing.WithSkipPaths(skip...)}
	if t.ResponseHeader != "" {
		sopts = append(sopts, tracing.WithResponseHeader(t.ResponseHeader))
	}
	srv, err := tracing.NewServer("", sopts...)
	if err != nil {
		return nil, fmt.Errorf("setup: tracing: %w", err)
	}
	return srv.Middleware(), nil
}

// traceExporter builds the exporter tracing.exporter names (nil for none).
// setup links every exporter; a program that imports tracing alone links
// only the one it picks.
func traceExporter(ctx context.Context, t Tracing, logOut io.Writer) (sdktrace.SpanExporter, error) {
	switch t.Exporter {
	case "stdout":
		var o []stdout.Option
		if logOut != nil {
			o = append(o, stdout.WithWriter(logOut))
		}
		return stdout.New(o...)
	case "otlp-grpc":
		var o []otlpgrpc.Option
		if t.Endpoint != "" {
			o = append(o, otlpgrpc.WithEndpoint(t.Endpoint))
		}
		if t.Insecure {
			o = append(o, otlpgrpc.WithInsecure())
		}
		return otlpgrpc.New(ctx, o...)
	case "otlp-http":
		var o []otlphttp.Option
		if t.Endpoint != "" {
			o = append(o, otlphttp.WithEndpoint(t.Endpoint))
		}
		if t.Insecure {
			o = append(o, otlphttp.WithInsecure())
		}
		return otlphttp.New(ctx, o...)
	}
	return nil, nil // "" and "none"; Parse rejects any other name
}

// accessLogOptions are the access log's options of l.
func accessLogOptions(l Log, skip []string) []logging.AccessLogOption {
	opts := []logging.AccessLogOption{logging.WithSkipPaths(skip...)}
	if l.MaxFieldBytes != 0 {
		opts = append(opts, logging.WithMaxFieldBytes(l.MaxFieldBytes))
	}
	if l.MaxLineBytes != 0 {
		opts = append(opts, logging.WithMaxLineBytes(l.MaxLineBytes))
	}
	return opts
}

func requestID(l Log) (gin.HandlerFunc, error) {
	var opts []logging.RequestIDOption
	if l.RequestIDHeader != "" {
		opts = append(opts, logging.WithRequestIDHeader(l.RequestIDHeader))
	}
	rid, err := logging.NewRequestID(opts...)
	if err != nil {
		return nil, fmt.Errorf("setup: log: %w", err)
	}
	return rid.Middleware(), nil
}

func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func newRedis(c Redis) redis.UniversalClient {
	cluster := len(c.Addrs) > 1
	if c.Cluster != nil {
		cluster = *c.Cluster
	}
	if cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Username: c.Username, Password: c.Password})
	}
	return redis.NewClient(&redis.Options{Addr: c.Addrs[0], Username: c.Username, Password: c.Password, DB: c.DB})
}

// withMesh is cfg with the mesh mode in force (a change of mode takes
// effect at restart).
func withMesh(cfg Config, mode string) Config {
	cfg.Mesh = mode
	return cfg
}

// newGuard builds the rate limiter of the rules the app enforces (in a
// mesh, those not left to the sidecar). With none it lets every request
// through.
func (ch *Chain) newGuard(cfg Config) (*guardHandle, error) {
	rl := cfg.RateLimit
	rules := cfg.inAppRules()
	if len(rules) == 0 {
		return &guardHandle{handler: func(*gin.Context) {}}, nil
	}
	var opts []ratelimit.Option
	policy, err := ch.failurePolicy(rl.Redis)
	if err != nil {
		return nil, err
	}
	for _, lr := range rules {
		key, _ := keyOf(lr.By) // validated
		if len(lr.Routes) > 0 {
			key = onRoutes(lr.Routes, key)
		}
		rule := ratelimit.By(lr.ruleName(), key, ratelimit.Rate{Limit: lr.Limit, Period: lr.Period, Burst: lr.Burst})
		if ch.rdb != nil {
			rule = rule.WithFailurePolicy(policy)
		}
		opts = append(opts, rule)
	}
	if ch.rdb != nil { // the Redis settings; a limiter without Redis takes none
		opts = append(opts, ratelimit.WithLogger(ch.Logger))
		if rl.Redis.Deadline > 0 {
			opts = append(opts, ratelimit.WithDeadline(rl.Redis.Deadline))
		}
		if ch.gov != nil {
			opts = append(opts, ratelimit.WithOnHealthChange(ch.gov.RedisHealthHook("ratelimit")))
		}
	}
	if ch.gov != nil {
		opts = append(opts, ratelimit.WithOnDecision(ch.gov.OnDecision))
	}
	g, err := ratelimit.New(ch.rdb, opts...)
	if err != nil {
		return nil, fmt.Errorf("setup: ratelimit: %w", err)
	}
	return &guardHandle{guard: g, handler: g.Middleware()}, nil
}

func (ch *Chain) failurePolicy(r Redis) (ratelimit.FailurePolicy, error) {
	switch r.FailurePolicy {
	case "open":
		return ratelimit.FailOpen, nil
	case "closed":
		return ratelimit.FailClosed, nil
	}
	if ch.opts.instances != nil {
		return ratelimit.FailLocalFunc(ch.opts.instances), nil
	}
	return ratelimit.FailLocal(max(1, r.Instances)), nil
}

// keyOf parses a rule's "by".
func keyOf(by string) (ratelimit.KeyFunc, error) {
	switch {
	case by == "ip":
		return ratelimit.PerIP(1, time.Second).Key, nil
	case by == "route":
		return ratelimit.PerRoute(1, time.Second).Key, nil
	case by == "global":
		return ratelimit.Global(1, time.Second).Key, nil
	case strings.HasPrefix(by, "header:") && reqinfo.ValidHeaderName(strings.TrimPrefix(by, "header:")):
		return ratelimit.PerHeader(strings.TrimPrefix(by, "header:"), 1, time.Second).Key, nil
	}
	return nil, fmt.Errorf("%q is not ip, route, global or header:<Name>", by)
}

// onRoutes applies key only to requests on one of routes.
func onRoutes(routes []string, key ratelimit.KeyFunc) ratelimit.KeyFunc {
	set := make(map[string]bool, len(routes))
	for _, r := range routes {
		set[r] = true
	}
	return func(c *gin.Context) (string, bool) {
		if !set[c.FullPath()] {
			return "", false
		}
		return key(c)
	}
}

func (b Breaker) policy() (circuitbreaker.Policy, error) {
	var p circuitbreaker.Policy
	if b.Policy == "sre" {
		p = circuitbreaker.SRE{Window: b.Window, K: b.K, MinRequests: b.MinRequests}
	} else {
		p = circuitbreaker.Classic{Window: b.Window, MinRequests: uint32(b.MinRequests), FailureRatio: b.FailureRatio, OpenTimeout: b.OpenTimeout}
	}
	type validator interface{ Validate() error }
	if v, ok := p.(validator); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// paramOf parses a Sentinel hotspot parameter.
func paramOf(s string) (sentinel.Param, error) {
	kind, name, _ := strings.Cut(s, ":")
	switch {
	case s == "ip":
		return sentinel.ParamIP(), nil
	case kind == "header" && reqinfo.ValidHeaderName(name):
		return sentinel.ParamHeader(name), nil
	case kind == "query" && name != "":
		return sentinel.ParamQuery(name), nil
	case kind == "path" && name != "":
		return sentinel.ParamPath(name), nil
	}
	return nil, fmt.Errorf("%q is not ip, header:<Name>, query:<name> or path:<name>", s)
}

func (ch *Chain) sentinel(ctx context.Context, cfg Config) (gin.HandlerFunc, error) {
	s := cfg.Sentinel
	if err := sentinel.Init(); err != nil {
		return nil, fmt.Errorf("setup: sentinel: %w", err)
	}
	var params []sentinel.Param
	for _, p := range s.Params {
		pp, _ := paramOf(p) // validated
		params = append(params, pp)
	}
	fopts := []sentinel.Option{sentinel.WithParams(params...), sentinel.WithLogger(ch.Logger)}
	if ch.gov != nil {
		gov := ch.gov
		fopts = append(fopts, sentinel.WithOnBlock(func(ctx context.Context, e sentinel.Event) {
			gov.OnSentinelBlock(ctx, e.Resource, e.BlockType)
		}))
	}
	flow, err := sentinel.New(fopts...)
	if err != nil {
		return nil, fmt.Errorf("setup: sentinel: %w", err)
	}
	sopts := []sentinel.SourceOption{sentinel.WithLogger(ch.Logger), sentinel.WithPollInterval(cfg.reloadInterval())}
	if ch.gov != nil {
		gov := ch.gov
		sopts = append(sopts, sentinel.WithOnReload(func(ctx context.Context, e sentinel.Event) {
			kind, _, _ := strings.Cut(e.Source, ":")
			gov.OnConfigReload(ctx, kind, e.Err)
		}))
	}
	switch {
	case s.RulesFile != "":
		wait, err := sentinel.WatchFile(ctx, s.RulesFile, sopts...)
		if err != nil {
			return nil, fmt.Errorf("setup: sentinel.rules_file: %w", err)
		}
		ch.waits = append(ch.waits, wait)
	case s.Nacos != nil:
		wait, err := sentinel.WatchNacos(ctx, s.Nacos.source(cfg.profile), sopts...)
		if err != nil {
			return nil, fmt.Errorf("setup: sentinel.nacos: %w", err)
		}
		ch.waits = append(ch.waits, wait)
	default:
		if err := sentinel.Load(s.Rules); err != nil {
			return nil, fmt.Errorf("setup: sentinel.rules: %w", err)
		}
	}
	return flow.Middleware(), nil
}

// source is where the document is; an empty namespace means the
// profile's.
func (n *NacosDoc) source(profile string) sentinel.NacosSource {
	ns := n.Namespace
	if ns == "" {
		ns = profile
	}
	return sentinel.NacosSource{Addr: n.Addr, Namespace: ns, Group: n.Group, DataID: n.DataID,
		Username: n.Username, Password: n.Password, Timeout: n.Timeout}
}

func (c *Config) reloadInterval() time.Duration {
	if c.Reload.Interval > 0 {
		return c.Reload.Interval
	}
	return DefaultReloadInterval
}

// watchConfig starts the configured watchers of the configuration itself.
func (ch *Chain) watchConfig(ctx context.Context, cfg Config) error {
	interval := cfg.reloadInterval()
	sopts := []sentinel.SourceOption{sentinel.WithLogger(ch.Logger), sentinel.WithPollInterval(interval)}
	if cfg.Reload.File {
		if cfg.path == "" {
			return fieldErr("reload.file", "the configuration was not read by Load, so there is no file to watch")
		}
		files := []struct {
			path string
			at   layer
		}{{cfg.path, layerFile}, {cfg.overlayPath, layerOverlay}}
		for _, f := range files {
			if f.path == "" {
				continue
			}
			wait, err := sentinel.WatchFileFunc(ctx, f.path, ch.reloadFrom(ctx, "file:"+f.path, f.at), sopts...)
			if err != nil {
				return fmt.Errorf("setup: reload.file: %w", err)
			}
			ch.waits = append(ch.waits, wait)
		}
	}
	if n := cfg.Reload.Nacos; n != nil {
		wait, err := sentinel.WatchNacosFunc(ctx, n.source(cfg.profile), ch.reloadFrom(ctx, "nacos:"+n.group()+"/"+n.DataID, layerNacos), sopts...)
		if err != nil {
			return fmt.Errorf("setup: reload.nacos: %w", err)
		}
		ch.waits = append(ch.waits, wait)
	}
	if e := cfg.Reload.Etcd; e != nil {
		key := cfg.profiled(e.Key)
		wait, err := watchEtcd(ctx, e, key, interval, newDocApplier(ch.Logger, "etcd:"+key, ch.reloadFrom(ctx, "etcd:"+key, layerEtcd)))
		if err != nil {
			return fmt.Errorf("setup: reload.etcd: %w", err)
		}
		ch.waits = append(ch.waits, wait)
	}
	if c := cfg.Reload.Consul; c != nil {
		key := cfg.profiled(c.Key)
		wait, err := watchConsul(ctx, c, key, newDocApplier(ch.Logger, "consul:"+key, ch.reloadFrom(ctx, "consul:"+key, layerConsul)))
		if err != nil {
			return fmt.Errorf("setup: reload.consul: %w", err)
		}
		ch.waits = append(ch.waits, wait)
	}
	return nil
}

// Reload applies a new version of the configuration's base document (what
// the file Load read holds, YAML): it is merged with the layers above it
// as at Load — the profile overlay, the latest document of each config
// centre, the GINGOV_ environment — and the rate-limit rules and the inline
// Sentinel rules of the result take effect at once, all or nothing. A
// document that does not parse, or a result that does not validate,
// changes nothing and is an error. Changes to other sections are logged as
// needing a restart.
func (ch *Chain) Reload(data []byte) error { return ch.reload(layerFile, data) }

// reload replaces one layer of the configuration by data and applies the
// result (see Reload).
func (ch *Chain) reload(at layer, data []byte) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	cur := ch.cfg
	l := cur.layers
	l.docs[at] = data
	next, err := l.compose(cur.profile, os.Environ())
	if err != nil {
		return err
	}
	next.path, next.overlayPath = cur.path, cur.overlayPath
	if (len(cur.RateLimit.Rules) > 0) != (len(next.RateLimit.Rules) > 0) ||
		!reflect.DeepEqual(cur.RateLimit.Redis, next.RateLimit.Redis) {
		return fieldErr("ratelimit", "turning the limiter on or off or changing its Redis needs a restart")
	}
	var fresh *guardHandle
	if !reflect.DeepEqual(cur.RateLimit.Rules, next.RateLimit.Rules) {
		if fresh, err = ch.newGuard(withMesh(next, cur.Mesh)); err != nil {
			return err
		}
	}
	sentinelRules := cur.Sentinel.Enabled && cur.Sentinel.RulesFile == "" && cur.Sentinel.Nacos == nil &&
		!reflect.DeepEqual(cur.Sentinel.Rules, next.Sentinel.Rules)
	if sentinelRules {
		if err := sentinel.Load(next.Sentinel.Rules); err != nil {
			if fresh != nil && fresh.guard != nil {
				_ = fresh.guard.Close()
			}
			return fieldErr("sentinel.rules", "%v", err)
		}
	}
	if fresh != nil {
		old := ch.guard.Swap(fresh)
		// Requests already inside the old guard finish with it; it is closed
		// with the chain.
		if old.guard != nil {
			ch.retired = append(ch.retired, old.guard)
		}
	}
	var restart []string
	for name, pair := range map[string][2]any{
		"service": {cur.Service, next.Service}, "log": {cur.Log, next.Log}, "tracing": {cur.Tracing, next.Tracing},
		"metrics": {cur.Metrics, next.Metrics}, "circuitbreaker": {cur.Breaker, next.Breaker}, "reload": {cur.Reload, next.Reload},
		"sentinel": {sentinelSettings(cur.Sentinel), sentinelSettings(next.Sentinel)}, "exempt": {cur.Exempt, next.Exempt},
		"deadline": {cur.Deadline, next.Deadline}, "mesh": {cur.Mesh, next.Mesh},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			restart = append(restart, name)
		}
	}
	if len(restart) > 0 {
		ch.Logger.Warn("configuration sections changed that take effect at restart", "sections", strings.Join(restart, ","))
	}
	// Keep the settings in force: only the reloadable parts change.
	applied := cur
	applied.layers = l
	applied.RateLimit.Rules = next.RateLimit.Rules
	if sentinelRules {
		applied.Sentinel.Rules = next.Sentinel.Rules
	}
	ch.cfg = applied
	ch.Logger.Info("configuration reloaded", "ratelimit_rules", len(next.RateLimit.Rules), "sentinel_rules_changed", sentinelRules)
	return nil
}

// sentinelSettings is the Sentinel section without its reloadable rules.
func sentinelSettings(s Sentinel) Sentinel {
	s.Rules = sentinel.Rules{}
	return s
}

// Config returns the configuration in force (reloaded parts included).
func (ch *Chain) Config() Config {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.cfg
}

// Governance returns the governance metrics (nil when metrics are off), so
// that other parts of the service report through them, e.g. a registry
// with registry.WithOnEvent(chain.Governance().OnRegistryEvent).
func (ch *Chain) Governance() *metrics.Governance { return ch.gov }

// Close stops the watchers and releases the limiter's connections, the
// breaker and the tracer provider (flushing spans, bounded by ctx). It is
// safe to call more than once.
func (ch *Chain) Close(ctx context.Context) error {
	if !ch.closed.CompareAndSwap(false, true) {
		return nil
	}
	if ch.cancel != nil {
		ch.cancel()
	}
	for _, w := range ch.waits {
		w()
	}
	var errs []error
	if g := ch.guard.Load(); g != nil && g.guard != nil {
		errs = append(errs, g.guard.Close())
	}
	ch.mu.Lock()
	for _, g := range ch.retired {
		errs = append(errs, g.Close())
	}
	ch.mu.Unlock()
	ch.mu.Lock()
	closers := ch.closers
	ch.mu.Unlock()
	for _, c := range closers {
		errs = append(errs, c(ctx))
	}
	if ch.ownRDB && ch.rdb != nil {
		errs = append(errs, ch.rdb.Close())
	}
	return errors.Join(errs...)
}
