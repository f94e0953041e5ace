package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of the Redis limiter.
const (
	// DefaultDeadline bounds how long a decision waits for Redis before the
	// failure policy answers instead.
	DefaultDeadline = 250 * time.Millisecond
	// DefaultProbeInterval is how often, while Redis is unreachable, one
	// decision tries Redis again (so recovery is seen within it).
	DefaultProbeInterval = 200 * time.Millisecond
	// DefaultKeyPrefix starts every Redis key of the limiter.
	DefaultKeyPrefix = "gingov:rl:"
	// MinRedisInterval is the shortest time per token of a Redis bucket
	// (at most a million tokens per second per key): the scripts keep time
	// in microseconds.
	MinRedisInterval = time.Microsecond
	// MaxRawKeyLen is the longest key used as it is in a Redis key; longer
	// keys, and keys with bytes outside [A-Za-z0-9._:/@-], are hashed.
	MaxRawKeyLen = 64
)

// syncScript takes n tokens from the GCRA bucket at KEYS[1]. Time is Redis's
// (TIME), in microseconds, so no client clock takes part. Lua numbers are
// doubles, exact to 0.25 µs at today's epoch, so comparisons allow 0.5 µs
// (a request that exactly fits is never lost to rounding). ARGV: interval (µs
// per token), capacity (µs of burst), n. The reply is one integer: > 0, the
// tokens were taken and the bucket is full again in that many µs; < 0, they
// were not and could be in minus that many µs.
var syncScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + tonumber(ARGV[3]) * interval
if new - now > capacity + 0.5 then
  return -math.max(1, math.ceil(new - capacity - now))
end
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1)
return math.max(1, math.ceil(new - now))
`)

// leaseScript takes between ARGV[4] (need) and ARGV[3] (want) tokens, as
// many as the bucket holds. Reply {taken, µs}: taken > 0 with µs until the
// bucket is full, or taken = 0 with µs until need tokens are there.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local need = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local avail = math.floor((capacity + 0.5 - (tat - now)) / interval)
if avail < need then
  return {0, math.max(1, math.ceil(tat + need * interval - capacity - now))}
end
local take = math.min(tonumber(ARGV[3]), avail)
local new = tat + take * interval
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1)
return {take, math.max(1, math.ceil(new - now))}
`)

// FailurePolicy says how decisions are made while Redis is unreachable or
// slower than the deadline.
type FailurePolicy struct {
	kind  failKind
	fixed int        // FailLocal's instance count
	fn    func() int // FailLocalFunc's
}

// instances is the instance count to divide the rate by (>= 1).
func (p FailurePolicy) instances() int {
	n := p.fixed
	if p.fn != nil {
		n = p.fn()
	}
	return max(1, n)
}

type failKind uint8

const (
	failDefault failKind = iota // the zero FailurePolicy: FailLocal(1)
	failLocal
	failOpen
	failClosed
)

var (
	// FailOpen allows every request while Redis is unreachable.
	FailOpen = FailurePolicy{kind: failOpen}
	// FailClosed rejects every request while Redis is unreachable (the
	// middleware answers 503 UNAVAILABLE).
	FailClosed = FailurePolicy{kind: failClosed}
)

// FailLocal limits each instance locally to rate/instances (rounded down,
// at least 1) while Redis is unreachable, so that the fleet as a whole keeps
// about the configured rate. instances must be >= 1.
func FailLocal(instances int) FailurePolicy {
	return FailurePolicy{kind: failLocal, fixed: instances}
}

// FailLocalFunc is FailLocal with the instance count asked for when needed
// (for example, the live count from the service registry). Counts below 1
// are taken as 1.
func FailLocalFunc(instances func() int) FailurePolicy {
	return FailurePolicy{kind: failLocal, fn: instances, fixed: -1}
}

func (p FailurePolicy) String() string {
	switch p.kind {
	case failOpen:
		return "open"
	case failClosed:
		return "closed"
	}
	return "local"
}

// validate reports a FailLocal without a usable instance count.
func (p FailurePolicy) validate() error {
	if p.kind != failLocal {
		return nil
	}
	if p.fixed == -1 && p.fn == nil {
		return errors.New("ratelimit: FailLocalFunc needs a function")
	}
	if p.fn == nil && p.fixed < 1 {
		return fmt.Errorf("ratelimit: FailLocal needs instances >= 1, got %d", p.fixed)
	}
	return nil
}

