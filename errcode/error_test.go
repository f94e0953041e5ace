package errcode_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/errcode"
)

func TestFromNil(t *testing.T) {
	t.Parallel()
	if e := errcode.From(nil); e != nil {
		t.Errorf("From(nil) = %v; want nil", e)
	}
}

func TestFromCode(t *testing.T) {
	t.Parallel()
	e := errcode.From(errcode.NotFound)
	if e == nil || e.Code() != errcode.NotFound {
		t.Fatalf("From(NotFound) = %v; want an occurrence of NotFound", e)
	}
	if e.Cause() != nil {
		t.Errorf("From(NotFound).Cause() = %v; want nil", e.Cause())
	}
	if e.Message() != errcode.NotFound.Message() {
		t.Errorf("Message() = %q; want the code's %q", e.Message(), errcode.NotFound.Message())
	}
	if len(e.Metadata()) != 0 {
		t.Errorf("Metadata() = %v; want none", e.Metadata())
	}
}

func TestFromError(t *testing.T) {
	t.Parallel()
	orig := errcode.Conflict.WithMessage("version mismatch").WithMetadata("id", "7").Wrap(sql.ErrTxDone)
	e := errcode.From(orig)
	if e.Code() != errcode.Conflict {
		t.Errorf("code = %v; want Conflict", e.Code())
	}
	if e.Message() != "version mismatch" {
		t.Errorf("message = %q; want the occurrence's message", e.Message())
	}
	if e.Metadata()["id"] != "7" {
		t.Errorf("metadata = %v; want id=7", e.Metadata())
	}
	if e.Cause() != sql.ErrTxDone { //nolint:errorlint // identity of the cause
		t.Errorf("cause = %v; want sql.ErrTxDone", e.Cause())
	}
}

func TestFromWrappedCode(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("load order 7: %w", errcode.NotFound)
	e := errcode.From(wrapped)
	if e.Code() != errcode.NotFound {
		t.Fatalf("code = %v; want NotFound", e.Code())
	}
	if e.Cause() != wrapped { //nolint:errorlint // the whole error must be the cause
		t.Errorf("cause = %v; want the whole wrapped error", e.Cause())
	}
	if e.Message() != errcode.NotFound.Message() {
		t.Errorf("message = %q; the wrapping text must not become public", e.Message())
	}
	if !strings.Contains(e.Error(), "load order 7") {
		t.Errorf("Error() = %q; want the cause for the log", e.Error())
	}
}

func TestFromWrappedError(t *testing.T) {
	t.Parallel()
	inner := errcode.NotFound.WithMetadata("id", "7").Wrap(sql.ErrNoRows)
	wrapped := fmt.Errorf("service: %w", inner)
	e := errcode.From(wrapped)
	if e.Code() != errcode.NotFound {
		t.Fatalf("code = %v; want NotFound", e.Code())
	}
	if e.Cause() != wrapped { //nolint:errorlint // the whole error must be the cause
		t.Errorf("cause = %v; want the whole wrapped error", e.Cause())
	}
	if e.Metadata()["id"] != "7" {
		t.Errorf("metadata = %v; want the inner occurrence's", e.Metadata())
	}
	if !errors.Is(e, sql.ErrNoRows) {
		t.Error("errors.Is(From(wrapped), sql.ErrNoRows) = false")
	}
	if inner.Cause() != sql.ErrNoRows { //nolint:errorlint // identity
		t.Error("From modified the inner *Error")
	}
}

