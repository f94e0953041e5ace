package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/errcode"
)

func (r Rule) applyGuard(c *guardConfig) { c.rules = append(c.rules, r) }

type guardConfig struct {
	rules         []Rule
	headers       Headers
	onDecision    hook
	nilOnDecision bool
	redis         redisConfig // for Redis-backed rules; the rule sets policy and lease
	redisOnly     string      // the first Redis-only option given, for New without Redis
	local         localConfig // for local rules
}

// newGuardConfig applies opts over the defaults and checks the result.
func newGuardConfig(opts []Option) (guardConfig, error) {
	cfg := guardConfig{headers: DefaultHeaders, redis: defaultRedisConfig(), local: defaultLocalConfig()}
	for i, o := range opts {
		if nilOption(o) {
			return cfg, nilOptionError(i)
		}
		o.applyGuard(&cfg)
	}
	switch {
	case len(cfg.rules) == 0:
		return cfg, errors.New("ratelimit: no rules")
	case cfg.nilOnDecision:
		return cfg, errors.New("ratelimit: WithOnDecision: nil function")
	case cfg.headers&^(HeadersLegacy|HeadersIETF) != 0:
		return cfg, fmt.Errorf("ratelimit: WithHeaders: unknown headers %d", cfg.headers)
	}
	if err := cfg.local.check(); err != nil {
		return cfg, err
	}
	if err := cfg.redis.check(); err != nil {
		return cfg, err
	}
	seen := map[string]bool{}
	for _, r := range cfg.rules {
		if err := r.validate(); err != nil {
			return cfg, err
		}
		if seen[r.Name] {
			return cfg, fmt.Errorf("ratelimit: two rules named %q (use WithName)", r.Name)
		}
		seen[r.Name] = true
	}
	return cfg, nil
}

// Headers selects the rate-limit response headers.
type Headers uint8

const (
	// HeadersLegacy sends X-RateLimit-Limit, X-RateLimit-Remaining and
	// X-RateLimit-Reset (Unix seconds when the bucket is full) on every
	// limited response. The default.
	HeadersLegacy Headers = 1 << iota
	// HeadersIETF sends the RateLimit-Policy and RateLimit fields of
	// draft-ietf-httpapi-ratelimit-headers (-11):
	// RateLimit-Policy: "ip";q=100;w=1 and RateLimit: "ip";r=42;t=1.
	HeadersIETF
	// HeadersNone sends neither; Retry-After is still sent on rejections.
	HeadersNone Headers = 0
)

// DefaultHeaders are the response headers of a Guard without WithHeaders.
const DefaultHeaders = HeadersLegacy

// WithHeaders selects the response headers (default [DefaultHeaders]:
// HeadersLegacy; combine with |).
func WithHeaders(h Headers) Option { return guardOption(func(c *guardConfig) { c.headers = h }) }

// WithOnDecision calls fn after every decision of every rule, with an
// [EventDecision] event and the request's context. fn runs on the request's
// goroutine and must not block; metrics.Governance.OnDecision fits.
// Default none; a nil fn is an error.
func WithOnDecision(fn func(ctx context.Context, e Event)) Option {
	return guardOption(func(c *guardConfig) { c.onDecision, c.nilOnDecision = fn, fn == nil })
}

// Guard applies rate-limit rules to requests. Build it with [New] and
// install it with Middleware.
type Guard struct {
	rules      []guardRule
	headers    Headers
	policy     []string // RateLimit-Policy value
	onDecision func(context.Context, Event)
}

type guardRule struct {
	Rule
	limiter  Limiter
	redis    *Redis // the limiter when Redis-backed, else nil
	closed   bool   // FailClosed: fallback denials are 503
	ietfName string // the rule name as a structured-field string
	// lastHeaders are the header values last written for the rule, reused
	// while its decisions say the same (a bucket that stays full does).
	lastHeaders *atomic.Pointer[headerValues]
}