// RedisOption configures [NewRedis].
type RedisOption func(*redisConfig)

type redisConfig struct {
	deadline      time.Duration
	probeInterval time.Duration
	policy        FailurePolicy
	prefix        string
	lease         *LeaseOptions
	logger        *slog.Logger
	onHealth      func(up bool, err error)
	maxKeys       int
	clock         func() time.Time // time.Now; tests skew it
	noCoalesce    bool
	asIs          bool
}

// WithDeadline bounds how long a decision waits for Redis (default
// [DefaultDeadline]); past it the failure policy answers.
func WithDeadline(d time.Duration) RedisOption { return func(c *redisConfig) { c.deadline = d } }

// WithProbeInterval sets how often one decision tries Redis again while it
// is unreachable (default [DefaultProbeInterval]).
func WithProbeInterval(d time.Duration) RedisOption {
	return func(c *redisConfig) { c.probeInterval = d }
}

// WithFailurePolicy sets what answers while Redis is unreachable (default
// FailLocal(1): each instance limits locally at the full rate).
func WithFailurePolicy(p FailurePolicy) RedisOption { return func(c *redisConfig) { c.policy = p } }

// WithKeyPrefix sets the start of every Redis key (default [DefaultKeyPrefix]).
func WithKeyPrefix(p string) RedisOption { return func(c *redisConfig) { c.prefix = p } }

// WithLogger logs Redis becoming unreachable and coming back (default slog.Default()).
func WithLogger(l *slog.Logger) RedisOption { return func(c *redisConfig) { c.logger = l } }

// WithOnHealthChange calls fn when Redis becomes unreachable (up false, with
// the error) and when it answers again. fn must not block.
func WithOnHealthChange(fn func(up bool, err error)) RedisOption {
	return func(c *redisConfig) { c.onHealth = fn }
}

// WithClientAsIs makes the limiter use the given client itself (its pool
// and hooks) instead of opening its own pool. The deadline then holds only
// if the client has ContextTimeoutEnabled, and recovery after a long outage
// follows go-redis's own redial schedule (up to a second more).
func WithClientAsIs() RedisOption { return func(c *redisConfig) { c.asIs = true } }

// WithCoalescing sets whether concurrent sync-mode decisions for one key
// share a round trip (default true; see the Redis type). Off, every
// decision is its own round trip.
func WithCoalescing(on bool) RedisOption { return func(c *redisConfig) { c.noCoalesce = !on } }

// WithLocalMaxKeys bounds the keys the in-process state (lease cache,
// local fallback) tracks; see [WithMaxKeys].
func WithLocalMaxKeys(n int) RedisOption { return func(c *redisConfig) { c.maxKeys = n } }

// Redis is a distributed Limiter: one GCRA token bucket per key in Redis,
// shared by every instance. Each decision is one round trip running one
// script (EVALSHA, reloaded on NOSCRIPT) that reads Redis's own clock, so
// instances with skewed clocks still share one exact bucket. Each Redis key
// holds one number and expires once its bucket is full again. Keys carry a
// hash tag, so the limiter works unchanged on Redis Cluster.
//
// Concurrent decisions for one key share a round trip: while a call for
// the key is in flight, further requests queue and then go as one call
// that takes a token for each of them, allowing them in arrival order while
// tokens last — the same decisions as one call each, for far less Redis
// work on hot keys (see WithCoalescing).
//
// While Redis fails or is slower than the deadline, the failure policy
// answers; one decision per probe interval tries Redis again, so recovery
// is automatic. The limiter can be created while Redis is down.
type Redis struct {
	client   atomic.Pointer[clientBox]
	factory  func() redis.UniversalClient // nil: the caller's client is used as it is
	closed   atomic.Bool
	renewed  atomic.Int64 // unix ns of the last renewClient
	name     string
	rate     Rate
	prefix   string
	interval any // µs per token, for the scripts (boxed once, not per call)
	capacity any // µs of burst
	cfg      redisConfig
	deadline sharedDeadline
	health   health
	lease    *leaser
	coalesce *coalescer

	fallbackMu sync.Mutex
	fallback   atomic.Pointer[fallbackLimiter]
}

type fallbackLimiter struct {
	*Local
	instances int
}

type clientBox struct{ c redis.UniversalClient }

