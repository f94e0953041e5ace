package logging

import (
	"context"
	"log/slog"
	"slices"
	"unicode/utf8"

	"github.com/gingov/gingov/internal/jsonstr"
	"github.com/gingov/gingov/internal/reqstate"
)

// Bounds of the fields that a request or an error puts in a log line: a
// client controls them (path, query, headers, user agent, request ID) or
// they can be of any size (error text, panic values), and one oversized
// field must not make a line that a log pipeline truncates or drops.
//
// A string value longer than the field bound is cut, at a rune boundary,
// to at most that many bytes, ending in [TruncatedMark]; a sibling
// attribute named after the field with the suffix "_len" (path_len,
// error_len, headers.User-Agent_len, …) holds the value's original length
// in bytes, so that nothing is lost silently:
//
//	"path":"/aaaa…","path_len":102400
const (
	// DefaultMaxFieldBytes bounds each request-derived string field of a
	// line, in bytes (see [WithMaxFieldBytes]).
	DefaultMaxFieldBytes = 1024
	// DefaultMaxLineBytes bounds one access-log line, in bytes, newline
	// included (see [WithMaxLineBytes]).
	DefaultMaxLineBytes = 8 << 10
	// MinFieldBytes is the smallest field bound accepted.
	MinFieldBytes = 16
	// MinLineBytes is the smallest line bound accepted (a line must also fit
	// the access log's fixed fields, see [WithMaxLineBytes]).
	MinLineBytes = 1024
	// TruncatedMark ends a value that was cut.
	TruncatedMark = "…"
	// lenSuffix names the attribute holding a cut value's original length.
	lenSuffix = "_len"
)

// truncateAt returns the length of the prefix of s that is kept when s is
// cut to at most limit bytes, TruncatedMark included, and whether s is cut
// at all. The cut never falls inside a UTF-8 sequence of s (it backs off at
// most utf8.UTFMax-1 bytes, enough for valid UTF-8); a limit below the
// mark's length keeps nothing.
func truncateAt(s string, limit int) (keep int, cut bool) {
	if len(s) <= limit {
		return len(s), false
	}
	keep = limit - len(TruncatedMark)
	if keep <= 0 {
		return 0, true
	}
	for i := 0; i < utf8.UTFMax-1 && keep > 0 && !utf8.RuneStart(s[keep]); i++ {
		keep--
	}
	return keep, true
}

// truncate returns s cut to at most limit bytes (limit >= len(TruncatedMark))
// with TruncatedMark at the end, or s when it fits.
func truncate(s string, limit int) string {
	keep, cut := truncateAt(s, limit)
	if !cut {
		return s
	}
	return s[:keep] + TruncatedMark
}

// appendBoundedJSON appends field, the access log's `,"key":`, and v cut
// to limit bytes, followed by `,"key_len":n` when it was cut.
func appendBoundedJSON(b []byte, field, v string, limit int) []byte {
	b = append(b, field...)
	keep, cut := truncateAt(v, limit)
	if !cut {
		return appendJSONString(b, v)
	}
	b = appendJSONString(b, v[:keep])
	b = append(b[:len(b)-1], TruncatedMark+`",`...)
	b = append(b, field[1:len(field)-2]...) // "key
	b = append(b, lenSuffix+`":`...)
	return appendInt(b, len(v))
}

// appendBoundedJSONKey is appendBoundedJSON for a key that may need
// escaping (a header name in the headers group, without a leading comma).
func appendBoundedJSONKey(b []byte, key, v string, limit int) []byte {
	b = jsonstr.Append(b, key, jsonstr.Slog)
	b = append(b, ':')
	keep, cut := truncateAt(v, limit)
	if !cut {
		return appendJSONString(b, v)
	}
	b = appendJSONString(b, v[:keep])
	b = append(b[:len(b)-1], TruncatedMark+`",`...)
	b = jsonstr.Append(b, key+lenSuffix, jsonstr.Slog)
	b = append(b, ':')
	return appendInt(b, len(v))
}

// boundedString appends the attribute key=v, cut to limit bytes, and its
// key_len sibling when it was cut.
func boundedString(attrs []slog.Attr, key, v string, limit int) []slog.Attr {
	keep, cut := truncateAt(v, limit)
	if !cut {
		return append(attrs, slog.String(key, v))
	}
	return append(attrs, slog.String(key, v[:keep]+TruncatedMark), slog.Int(key+lenSuffix, len(v)))
}