func TestWrapIs(t *testing.T) {
	t.Parallel()
	wrapped := errcode.NotFound.Wrap(sql.ErrNoRows)
	if !errors.Is(wrapped, sql.ErrNoRows) {
		t.Error("errors.Is(NotFound.Wrap(sql.ErrNoRows), sql.ErrNoRows) = false")
	}
	if !errors.Is(wrapped, errcode.NotFound) {
		t.Error("errors.Is(NotFound.Wrap(...), NotFound) = false")
	}
	if errors.Is(wrapped, errcode.Conflict) {
		t.Error("errors.Is(NotFound.Wrap(...), Conflict) = true")
	}
	if !errors.Is(fmt.Errorf("outer: %w", wrapped), errcode.NotFound) {
		t.Error("errors.Is through fmt.Errorf lost the code")
	}
	if !errors.Is(wrapped, errcode.NotFound.WithMessage("other")) {
		t.Error("two occurrences of one code are not errors.Is-equal")
	}
	if errors.Is(wrapped, errcode.Conflict.Wrap(sql.ErrNoRows)) {
		t.Error("occurrences of different codes are errors.Is-equal")
	}
	var e *errcode.Error
	if !errors.As(fmt.Errorf("outer: %w", wrapped), &e) || e != wrapped {
		t.Error("errors.As did not find the *Error")
	}
	if wrapped.Cause() != sql.ErrNoRows || wrapped.Unwrap() != sql.ErrNoRows { //nolint:errorlint // identity
		t.Errorf("Cause/Unwrap = %v/%v; want sql.ErrNoRows", wrapped.Cause(), wrapped.Unwrap())
	}
	if !strings.Contains(wrapped.Error(), sql.ErrNoRows.Error()) || !strings.Contains(wrapped.Error(), "NOT_FOUND") {
		t.Errorf("Error() = %q; want reason and cause", wrapped.Error())
	}
}

func TestFromContextErrors(t *testing.T) {
	t.Parallel()
	expired, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()

	tests := []struct {
		name   string
		err    error
		code   *errcode.Code
		status int
	}{
		{"DeadlineExceeded", context.DeadlineExceeded, errcode.Timeout, 504},
		{"wrapped DeadlineExceeded", fmt.Errorf("query: %w", context.DeadlineExceeded), errcode.Timeout, 504},
		{"expired ctx.Err", expired.Err(), errcode.Timeout, 504},
		{"Canceled", context.Canceled, errcode.ClientClosed, 499},
		{"wrapped Canceled", fmt.Errorf("query: %w", context.Canceled), errcode.ClientClosed, 499},
		{"canceled ctx.Err", canceled.Err(), errcode.ClientClosed, 499},
	}
	for _, tc := range tests {
		e := errcode.From(tc.err)
		if e.Code() != tc.code || e.Code().Status() != tc.status {
			t.Errorf("%s: From = %s %d; want %s %d", tc.name, e.Code().Reason(), e.Code().Status(), tc.code.Reason(), tc.status)
		}
		if e.Cause() != tc.err { //nolint:errorlint // identity
			t.Errorf("%s: cause = %v; want the original error", tc.name, e.Cause())
		}
	}
}

func TestFromPlainError(t *testing.T) {
	t.Parallel()
	err := errors.New("db password=secret")
	e := errcode.From(err)
	if e.Code() != errcode.Internal || e.Code().Status() != 500 {
		t.Fatalf("From(plain) = %s %d; want INTERNAL 500", e.Code().Reason(), e.Code().Status())
	}
	if e.Message() != errcode.Internal.Message() || strings.Contains(e.Message(), "secret") {
		t.Errorf("public message = %q; want the generic %q", e.Message(), errcode.Internal.Message())
	}
	if e.Cause() != err { //nolint:errorlint // identity
		t.Errorf("cause = %v; want the original error", e.Cause())
	}
	if !strings.Contains(e.Error(), "password=secret") {
		t.Errorf("Error() = %q; the log text must keep the cause", e.Error())
	}
	if len(e.Metadata()) != 0 {
		t.Errorf("metadata = %v; want none", e.Metadata())
	}
}