// NewRedis returns a Redis limiter named name (it names the Redis keys, so
// two limiters with the same name and prefix share buckets). It does not
// contact Redis. It fails for a nil client, an empty name, an invalid rate
// or an invalid option.
//
// For a *redis.Client or *redis.ClusterClient the limiter opens its own
// connection pool from a copy of the client's options, tuned so that the
// deadline holds (context deadlines honoured, dial retries left to the
// limiter) and so that recovery is seen within a probe interval; hooks on
// the given client do not apply to it. Call Close to release it. Any other
// UniversalClient is used as it is: then the deadline holds only if it
// honours context deadlines (ContextTimeoutEnabled).
func NewRedis(rdb redis.UniversalClient, name string, rate Rate, opts ...RedisOption) (*Redis, error) {
	if rdb == nil || isNilClient(rdb) {
		return nil, errors.New("ratelimit: nil Redis client")
	}
	if name == "" {
		return nil, errors.New("ratelimit: empty limiter name")
	}
	if err := rate.Validate(); err != nil {
		return nil, err
	}
	cfg := redisConfig{
		deadline:      DefaultDeadline,
		probeInterval: DefaultProbeInterval,
		prefix:        DefaultKeyPrefix,
		logger:        slog.Default(),
		maxKeys:       DefaultMaxKeys,
		clock:         time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.deadline <= 0:
		return nil, fmt.Errorf("ratelimit: deadline must be > 0, got %s", cfg.deadline)
	case cfg.probeInterval <= 0:
		return nil, fmt.Errorf("ratelimit: probe interval must be > 0, got %s", cfg.probeInterval)
	case cfg.policy.validate() != nil:
		return nil, cfg.policy.validate()
	case cfg.logger == nil:
		cfg.logger = slog.Default()
	}
	if cfg.maxKeys < 1 {
		return nil, fmt.Errorf("ratelimit: max keys must be >= 1, got %d", cfg.maxKeys)
	}
	usPerToken := rate.intervalNanos() / 1e3
	if usPerToken < MinRedisInterval.Seconds()*1e6 {
		return nil, fmt.Errorf("ratelimit: rate %d/%s is above one token per %s, the finest a Redis bucket tracks (its clock is in microseconds)",
			rate.Limit, rate.Period, MinRedisInterval)
	}
	r := &Redis{
		name:     name,
		rate:     rate,
		prefix:   cfg.prefix + "{" + safeKey(name) + ":",
		interval: any(strconv.FormatFloat(usPerToken, 'g', -1, 64)),
		capacity: any(strconv.FormatFloat(usPerToken*float64(rate.burst()), 'g', -1, 64)),
		cfg:      cfg,
		deadline: sharedDeadline{d: cfg.deadline, clock: cfg.clock},
	}
	r.health.clock = cfg.clock
	if !cfg.noCoalesce {
		r.coalesce = newCoalescer()
	}
	if cfg.lease != nil {
		l, err := newLeaser(*cfg.lease, rate, cfg.maxKeys, cfg.clock)
		if err != nil {
			return nil, err
		}
		r.lease = l
	}
	if !cfg.asIs {
		r.factory = ownClientFactory(rdb)
	}
	if r.factory != nil {
		r.client.Store(&clientBox{r.factory()})
	} else {
		r.client.Store(&clientBox{rdb})
	}
	if r.factory == nil && !contextTimeouts(rdb) {
		cfg.logger.Warn("rate limiter: using the Redis client as it is; decisions wait past the deadline unless it honours context deadlines",
			"limiter", name, "client", fmt.Sprintf("%T", rdb))
	}
	return r, nil
}

func (r *Redis) rdb() redis.UniversalClient { return r.client.Load().c }

// Close releases the connections the limiter opened (none when it uses the
// caller's client as it is). Decisions after Close take the failure policy.
func (r *Redis) Close() error {
	if !r.closed.CompareAndSwap(false, true) || r.factory == nil {
		return nil
	}
	return r.client.Load().c.Close()
}

// renewClient replaces the limiter's own pool after a failed probe: go-redis
// stops dialling for callers once a pool has failed PoolSize dials and then
// retries only once a second, which would hold recovery back.
func (r *Redis) renewClient() {
	if r.factory == nil || r.closed.Load() {
		return
	}
	// Calls in flight when Redis goes down all fail at once: renew once.
	now, last := r.cfg.clock().UnixNano(), r.renewed.Load()
	if now-last < int64(r.cfg.probeInterval/2) || !r.renewed.CompareAndSwap(last, now) {
		return
	}
	old := r.client.Swap(&clientBox{r.factory()})
	_ = old.c.Close()
	if r.closed.Load() { // Close ran meanwhile and closed the old one only
		_ = r.client.Load().c.Close()
	}
}

