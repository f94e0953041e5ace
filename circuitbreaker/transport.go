package circuitbreaker

import (
	"context"
	"errors"
	"net/http"

	"github.com/gingov/gingov/deadline"
	"github.com/gingov/gingov/errcode"
)

// Transport is an http.RoundTripper with one breaker per upstream host
// (URL host, with port). Failures are transport errors, timeouts and 5xx
// answers; a request the caller cancelled is no failure. While a host's
// breaker rejects, RoundTrip fails at once with an error that is
// errors.Is ErrOpen and that errcode.From maps to 503 CIRCUIT_OPEN.
//
// When the request's context has a deadline, the remaining budget is sent
// on in the deadline.Header header (deadline.Propagate); a request with
// less than a millisecond left fails at once with an error that is
// errors.Is context.DeadlineExceeded, and is no failure of the host.
type Transport struct {
	next  http.RoundTripper
	cfg   transportConfig
	group *group[hostKey]
}

type hostKey string

func (h hostKey) breakerName() string { return string(h) }

// NewTransport wraps next (nil means http.DefaultTransport). It fails for
// an invalid policy or option.
func NewTransport(next http.RoundTripper, opts ...TransportOption) (*Transport, error) {
	cfg, err := newTransportConfig(opts)
	if err != nil {
		return nil, err
	}
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{next: next, cfg: cfg}
	t.group = newGroup[hostKey](&t.cfg.config)
	return t, nil
}

// Close stops the shared-state sync loop (WithShared).
func (t *Transport) Close() error {
	t.group.close()
	return nil
}

// State returns the state of a host's breaker.
func (t *Transport) State(host string) State {
	if b, ok := t.group.load(hostKey(host)); ok {
		return b.state()
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
	out, err := deadline.Propagate(req)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err // no budget left: says nothing of the upstream
	}
	req = out
	ctx := req.Context()
	b := t.group.get(hostKey(req.URL.Host))
	tk, err := b.allow(ctx)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, errcode.CircuitOpen.Wrap(err)
	}
	resp, err := t.next.RoundTrip(req)
	switch {
	case err != nil && errors.Is(err, context.Canceled) && errors.Is(req.Context().Err(), context.Canceled):
		b.done(ctx, tk, excluded) // the caller gave up: says nothing of the upstream
	case err != nil || resp.StatusCode >= 500:
		b.done(ctx, tk, failed)
	default:
		b.done(ctx, tk, succeeded)
	}
	return resp, err
}
