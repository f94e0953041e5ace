// Package errcode declares tiered business error codes and renders every
// error of a gingov service through one JSON envelope.
//
// A code has three tiers: service, module and error. The decimal code is
// service*1_000_000 + module*1_000 + error, so 5001003 is service 5, module
// 001, error 003. Services 1–999 belong to applications; service 0 is reserved
// for the codes the kit itself answers with (see [Kit]). Each code carries the
// HTTP status it is answered with, an UPPER_SNAKE reason, a public message and
// an optional solution hint.
//
// Codes are declared once, usually as package variables:
//
//	var ErrOrderNotFound = errcode.MustNew(5001003, http.StatusNotFound,
//		"ORDER_NOT_FOUND", "order not found", errcode.WithSolution("check the order id"))
//
// A duplicate code or reason is an error at declaration, never a silent
// overwrite. Handlers return or c.Error() such codes (optionally with a cause
// that is logged but never sent, see [Code.Wrap]); [Write] renders any error.
package errcode

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
)

// Tier limits of the code scheme.
const (
	// MaxService is the largest service number. Service 0 is the kit's own.
	MaxService = 999
	// MaxModule is the largest module number within a service.
	MaxModule = 999
	// MaxError is the largest error number within a module; error numbers start at 1.
	MaxError = 999

	serviceFactor = 1_000_000
	moduleFactor  = 1_000
)

// MaxReasonLen bounds the length of a reason.
const MaxReasonLen = 64

var reasonRE = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// Compose builds a code from its tiers. It fails when a tier is out of range.
func Compose(service, module, errNum int) (int, error) {
	if service < 0 || service > MaxService {
		return 0, fmt.Errorf("errcode: service %d out of range 0..%d", service, MaxService)
	}
	if module < 0 || module > MaxModule {
		return 0, fmt.Errorf("errcode: module %d out of range 0..%d", module, MaxModule)
	}
	if errNum < 1 || errNum > MaxError {
		return 0, fmt.Errorf("errcode: error number %d out of range 1..%d", errNum, MaxError)
	}
	return service*serviceFactor + module*moduleFactor + errNum, nil
}

// Split returns the tiers of code. It does not validate code.
func Split(code int) (service, module, errNum int) {
	return code / serviceFactor, code / moduleFactor % 1000, code % moduleFactor
}

// Code is a declared error code. It is immutable and safe for concurrent use,
// and it is itself an error, so a handler can return it as it is.
type Code struct {
	code     int
	status   int
	reason   string
	message  string
	solution string
}

// Option configures [New], [MustNew] and [Registry.New].
type Option interface{ applyCode(*Code) }

type codeOption func(*Code)

func (f codeOption) applyCode(c *Code) { f(c) }

// WithSolution attaches a hint that tells the client what to do about the
// error. It is sent in the envelope's "solution" field. Default none ("":
// the field is left out).
func WithSolution(s string) Option { return codeOption(func(c *Code) { c.solution = s }) }

// valid reports whether c was declared (a zero or nil Code was not).
func (c *Code) valid() bool {
	return c != nil && c.status >= 400 && c.status <= 599 && c.reason != ""
}

// Code returns the numeric code.
func (c *Code) Code() int { return c.code }

// Status returns the HTTP status the code is answered with.
func (c *Code) Status() int { return c.status }

// Reason returns the UPPER_SNAKE reason.
func (c *Code) Reason() string { return c.reason }

// Message returns the public message.
func (c *Code) Message() string { return c.message }

// Solution returns the optional hint, or "".
func (c *Code) Solution() string { return c.solution }

// Error implements error.
func (c *Code) Error() string {
	return "errcode " + strconv.Itoa(c.code) + " " + c.reason + ": " + c.message
}

// Wrap returns an occurrence of c caused by cause. The cause is logged but
// never sent to the client; errors.Is and errors.As see through to it.
func (c *Code) Wrap(cause error) *Error { return &Error{code: c, cause: cause} }

// WithMessage returns an occurrence of c with a different public message.
// The message is sent to the client: never put internal error text in it.
func (c *Code) WithMessage(msg string) *Error { return &Error{code: c, message: msg} }

// WithMetadata returns an occurrence of c with public metadata, given as
// key/value pairs (a trailing odd key gets an empty value).
func (c *Code) WithMetadata(kv ...string) *Error {
	return (&Error{code: c}).WithMetadata(kv...)
}

