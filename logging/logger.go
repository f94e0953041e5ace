// Package logging gives a Gin service one JSON log format: a structured
// access-log line per request, panic recovery, request IDs, and a per-request
// logger that handlers use so that their lines carry the request's IDs.
//
// It uses log/slog only. Field names are shared by every gingov component:
// request_id, trace_id, span_id, method, route (the template), status, code,
// reason and error.
//
// The strings a request or an error puts in a line are bounded (see
// [DefaultMaxFieldBytes], [WithMaxFieldBytes] and [WithMaxLineBytes]): a cut
// value ends in [TruncatedMark] and its original length follows it as
// <field>_len.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/gingov/gingov/internal/reqstate"
)

// New returns a JSON logger writing to w at the given minimum level
// (nil means INFO): the one log format of gingov. Its handler behaves as
// slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}); each line is
// one Write call on w, serialised across the logger and the loggers derived
// from it.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	if level == nil {
		level = slog.LevelInfo
	}
	return slog.New(newJSONHandler(w, level))
}

// Default returns the kit's default logger: JSON lines on os.Stderr at
// INFO, in the format of [New]. Every gingov constructor given a nil
// *slog.Logger logs through it. It is created on first use and shared.
func Default() *slog.Logger { return defaultLogger() }

var defaultLogger = sync.OnceValue(func() *slog.Logger { return New(os.Stderr, nil) })

// OrDefault returns l, or [Default] when l is nil.
func OrDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return Default()
	}
	return l
}

// FromContext returns a logger carrying the request's request_id, trace_id
// and span_id, for handlers: logging.FromContext(c.Request.Context()).Info(...).
// Its base is the logger given to [NewAccessLog]; on a context that no
// access log has seen it is slog.Default(), so that it honours
// slog.SetDefault (the one place the kit falls back to slog.Default rather
// than [Default]: it is the program's own logging call, not a component
// given a nil logger).
//
// Its lines on a request's context bound their strings (attributes, in
// groups too, error texts and the message) as the access log bounds its
// fields ([WithMaxFieldBytes], default [DefaultMaxFieldBytes]): a longer
// value is cut, ends in [TruncatedMark] and has its original length
// beside it as <key>_len.
func FromContext(ctx context.Context) *slog.Logger {
	info := reqstate.From(ctx)
	if info == nil {
		return withRequestAttrs(slog.Default(), ctx, nil)
	}
	base := info.Logger
	if base == nil {
		base = slog.New(boundHandler(slog.Default().Handler(), fieldLimit(info)))
	}
	return withRequestAttrs(base, ctx, info)
}

// withRequestAttrs adds the request's IDs to l.
func withRequestAttrs(l *slog.Logger, ctx context.Context, info *reqstate.Info) *slog.Logger {
	var attrs [3]any
	n := 0
	if info != nil && info.RequestID != "" {
		attrs[n] = slog.String("request_id", info.RequestID)
		n++
	}
	if traceID, spanID := reqstate.TraceIDs(ctx); traceID != "" {
		attrs[n] = slog.String("trace_id", traceID)
		attrs[n+1] = slog.String("span_id", spanID)
		n += 2
	}
	if n == 0 {
		return l
	}
	return l.With(attrs[:n]...)
}
