package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/internal/redisutil"
	"github.com/gingov/gingov/internal/shard"
)

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
// answers, at once; once per probe interval a background probe tries
// Redis again, so recovery is automatic and no request waits for a probe.
// The limiter can be created while Redis is down.
//
// While Redis answers, each limiter also keeps a membership entry in Redis
// (see Instances and WithMembership), so that every instance knows how many
// share its buckets: FailLocal divides the rate by that fleet size during
// an outage, with no service registry. The bound this gives: with N
// instances sharing a rule of limit L per period and burst B, an outage of
// length T admits at most N × (L/N × T/period + B/N) = L × T/period + B
// across the fleet (each instance at L/N, each local bucket's burst B/N),
// on top of what the Redis bucket admitted before the outage — at most one
// burst more than the ideal for the whole run, not N times the rate. A key
// Redis was denying starts the outage with its local bucket as empty as
// Redis's was (refilled at L/N since the denial), so for keys at their
// limit the outage adds no burst. The count is the last one seen before
// the outage: an instance that joins during it is not counted, and one
// that leaves during it still is (which admits less, not more).
//
// The files of the type: redis_options.go (settings and defaults),
// redis_scripts.go (the Lua scripts), failure.go (the failure policy),
// redis_health.go (outage detection and probing), redis_deadline.go (the
// deadline of a call), redis_client.go (the limiter's own pool), redis_key.go
// (Redis key names), redis_fleet.go (membership: the fleet size), coalesce.go
// and lease.go (the two ways of sharing round trips).
type Redis struct {
	client         atomic.Pointer[clientBox]
	factory        func() redis.UniversalClient // nil: the caller's client is used as it is
	closed         atomic.Bool
	renewed        atomic.Int64 // unix ns of the last renewClient
	name           string
	rate           Rate
	prefix         string
	interval       any // µs per token, for the scripts (boxed once, not per call)
	capacity       any // µs of burst
	cfg            redisConfig
	deadline       sharedDeadline
	health         health
	lease          *leaser
	coalesce       *coalescer
	fleet          *fleet
	bg             background
	epoch          time.Time
	denied         *shard.Map[int64] // FailLocal: key -> ns since epoch of Redis's last denial
	deniedPerShard int

	fallbackMu sync.Mutex
	fallback   atomic.Pointer[fallbackLimiter]
}

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
	cfg, err := newRedisConfig(opts)
	if err != nil {
		return nil, err
	}
	return newRedis(rdb, name, rate, cfg)
}

// newRedis builds the limiter from a checked configuration.
func newRedis(rdb redis.UniversalClient, name string, rate Rate, cfg redisConfig) (*Redis, error) {
	if redisutil.IsNil(rdb) {
		return nil, errors.New("ratelimit: nil Redis client")
	}
	if name == "" {
		return nil, errors.New("ratelimit: empty limiter name")
	}
	if err := rate.Validate(); err != nil {
		return nil, err
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
	r.epoch = cfg.clock()
	if k := cfg.policy.kind; k == failLocal || k == failDefault {
		r.denied = shard.New[int64]()
		r.deniedPerShard = shard.PerShard(cfg.maxKeys)
	}
	r.fleet = newFleet(cfg.prefix, name, cfg)
	if !cfg.noCoalesce {
		r.coalesce = newCoalescer()
	}
	if cfg.lease != nil {
		r.lease = newLeaser(*cfg.lease, rate, cfg.maxKeys, cfg.clock)
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

// Name returns the limiter's name.
func (r *Redis) Name() string { return r.name }

// Rate returns the limiter's rate.
func (r *Redis) Rate() Rate { return r.rate }

// Policy returns the failure policy.
func (r *Redis) Policy() FailurePolicy { return r.cfg.policy }

// Healthy reports whether the last decision that tried Redis got an answer.
func (r *Redis) Healthy() bool { return r.health.down.Load() == 0 }

// AllowN implements Limiter. Redis failures are answered by the failure
// policy (Decision.Source is SourceFallback); AllowN returns an error only
// for n < 1 and for a caller that has gone: ctx's error when ctx is done
// before the decision is made.
//
// The caller's context bounds a round trip made for this request alone
// (sync mode, no call for the key in flight), together with the limiter's
// deadline (WithDeadline), whichever ends first; its cancellation is not a
// Redis failure. A round trip shared with other requests — a coalesced
// batch, a lease fetch — is bounded by the limiter's deadline only, so that
// one caller leaving does not fail the others; a request waits for such a
// round trip at most that long.
func (r *Redis) AllowN(ctx context.Context, key string, n int) (Decision, error) {
	if n < 1 {
		return Decision{}, fmt.Errorf("ratelimit: n must be >= 1, got %d", n)
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	if r.closed.Load() {
		return r.fail(key, n), nil
	}
	r.touchFleet()
	rkey := r.prefix + safeKey(key) + "}"
	switch {
	case r.lease != nil:
		return r.allowLease(ctx, rkey, key, n), nil
	case n == 1 && r.coalesce != nil:
		return r.allowCoalesced(ctx, rkey, key)
	}
	return r.allowOne(ctx, rkey, key, n)
}

// allowOne decides n tokens in a round trip of the caller's own, bounded by
// its context and the deadline.
func (r *Redis) allowOne(ctx context.Context, rkey, key string, n int) (Decision, error) {
	if !r.redisUp(ctx, rkey) {
		return r.fail(key, n), nil
	}
	cctx, cancel := r.deadline.bound(ctx)
	v, err := syncScript.Run(cctx, r.rdb(), []string{rkey}, r.interval, r.capacity, n).Int64()
	cancel()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil { // the caller left: nothing learnt of Redis
			return Decision{}, cerr
		}
		r.markDown(ctx, err)
		return r.fail(key, n), nil
	}
	r.markUp(ctx)
	if v > 0 {
		return outcome{allowed: true, reset: float64(v)}.decision(r.rate, 1e3, SourceRedis), nil
	}
	r.noteDenied(key)
	retry := float64(-v)
	reset := retry + float64(r.rate.burst()-n)*r.rate.intervalNanos()/1e3
	return outcome{retry: retry, reset: reset}.decision(r.rate, 1e3, SourceRedis), nil
}

// takeUpTo takes between need and want tokens in one round trip shared by
// several requests, bounded by the limiter's deadline alone. It returns
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