// ownClientFactory returns how to open the limiter's own pool for the
// client types whose options it can copy, or nil.
func ownClientFactory(rdb redis.UniversalClient) func() redis.UniversalClient {
	switch c := rdb.(type) {
	case *redis.Client:
		o := *c.Options()
		return func() redis.UniversalClient {
			oo := o
			oo.ContextTimeoutEnabled = true
			oo.DialerRetries = 1 // the limiter's probe is the retry
			// NewClient stores its push-notification processor in the
			// options it is given: each pool needs its own.
			oo.PushNotificationProcessor = nil
			if o.MaintNotificationsConfig != nil {
				mc := *o.MaintNotificationsConfig
				oo.MaintNotificationsConfig = &mc
			}
			return redis.NewClient(&oo)
		}
	case *redis.ClusterClient:
		o := *c.Options()
		return func() redis.UniversalClient {
			oo := o
			oo.ContextTimeoutEnabled = true
			oo.DialerRetries = 1
			if o.MaintNotificationsConfig != nil {
				mc := *o.MaintNotificationsConfig
				oo.MaintNotificationsConfig = &mc
			}
			return redis.NewClusterClient(&oo)
		}
	}
	return nil
}

// contextTimeouts reports whether a client is known to honour context deadlines.
func contextTimeouts(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

func isNilClient(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c == nil
	case *redis.ClusterClient:
		return c == nil
	case *redis.Ring:
		return c == nil
	}
	return false
}

// Name returns the limiter's name.
func (r *Redis) Name() string { return r.name }

// Rate returns the limiter's rate.
func (r *Redis) Rate() Rate { return r.rate }

// Policy returns the failure policy.
func (r *Redis) Policy() FailurePolicy { return r.cfg.policy }

// Healthy reports whether the last decision that tried Redis got an answer.
func (r *Redis) Healthy() bool { return r.health.down.Load() == 0 }

// AllowN implements Limiter. It returns an error only for n < 1; Redis
// failures are answered by the failure policy (Decision.Source is
// SourceFallback).
func (r *Redis) AllowN(_ context.Context, key string, n int) (Decision, error) {
	if n < 1 {
		return Decision{}, fmt.Errorf("ratelimit: n must be >= 1, got %d", n)
	}
	if r.closed.Load() {
		return r.fail(key, n), nil
	}
	rkey := r.prefix + safeKey(key) + "}"
	switch {
	case r.lease != nil:
		return r.allowLease(rkey, key, n), nil
	case n == 1 && r.coalesce != nil:
		return r.allowCoalesced(rkey, key), nil
	}
	return r.allowOne(rkey, key, n), nil
}

// allowOne decides n tokens in its own round trip.
func (r *Redis) allowOne(rkey, key string, n int) Decision {
	if !r.health.tryRedis(r.cfg.probeInterval) {
		return r.fail(key, n)
	}
	v, err := syncScript.Run(r.deadline.ctx(), r.rdb(), []string{rkey}, r.interval, r.capacity, n).Int64()
	if err != nil {
		r.markDown(err)
		return r.fail(key, n)
	}
	r.markUp()
	if v > 0 {
		return outcome{allowed: true, reset: float64(v)}.decision(r.rate, 1e3, SourceRedis)
	}
	retry := float64(-v)
	reset := retry + float64(r.rate.burst()-n)*r.rate.intervalNanos()/1e3
	return outcome{retry: retry, reset: reset}.decision(r.rate, 1e3, SourceRedis)
}

// takeUpTo takes between need and want tokens in one round trip. It returns
// how many it took (0 when fewer than need were there) and, in µs, the time
// until the bucket is full (taken > 0) or until need tokens are there.
func (r *Redis) takeUpTo(rkey string, want, need int) (int, float64, error) {
	res, err := leaseScript.Run(r.deadline.ctx(), r.rdb(), []string{rkey}, r.interval, r.capacity, want, need).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("ratelimit: lease script answered %d values", len(res))
	}
	if err != nil {
		return 0, 0, err
	}
	return int(res[0]), float64(res[1]), nil
}

