package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// jsonHandler is the handler of the loggers that [New] returns: a
// slog.JSONHandler, unchanged in behaviour, whose writes go through one
// locked writer that [AccessLog] shares, so that the access log can encode
// its line itself and write it in a single call without interleaving with
// any other line of the logger.
type jsonHandler struct {
	h     *slog.JSONHandler
	out   *lockedWriter
	level slog.Leveler
	// parent and attrs are the chain of WithAttrs calls, kept to render the
	// logger's own attributes once for the access log (see prefix).
	parent *jsonHandler
	attrs  []slog.Attr
	// limit, when > 0, bounds the strings of every line (the loggers of
	// FromContext, see boundHandler).
	limit fieldBound
}

// lockedWriter serialises the writes of one logger tree: every line, from
// slog or from the access log, is one Write call under mu.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newJSONHandler(w io.Writer, level slog.Leveler) *jsonHandler {
	out := &lockedWriter{w: w}
	return &jsonHandler{
		h:     slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level}),
		out:   out,
		level: level,
	}
}

func (j *jsonHandler) Enabled(ctx context.Context, l slog.Level) bool { return j.h.Enabled(ctx, l) }

func (j *jsonHandler) Handle(ctx context.Context, r slog.Record) error {
	if j.limit > 0 {
		r, _ = j.limit.record(r)
	}
	return j.h.Handle(ctx, r)
}

func (j *jsonHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return j
	}
	if j.limit > 0 {
		attrs = j.limit.attrs(attrs)
	}
	h, ok := j.h.WithAttrs(attrs).(*slog.JSONHandler)
	if !ok {
		return boundHandlerIf(j.h.WithAttrs(attrs), j.limit)
	}
	return &jsonHandler{h: h, out: j.out, level: j.level, parent: j, attrs: attrs, limit: j.limit}
}

// WithGroup returns slog's own handler (bounded as j is): lines in a
// group take slog's path.
func (j *jsonHandler) WithGroup(name string) slog.Handler {
	return boundHandlerIf(j.h.WithGroup(name), j.limit)
}

// boundHandlerIf returns h bounded to limit, or h when limit is 0.
func boundHandlerIf(h slog.Handler, limit fieldBound) slog.Handler {
	if limit > 0 {
		return &boundedHandler{h: h, limit: limit}
	}
	return h
}

// prefix is the logger's own attributes as slog writes them, each preceded
// by a comma: rendered by a slog.JSONHandler given the same WithAttrs chain.
func (j *jsonHandler) prefix() []byte {
	var chain [][]slog.Attr
	for p := j; p != nil; p = p.parent {
		if len(p.attrs) > 0 {
			chain = append(chain, p.attrs)
		}
	}
	var buf bytes.Buffer
	var h slog.Handler = slog.NewJSONHandler(&buf, nil)
	for i := len(chain) - 1; i >= 0; i-- {
		h = h.WithAttrs(chain[i])
	}
	_ = h.Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "", 0))
	const head = `{"level":"INFO","msg":""`
	line := bytes.TrimSuffix(buf.Bytes(), []byte("}\n"))
	return bytes.Clone(line[len(head):])
}
