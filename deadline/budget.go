package deadline

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

const (
	// Header carries a caller's remaining time budget: a positive integer
	// number of milliseconds, at most 9 digits ("Request-Timeout: 250"),
	// or a positive Go duration as time.ParseDuration reads it, without a
	// sign and at most 32 bytes long ("250ms", "1.5s"). The middleware
	// honours it when it is shorter than the route's timeout; any other
	// value (empty, zero, negative, with spaces or a sign, too long) is
	// ignored. Only the first value counts. [Propagate] sends milliseconds.
	Header = "Request-Timeout"

	// GRPCHeader is gRPC's timeout header, honoured too when present
	// (gRPC-Web and gRPC-gateway callers send it): 1 to 8 ASCII digits
	// and a unit, H (hours), M (minutes), S (seconds), m (milliseconds),
	// u (microseconds) or n (nanoseconds), as in "100m" or "2S". Zero and
	// any other value are ignored. When both headers are valid, the
	// shorter budget counts.
	GRPCHeader = "Grpc-Timeout"

	// DefaultMargin is what [Propagate] keeps for itself from the
	// remaining budget: the time the request and its answer spend on the
	// network and the caller spends on the answer, so that the caller
	// still has time to use an answer that arrives just before the
	// callee's deadline.
	DefaultMargin = 10 * time.Millisecond
)

// callerBudget is the shorter of the valid budgets in h.
func callerBudget(h http.Header) (time.Duration, bool) {
	b, ok := time.Duration(0), false
	if v := h[Header]; len(v) > 0 {
		b, ok = parseRequestTimeout(v[0])
	}
	if v := h[GRPCHeader]; len(v) > 0 {
		if g, gok := parseGRPCTimeout(v[0]); gok && (!ok || g < b) {
			b, ok = g, true
		}
	}
	return b, ok
}

// parseRequestTimeout reads a [Header] value.
func parseRequestTimeout(s string) (time.Duration, bool) {
	if s == "" || len(s) > 32 {
		return 0, false
	}
	digits := true
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			digits = false
			break
		}
	}
	if digits {
		if len(s) > 9 {
			return 0, false
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return 0, false
		}
		return time.Duration(n) * time.Millisecond, true
	}
	if c := s[0]; (c < '0' || c > '9') && c != '.' {
		return 0, false // no sign, no spaces
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// parseGRPCTimeout reads a grpc-timeout value. A value too large for a
// time.Duration (99999999H) is the largest one: it shortens nothing.
func parseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var n int64
	for i := 0; i < len(s)-1; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0') // at most 8 digits: no overflow
	}
	if n == 0 {
		return 0, false
	}
	if n > math.MaxInt64/int64(unit) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// Remaining returns what [Propagate] would send for ctx: the time left
// until ctx's deadline minus [DefaultMargin], truncated to the
// millisecond. ok is false when ctx has no deadline. A budget below one
// millisecond is returned as it is (≤ 0 included): there is nothing left
// to send.
func Remaining(ctx context.Context) (budget time.Duration, ok bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	b := time.Until(dl) - DefaultMargin
	if b >= time.Millisecond {
		b = b.Truncate(time.Millisecond)
	}
	return b, true
}

// exhausted is the error of a request with no budget left to send.
func exhausted(b time.Duration) error {
	return fmt.Errorf("deadline: %v left of the request's budget, less than 1ms after the %v margin: %w",
		(b + DefaultMargin).Round(time.Microsecond), DefaultMargin, context.DeadlineExceeded)
}

// Inject sets h's [Header] to the remaining budget of ctx ([Remaining]),
// for a RoundTripper that already copied the request's header. It does
// nothing when ctx has no deadline, keeps a value already in h that is
// shorter, and fails with an error that is errors.Is
// context.DeadlineExceeded (errcode: 504) when less than a millisecond is
// left: sending the request would be wasted.
func Inject(ctx context.Context, h http.Header) error {
	b, ok := Remaining(ctx)
	if !ok {
		return nil
	}
	if b < time.Millisecond {
		return exhausted(b)
	}
	if v := h[Header]; len(v) > 0 {
		if cur, ok := parseRequestTimeout(v[0]); ok && cur <= b {
			return nil
		}
	}
	h[Header] = []string{strconv.FormatInt(b.Milliseconds(), 10)}
	return nil
}

// Propagate returns req to send on: req itself when its context has no
// deadline or its [Header] already carries a budget no longer than
// [Remaining]'s, otherwise a shallow copy of req with its own header
// carrying the remaining budget (a RoundTripper must not modify the
// caller's request). When less than a millisecond is left it returns an
// error that is errors.Is context.DeadlineExceeded and the caller should
// not send the request (nor forget to close its body).
//
// tracing.Transport, registry.Transport and circuitbreaker.Transport call
// it; a RoundTripper of one's own can too.
func Propagate(req *http.Request) (*http.Request, error) {
	b, ok := Remaining(req.Context())
	if !ok {
		return req, nil
	}
	if b < time.Millisecond {
		return nil, exhausted(b)
	}
	if v := req.Header[Header]; len(v) > 0 {
		if cur, ok := parseRequestTimeout(v[0]); ok && cur <= b {
			return req, nil
		}
	}
	out := new(http.Request)
	*out = *req
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, 1)
	}
	out.Header[Header] = []string{strconv.FormatInt(b.Milliseconds(), 10)}
	return out, nil
}