// fieldLimit is the field bound for the request of info: the access
// log's (its logger for FromContext bounds its strings with it), else
// [DefaultMaxFieldBytes].
func fieldLimit(info *reqstate.Info) int {
	if info != nil && info.Logger != nil {
		switch h := info.Logger.Handler().(type) {
		case *jsonHandler:
			if h.limit > 0 {
				return int(h.limit)
			}
		case *boundedHandler:
			return int(h.limit)
		}
	}
	return DefaultMaxFieldBytes
}

// fieldBound bounds the string values (and error texts) of log records:
// every attribute, in groups too, and the message, as the access log
// bounds its fields. The kit's own handler applies it itself (see
// jsonHandler.limit); boundedHandler applies it over any other.
type fieldBound int

// record returns r with its oversized values cut, or r itself and false
// when nothing is to cut.
func (fb fieldBound) record(r slog.Record) (slog.Record, bool) {
	limit := int(fb)
	over := len(r.Message) > limit
	if !over {
		r.Attrs(func(a slog.Attr) bool {
			over = fb.oversized(a)
			return !over
		})
	}
	if !over {
		return r, false
	}
	nr := slog.NewRecord(r.Time, r.Level, truncate(r.Message, limit), r.PC)
	attrs := make([]slog.Attr, 0, r.NumAttrs()+2)
	if len(r.Message) > limit {
		attrs = append(attrs, slog.Int(slog.MessageKey+lenSuffix, len(r.Message)))
	}
	r.Attrs(func(a slog.Attr) bool {
		attrs = fb.bound(attrs, a)
		return true
	})
	nr.AddAttrs(attrs...)
	return nr, true
}

// attrs returns attrs with their oversized values cut (attrs itself when
// nothing is to cut).
func (fb fieldBound) attrs(attrs []slog.Attr) []slog.Attr {
	if !slices.ContainsFunc(attrs, fb.oversized) {
		return attrs
	}
	out := make([]slog.Attr, 0, len(attrs)+1)
	for _, a := range attrs {
		out = fb.bound(out, a)
	}
	return out
}

// oversized reports whether a holds a value that bound cuts.
func (fb fieldBound) oversized(a slog.Attr) bool {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return len(v.String()) > int(fb)
	case slog.KindGroup:
		return slices.ContainsFunc(v.Group(), fb.oversized)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return len(err.Error()) > int(fb)
		}
	}
	return false
}

// bound appends a to attrs with its oversized values cut, each followed by
// its _len sibling.
func (fb fieldBound) bound(attrs []slog.Attr, a slog.Attr) []slog.Attr {
	if !fb.oversized(a) {
		return append(attrs, a)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return boundedString(attrs, a.Key, v.String(), int(fb))
	case slog.KindGroup:
		var g []slog.Attr
		for _, ga := range v.Group() {
			g = fb.bound(g, ga)
		}
		return append(attrs, slog.Attr{Key: a.Key, Value: slog.GroupValue(g...)})
	default: // an error (see oversized)
		return boundedString(attrs, a.Key, v.Any().(error).Error(), int(fb))
	}
}

// boundedHandler applies a fieldBound over a handler other than the kit's.
type boundedHandler struct {
	h     slog.Handler
	limit fieldBound
}

// boundHandler returns h with its strings bounded to limit bytes.
func boundHandler(h slog.Handler, limit int) slog.Handler {
	if j, ok := h.(*jsonHandler); ok {
		c := *j
		c.limit = fieldBound(limit)
		return &c
	}
	return &boundedHandler{h: h, limit: fieldBound(limit)}
}

func (b *boundedHandler) Enabled(ctx context.Context, l slog.Level) bool { return b.h.Enabled(ctx, l) }

func (b *boundedHandler) Handle(ctx context.Context, r slog.Record) error {
	r, _ = b.limit.record(r)
	return b.h.Handle(ctx, r)
}

func (b *boundedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &boundedHandler{h: b.h.WithAttrs(b.limit.attrs(attrs)), limit: b.limit}
}

func (b *boundedHandler) WithGroup(name string) slog.Handler {
	return &boundedHandler{h: b.h.WithGroup(name), limit: b.limit}
}