func TestFromJoin(t *testing.T) {
	t.Parallel()
	joined := errors.Join(errors.New("first"), errcode.Conflict)
	e := errcode.From(joined)
	if e.Code() != errcode.Conflict {
		t.Errorf("From(Join(plain, Conflict)) = %s; want CONFLICT", e.Code().Reason())
	}
	if e.Cause() != joined { //nolint:errorlint // identity
		t.Errorf("cause = %v; want the joined error", e.Cause())
	}

	// A code wins over a context error in the same join.
	e = errcode.From(errors.Join(context.DeadlineExceeded, errcode.NotFound.Wrap(sql.ErrNoRows)))
	if e.Code() != errcode.NotFound {
		t.Errorf("From(Join(deadline, NotFound)) = %s; want NOT_FOUND", e.Code().Reason())
	}

	// A join of plain errors stays Internal; one with a deadline is a timeout.
	if e := errcode.From(errors.Join(errors.New("a"), errors.New("b"))); e.Code() != errcode.Internal {
		t.Errorf("From(Join(plain, plain)) = %s; want INTERNAL", e.Code().Reason())
	}
	if e := errcode.From(errors.Join(errors.New("a"), context.DeadlineExceeded)); e.Code() != errcode.Timeout {
		t.Errorf("From(Join(plain, deadline)) = %s; want TIMEOUT", e.Code().Reason())
	}
}

// fakeCode, fakeStatus and grpcError mimic google.golang.org/grpc/codes.Code,
// *status.Status and a status error, without importing gRPC.
type fakeCode uint32

type fakeStatus struct{ c uint32 }

func (s *fakeStatus) Code() fakeCode { return fakeCode(s.c) }

type grpcError struct{ st *fakeStatus }

func (e *grpcError) Error() string {
	if e.st == nil {
		return "rpc error: nil status"
	}
	return fmt.Sprintf("rpc error: code = %d desc = upstream detail", e.st.c)
}

func (e *grpcError) GRPCStatus() *fakeStatus { return e.st }

func grpcErr(code uint32) error { return &grpcError{st: &fakeStatus{c: code}} }

func TestFromGRPCStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		grpc   uint32
		code   *errcode.Code
		status int
	}{
		{5, errcode.NotFound, 404},     // NotFound
		{14, errcode.Unavailable, 503}, // Unavailable
		{3, errcode.BadRequest, 400},   // InvalidArgument
		{16, errcode.Unauthenticated, 401},
		{7, errcode.Forbidden, 403},   // PermissionDenied
		{8, errcode.RateLimited, 429}, // ResourceExhausted
		{4, errcode.Timeout, 504},     // DeadlineExceeded
		{12, errcode.NotImplemented, 501},
		{1, errcode.ClientClosed, 499}, // Canceled
		{6, errcode.Conflict, 409},     // AlreadyExists
		{13, errcode.Internal, 500},    // Internal
		{2, errcode.Internal, 500},     // Unknown
		{99, errcode.Internal, 500},    // not a gRPC code
		{1 << 31, errcode.Internal, 500},
	}
	for _, tc := range tests {
		for _, wrap := range []bool{false, true} {
			err := grpcErr(tc.grpc)
			if wrap {
				err = fmt.Errorf("call orders: %w", err)
			}
			e := errcode.From(err)
			if e.Code() != tc.code || e.Code().Status() != tc.status {
				t.Errorf("gRPC %d (wrapped %v): From = %s %d; want %s %d",
					tc.grpc, wrap, e.Code().Reason(), e.Code().Status(), tc.code.Reason(), tc.status)
			}
			if e.Cause() != err { //nolint:errorlint // identity
				t.Errorf("gRPC %d (wrapped %v): cause = %v; want the original", tc.grpc, wrap, e.Cause())
			}
			if strings.Contains(e.Message(), "upstream detail") {
				t.Errorf("gRPC %d: upstream text leaked into the public message %q", tc.grpc, e.Message())
			}
		}
	}
}

func TestFromGRPCStatusInJoin(t *testing.T) {
	t.Parallel()
	e := errcode.From(errors.Join(errors.New("first"), grpcErr(14)))
	if e.Code() != errcode.Unavailable {
		t.Errorf("From(Join(plain, gRPC Unavailable)) = %s; want UNAVAILABLE", e.Code().Reason())
	}
}

