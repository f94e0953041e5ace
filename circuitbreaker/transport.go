package circuitbreaker

import (
	"context"
	"errors"
	"net/http"

	"github.com/gingov/gingov/errcode"
)

// Transport is an http.RoundTripper with one breaker per upstream host
// (URL host, with port). Failures are transport errors, timeouts and 5xx
// answers; a request the caller cancelled is no failure. While a host's
// breaker rejects, RoundTrip fails at once with an error that is
// errors.Is ErrOpen and that errcode.From maps to 503 CIRCUIT_OPEN.
type Transport struct {
	next  http.RoundTripper
	cfg   config
	group *group[string]
}

// NewTransport wraps next (nil means http.DefaultTransport). Server-only
// options (WithFailure, WithFallback) are ignored.
func NewTransport(next http.RoundTripper, opts ...Option) (*Transport, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{next: next, cfg: cfg}
	if t.group, err = newGroup[string](&t.cfg); err != nil {
		return nil, err
	}
	return t, nil
}

// Close stops the shared-state sync loop (WithShared).
func (t *Transport) Close() error {
	t.group.close()
	return nil
}

// State returns the state of a host's breaker.
func (t *Transport) State(host string) State {
	if b, ok := t.group.breakers.Load(host); ok {
		return b.(breaker).state()
	}
	return StateClosed
}

// Open reports whether a host's breaker is open, that is rejecting
// requests (for the SRE policy: rejecting some). A load balancer above the
// Transport uses it to steer requests to other hosts; half-open hosts are
// not open, so that probes reach them.
func (t *Transport) Open(host string) bool { return t.State(host) == StateOpen }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	b := t.group.get(host, func() string { return host })
	done, err := b.allow()
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, errcode.CircuitOpen.Wrap(err)
	}
	resp, err := t.next.RoundTrip(req)
	switch {
	case err != nil && errors.Is(err, context.Canceled) && errors.Is(req.Context().Err(), context.Canceled):
		done(excluded) // the caller gave up: says nothing of the upstream
	case err != nil || resp.StatusCode >= 500:
		done(failed)
	default:
		done(succeeded)
	}
	return resp, err
}