// New builds a Guard from rules (and options). With a nil rdb every rule
// is limited in process ([Local]), and a Redis setting ([RedisGuardOption])
// or a rule's failure policy or lease mode is an error (it would do
// nothing); otherwise every rule shares buckets through Redis ([Redis]),
// with the Redis settings given as options and the rule's own failure
// policy and lease mode.
// Invalid or duplicate rules are errors here, and New does not contact
// Redis, so a service can start while Redis is down.
func New(rdb redis.UniversalClient, opts ...Option) (*Guard, error) {
	cfg, err := newGuardConfig(opts)
	if err != nil {
		return nil, err
	}
	if rdb == nil {
		if cfg.redisOnly != "" {
			return nil, fmt.Errorf("ratelimit: %s: needs a Redis client", cfg.redisOnly)
		}
		for _, r := range cfg.rules {
			if f := r.Failure; f.kind != failDefault || f.fixed != 0 || f.fn != nil {
				return nil, fmt.Errorf("ratelimit: rule %q: WithFailurePolicy: needs a Redis client", r.Name)
			}
		}
	}
	g := &Guard{headers: cfg.headers, onDecision: cfg.onDecision}
	for _, r := range cfg.rules {
		gr := guardRule{Rule: r, closed: r.Failure.kind == failClosed, ietfName: strconv.Quote(r.Name),
			lastHeaders: new(atomic.Pointer[headerValues])}
		if rdb == nil {
			if r.Lease != nil {
				return nil, fmt.Errorf("ratelimit: rule %q: lease mode needs Redis", r.Name)
			}
			gr.limiter = newLocal(r.Rate, cfg.local) // the rule's rate is valid
		} else {
			rc := cfg.redis
			rc.policy, rc.lease = r.Failure, r.Lease
			if r.Lease != nil {
				if err := r.Lease.validate(); err != nil {
					return nil, fmt.Errorf("ratelimit: rule %q: WithLease: %w", r.Name, err)
				}
			}
			if gr.redis, err = newRedis(rdb, r.Name, r.Rate, rc); err != nil {
				return nil, fmt.Errorf("%w (rule %q)", err, r.Name) // the error already names the package
			}
			gr.limiter = gr.redis
		}
		g.rules = append(g.rules, gr)
		g.policy = append(g.policy, gr.ietfName+";q="+strconv.Itoa(r.Rate.Limit)+";w="+
			strconv.FormatInt(int64(math.Ceil(r.Rate.Period.Seconds())), 10))
	}
	return g, nil
}