func TestFromGRPCNilStatus(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		&grpcError{st: nil},
		fmt.Errorf("wrapped: %w", &grpcError{st: nil}),
	} {
		var e *errcode.Error
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("From(%v) panicked: %v", err, p)
				}
			}()
			e = errcode.From(err)
		}()
		if e.Code() != errcode.Internal {
			t.Errorf("From(%v) = %s; want INTERNAL", err, e.Code().Reason())
		}
	}
	// A nil status further out does not hide a real one further in.
	inner := grpcErr(5)
	e := errcode.From(&wrappingNilStatus{inner: inner})
	if e.Code() != errcode.NotFound {
		t.Errorf("nil status wrapping a NotFound status: From = %s; want NOT_FOUND", e.Code().Reason())
	}
}

// wrappingNilStatus has a nil gRPC status but wraps an error that has one.
type wrappingNilStatus struct{ inner error }

func (e *wrappingNilStatus) Error() string           { return "outer: " + e.inner.Error() }
func (e *wrappingNilStatus) Unwrap() error           { return e.inner }
func (e *wrappingNilStatus) GRPCStatus() *fakeStatus { return nil }

func TestWithMessageCopyOnWrite(t *testing.T) {
	t.Parallel()
	e1 := errcode.NotFound.WithMessage("order 7 not found")
	if e1.Message() != "order 7 not found" || e1.Code() != errcode.NotFound {
		t.Fatalf("WithMessage = %q %v", e1.Message(), e1.Code())
	}
	if errcode.NotFound.Message() != "the resource was not found" {
		t.Errorf("Code.WithMessage changed the code's message to %q", errcode.NotFound.Message())
	}
	e2 := e1.WithMessage("other")
	if e1.Message() != "order 7 not found" || e2.Message() != "other" {
		t.Errorf("Error.WithMessage: original %q, copy %q", e1.Message(), e2.Message())
	}
	e3 := e1.Wrap(sql.ErrNoRows)
	if e1.Cause() != nil || e3.Cause() != sql.ErrNoRows || e3.Message() != "order 7 not found" { //nolint:errorlint // identity
		t.Errorf("Error.Wrap: original cause %v, copy cause %v message %q", e1.Cause(), e3.Cause(), e3.Message())
	}
	if !strings.Contains(e1.Error(), "order 7 not found") {
		t.Errorf("Error() = %q; want the custom message", e1.Error())
	}
}

func TestWithMetadataCopyOnWrite(t *testing.T) {
	t.Parallel()
	e1 := errcode.NotFound.WithMetadata("id", "7")
	e2 := e1.WithMetadata("kind", "order", "id", "8")
	e3 := e1.WithMessage("custom").WithMetadata("extra", "x")
	if want := map[string]string{"id": "7"}; !maps.Equal(e1.Metadata(), want) {
		t.Errorf("original metadata = %v; want %v", e1.Metadata(), want)
	}
	if want := map[string]string{"id": "8", "kind": "order"}; !maps.Equal(e2.Metadata(), want) {
		t.Errorf("copy metadata = %v; want %v", e2.Metadata(), want)
	}
	if want := map[string]string{"id": "7", "extra": "x"}; !maps.Equal(e3.Metadata(), want) {
		t.Errorf("WithMessage then WithMetadata = %v; want %v", e3.Metadata(), want)
	}
	if e1.Message() != errcode.NotFound.Message() {
		t.Errorf("original message changed to %q", e1.Message())
	}
	odd := errcode.BadRequest.WithMetadata("field", "name", "trailing")
	if want := map[string]string{"field": "name", "trailing": ""}; !maps.Equal(odd.Metadata(), want) {
		t.Errorf("odd key/value list = %v; want %v", odd.Metadata(), want)
	}
	wrapped := e1.Wrap(sql.ErrNoRows)
	if !maps.Equal(wrapped.Metadata(), e1.Metadata()) {
		t.Errorf("Wrap dropped metadata: %v", wrapped.Metadata())
	}
}
