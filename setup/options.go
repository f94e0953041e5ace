package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gingov/gingov/tracing"
)

// Option configures [Use]. The With... functions of this package build
// them; a nil Option is an error from Use.
type Option interface{ applyUse(*options) }

type useOption func(*options)

func (f useOption) applyUse(o *options) { f(o) }

type options struct {
	logger       *slog.Logger
	logOut       io.Writer
	registry     *prometheus.Registry
	rdb          redis.UniversalClient
	instances    func() int
	nilInstances bool
	onReload     func(context.Context, Event)
	nilOnReload  bool
	tracing      []tracing.Option
}

// newOptions applies opts in order over the defaults (every zero value
// below means its documented default) and checks the result.
func newOptions(opts []Option) (options, error) {
	var o options
	for i, opt := range opts {
		if opt == nil {
			return options{}, fmt.Errorf("setup: option %d is nil", i+1)
		}
		opt.applyUse(&o)
	}
	switch {
	case o.nilInstances:
		return options{}, errors.New("setup: WithInstances: nil function")
	case o.nilOnReload:
		return options{}, errors.New("setup: WithOnReload: nil function")
	}
	for i, t := range o.tracing {
		if t == nil {
			return options{}, fmt.Errorf("setup: WithTracingOptions: option %d is nil", i+1)
		}
	}
	return o, nil
}

// WithLogger logs through l. The default, and a nil l, is the kit's JSON
// logger (logging.New) writing to the WithLogOutput writer at Log.Level.
func WithLogger(l *slog.Logger) Option { return useOption(func(o *options) { o.logger = l }) }

// WithLogOutput writes the default logger's JSON lines to w (default, and
// for a nil w: os.Stdout), and the spans of the "stdout" tracing exporter
// too. With WithLogger it still sets where the stdout exporter writes, and
// nothing else.
func WithLogOutput(w io.Writer) Option { return useOption(func(o *options) { o.logOut = w }) }

// WithRegistry registers the metrics on reg (default, and for a nil reg: a
// new registry with the Go and process collectors).
func WithRegistry(reg *prometheus.Registry) Option {
	return useOption(func(o *options) { o.registry = reg })
}

// WithRedisClient shares rate-limit buckets through rdb instead of a client
// built from RateLimit.Redis (the caller keeps ownership of rdb). Default,
// and for a nil rdb: the client of RateLimit.Redis, if any.
func WithRedisClient(rdb redis.UniversalClient) Option {
	return useOption(func(o *options) { o.rdb = rdb })
}

// WithInstances gives the local failure policy a live instance count (for
// example from the service registry) in place of RateLimit.Redis.Instances
// (default: RateLimit.Redis.Instances). A nil fn is an error.
func WithInstances(fn func() int) Option {
	return useOption(func(o *options) { o.instances, o.nilInstances = fn, fn == nil })
}

// Event reports one reload attempt of the configuration by a watcher
// (Reload.File, Reload.Nacos, Reload.Etcd, Reload.Consul).
type Event struct {
	// Source is where the document came from: "file:<path>",
	// "nacos:<group>/<data_id>", "etcd:<key>" or "consul:<key>" (keys with
	// the profile in place of "{profile}").
	Source string
	// Err is nil when the document was applied, otherwise why it was
	// rejected (the configuration in force stays).
	Err error
	// Time is when the attempt ended.
	Time time.Time
}

// WithOnReload calls fn after every reload attempt of a watched source
// with its outcome (default none; a nil fn is an error). A document equal to
// the last one applied or the last one rejected by the same source is not
// an attempt (a bad document that stays in place is reported once). ctx is the chain's background
// context (it ends at Close); fn runs on the watcher's goroutine and must
// not block. Calls of Chain.Reload by the program do not report here: it
// has their error.
func WithOnReload(fn func(ctx context.Context, e Event)) Option {
	return useOption(func(o *options) { o.onReload, o.nilOnReload = fn, fn == nil })
}

// WithTracingOptions passes opts to tracing.New after those the Tracing
// section builds, so that they win: another exporter or span processor (an
// in-memory recorder in tests), resource attributes, a propagator. Default
// none; a nil entry is an error. Unused when tracing is disabled.
func WithTracingOptions(opts ...tracing.Option) Option {
	return useOption(func(o *options) { o.tracing = append(o.tracing, opts...) })
}
