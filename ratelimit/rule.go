package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/reqinfo"
)

// KeyFunc returns the bucket key of a request; ok false means the rule does
// not apply to it (for example, the header it keys on is absent).
type KeyFunc func(c *gin.Context) (key string, ok bool)

// Rule limits requests at a rate per key. Build one with PerIP, PerRoute,
// PerHeader, PerUser, Global or By, and refine it with its With methods.
// A Rule is an [Option] of [New].
type Rule struct {
	// Name identifies the rule in headers, metrics, logs and Redis keys;
	// unique within a Guard.
	Name string
	Rate Rate
	Key  KeyFunc
	// Lease turns on lease mode for a Redis-backed rule (nil: sync mode).
	Lease *LeaseOptions
	// Failure is the rule's failure policy when Redis-backed (zero: FailLocal(1)).
	Failure FailurePolicy

	badHeader *string // PerHeader's name, when it is not a valid header name
}

// PerIP limits each client IP to limit requests per period (burst limit).
// The IP is Gin's c.ClientIP(), which trusts X-Forwarded-For only from the
// proxies set with engine.SetTrustedProxies: configure them, or any client
// can pick its own key.
func PerIP(limit int, period time.Duration) Rule {
	return Rule{Name: "ip", Rate: Rate{Limit: limit, Period: period}, Key: func(c *gin.Context) (string, bool) {
		return reqinfo.ClientIP(c), true
	}}
}

// PerRoute limits each route template (method and c.FullPath()) to limit
// requests per period for all clients together. Requests that match no
// route share one bucket, keyed [reqinfo.UnmatchedRoute].
func PerRoute(limit int, period time.Duration) Rule {
	return Rule{Name: "route", Rate: Rate{Limit: limit, Period: period}, Key: routeKey}
}

func routeKey(c *gin.Context) (string, bool) {
	p := c.FullPath()
	if p == "" {
		return reqinfo.UnmatchedRoute, true
	}
	return c.Request.Method + " " + p, true
}

// PerHeader limits each value of a request header; requests without it are
// not limited by this rule. A header that is not a valid header name
// ([reqinfo.ValidHeaderName]) is an error from New.
func PerHeader(header string, limit int, period time.Duration) Rule {
	h := http.CanonicalHeaderKey(header)
	r := Rule{Name: "header:" + strings.ToLower(h), Rate: Rate{Limit: limit, Period: period}, Key: func(c *gin.Context) (string, bool) {
		v := c.Request.Header.Get(h)
		return v, v != ""
	}}
	if !reqinfo.ValidHeaderName(header) {
		r.badHeader = &header
	}
	return r
}

// PerUser limits each user, as returned by user (for example the subject of
// an authenticated token set by an earlier middleware); requests for which
// it returns "" are not limited by this rule.
func PerUser(user func(c *gin.Context) string, limit int, period time.Duration) Rule {
	r := Rule{Name: "user", Rate: Rate{Limit: limit, Period: period}}
	if user != nil { // a nil user leaves Key nil, which New rejects
		r.Key = func(c *gin.Context) (string, bool) {
			u := user(c)
			return u, u != ""
		}
	}
	return r
}

// Global limits all requests together.
func Global(limit int, period time.Duration) Rule {
	return Rule{Name: "global", Rate: Rate{Limit: limit, Period: period}, Key: func(*gin.Context) (string, bool) {
		return "all", true
	}}
}

// By limits by any key function.
func By(name string, key KeyFunc, rate Rate) Rule {
	return Rule{Name: name, Rate: rate, Key: key}
}

// WithBurst returns the rule with its bucket size set.
func (r Rule) WithBurst(burst int) Rule { r.Rate.Burst = burst; return r }

// WithName returns the rule renamed (names must be unique within a Guard).
func (r Rule) WithName(name string) Rule { r.Name = name; return r }

// WithLease returns the rule in lease mode (see [WithLease]).
func (r Rule) WithLease(o LeaseOptions) Rule { r.Lease = &o; return r }

// WithFailurePolicy returns the rule with its failure policy set.
func (r Rule) WithFailurePolicy(p FailurePolicy) Rule { r.Failure = p; return r }

func (r Rule) validate() error {
	if r.badHeader != nil {
		return fmt.Errorf("ratelimit: PerHeader: invalid header name %q", *r.badHeader)
	}
	if r.Name == "" {
		return errors.New("ratelimit: rule has an empty name")
	}
	if r.Key == nil {
		return fmt.Errorf("ratelimit: rule %q has no key function", r.Name)
	}
	if err := r.Rate.check(); err != nil {
		return fmt.Errorf("ratelimit: rule %q: %w", r.Name, err)
	}
	if err := r.Failure.validate(); err != nil {
		return fmt.Errorf("ratelimit: rule %q: %w", r.Name, err)
	}
	return nil
}