// Close releases the connections of the Guard's Redis limiters.
func (g *Guard) Close() error {
	var errs []error
	for _, r := range g.rules {
		if c, ok := r.limiter.(interface{ Close() error }); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Header names, canonical so that they are set without canonicalising.
const (
	hdrLimit      = "X-Ratelimit-Limit"
	hdrRemaining  = "X-Ratelimit-Remaining"
	hdrReset      = "X-Ratelimit-Reset"
	hdrRetryAfter = "Retry-After"
	hdrPolicy     = "Ratelimit-Policy"
	hdrRateLimit  = "Ratelimit"
)

// Middleware applies every rule that has a key for the request, in order.
// The first rule that denies ends the request with the errcode envelope:
// 429 RATE_LIMITED with Retry-After, or 503 UNAVAILABLE for a FailClosed
// rule while Redis is unreachable. A request whose client has gone before
// a decision is ended as 499 CLIENT_CLOSED_REQUEST, its handler not run. Headers describe the rule with the
// fewest tokens left.
func (g *Guard) Middleware() gin.HandlerFunc {
	policy := []string{strings.Join(g.policy, ", ")}
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		var best Decision
		bestRule := -1
		for i := range g.rules {
			r := &g.rules[i]
			key, ok := r.Key(c)
			if !ok {
				if r.redis != nil { // the instance serves: it counts in the rule's fleet
					r.redis.touchFleet()
				}
				continue
			}
			var start time.Time
			if g.onDecision != nil {
				start = time.Now()
			}
			d, err := r.limiter.AllowN(ctx, key, 1)
			if err != nil { // the client has gone (ctx's error): no decision, no handler
				errcode.Write(c, errcode.From(err))
				return
			}
			if g.onDecision != nil {
				g.onDecision(ctx, Event{Kind: EventDecision, Rule: r.Name, Decision: d, Latency: time.Since(start)})
			}
			if !d.Allowed {
				g.reject(c, r, d, policy)
				return
			}
			if bestRule < 0 || d.Remaining < best.Remaining {
				best, bestRule = d, i
			}
		}
		if bestRule >= 0 {
			g.setHeaders(c, &g.rules[bestRule], best, policy)
		}
		c.Next()
	}
}

func (g *Guard) reject(c *gin.Context, r *guardRule, d Decision, policy []string) {
	g.setHeaders(c, r, d, policy)
	secs := int64(math.Ceil(d.RetryAfter.Seconds()))
	c.Writer.Header()[hdrRetryAfter] = []string{strconv.FormatInt(max(1, secs), 10)}
	if d.Source == SourceFallback && r.closed {
		errcode.Write(c, errcode.Unavailable)
		return
	}
	errcode.Write(c, errcode.RateLimited.WithMetadata("rule", r.Name))
}

// headerValues are the rate-limit header values of a decision: the bytes
// they are cut from and the one-element slices the header map holds, in
// one allocation, with what they say.
type headerValues struct {
	limit, remaining int
	resetAt          int64 // X-RateLimit-Reset (legacy headers only)
	resetSecs        int64
	v                [4]string
	buf              [64]byte
}

func (hv *headerValues) says(limit, remaining int, resetAt, resetSecs int64) bool {
	return hv != nil && hv.limit == limit && hv.remaining == remaining && hv.resetAt == resetAt && hv.resetSecs == resetSecs
}

// setHeaders writes the rate-limit headers of decision d. The values of
// a rule's last decision are reused, not formatted again, while its
// decisions say the same: the header slices, like RateLimit-Policy's, may
// then be shared by several responses, and are replaced (Set, Add, Del),
// never written into.
func (g *Guard) setHeaders(c *gin.Context, r *guardRule, d Decision, policy []string) {
	if g.headers == HeadersNone || (d.Source == SourceFallback && d.Allowed && d.ResetAfter == 0 && d.Remaining == d.Limit) {
		return
	}
	h := c.Writer.Header()
	resetSecs := int64(math.Ceil(d.ResetAfter.Seconds()))
	var resetAt int64
	if g.headers&HeadersLegacy != 0 {
		resetAt = time.Now().Unix() + resetSecs
	}
	hv := r.lastHeaders.Load()
	if !hv.says(d.Limit, d.Remaining, resetAt, resetSecs) {
		hv = g.headerValues(r, d.Limit, d.Remaining, resetAt, resetSecs)
		r.lastHeaders.Store(hv)
	}
	v := hv.v[:]
	if g.headers&HeadersLegacy != 0 {
		h[hdrLimit], h[hdrRemaining], h[hdrReset] = v[0:1:1], v[1:2:2], v[2:3:3]
	}
	if g.headers&HeadersIETF != 0 {
		h[hdrPolicy] = policy
		h[hdrRateLimit] = v[3:4:4]
	}
}

// headerValues formats the header values of a decision.
func (g *Guard) headerValues(r *guardRule, limit, remaining int, resetAt, resetSecs int64) *headerValues {
	hv := &headerValues{limit: limit, remaining: remaining, resetAt: resetAt, resetSecs: resetSecs}
	// Every value is a substring of one string: one allocation whatever
	// the headers, two when the values are longer than hv.buf (a long
	// rule name).
	var tmp [128]byte
	b := tmp[:0]
	var ends [4]int
	if g.headers&HeadersLegacy != 0 {
		b = strconv.AppendInt(b, int64(limit), 10)
		ends[0] = len(b)
		b = strconv.AppendInt(b, int64(remaining), 10)
		ends[1] = len(b)
		b = strconv.AppendInt(b, resetAt, 10)
		ends[2] = len(b)
	}
	if g.headers&HeadersIETF != 0 {
		b = append(b, r.ietfName...)
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, int64(remaining), 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, resetSecs, 10)
		ends[3] = len(b)
	}
	var all string
	if len(b) <= len(hv.buf) {
		n := copy(hv.buf[:], b)
		// hv.buf is never written again: the strings may share it.
		all = unsafe.String(&hv.buf[0], n)
	} else {
		all = string(b)
	}
	if g.headers&HeadersLegacy != 0 {
		hv.v[0], hv.v[1], hv.v[2] = all[:ends[0]], all[ends[0]:ends[1]], all[ends[1]:ends[2]]
	}
	if g.headers&HeadersIETF != 0 {
		hv.v[3] = all[ends[2]:ends[3]]
	}
	return hv
}