// Registry holds declared codes and rejects duplicates. Every registry
// already holds the kit's codes, so their codes and reasons stay reserved.
// A Registry is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	byCode   map[int]*Code
	byReason map[string]*Code
}

// NewRegistry returns a registry that holds only the kit's codes.
func NewRegistry() *Registry {
	r := &Registry{byCode: map[int]*Code{}, byReason: map[string]*Code{}}
	for _, c := range kitCodes {
		if r.byCode[c.code] != nil || r.byReason[c.reason] != nil {
			panic("errcode: kit code declared twice: " + c.reason)
		}
		r.byCode[c.code] = c
		r.byReason[c.reason] = c
	}
	return r
}

var defaultRegistry = NewRegistry()

// New declares a code in the default registry. See [Registry.New].
func New(code, status int, reason, message string, opts ...Option) (*Code, error) {
	return defaultRegistry.New(code, status, reason, message, opts...)
}

// MustNew is like New but panics on an invalid or duplicate declaration;
// it is meant for package-level variables, where it fails at program start.
func MustNew(code, status int, reason, message string, opts ...Option) *Code {
	c, err := New(code, status, reason, message, opts...)
	if err != nil {
		panic(err)
	}
	return c
}

// Lookup finds a declared code of the default registry.
func Lookup(code int) (*Code, bool) { return defaultRegistry.Lookup(code) }

// Codes lists every code of the default registry, sorted by code.
func Codes() []*Code { return defaultRegistry.Codes() }

// New validates and declares a code. The code must follow the tier scheme
// with a service of 1..MaxService, the status must be 400..599, the reason
// UPPER_SNAKE of at most MaxReasonLen bytes and the message non-empty.
// A code or reason declared before, or a nil option, is an error.
func (r *Registry) New(code, status int, reason, message string, opts ...Option) (*Code, error) {
	c, err := newCode(code, status, reason, message, opts)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.byCode[code]; ok {
		return nil, fmt.Errorf("errcode: code %d (%s) already declared as %s", code, reason, prev.reason)
	}
	if prev, ok := r.byReason[reason]; ok {
		return nil, fmt.Errorf("errcode: reason %s (%d) already declared for code %d", reason, code, prev.code)
	}
	r.byCode[code] = c
	r.byReason[reason] = c
	return c, nil
}

// Lookup finds a declared code.
func (r *Registry) Lookup(code int) (*Code, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.byCode[code]
	return c, ok
}

// Codes lists every declared code, sorted by code.
func (r *Registry) Codes() []*Code {
	r.mu.RLock()
	out := make([]*Code, 0, len(r.byCode))
	for _, c := range r.byCode {
		out = append(out, c)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].code < out[j].code })
	return out
}

// newCode applies opts in order and validates the result.
func newCode(code, status int, reason, message string, opts []Option) (*Code, error) {
	c := &Code{code: code, status: status, reason: reason, message: message}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("errcode: option %d is nil", i+1)
		}
		o.applyCode(c)
	}
	if err := validate(c, false); err != nil {
		return nil, err
	}
	return c, nil
}

func validate(c *Code, kit bool) error {
	service, module, errNum := Split(c.code)
	if c.code <= 0 || service > MaxService {
		return fmt.Errorf("errcode: code %d is outside the scheme (1..%d)", c.code, MaxService*serviceFactor+MaxModule*moduleFactor+MaxError)
	}
	if service == 0 && !kit {
		return fmt.Errorf("errcode: code %d has service 0, which is reserved for gingov's own codes; use services 1..%d", c.code, MaxService)
	}
	if _, err := Compose(service, module, errNum); err != nil {
		return fmt.Errorf("errcode: code %d: %w", c.code, err)
	}
	if c.status < 400 || c.status > 599 {
		return fmt.Errorf("errcode: code %d: HTTP status %d is not an error status (400..599)", c.code, c.status)
	}
	if len(c.reason) > MaxReasonLen || !reasonRE.MatchString(c.reason) {
		return fmt.Errorf("errcode: code %d: reason %q must be UPPER_SNAKE_CASE of at most %d bytes", c.code, c.reason, MaxReasonLen)
	}
	if c.message == "" {
		return fmt.Errorf("errcode: code %d (%s): message is empty", c.code, c.reason)
	}
	return nil
}
