package errcode

import (
	"net/http"
	"slices"
)

// The kit's own codes, with service 0. Their module is the HTTP status, so
// 429001 reads as "the first kit code answered with 429". Applications may
// return them too (errcode.NotFound, errcode.BadRequest.WithMessage(...)).
//
// The table in docs/errcodes.md is generated from these (go generate ./errcode).
var (
	BadRequest         = kit(400001, http.StatusBadRequest, "BAD_REQUEST", "the request is invalid", "check the request parameters and body")
	Unauthenticated    = kit(401001, http.StatusUnauthorized, "UNAUTHENTICATED", "authentication is required", "send valid credentials")
	Forbidden          = kit(403001, http.StatusForbidden, "FORBIDDEN", "access is denied", "")
	NotFound           = kit(404001, http.StatusNotFound, "NOT_FOUND", "the resource was not found", "check the URL path")
	MethodNotAllowed   = kit(405001, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "the method is not allowed for this resource", "use a method listed in the Allow header")
	Conflict           = kit(409001, http.StatusConflict, "CONFLICT", "the request conflicts with the current state", "")
	RateLimited        = kit(429001, http.StatusTooManyRequests, "RATE_LIMITED", "too many requests", "retry after the time given in the Retry-After header")
	FlowBlocked        = kit(429002, http.StatusTooManyRequests, "FLOW_BLOCKED", "the request was blocked by flow control", "retry later")
	ClientClosed       = kit(499001, 499, "CLIENT_CLOSED_REQUEST", "the client closed the request", "")
	Internal           = kit(500001, http.StatusInternalServerError, "INTERNAL", "internal server error", "")
	Panic              = kit(500002, http.StatusInternalServerError, "INTERNAL_PANIC", "internal server error", "")
	NotImplemented     = kit(501001, http.StatusNotImplemented, "NOT_IMPLEMENTED", "not implemented", "")
	CircuitOpen        = kit(503001, http.StatusServiceUnavailable, "CIRCUIT_OPEN", "the service is temporarily unavailable", "retry after the time given in the Retry-After header")
	SystemOverload     = kit(503002, http.StatusServiceUnavailable, "SYSTEM_OVERLOAD", "the service is overloaded", "retry later")
	ConcurrencyLimited = kit(503003, http.StatusServiceUnavailable, "CONCURRENCY_LIMITED", "too many concurrent requests", "retry later")
	Unavailable        = kit(503004, http.StatusServiceUnavailable, "UNAVAILABLE", "the service is unavailable", "retry later")
	Timeout            = kit(504001, http.StatusGatewayTimeout, "TIMEOUT", "the request timed out", "retry later")
	DeadlineExceeded   = kit(504002, http.StatusGatewayTimeout, "DEADLINE_EXCEEDED", "the request did not complete within its deadline", "retry later; a caller that sets Request-Timeout or grpc-timeout may allow more time")
)

// kitCodes lists every kit code; being a literal, it makes the package
// initialise the codes before any registry copies them.
var kitCodes = []*Code{
	BadRequest, Unauthenticated, Forbidden, NotFound, MethodNotAllowed, Conflict,
	RateLimited, FlowBlocked, ClientClosed, Internal, Panic, NotImplemented,
	CircuitOpen, SystemOverload, ConcurrencyLimited, Unavailable, Timeout, DeadlineExceeded,
}

func kit(code, status int, reason, message, solution string) *Code {
	c := &Code{code: code, status: status, reason: reason, message: message, solution: solution}
	if err := validate(c, true); err != nil {
		panic(err)
	}
	return c
}

// Kit lists the kit's own codes, sorted by code.
func Kit() []*Code {
	out := append([]*Code(nil), kitCodes...)
	slices.SortFunc(out, func(a, b *Code) int { return a.code - b.code })
	return out
}