// fail answers by the failure policy.
func (r *Redis) fail(key string, n int) Decision {
	switch r.cfg.policy.kind {
	case failOpen:
		return Decision{Allowed: true, Limit: r.rate.burst(), Remaining: r.rate.burst(), Source: SourceFallback}
	case failClosed:
		return Decision{Limit: r.rate.burst(), RetryAfter: r.cfg.probeInterval, Source: SourceFallback}
	}
	l := r.localFallback()
	d := l.allowAt(key, n, int64(r.cfg.clock().Sub(l.epoch)))
	d.Source = SourceFallback
	return d
}

// localFallback returns the local limiter at rate/instances, rebuilt when
// the instance count changes.
func (r *Redis) localFallback() *Local {
	n := r.cfg.policy.instances()
	if f := r.fallback.Load(); f != nil && f.instances == n {
		return f.Local
	}
	r.fallbackMu.Lock()
	defer r.fallbackMu.Unlock()
	if f := r.fallback.Load(); f != nil && f.instances == n {
		return f.Local
	}
	share := Rate{
		Limit:  max(1, r.rate.Limit/n),
		Period: r.rate.Period,
		Burst:  max(1, r.rate.burst()/n),
	}
	l, err := NewLocal(share, WithMaxKeys(r.cfg.maxKeys))
	if err != nil { // cannot happen: share is valid whenever rate is
		panic(err)
	}
	l.epoch = r.cfg.clock()
	r.fallback.Store(&fallbackLimiter{Local: l, instances: n})
	return l
}

func (r *Redis) markDown(err error) {
	defer r.renewClient()
	if r.health.down.CompareAndSwap(0, r.cfg.clock().UnixNano()) {
		r.cfg.logger.Warn("rate limiter: Redis unreachable, failure policy answers",
			"limiter", r.name, "policy", r.cfg.policy.String(), "error", err.Error())
		if r.cfg.onHealth != nil {
			r.cfg.onHealth(false, err)
		}
	}
	r.health.nextProbe.Store(r.cfg.clock().Add(r.cfg.probeInterval).UnixNano())
}

func (r *Redis) markUp() {
	if since := r.health.down.Swap(0); since != 0 {
		r.cfg.logger.Info("rate limiter: Redis answers again",
			"limiter", r.name, "down_for", r.cfg.clock().Sub(time.Unix(0, since)).String())
		if r.cfg.onHealth != nil {
			r.cfg.onHealth(true, nil)
		}
	}
}

// health gates Redis calls while Redis is down: one call per probe
// interval goes through, the others take the failure policy at once.
type health struct {
	down      atomic.Int64 // unix ns when Redis went down; 0 while up
	nextProbe atomic.Int64 // unix ns
	clock     func() time.Time
}

func (h *health) tryRedis(interval time.Duration) bool {
	if h.down.Load() == 0 {
		return true
	}
	next := h.nextProbe.Load()
	now := h.clock().UnixNano()
	return now >= next && h.nextProbe.CompareAndSwap(next, now+int64(interval))
}

// sharedDeadline hands out one context with a deadline to many calls,
// renewing it every quarter of the deadline, so that bounding a Redis call
// costs no allocation per call. A call gets between 3/4 of the deadline and
// all of it. Each context's timer releases it when it expires.
type sharedDeadline struct {
	d     time.Duration
	clock func() time.Time
	cur   atomic.Pointer[deadlineCtx]
}

type deadlineCtx struct {
	ctx     context.Context
	cancel  context.CancelFunc
	renewAt time.Time
}

func (s *sharedDeadline) ctx() context.Context {
	c := s.cur.Load()
	now := s.clock()
	if c != nil && now.Before(c.renewAt) {
		return c.ctx
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.d)
	n := &deadlineCtx{ctx: ctx, cancel: cancel, renewAt: now.Add(s.d / 4)}
	if !s.cur.CompareAndSwap(c, n) {
		cancel()
		if c2 := s.cur.Load(); c2 != nil {
			return c2.ctx
		}
	}
	return ctx
}

// safeKey returns key when it is short and made of plain bytes, else a
// hash of it, so that no request can put odd bytes or braces (which would
// break the hash tag) into a Redis key.
func safeKey(key string) string {
	if len(key) > 0 && len(key) <= MaxRawKeyLen && plainKey(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "h:" + hex.EncodeToString(sum[:16])
}

func plainKey(key string) bool {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '/', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}
