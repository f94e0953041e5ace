// Package reqinfo holds the request-level helpers that every gingov
// middleware shares, exported so that gingov's nested modules (Sentinel,
// setup) and users' own middlewares label and classify requests exactly as
// the kit does: the route label, the name of the unmatched route, the status
// of a request whose client went away, what a recovered panic means,
// header-name validation, and which paths a middleware skips ([PathSet]).
package reqinfo

import (
	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/reqstate"
)

// UnmatchedRoute is the route label, rate-limit key, breaker name and
// Sentinel resource of a request that no route matched, so that unknown
// paths share one series and one bucket instead of one per raw path.
const UnmatchedRoute = "unmatched"

// StatusClientClosedRequest is the status recorded (in logs, metrics and
// breakers) for a request whose client went away before it was answered.
const StatusClientClosedRequest = reqstate.StatusClientClosedRequest

// Route returns the request's route template (c.FullPath()), or
// [UnmatchedRoute] when no route matched. It never returns the raw path.
func Route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return UnmatchedRoute
}

// PanicKind says how a recovered panic value is to be treated.
type PanicKind = reqstate.PanicKind

const (
	// PanicServerError is a bug: answered with 500.
	PanicServerError = reqstate.PanicServerError
	// PanicBrokenPipe is a write to a client that has gone (EPIPE,
	// ECONNRESET): recorded as [StatusClientClosedRequest].
	PanicBrokenPipe = reqstate.PanicBrokenPipe
	// PanicAbort is http.ErrAbortHandler, which net/http must see: a
	// middleware that recovers it panics again.
	PanicAbort = reqstate.PanicAbort
)

// ClassifyPanic says what kind of panic p is.
func ClassifyPanic(p any) PanicKind { return reqstate.ClassifyPanic(p) }

// ObservePanic is for middlewares that record a request's outcome and see a
// panic pass on its way to logging.Recovery (they recover, observe, and
// panic again). It keeps the stack of the panic site for Recovery's log and
// returns the status the request will end with: 500, the status already
// written, or [StatusClientClosedRequest].
func ObservePanic(c *gin.Context, p any) int { return reqstate.ObservePanic(c, p) }

// DeferToRecovery is for a middleware that records a request's outcome and
// sees a panic pass (after [ObservePanic]): when logging.Recovery is above
// it, fn is kept to run once Recovery has answered, with the status of the
// answer, so that the record counts the envelope's bytes (c.Writer.Size()),
// and it reports true; otherwise it keeps nothing and reports false, and
// the caller records the outcome at once. fn runs on the request's
// goroutine; the functions kept for a request run in the order they were
// kept, the innermost middleware's first. A middleware between the two
// that swallows the panic does not lose them: Recovery runs them when the
// request comes back to it, with the status then written.
func DeferToRecovery(c *gin.Context, fn func(status int)) bool {
	return reqstate.DeferToRecovery(c, fn)
}

// ClientIP returns c.ClientIP(), computed once per request once the kit's
// RequestID, AccessLog or tracing middleware has attached its state to the
// request (Gin parses the address and proxy headers and allocates the
// result on each call): the access log, the server span and IP-keyed
// limits then share one value.
func ClientIP(c *gin.Context) string { return reqstate.ClientIP(c) }

// ValidHeaderName reports whether s is a valid HTTP header field name (an
// RFC 9110 token: letters, digits and !#$%&'*+-.^_`|~).
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '!', c == '#', c == '$', c == '%', c == '&', c == '\'',
			c == '*', c == '+', c == '.', c == '^', c == '`', c == '|', c == '~':
		default:
			return false
		}
	}
	return true
}
