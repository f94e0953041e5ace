package deadline

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/gingov/gingov/reqinfo"
)

// gate is the writer the handler writes through. Until the response is
// committed it lets writes through only while the deadline has not
// passed; after that it drops them (Write fails with the context's
// error) and reports the status the middleware will answer with, so the
// middlewares after this one see the request as timed out. Once the
// handler committed the response in time, everything passes: the answer
// is the handler's. Every method runs on the request's goroutine, like
// the handler, so there is nothing to lock: the context is the only state
// another goroutine (its timer) changes.
type gate struct {
	gin.ResponseWriter
	ctx     context.Context
	expired bool     // latched: the deadline passed before the response was committed
	keys    []string // the header names set before the handler ran
}

var gatePool = sync.Pool{New: func() any { return &gate{keys: make([]string, 0, 8)} }}

func (g *gate) reset(w gin.ResponseWriter, ctx context.Context) {
	g.ResponseWriter, g.ctx, g.expired = w, ctx, false
	g.keys = g.keys[:0]
	for k := range w.Header() {
		g.keys = append(g.keys, k)
	}
}

func (g *gate) release() {
	g.ResponseWriter, g.ctx = nil, nil
	if cap(g.keys) > 64 {
		g.keys = make([]string, 0, 8)
	}
	gatePool.Put(g)
}

// open reports whether a write may go through, latching the expiry.
func (g *gate) open() bool {
	if g.Written() {
		return true
	}
	if g.expired {
		return false
	}
	if g.ctx.Err() != nil {
		g.expired = true
		return false
	}
	return true
}

// dropAddedHeaders deletes the header fields the handler added, so that
// none of them (Content-Length, Set-Cookie, …) rides on the 504.
func (g *gate) dropAddedHeaders() {
	h := g.Header()
	for k := range h {
		if !slices.Contains(g.keys, k) {
			delete(h, k)
		}
	}
}

func (g *gate) err() error {
	if err := g.ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

func (g *gate) WriteHeader(code int) {
	if g.open() {
		g.ResponseWriter.WriteHeader(code)
	}
}

func (g *gate) WriteHeaderNow() {
	if g.open() {
		g.ResponseWriter.WriteHeaderNow()
	}
}

func (g *gate) Write(b []byte) (int, error) {
	if g.open() {
		return g.ResponseWriter.Write(b)
	}
	return 0, g.err()
}

func (g *gate) WriteString(s string) (int, error) {
	if g.open() {
		return g.ResponseWriter.WriteString(s)
	}
	return 0, g.err()
}

func (g *gate) Flush() {
	if g.open() {
		g.ResponseWriter.Flush()
	}
}

func (g *gate) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if g.open() {
		return g.ResponseWriter.Hijack()
	}
	return nil, nil, g.err()
}

func (g *gate) Pusher() http.Pusher {
	if g.open() {
		return g.ResponseWriter.Pusher()
	}
	return nil
}

// Status is the status the request ends with: the handler's, or, once the
// deadline passed with nothing committed, 504 (499 when the client went
// away), which the middleware will write.
func (g *gate) Status() int {
	if g.open() {
		return g.ResponseWriter.Status()
	}
	if g.ctx.Err() == context.Canceled {
		return reqinfo.StatusClientClosedRequest
	}
	return http.StatusGatewayTimeout
}

// Unwrap gives http.ResponseController the writer underneath (for
// SetWriteDeadline and the like; its Flush finds the gate's first).
func (g *gate) Unwrap() http.ResponseWriter { return g.ResponseWriter }
