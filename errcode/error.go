package errcode

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strconv"
)

// Error is one occurrence of a [Code]: the code, optionally a different
// public message, public metadata, and a private cause. Its methods return
// copies, so an *Error may be shared once built.
type Error struct {
	code     *Code
	message  string
	metadata map[string]string
	cause    error
}

// Code returns the declared code.
func (e *Error) Code() *Code { return e.code }

// Message returns the public message: the one given by WithMessage, else the code's.
func (e *Error) Message() string {
	if e.message != "" || e.code == nil {
		return e.message
	}
	return e.code.message
}

// Metadata returns the public metadata. The map must not be modified.
func (e *Error) Metadata() map[string]string { return e.metadata }

// Cause returns the private cause, or nil.
func (e *Error) Cause() error { return e.cause }

// Unwrap returns the cause, so errors.Is and errors.As reach it.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is e's code, or an occurrence of the same code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Code:
		return t == e.code
	case *Error:
		return t != nil && t.code == e.code
	}
	return false
}

// Error implements error. It includes the cause; it is for logs, not clients.
func (e *Error) Error() string {
	if !e.code.valid() {
		return "errcode: invalid code"
	}
	s := e.code.Error()
	if e.message != "" {
		s = "errcode " + strconv.Itoa(e.code.code) + " " + e.code.reason + ": " + e.message
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Wrap returns a copy of e caused by cause.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// WithMessage returns a copy of e with a different public message.
func (e *Error) WithMessage(msg string) *Error {
	c := *e
	c.message = msg
	return &c
}

// WithMetadata returns a copy of e with the key/value pairs added to its
// public metadata (a trailing odd key gets an empty value).
func (e *Error) WithMetadata(kv ...string) *Error {
	c := *e
	c.metadata = make(map[string]string, len(e.metadata)+len(kv)/2+1)
	maps.Copy(c.metadata, e.metadata)
	for i := 0; i < len(kv); i += 2 {
		v := ""
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		c.metadata[kv[i]] = v
	}
	return &c
}

// From maps any error to an *Error, or returns nil for nil:
//   - an *Error or *Code anywhere in the chain keeps its code (the whole
//     error becomes the cause when it was wrapped);
//   - context.DeadlineExceeded becomes [Timeout] (504) and
//     context.Canceled [ClientClosed] (499);
//   - a gRPC status error (anything with a GRPCStatus method) maps by its
//     status code, e.g. NotFound to 404 and Unavailable to 503;
//   - anything else becomes [Internal] (500).
//
// Except for kit and application codes, the client sees only the kit code's
// generic message; the original error stays in the cause, for the log.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		switch {
		case e == nil || !e.code.valid():
			return Internal.Wrap(err) // a zero or nil *Error: never answer with it
		case e == err: //nolint:errorlint // identity check: err is e itself
			return e
		}
		return e.Wrap(err)
	}
	var c *Code
	if errors.As(err, &c) {
		switch {
		case !c.valid():
			return Internal.Wrap(err)
		case c == err: //nolint:errorlint // identity check
			return &Error{code: c}
		}
		return c.Wrap(err)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout.Wrap(err)
	case errors.Is(err, context.Canceled):
		return ClientClosed.Wrap(err)
	}
	if code, ok := grpcCode(err); ok {
		return grpcCodes[code].Wrap(err)
	}
	return Internal.Wrap(err)
}

// grpcCodes maps google.golang.org/grpc/codes values (stable, part of the
// gRPC protocol) to kit codes.
var grpcCodes = [...]*Code{
	0:  Internal,        // OK used as an error: still a failure
	1:  ClientClosed,    // Canceled
	2:  Internal,        // Unknown
	3:  BadRequest,      // InvalidArgument
	4:  Timeout,         // DeadlineExceeded
	5:  NotFound,        // NotFound
	6:  Conflict,        // AlreadyExists
	7:  Forbidden,       // PermissionDenied
	8:  RateLimited,     // ResourceExhausted
	9:  BadRequest,      // FailedPrecondition
	10: Conflict,        // Aborted
	11: BadRequest,      // OutOfRange
	12: NotImplemented,  // Unimplemented
	13: Internal,        // Internal
	14: Unavailable,     // Unavailable
	15: Internal,        // DataLoss
	16: Unauthenticated, // Unauthenticated
}

// grpcCode finds a gRPC status in err's chain without importing gRPC: status
// errors have a method GRPCStatus() *status.Status whose Code() is a uint32.
func grpcCode(err error) (int, bool) {
	found, code := false, 0
	walk(err, func(e error) bool {
		m := reflect.ValueOf(e).MethodByName("GRPCStatus")
		if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
			return true
		}
		st := m.Call(nil)[0]
		if (st.Kind() == reflect.Pointer || st.Kind() == reflect.Interface) && st.IsNil() {
			return true
		}
		cm := st.MethodByName("Code")
		if !cm.IsValid() || cm.Type().NumIn() != 0 || cm.Type().NumOut() != 1 {
			return true
		}
		v := cm.Call(nil)[0]
		switch v.Kind() {
		case reflect.Uint32, reflect.Uint, reflect.Uint64:
			if v.Uint() < uint64(len(grpcCodes)) {
				found, code = true, int(v.Uint())
			} else {
				found, code = true, 2 // unknown code: Unknown
			}
			return false
		}
		return true
	})
	return code, found
}

// walk visits err and every error it wraps, depth first, until fn returns false.
func walk(err error, fn func(error) bool) bool {
	for err != nil {
		if !fn(err) {
			return false
		}
		switch u := err.(type) { //nolint:errorlint // walking the chain by hand
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if !walk(e, fn) {
					return false
				}
			}
			return true
		default:
			return true
		}
	}
	return true
}
