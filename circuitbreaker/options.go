package circuitbreaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/logging"
)

// DefaultMaxBreakers bounds the breakers of a Server or Transport; names
// past it share one breaker named OverflowName.
const DefaultMaxBreakers = 1024

// Option configures [New] (the server breaker): the [CommonOption]s,
// [WithFailure] and [WithFallback].
type Option interface{ applyServer(*serverConfig) }

// TransportOption configures [NewTransport] (the client breaker): the
// [CommonOption]s.
type TransportOption interface{ applyTransport(*transportConfig) }

// CommonOption is an option of both [New] and [NewTransport].
type CommonOption func(*config)

func (f CommonOption) applyServer(c *serverConfig)       { f(&c.config) }
func (f CommonOption) applyTransport(c *transportConfig) { f(&c.config) }

type serverOption func(*serverConfig)

func (f serverOption) applyServer(c *serverConfig) { f(c) }

// config holds the settings common to servers and transports.
type config struct {
	policy      Policy
	onChange    func(context.Context, Event)
	nilOnChange bool
	logger      *slog.Logger
	maxBreakers int
	shared      *Shared
}

type serverConfig struct {
	config
	isFailure    func(c *gin.Context, status int) bool
	nilIsFailure bool
	fallbacks    map[string]errcode.Fallback
	fallbackAll  errcode.Fallback
	nilFallback  *string // the route of a nil fallback
}

type transportConfig struct {
	config
}

func defaultConfig() config { return config{policy: Classic{}, maxBreakers: DefaultMaxBreakers} }

func newServerConfig(opts []Option) (serverConfig, error) {
	cfg := serverConfig{config: defaultConfig(), fallbacks: map[string]errcode.Fallback{}}
	for i, o := range opts {
		if o == nil {
			return cfg, nilOptionError(i)
		}
		if f, ok := o.(CommonOption); ok && f == nil {
			return cfg, nilOptionError(i)
		}
		o.applyServer(&cfg)
	}
	if err := cfg.check(); err != nil {
		return cfg, err
	}
	switch {
	case cfg.nilIsFailure:
		return cfg, errors.New("circuitbreaker: WithFailure: nil function")
	case cfg.nilFallback != nil:
		return cfg, fmt.Errorf("circuitbreaker: WithFallback: nil fallback for route %q", *cfg.nilFallback)
	}
	return cfg, nil
}

func newTransportConfig(opts []TransportOption) (transportConfig, error) {
	cfg := transportConfig{config: defaultConfig()}
	for i, o := range opts {
		if o == nil {
			return cfg, nilOptionError(i)
		}
		if f, ok := o.(CommonOption); ok && f == nil {
			return cfg, nilOptionError(i)
		}
		o.applyTransport(&cfg)
	}
	return cfg, cfg.check()
}

func nilOptionError(i int) error { return fmt.Errorf("circuitbreaker: option %d is nil", i+1) }

// check validates the common settings and fills in the default logger.
func (c *config) check() error {
	switch p := c.policy.(type) {
	case nil:
		return errors.New("circuitbreaker: WithPolicy: nil policy")
	case *Classic:
		if p == nil {
			return errors.New("circuitbreaker: WithPolicy: nil *Classic")
		}
	case *SRE:
		if p == nil {
			return errors.New("circuitbreaker: WithPolicy: nil *SRE")
		}
	}
	if v, ok := c.policy.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("circuitbreaker: WithPolicy: %s", strings.TrimPrefix(err.Error(), "circuitbreaker: "))
		}
	}
	switch {
	case c.maxBreakers < 1:
		return fmt.Errorf("circuitbreaker: WithMaxBreakers: must be >= 1, got %d", c.maxBreakers)
	case c.nilOnChange:
		return errors.New("circuitbreaker: WithOnStateChange: nil function")
	}
	if c.shared != nil {
		s, err := c.shared.withDefaults()
		if err != nil {
			return fmt.Errorf("circuitbreaker: WithShared: %w", err)
		}
		c.shared = &s
	}
	c.logger = logging.OrDefault(c.logger)
	return nil
}

// WithPolicy sets the policy (default Classic{}; nil, and a nil *Classic
// or *SRE, is an error).
func WithPolicy(p Policy) CommonOption { return func(c *config) { c.policy = p } }

// WithOnStateChange calls fn on every state change, outside the breaker's
// lock, on the goroutine of the request that caused it and with its
// context (the server's request, the transport's outgoing request; for a
// change seen by State, context.Background()). fn must not block;
// metrics.Governance.OnBreakerChange fits. Default none; a nil fn is an
// error.
func WithOnStateChange(fn func(ctx context.Context, e Event)) CommonOption {
	return func(c *config) { c.onChange, c.nilOnChange = fn, fn == nil }
}

// WithLogger logs state changes (opened at WARN, others at INFO) and failed
// fallbacks (default, and for nil, the kit's JSON logger, logging.Default()).
func WithLogger(l *slog.Logger) CommonOption { return func(c *config) { c.logger = l } }

// WithMaxBreakers bounds the number of breakers (default
// [DefaultMaxBreakers]; must be >= 1).
func WithMaxBreakers(n int) CommonOption { return func(c *config) { c.maxBreakers = n } }

// WithShared shares the breakers' open state through Redis (see Shared;
// default none: each instance keeps its own breakers). The Server or
// Transport then runs a sync loop: call Close to stop it.
func WithShared(s Shared) CommonOption { return func(c *config) { c.shared = &s } }

// WithFailure replaces what counts as a failed request for the server
// breaker. The default counts 5xx answers and requests whose context
// deadline passed; 4xx (429 included) and 499 are not failures. Panics
// always count. A nil fn is an error.
func WithFailure(fn func(c *gin.Context, status int) bool) Option {
	return serverOption(func(c *serverConfig) { c.isFailure, c.nilIsFailure = fn, fn == nil })
}

// WithFallback serves requests of the route template (as registered, e.g.
// "/orders/:id"; "" for every route without one of its own) with fb while
// its breaker rejects them, instead of the 503 envelope (see
// errcode.RunFallback for a fallback that fails). A nil fb is an error.
func WithFallback(route string, fb errcode.Fallback) Option {
	return serverOption(func(c *serverConfig) {
		switch {
		case fb == nil:
			c.nilFallback = &route
		case route == "":
			c.fallbackAll = fb
		default:
			c.fallbacks[route] = fb
		}
	})
}
