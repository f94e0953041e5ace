package logging

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"unsafe"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/internal/reqstate"
	"github.com/gingov/gingov/reqinfo"
)

// DefaultRequestIDHeader is the header a request ID is read from and echoed in.
const DefaultRequestIDHeader = "X-Request-ID"

// MaxRequestIDLen bounds an incoming request ID; a longer one is replaced.
const MaxRequestIDLen = 128

// RequestIDOption configures [NewRequestID].
type RequestIDOption interface{ applyRequestID(*requestIDConfig) }

type requestIDOption func(*requestIDConfig)

func (f requestIDOption) applyRequestID(c *requestIDConfig) { f(c) }

type requestIDConfig struct {
	header   string
	generate func() string
	// custom is set by WithRequestIDGenerator: the generator's IDs are
	// validated (GenerateRequestID's always are valid).
	custom bool
}

// WithRequestIDHeader sets the header a request ID is read from and echoed
// in (default [DefaultRequestIDHeader]). It must be a valid header name.
func WithRequestIDHeader(name string) RequestIDOption {
	return requestIDOption(func(c *requestIDConfig) { c.header = name })
}

// WithRequestIDGenerator replaces how new IDs are made (default
// [GenerateRequestID]); fn must not be nil. An ID the generator returns
// that is not valid is replaced by one of GenerateRequestID.
func WithRequestIDGenerator(fn func() string) RequestIDOption {
	return requestIDOption(func(c *requestIDConfig) { c.generate, c.custom = fn, true })
}

// newRequestIDConfig applies opts in order over the defaults and validates
// the result.
func newRequestIDConfig(opts []RequestIDOption) (requestIDConfig, error) {
	cfg := requestIDConfig{header: DefaultRequestIDHeader, generate: GenerateRequestID}
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("logging: option %d is nil", i+1)
		}
		o.applyRequestID(&cfg)
	}
	if !reqinfo.ValidHeaderName(cfg.header) {
		return cfg, fmt.Errorf("logging: WithRequestIDHeader: invalid header name %q", cfg.header)
	}
	if cfg.generate == nil {
		return cfg, errors.New("logging: WithRequestIDGenerator: nil generator")
	}
	cfg.header = http.CanonicalHeaderKey(cfg.header) // the header map is written directly
	return cfg, nil
}

// RequestID gives every request an ID. Create it with [NewRequestID]; it
// is safe for concurrent use.
type RequestID struct {
	cfg requestIDConfig
}

// NewRequestID returns the request-ID middleware: a valid incoming ID (1 to [MaxRequestIDLen] bytes of letters, digits and "-_.:")
// is kept, anything else is replaced by a new one. The ID is echoed in the
// response header, written into every error envelope and access-log line,
// and available through [RequestIDFromContext] and the logger of
// [FromContext]. It fails when an option is nil or invalid.
func NewRequestID(opts ...RequestIDOption) (*RequestID, error) {
	cfg, err := newRequestIDConfig(opts)
	if err != nil {
		return nil, err
	}
	return &RequestID{cfg: cfg}, nil
}

// Middleware returns the request-ID middleware. Put it early (after
// [Recovery]), so that every later line and envelope carries the ID.
func (r *RequestID) Middleware() gin.HandlerFunc {
	header, generate, custom := r.cfg.header, r.cfg.generate, r.cfg.custom
	return func(c *gin.Context) {
		info := reqstate.Ensure(c)
		var id string
		if v := c.Request.Header[header]; len(v) > 0 { // header is canonical: Header.Get without its canonicalisation
			id = v[0]
		}
		if !ValidRequestID(id) {
			if !custom {
				id = generateInto(info) // valid by construction
			} else if id = generate(); !ValidRequestID(id) {
				id = GenerateRequestID()
			}
		}
		info.RequestID, info.IDHeader[0], info.IDHeaderName = id, id, header
		c.Writer.Header()[header] = info.IDHeader[:]
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

// InjectRequestID forwards the request ID of ctx (see
// [RequestIDFromContext]) in h, the header map of an outgoing request the
// caller owns, under the header name the [RequestID] middleware read it
// from ([DefaultRequestIDHeader] unless [WithRequestIDHeader] said
// otherwise). It does nothing when ctx carries no request ID or h already
// has that header, so an ID set by the caller wins. tracing.Transport and
// registry.Transport call it (through [PropagateRequestID]) for every
// request they send, so that a request ID, Envoy's x-request-id among
// them, follows the call chain.
func InjectRequestID(ctx context.Context, h http.Header) {
	i := reqstate.From(ctx)
	if i == nil || i.RequestID == "" {
		return
	}
	name := i.IDHeaderName
	if name == "" {
		name = DefaultRequestIDHeader
	}
	if _, ok := h[name]; ok {
		return
	}
	h[name] = []string{i.RequestID}
}

// PropagateRequestID returns req when its context carries no request ID or
// req already has the request-ID header, and otherwise a shallow copy of
// req with a copy of its header carrying the ID (as [InjectRequestID]
// writes it): req itself is never modified, as an http.RoundTripper
// requires.
func PropagateRequestID(req *http.Request) *http.Request {
	i := reqstate.From(req.Context())
	if i == nil || i.RequestID == "" {
		return req
	}
	name := i.IDHeaderName
	if name == "" {
		name = DefaultRequestIDHeader
	}
	if _, ok := req.Header[name]; ok {
		return req
	}
	out := new(http.Request)
	*out = *req
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, 1)
	}
	out.Header[name] = []string{i.RequestID}
	return out
}

// ValidRequestID reports whether id may be used as a request ID as it is:
// 1 to [MaxRequestIDLen] bytes of ASCII letters, digits and "-_.:". A UUID
// (Envoy's x-request-id) is one.
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

// GenerateRequestID returns 32 random hex digits (128 bits from the
// runtime's ChaCha8 generator: unpredictable, but not for secrets).
func GenerateRequestID() string {
	var b [reqstate.GeneratedIDLen]byte
	fillRequestID(&b)
	return string(b[:])
}

// generateInto is GenerateRequestID with the ID's bytes in the request
// state's allocation (when its room is still free): no allocation of its own.
func generateInto(info *reqstate.Info) string {
	b := info.IDBuffer()
	if b == nil {
		return GenerateRequestID()
	}
	fillRequestID(b)
	// b is never written again (IDBuffer hands it out once).
	return unsafe.String(&b[0], len(b))
}

// fillRequestID writes 32 random hex digits into b.
func fillRequestID(b *[reqstate.GeneratedIDLen]byte) {
	const hex = "0123456789abcdef"
	for half := 0; half < 2; half++ {
		v := rand.Uint64()
		for i := 0; i < 16; i++ {
			b[half*16+i] = hex[v&0xF]
			v >>= 4
		}
	}
}
