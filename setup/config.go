package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/ratelimit/sentinel"
	"github.com/gingov/gingov/reqinfo"
	"github.com/gingov/gingov/setup/internal/choices"
)

// Config is the whole governance chain, as read from YAML (snake_case
// keys). The zero value of every field means its documented default; [Use]
// validates the whole of it and names the first wrong field.
type Config struct {
	Service   Service   `yaml:"service"`
	Log       Log       `yaml:"log"`
	Tracing   Tracing   `yaml:"tracing"`
	Metrics   Metrics   `yaml:"metrics"`
	RateLimit RateLimit `yaml:"ratelimit"`
	Breaker   Breaker   `yaml:"circuitbreaker"`
	Sentinel  Sentinel  `yaml:"sentinel"`
	Reload    Reload    `yaml:"reload"`
	Exempt    Exempt    `yaml:"exempt"`
	Deadline  Deadline  `yaml:"deadline"`
	// Mesh says whether a sidecar proxy carries the service's traffic:
	// none (default) or sidecar. With sidecar, the clients of
	// Chain.NewClient send plain requests through the sidecar, leaving it
	// discovery, load balancing, retries and client breakers; rate-limit
	// rules with enforce: sidecar are left to Envoy's rate-limit filter
	// (see ratelimit/envoy); the trace headers include B3
	// (DefaultMeshPropagators) unless tracing.propagators is set. The error
	// envelope, logs, metrics, traces and the drain are unchanged. A change
	// takes effect at restart. See docs/mesh.md.
	Mesh string `yaml:"mesh"`

	path        string // the file Load read, watched by Reload.File
	overlayPath string // the profile's overlay next to it, when it exists
	profile     string // the profile Load was given
	layers      layers // the documents merged into this configuration
}

// Profile is the profile the configuration was loaded with ([LoadProfile],
// or GINGOV_PROFILE for [Load]); "" for none.
func (c *Config) Profile() string { return c.profile }

// Service names the service in traces, logs and the registry.
type Service struct {
	Name     string `yaml:"name"`     // required
	Version  string `yaml:"version"`  // optional
	Instance string `yaml:"instance"` // instance id (default: host name)
}

// Log configures the JSON access log and the logger.
type Log struct {
	// Level: debug, info (default), warn or error.
	Level string `yaml:"level"`
	// SkipPaths are paths or route templates not logged (default: the
	// exempt paths, see [Exempt]; a list given replaces them).
	SkipPaths []string `yaml:"skip_paths"`
	// RequestIDHeader is the request-ID header read and echoed (default
	// logging.DefaultRequestIDHeader, X-Request-ID).
	RequestIDHeader string `yaml:"request_id_header"`
	// MaxFieldBytes bounds each string of a log line that comes from the
	// request or an error (path, query, user agent, error text, …), in
	// bytes: a longer one is cut, ends in "…" and has its original length
	// beside it as <field>_len (0: logging.DefaultMaxFieldBytes, 1024; at
	// least logging.MinFieldBytes, 16).
	MaxFieldBytes int `yaml:"max_field_bytes"`
	// MaxLineBytes bounds one access-log line, in bytes (0:
	// logging.DefaultMaxLineBytes, 8192; at least logging.MinLineBytes,
	// 1024): a request whose fields would make a longer line has them cut
	// further, the long ones sharing what is left.
	MaxLineBytes int `yaml:"max_line_bytes"`
}

