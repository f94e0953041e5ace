package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/errcode"
)

// Option configures [New]. A [Rule] is an Option too.
type Option interface{ apply(*guardConfig) }

type optionFunc func(*guardConfig)

func (f optionFunc) apply(c *guardConfig) { f(c) }

func (r Rule) apply(c *guardConfig) { c.rules = append(c.rules, r) }

type guardConfig struct {
	rules      []Rule
	headers    Headers
	onDecision func(context.Context, Event)
	redisOpts  []RedisOption
	localOpts  []LocalOption
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

// WithHeaders selects the response headers (default HeadersLegacy; combine
// with |).
func WithHeaders(h Headers) Option { return optionFunc(func(c *guardConfig) { c.headers = h }) }

// Event describes one decision, for metrics and logs.
type Event struct {
	Rule     string
	Decision Decision
	// Latency is how long the decision took.
	Latency time.Duration
}

// WithOnDecision calls fn after every decision of every rule. fn runs on
// the request's goroutine and must be fast.
func WithOnDecision(fn func(ctx context.Context, e Event)) Option {
	return optionFunc(func(c *guardConfig) { c.onDecision = fn })
}

// WithRedisOptions applies opts to every Redis-backed rule (deadline, probe
// interval, key prefix, logger, health hook).
func WithRedisOptions(opts ...RedisOption) Option {
	return optionFunc(func(c *guardConfig) { c.redisOpts = append(c.redisOpts, opts...) })
}

// WithLocalOptions applies opts to every local rule.
func WithLocalOptions(opts ...LocalOption) Option {
	return optionFunc(func(c *guardConfig) { c.localOpts = append(c.localOpts, opts...) })
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
	closed   bool   // FailClosed: fallback denials are 503
	ietfName string // the rule name as a structured-field string
}

// New builds a Guard from rules (and options). With a nil rdb every rule
// is limited in process ([Local]); otherwise every rule shares buckets
// through Redis ([Redis]). Invalid or duplicate rules are errors here, and
// New does not contact Redis, so a service can start while Redis is down.
func New(rdb redis.UniversalClient, opts ...Option) (*Guard, error) {
	cfg := guardConfig{headers: HeadersLegacy}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("ratelimit: nil option")
		}
		o.apply(&cfg)
	}
	if len(cfg.rules) == 0 {
		return nil, errors.New("ratelimit: no rules")
	}
	g := &Guard{headers: cfg.headers, onDecision: cfg.onDecision}
	seen := map[string]bool{}
	for _, r := range cfg.rules {
		if err := r.validate(); err != nil {
			return nil, err
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("ratelimit: two rules named %q (use WithName)", r.Name)
		}
		seen[r.Name] = true
		gr := guardRule{Rule: r, closed: r.Failure.kind == failClosed, ietfName: strconv.Quote(r.Name)}
		var err error
		if rdb == nil {
			if r.Lease != nil {
				return nil, fmt.Errorf("ratelimit: rule %q: lease mode needs Redis", r.Name)
			}
			gr.limiter, err = NewLocal(r.Rate, cfg.localOpts...)
		} else {
			ro := append(append([]RedisOption(nil), cfg.redisOpts...), WithFailurePolicy(r.Failure))
			if r.Lease != nil {
				ro = append(ro, WithLease(*r.Lease))
			}
			gr.limiter, err = NewRedis(rdb, r.Name, r.Rate, ro...)
		}
		if err != nil { // the limiter's own error already names the package
			return nil, fmt.Errorf("%w (rule %q)", err, r.Name)
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
// rule while Redis is unreachable. Headers describe the rule with the
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
				continue
			}
			var start time.Time
			if g.onDecision != nil {
				start = time.Now()
			}
			d, err := r.limiter.AllowN(ctx, key, 1)
			if err != nil { // only for invalid n; not reachable with n = 1
				continue
			}
			if g.onDecision != nil {
				g.onDecision(ctx, Event{Rule: r.Name, Decision: d, Latency: time.Since(start)})
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

func (g *Guard) setHeaders(c *gin.Context, r *guardRule, d Decision, policy []string) {
	if g.headers == HeadersNone || (d.Source == SourceFallback && d.Allowed && d.ResetAfter == 0 && d.Remaining == d.Limit) {
		return
	}
	h := c.Writer.Header()
	resetSecs := int64(math.Ceil(d.ResetAfter.Seconds()))
	// Every value is a substring of one string, and the header slices share
	// one array: two allocations whatever the headers.
	var buf [128]byte
	b := buf[:0]
	var ends [4]int
	if g.headers&HeadersLegacy != 0 {
		b = strconv.AppendInt(b, int64(d.Limit), 10)
		ends[0] = len(b)
		b = strconv.AppendInt(b, int64(d.Remaining), 10)
		ends[1] = len(b)
		b = strconv.AppendInt(b, time.Now().Unix()+resetSecs, 10)
		ends[2] = len(b)
	}
	if g.headers&HeadersIETF != 0 {
		b = append(b, r.ietfName...)
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, int64(d.Remaining), 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, resetSecs, 10)
		ends[3] = len(b)
	}
	all := string(b)
	v := make([]string, 4)
	if g.headers&HeadersLegacy != 0 {
		v[0], v[1], v[2] = all[:ends[0]], all[ends[0]:ends[1]], all[ends[1]:ends[2]]
		h[hdrLimit], h[hdrRemaining], h[hdrReset] = v[0:1:1], v[1:2:2], v[2:3:3]
	}
	if g.headers&HeadersIETF != 0 {
		v[3] = all[ends[2]:ends[3]]
		h[hdrPolicy] = policy
		h[hdrRateLimit] = v[3:4:4]
	}
}
