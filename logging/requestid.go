package logging

import (
	"context"
	"math/rand/v2"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/reqstate"
)

// DefaultRequestIDHeader is the header a request ID is read from and echoed in.
const DefaultRequestIDHeader = "X-Request-ID"

// MaxRequestIDLen bounds an incoming request ID; a longer one is replaced.
const MaxRequestIDLen = 128

// RequestIDOption configures [RequestID].
type RequestIDOption func(*requestIDConfig)

type requestIDConfig struct {
	header   string
	generate func() string
}

// WithRequestIDHeader sets the header name (default [DefaultRequestIDHeader]).
func WithRequestIDHeader(name string) RequestIDOption {
	return func(c *requestIDConfig) {
		if name != "" {
			c.header = name
		}
	}
}

// WithRequestIDGenerator replaces how new IDs are made (default: 32 random
// hex digits). An ID the generator returns that is not valid is replaced
// by a default one.
func WithRequestIDGenerator(fn func() string) RequestIDOption {
	return func(c *requestIDConfig) {
		if fn != nil {
			c.generate = fn
		}
	}
}

// RequestID gives every request an ID: a valid incoming one (1 to
// [MaxRequestIDLen] bytes of letters, digits and "-_.:") is kept, anything
// else is replaced by a new one. The ID is echoed in the response header,
// written into every error envelope and access-log line, and available
// through [RequestIDFromContext] and the logger of [FromContext].
func RequestID(opts ...RequestIDOption) gin.HandlerFunc {
	cfg := requestIDConfig{header: DefaultRequestIDHeader, generate: NewRequestID}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.header = http.CanonicalHeaderKey(cfg.header) // the header map is written directly
	return func(c *gin.Context) {
		id := c.Request.Header.Get(cfg.header)
		if !ValidRequestID(id) {
			id = cfg.generate()
			if !ValidRequestID(id) {
				id = NewRequestID()
			}
		}
		info := reqstate.Ensure(c)
		info.RequestID, info.IDHeader[0] = id, id
		c.Writer.Header()[cfg.header] = info.IDHeader[:]
		c.Next()
	}
}

// RequestIDFromContext returns the request's ID, or "" when RequestID did not run.
func RequestIDFromContext(ctx context.Context) string {
	if i := reqstate.From(ctx); i != nil {
		return i.RequestID
	}
	return ""
}

// ValidRequestID reports whether id may be used as a request ID as it is.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// NewRequestID returns 32 random hex digits (128 bits from the runtime's
// ChaCha8 generator: unpredictable, but not for secrets).
func NewRequestID() string {
	const hex = "0123456789abcdef"
	var b [32]byte
	for half := 0; half < 2; half++ {
		v := rand.Uint64()
		for i := 0; i < 16; i++ {
			b[half*16+i] = hex[v&0xF]
			v >>= 4
		}
	}
	return string(b[:])
}