// Tracing configures OpenTelemetry tracing.
type Tracing struct {
	// Disabled turns the tracing middleware off (default on).
	Disabled bool `yaml:"disabled"`
	// Exporter: none (default: every request still gets a trace id in its
	// log line, error envelope and outbound headers; nothing is exported),
	// stdout, otlp-grpc or otlp-http.
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP collector's host:port or http(s) URL (default:
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else
	// the exporter's otlpgrpc.DefaultEndpoint, localhost:4317, or
	// otlphttp.DefaultEndpoint, localhost:4318).
	Endpoint string `yaml:"endpoint"`
	// Insecure sends OTLP without TLS (default false).
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the share of root traces sampled, in [0, 1] (nil:
	// tracing.DefaultSampleRatio); the parent's decision is always followed.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// SkipPaths are not traced (default: the metrics path).
	SkipPaths []string `yaml:"skip_paths"`
	// ResponseHeader, when set, names a response header carrying the trace id.
	ResponseHeader string `yaml:"response_header"`
	// Propagators are the trace-header formats read and written:
	// tracecontext, baggage, b3 (single header), b3multi (x-b3-* headers)
	// (default: tracecontext and baggage; see tracing.WithPropagators).
	Propagators []string `yaml:"propagators"`
}

// Metrics configures Prometheus metrics.
type Metrics struct {
	// Disabled turns metrics off (default on).
	Disabled bool `yaml:"disabled"`
	// Path serves the metrics (default /metrics; "-" serves nothing).
	Path string `yaml:"path"`
	// Namespace prefixes every metric name (default none).
	Namespace string `yaml:"namespace"`
}

// RateLimit configures the rate limiter. Without rules there is none.
type RateLimit struct {
	Redis Redis       `yaml:"redis"`
	Rules []LimitRule `yaml:"rules"`
}

// Redis makes the rate-limit buckets shared through Redis; with no Addrs
// they are in-process.
type Redis struct {
	// Addrs are host:port of a standalone server, or of cluster nodes.
	Addrs []string `yaml:"addrs"`
	// Cluster treats Addrs as Redis Cluster nodes (default: true when
	// there is more than one address).
	Cluster  *bool  `yaml:"cluster"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	// FailurePolicy while Redis is unreachable: local (default: each
	// instance limits to limit/instances), open (allow all) or closed
	// (reject all with 503).
	FailurePolicy string `yaml:"failure_policy"`
	// Instances divides the limit under the local failure policy (default 1).
	Instances int `yaml:"instances"`
	// Deadline bounds each decision's Redis round trip (default the
	// ratelimit package's).
	Deadline time.Duration `yaml:"deadline"`
}

// LimitRule is one rate-limit rule: Limit requests per Period per key.
type LimitRule struct {
	// Name identifies the rule in headers, metrics and Redis keys (default: By).
	Name string `yaml:"name"`
	// By is the key: ip, route, global, or header:<Name>.
	By     string        `yaml:"by"`
	Limit  int           `yaml:"limit"`  // > 0
	Period time.Duration `yaml:"period"` // > 0
	Burst  int           `yaml:"burst"`  // default Limit
	// Routes, when set, limits the rule to these route templates
	// ("/orders/:id"); other requests pass it.
	Routes []string `yaml:"routes"`
	// Enforce says who enforces the rule when mesh is sidecar: app
	// (default: the app's limiter, meshed or not) or sidecar (Envoy's
	// rate-limit filter calling ratelimit/envoy, which must have a limit
	// of the same name and rate on the same Redis; the app's limiter skips
	// the rule). Out of a mesh the app enforces every rule, so meshed and
	// un-meshed instances share one budget during the move.
	Enforce string `yaml:"enforce"`
}

// Breaker configures the per-route server circuit breaker.
type Breaker struct {
	// Enabled turns the breaker on (default off).
	Enabled bool `yaml:"enabled"`
	// Policy: classic (default) or sre.
	Policy string `yaml:"policy"`
	// Window over which outcomes count (default circuitbreaker.DefaultWindow).
	Window time.Duration `yaml:"window"`
	// MinRequests before the breaker may open (default the policy's).
	MinRequests int `yaml:"min_requests"`
	// FailureRatio opens a classic breaker, in (0, 1] (default
	// circuitbreaker.DefaultFailureRatio).
	FailureRatio float64 `yaml:"failure_ratio"`
	// OpenTimeout is how long a classic breaker stays open (default
	// circuitbreaker.DefaultOpenTimeout).
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// K is the SRE policy's multiplier, >= 1 (default circuitbreaker.DefaultSREK).
	K float64 `yaml:"k"`
}

// Sentinel configures Sentinel flow control (rules per resource
// "METHOD:/route/:template").
type Sentinel struct {
	// Enabled turns the Sentinel middleware on (default off).
	Enabled bool `yaml:"enabled"`
	// Rules in force at start (and after every reload of this file).
	Rules sentinel.Rules `yaml:"rules"`
	// RulesFile is a separate rule document, watched for changes.
	RulesFile string `yaml:"rules_file"`
	// Nacos is a rule document in the Nacos config center, watched.
	Nacos *NacosDoc `yaml:"nacos"`
	// Params feeds hotspot rules: ip, header:<Name>, query:<name> or
	// path:<name>, in parameter-index order.
	Params []string `yaml:"params"`
}

// NacosDoc locates a document in the Nacos config center.
type NacosDoc struct {
	Addr      string `yaml:"addr"` // HTTP host:port (gRPC on port+1000)
	Namespace string `yaml:"namespace"`
	Group     string `yaml:"group"` // default DefaultNacosGroup
	DataID    string `yaml:"data_id"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
	// Timeout bounds the first read, the connection included (default
	// sentinel.DefaultNacosTimeout, 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// Reload configures hot reload of the rate-limit rules and the inline
// Sentinel rules. Other changes need a restart (they are logged). A
// document from a config centre (Nacos, etcd, Consul) is merged over the
// file and its profile overlay, as the overlay is over the file (see
// [LoadProfile]); the GINGOV_ environment still applies on top. A document
// that does not parse or validate changes nothing and is logged at ERROR
// once, however long it stays in place.
type Reload struct {
	// File watches the file Load read, and its profile overlay if there
	// is one (default false).
	File bool `yaml:"file"`
	// Nacos watches a document in the Nacos config center (pushed changes,
	// and a read every Interval). An empty namespace means the profile's
	// (the public namespace without a profile).
	Nacos *NacosDoc `yaml:"nacos"`
	// Etcd watches a document under a key in etcd (etcd's Watch, and a
	// read every Interval).
	Etcd *EtcdDoc `yaml:"etcd"`
	// Consul watches a document under a key in Consul's KV store (blocking
	// queries).
	Consul *ConsulDoc `yaml:"consul"`
	// Interval between reads of the file, of Nacos and of etcd (default
	// DefaultReloadInterval; Nacos and etcd also push changes).
	Interval time.Duration `yaml:"interval"`
}

// EtcdDoc locates a document under a key in etcd.
type EtcdDoc struct {
	// Endpoints are the client URLs (http://host:port) or host:port of the
	// etcd members (required).
	Endpoints []string `yaml:"endpoints"`
	// Key holds the document (required); "{profile}" in it is replaced by
	// the profile, and is an error without one.
	Key      string `yaml:"key"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Timeout bounds the connection and every read (default
	// DefaultSourceTimeout).
	Timeout time.Duration `yaml:"timeout"`
}

// ConsulDoc locates a document under a key in Consul's KV store.
type ConsulDoc struct {
	// Addr is the Consul agent's HTTP host:port (required).
	Addr string `yaml:"addr"`
	// Key holds the document (required, without a leading "/"); "{profile}"
	// in it is replaced by the profile, and is an error without one.
	Key string `yaml:"key"`
	// Token is the ACL token sent with every request (default none).
	Token string `yaml:"token"`
	// Datacenter to read from (default the agent's).
	Datacenter string `yaml:"datacenter"`
	// Timeout bounds every request beyond its blocking wait (default
	// DefaultSourceTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// Wait is how long one blocking query waits for a change, at most
	// 10m, Consul's limit (default DefaultConsulWait).
	Wait time.Duration `yaml:"wait"`
}

// EnvPrefix prefixes the environment variables that override a loaded
// file: GINGOV_TRACING_SAMPLE_RATIO=0.1, GINGOV_RATELIMIT_REDIS_ADDRS=a:6379,b:6379.
const EnvPrefix = "GINGOV_"

// ProfileEnv names the environment variable that selects the profile of
// [Load] (GINGOV_PROFILE=prod); it is no configuration field.
const ProfileEnv = EnvPrefix + "PROFILE"

// profileKey is the placeholder of the profile in etcd and Consul keys.
const profileKey = "{profile}"

// Load is LoadProfile with the profile named by the GINGOV_PROFILE
// environment variable (none when unset or empty).
func Load(path string) (Config, error) {
	return LoadProfile(path, os.Getenv(ProfileEnv))
}

// LoadProfile reads the YAML file at path, merges the profile's overlay
// over it (a file next to it named after it with the profile before the
// extension: gingov.yaml and profile prod read gingov.prod.yaml, when it
// exists), then applies the environment overrides (EnvPrefix) and
// validates the result. The precedence, lowest first:
//
//  1. the defaults (the zero value of every field),
//  2. the file,
//  3. the profile overlay,
//  4. a config centre's document (reload.nacos, reload.etcd,
//     reload.consul; applied when the chain starts and on every change),
//  5. the GINGOV_ environment variables (also after every reload).
//
// A layer is merged over the ones below it key by key: maps (sections)
// merge recursively, every other value — a scalar, a list (e.g.
// ratelimit.rules: the overlay's list replaces the whole list), or null
// (which resets the field to its default) — replaces what is below.
//
// The profile also picks the config centres' namespace: an empty Nacos
// namespace (reload.nacos, sentinel.nacos) means the profile's, and
// "{profile}" in an etcd or Consul key is replaced by it. A profile is
// letters, digits, "-" and "_"; "" means none (no overlay, keys without
// "{profile}").
func LoadProfile(path, profile string) (Config, error) {
	if !validProfile(profile) {
		return Config{}, fmt.Errorf("setup: profile %q: only letters, digits, - and _", profile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("setup: %w", err)
	}
	var l layers
	l.docs[layerFile], l.names[layerFile] = data, path
	if profile != "" {
		op := OverlayPath(path, profile)
		switch overlay, err := os.ReadFile(op); {
		case err == nil:
			l.docs[layerOverlay], l.names[layerOverlay] = overlay, op
		case !errors.Is(err, fs.ErrNotExist):
			return Config{}, fmt.Errorf("setup: %w", err)
		}
	}
	cfg, err := l.compose(profile, os.Environ())
	if err != nil {
		return Config{}, err
	}
	cfg.path, cfg.overlayPath = path, l.names[layerOverlay]
	return cfg, nil
}

// OverlayPath is the profile overlay of the configuration file at path:
// the profile before the file's extension (gingov.yaml, prod:
// gingov.prod.yaml).
func OverlayPath(path, profile string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "." + profile + ext
}

func validProfile(p string) bool {
	for _, r := range p {
		if r != '-' && r != '_' && !isLetter(r) && !isDigit(r) {
			return false
		}
	}
	return true
}

// Parse decodes a YAML (or JSON) document strictly: unknown keys are errors.
// It does not validate; Use and Load do.
func Parse(data []byte) (_ Config, err error) {
	// The document may come from the network (reload.nacos): a decoder
	// bug must reject it, not crash the service from a watcher.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("setup: %w", fmt.Errorf("the YAML decoder failed on this document: %v", p))
		}
	}()
	var cfg Config
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}
	if err := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict()).Decode(&cfg); err != nil {
		return Config{}, decodeError(data, err)
	}
	return cfg, nil
}

// Validate reports the first wrong field, by its YAML path.
func (c *Config) Validate() error {
	for _, check := range []func() error{c.validateService, c.validateLog, c.validateTracing,
		c.validateMetrics, c.validateRateLimit, c.validateBreaker, c.validateSentinel, c.validateReload, c.validateExempt, c.validateDeadline, c.validateMesh} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("setup: %s: %s", field, fmt.Sprintf(format, args...))
}

func (c *Config) validateService() error {
	if strings.TrimSpace(c.Service.Name) == "" {
		return fieldErr("service.name", "required")
	}
	return nil
}

func (c *Config) validateLog() error {
	if !choices.LogLevel.Has(c.Log.Level) {
		return fieldErr("log.level", "%q is not %s", c.Log.Level, choices.LogLevel)
	}
	if h := c.Log.RequestIDHeader; h != "" && !reqinfo.ValidHeaderName(h) {
		return fieldErr("log.request_id_header", "%q is not a header name", h)
	}
	if n := c.Log.MaxFieldBytes; n != 0 && n < logging.MinFieldBytes {
		return fieldErr("log.max_field_bytes", "%d is below %d (0: the default, %d)", n, logging.MinFieldBytes, logging.DefaultMaxFieldBytes)
	}
	if n := c.Log.MaxLineBytes; n != 0 && n < logging.MinLineBytes {
		return fieldErr("log.max_line_bytes", "%d is below %d (0: the default, %d)", n, logging.MinLineBytes, logging.DefaultMaxLineBytes)
	}
	return nil
}

func (c *Config) validateTracing() error {
	t := c.Tracing
	if !choices.TraceExporter.Has(t.Exporter) {
		return fieldErr("tracing.exporter", "%q is not %s", t.Exporter, choices.TraceExporter)
	}
	if t.Endpoint != "" {
		if _, _, err := net.SplitHostPort(t.Endpoint); err != nil {
			return fieldErr("tracing.endpoint", "%q is not host:port", t.Endpoint)
		}
	}
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1 || *r != *r) {
		return fieldErr("tracing.sample_ratio", "%v is not in [0, 1]", *r)
	}
	if h := t.ResponseHeader; h != "" && !reqinfo.ValidHeaderName(h) {
		return fieldErr("tracing.response_header", "%q is not a header name", h)
	}
	return validatePropagators(t.Propagators)
}

func (c *Config) validateMetrics() error {
	if p := c.Metrics.Path; p != "" && p != "-" && !strings.HasPrefix(p, "/") {
		return fieldErr("metrics.path", "%q must start with /", p)
	}
	if ns := c.Metrics.Namespace; ns != "" && !validMetricName(ns) {
		return fieldErr("metrics.namespace", "%q is not a valid metric name prefix", ns)
	}
	return nil
}

func (c *Config) validateRateLimit() error {
	rl := c.RateLimit
	for i, a := range rl.Redis.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fieldErr(fmt.Sprintf("ratelimit.redis.addrs[%d]", i), "%q is not host:port", a)
		}
	}
	if !choices.FailurePolicy.Has(rl.Redis.FailurePolicy) {
		return fieldErr("ratelimit.redis.failure_policy", "%q is not %s", rl.Redis.FailurePolicy, choices.FailurePolicy)
	}
	if rl.Redis.Instances < 0 {
		return fieldErr("ratelimit.redis.instances", "%d is negative", rl.Redis.Instances)
	}
	if rl.Redis.Deadline < 0 {
		return fieldErr("ratelimit.redis.deadline", "%s is negative", rl.Redis.Deadline)
	}
	if rl.Redis.DB < 0 {
		return fieldErr("ratelimit.redis.db", "%d is negative", rl.Redis.DB)
	}
	seen := map[string]bool{}
	for i, r := range rl.Rules {
		f := fmt.Sprintf("ratelimit.rules[%d]", i)
		if _, err := keyOf(r.By); err != nil {
			return fieldErr(f+".by", "%v", err)
		}
		if r.Limit <= 0 {
			return fieldErr(f+".limit", "%d must be > 0", r.Limit)
		}
		if r.Period <= 0 {
			return fieldErr(f+".period", "%s must be > 0 (e.g. 1s, 1m)", r.Period)
		}
		if r.Burst < 0 {
			return fieldErr(f+".burst", "%d is negative", r.Burst)
		}
		for j, rt := range r.Routes {
			if !strings.HasPrefix(rt, "/") {
				return fieldErr(fmt.Sprintf("%s.routes[%d]", f, j), "%q is not a route template", rt)
			}
		}
		name := r.ruleName()
		if seen[name] {
			return fieldErr(f+".name", "%q is used by another rule", name)
		}
		seen[name] = true
	}
	return nil
}

func (c *Config) validateBreaker() error {
	b := c.Breaker
	if !choices.BreakerPolicy.Has(b.Policy) {
		return fieldErr("circuitbreaker.policy", "%q is not %s", b.Policy, choices.BreakerPolicy)
	}
	if b.Window < 0 {
		return fieldErr("circuitbreaker.window", "%s is negative", b.Window)
	}
	if b.MinRequests < 0 || b.MinRequests > math.MaxUint32 {
		return fieldErr("circuitbreaker.min_requests", "%d is not in [0, %d]", b.MinRequests, uint32(math.MaxUint32))
	}
	if !(b.FailureRatio >= 0 && b.FailureRatio <= 1) { // NaN too
		return fieldErr("circuitbreaker.failure_ratio", "%v is not in (0, 1]", b.FailureRatio)
	}
	if b.OpenTimeout < 0 {
		return fieldErr("circuitbreaker.open_timeout", "%s is negative", b.OpenTimeout)
	}
	if b.K != 0 && !(b.K >= 1 && !math.IsInf(b.K, 1)) { // NaN too
		return fieldErr("circuitbreaker.k", "%v must be a finite number >= 1", b.K)
	}
	if _, err := b.policy(); err != nil {
		return fieldErr("circuitbreaker", "%v", err)
	}
	return nil
}

func (c *Config) validateSentinel() error {
	s := c.Sentinel
	if err := s.Rules.Validate(); err != nil {
		return fieldErr("sentinel.rules", "%v", err)
	}
	if s.Nacos != nil {
		if err := s.Nacos.validate("sentinel.nacos"); err != nil {
			return err
		}
	}
	for i, p := range s.Params {
		if _, err := paramOf(p); err != nil {
			return fieldErr(fmt.Sprintf("sentinel.params[%d]", i), "%v", err)
		}
	}
	sources := 0
	for _, set := range []bool{s.RulesFile != "", s.Nacos != nil, !rulesEmpty(s.Rules)} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return fieldErr("sentinel", "set one source of rules: rules, rules_file or nacos")
	}
	if !s.Enabled && (s.RulesFile != "" || s.Nacos != nil || !rulesEmpty(s.Rules)) {
		return fieldErr("sentinel.enabled", "rules are configured but Sentinel is not enabled")
	}
	return nil
}

func (c *Config) validateReload() error {
	r := c.Reload
	if r.Interval < 0 {
		return fieldErr("reload.interval", "%s is negative", r.Interval)
	}
	if r.Nacos != nil {
		if err := r.Nacos.validate("reload.nacos"); err != nil {
			return err
		}
	}
	if e := r.Etcd; e != nil {
		if len(e.Endpoints) == 0 {
			return fieldErr("reload.etcd.endpoints", "required")
		}
		for i, ep := range e.Endpoints {
			if strings.TrimSpace(ep) == "" {
				return fieldErr(fmt.Sprintf("reload.etcd.endpoints[%d]", i), "empty")
			}
		}
		if err := c.validateKey("reload.etcd.key", e.Key); err != nil {
			return err
		}
		if e.Timeout < 0 {
			return fieldErr("reload.etcd.timeout", "%s is negative", e.Timeout)
		}
	}
	if k := r.Consul; k != nil {
		if _, _, err := net.SplitHostPort(k.Addr); err != nil {
			return fieldErr("reload.consul.addr", "%q is not host:port", k.Addr)
		}
		if err := c.validateKey("reload.consul.key", k.Key); err != nil {
			return err
		}
		if strings.HasPrefix(k.Key, "/") {
			return fieldErr("reload.consul.key", "%q must not start with /", k.Key)
		}
		if k.Timeout < 0 {
			return fieldErr("reload.consul.timeout", "%s is negative", k.Timeout)
		}
		if k.Wait < 0 || k.Wait > MaxConsulWait {
			return fieldErr("reload.consul.wait", "%s is not in [0, %s]", k.Wait, MaxConsulWait)
		}
	}
	return nil
}

func (c *Config) validateKey(field, key string) error {
	if key == "" {
		return fieldErr(field, "required")
	}
	if strings.Contains(key, profileKey) && c.profile == "" {
		return fieldErr(field, "%q has %s but no profile is set (%s)", key, profileKey, ProfileEnv)
	}
	return nil
}

// profiled replaces "{profile}" in key by the profile.
func (c *Config) profiled(key string) string {
	return strings.ReplaceAll(key, profileKey, c.profile)
}

func (n *NacosDoc) validate(field string) error {
	if _, _, err := net.SplitHostPort(n.Addr); err != nil {
		return fieldErr(field+".addr", "%q is not host:port", n.Addr)
	}
	if n.DataID == "" {
		return fieldErr(field+".data_id", "required")
	}
	if n.Timeout < 0 {
		return fieldErr(field+".timeout", "%s is negative", n.Timeout)
	}
	return nil
}

func (r LimitRule) ruleName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.By
}

func rulesEmpty(r sentinel.Rules) bool {
	return len(r.Flow)+len(r.Hotspot)+len(r.System)+len(r.Isolation)+len(r.CircuitBreaker) == 0
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func validMetricName(s string) bool {
	for i, r := range s {
		if ok := r == '_' || isLetter(r) || i > 0 && isDigit(r); !ok {
			return false
		}
	}
	return s != ""
}
