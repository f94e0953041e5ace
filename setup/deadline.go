package setup

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gingov/gingov/deadline"
)

// Deadline configures the per-request deadline (package deadline):
//
//	deadline: {default: 1s, routes: {"GET /reports/:id": 10s}, exempt: ["GET /events"]}
//
// The middleware is on when the section sets any of its fields, and sits
// after the access log, before the rate limit. Changes take effect at
// restart.
type Deadline struct {
	// Default is the deadline of every request without a route of its own
	// (0: deadline.DefaultTimeout, 1 s, when Routes or Exempt are set;
	// with neither, 0 turns the middleware off). A caller's shorter
	// Request-Timeout or grpc-timeout shortens it.
	Default time.Duration `yaml:"default"`
	// Routes gives route templates their own deadline, by method and
	// template: "GET /reports/:id": 10s. Not overridable from the
	// environment.
	Routes map[string]time.Duration `yaml:"routes"`
	// Exempt lists routes without a deadline ("GET /events": streams,
	// long polls), in the same form.
	Exempt []string `yaml:"exempt"`
}

// enabled reports whether the section turns the middleware on.
func (d Deadline) enabled() bool {
	return d.Default != 0 || len(d.Routes) > 0 || len(d.Exempt) > 0
}

// options are d's deadline.New arguments, routes in a stable order.
func (d Deadline) options() (time.Duration, []deadline.Option) {
	timeout := d.Default
	if timeout == 0 {
		timeout = deadline.DefaultTimeout
	}
	var opts []deadline.Option
	for _, route := range slices.Sorted(maps.Keys(d.Routes)) {
		opts = append(opts, deadline.WithRoute(route, d.Routes[route]))
	}
	for _, route := range d.Exempt {
		opts = append(opts, deadline.WithExempt(route))
	}
	return timeout, opts
}

func (c *Config) validateDeadline() error {
	d := c.Deadline
	if d.Default < 0 {
		return fieldErr("deadline.default", "%v must be > 0 (or 0 for %v)", d.Default, deadline.DefaultTimeout)
	}
	if !d.enabled() {
		return nil
	}
	timeout, opts := d.options()
	for _, route := range slices.Sorted(maps.Keys(d.Routes)) {
		if _, err := deadline.New(timeout, deadline.WithRoute(route, d.Routes[route])); err != nil {
			return fieldErr(fmt.Sprintf("deadline.routes[%q]", route), "%v", err)
		}
	}
	for i, route := range d.Exempt {
		if _, err := deadline.New(timeout, deadline.WithExempt(route)); err != nil {
			return fieldErr(fmt.Sprintf("deadline.exempt[%d]", i), "%v", err)
		}
	}
	if _, err := deadline.New(timeout, opts...); err != nil { // a route both timed and exempt
		return fieldErr("deadline", "%v", err)
	}
	return nil
}

// deadline builds the deadline middleware of cfg, reporting to the
// governance metrics when there are any.
func (ch *Chain) deadline(d Deadline) (*deadline.Timeouts, error) {
	timeout, opts := d.options()
	if ch.gov != nil {
		opts = append(opts, deadline.WithOnTimeout(ch.gov.OnDeadline))
	}
	dl, err := deadline.New(timeout, opts...)
	if err != nil {
		return nil, fmt.Errorf("setup: deadline: %w", err)
	}
	return dl, nil
}
