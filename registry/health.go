package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gingov/gingov/logging"
)

// Defaults of [Health].
const (
	// DefaultLivenessPath answers 200 while the process serves HTTP.
	DefaultLivenessPath = "/healthz"
	// DefaultReadinessPath answers 200 when the instance should get
	// traffic, 503 while draining or while a check fails.
	DefaultReadinessPath = "/readyz"
	// DefaultCheckTimeout bounds the checks of one readiness request.
	DefaultCheckTimeout = 2 * time.Second
)

// Check is a readiness check: a dependency the instance needs (Redis ping,
// database ping). Fn gets a context bounded by the check timeout.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// HealthOption configures [NewHealth].
type HealthOption interface{ applyHealth(*healthConfig) }

type healthOption func(*healthConfig)

func (f healthOption) applyHealth(c *healthConfig) { f(c) }

type healthConfig struct {
	checks    []Check
	timeout   time.Duration
	livePath  string
	readyPath string
	logger    *slog.Logger
}

// newHealthConfig applies opts over the defaults and checks the result.
func newHealthConfig(opts []HealthOption) (healthConfig, error) {
	c := healthConfig{timeout: DefaultCheckTimeout, livePath: DefaultLivenessPath, readyPath: DefaultReadinessPath}
	for i, o := range opts {
		if o == nil {
			return c, fmt.Errorf("registry: option %d is nil", i+1)
		}
		o.applyHealth(&c)
	}
	for i, ch := range c.checks {
		switch {
		case ch.Name == "":
			return c, errors.New("registry: WithCheck: empty name")
		case ch.Fn == nil:
			return c, errors.New("registry: WithCheck(" + strconv.Quote(ch.Name) + "): nil function")
		case slices.ContainsFunc(c.checks[:i], func(o Check) bool { return o.Name == ch.Name }):
			return c, errors.New("registry: WithCheck: two checks named " + strconv.Quote(ch.Name))
		}
	}
	if c.timeout <= 0 {
		return c, errors.New("registry: WithCheckTimeout: timeout must be > 0, got " + c.timeout.String())
	}
	if len(c.livePath) == 0 || c.livePath[0] != '/' || len(c.readyPath) == 0 || c.readyPath[0] != '/' || c.livePath == c.readyPath {
		return c, errors.New("registry: WithPaths: paths must start with / and differ, got " +
			strconv.Quote(c.livePath) + " and " + strconv.Quote(c.readyPath))
	}
	c.logger = logging.OrDefault(c.logger)
	return c, nil
}

// WithCheck adds a readiness check. Names must be unique and non-empty,
// fn non-nil. Default: no checks.
func WithCheck(name string, fn func(ctx context.Context) error) HealthOption {
	return healthOption(func(c *healthConfig) { c.checks = append(c.checks, Check{Name: name, Fn: fn}) })
}

// WithCheckTimeout bounds all checks of one readiness request together
// (default [DefaultCheckTimeout]; must be > 0); a check still running at
// the deadline counts as failing.
func WithCheckTimeout(d time.Duration) HealthOption {
	return healthOption(func(c *healthConfig) { c.timeout = d })
}

// WithPaths sets the liveness and readiness paths (defaults
// [DefaultLivenessPath], [DefaultReadinessPath]). Both must start with "/"
// and differ.
func WithPaths(liveness, readiness string) HealthOption {
	return healthOption(func(c *healthConfig) { c.livePath, c.readyPath = liveness, readiness })
}

// Health serves liveness and readiness probes. A [Server] owns one (see
// [WithHealth]) and turns readiness to 503 the moment draining starts; it
// also reports there the registration state of each backend.
//
// Readiness answers, with status 200 or 503:
//
//	{"status":"ready","registration":{"nacos":"registered"},"checks":{"redis":"ok"}}
//
// status is "ready", "draining" or "failing"; a check is "ok" or "failing".
// A registration that is not done yet does not make the instance unready:
// it serves traffic that reaches it directly meanwhile. Error texts of
// failing checks are logged, never sent.
//
// Health is safe for concurrent use.
type Health struct {
	checks    []Check
	timeout   time.Duration
	livePath  string
	readyPath string
	logger    *slog.Logger

	draining atomic.Bool
	mu       sync.Mutex
	regs     []regState // in order of SetRegistration's first call
}

type regState struct {
	backend string
	state   RegistrationState
}

// NewHealth returns a Health with the given checks and options.
func NewHealth(opts ...HealthOption) (*Health, error) {
	c, err := newHealthConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Health{checks: c.checks, timeout: c.timeout, livePath: c.livePath, readyPath: c.readyPath, logger: c.logger}, nil
}

// SetDraining marks the instance as draining: readiness answers 503 from
// now on. It cannot be undone.
func (h *Health) SetDraining() { h.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (h *Health) Draining() bool { return h.draining.Load() }

// RegistrationState is the state of one backend's registration, as
// readiness reports it.
type RegistrationState string

// Registration states reported by readiness.
const (
	RegistrationPending      RegistrationState = "pending"      // not registered yet, retrying
	RegistrationRegistered   RegistrationState = "registered"   // the registry accepted the instance
	RegistrationDeregistered RegistrationState = "deregistered" // removed at shutdown
	RegistrationFailed       RegistrationState = "failed"       // deregistration failed at shutdown
)

// SetRegistration records the registration state of one backend.
func (h *Health) SetRegistration(backend string, state RegistrationState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.regs {
		if h.regs[i].backend == backend {
			h.regs[i].state = state
			return
		}
	}
	h.regs = append(h.regs, regState{backend, state})
}

// Registration returns the recorded state of a backend ("" if none).
func (h *Health) Registration(backend string) RegistrationState {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.regs {
		if r.backend == backend {
			return r.state
		}
	}
	return ""
}

// LivenessPath returns the liveness path.
func (h *Health) LivenessPath() string { return h.livePath }

// ReadinessPath returns the readiness path.
func (h *Health) ReadinessPath() string { return h.readyPath }

// Liveness answers 200 {"status":"ok"}: the process is serving HTTP.
func (h *Health) Liveness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`+"\n"))
	})
}

// Readiness answers 200 when the instance should get traffic, else 503;
// see [Health] for the body.
func (h *Health) Readiness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := h.ready(r.Context())
		writeJSON(w, status, body)
	})
}

// Mount registers both handlers on mux (an *http.ServeMux, or anything
// with the same Handle method).
func (h *Health) Mount(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle(h.livePath, h.Liveness())
	mux.Handle(h.readyPath, h.Readiness())
}

// MountGin registers both handlers on a Gin engine or group, for GET and HEAD.
func (h *Health) MountGin(r gin.IRoutes) {
	live, ready := gin.WrapH(h.Liveness()), gin.WrapH(h.Readiness())
	r.GET(h.livePath, live)
	r.HEAD(h.livePath, live)
	r.GET(h.readyPath, ready)
	r.HEAD(h.readyPath, ready)
}

// Wrap returns next with both probe paths answered in front of it, for
// servers whose router should not know about probes. [Server] does this
// unless told otherwise.
func (h *Health) Wrap(next http.Handler) http.Handler {
	live, ready := h.Liveness(), h.Readiness()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case h.livePath:
			live.ServeHTTP(w, r)
		case h.readyPath:
			ready.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// readyBody is the readiness answer.
type readyBody struct {
	Status       string            `json:"status"`
	Registration map[string]string `json:"registration,omitempty"`
	Checks       map[string]string `json:"checks,omitempty"`
}

// ready runs the checks and renders the readiness body.
func (h *Health) ready(ctx context.Context) (int, []byte) {
	body := readyBody{Status: "ready"}
	status := http.StatusOK
	if len(h.checks) > 0 {
		body.Checks = make(map[string]string, len(h.checks))
	}
	if h.draining.Load() {
		status, body.Status = http.StatusServiceUnavailable, "draining"
		for _, c := range h.checks {
			body.Checks[c.Name] = "skipped"
		}
	} else if len(h.checks) > 0 {
		for _, c := range h.checks {
			body.Checks[c.Name] = "failing" // until it answers ok in time
		}
		ctx, cancel := context.WithTimeout(ctx, h.timeout)
		defer cancel()
		// Buffered: a check that answers after the deadline does not block.
		results := make(chan int, len(h.checks))
		for i, c := range h.checks {
			go func() {
				if err := runCheck(ctx, c.Fn); err != nil {
					h.logger.LogAttrs(ctx, slog.LevelWarn, "readiness check failing",
						slog.String("check", c.Name), slog.String("error", err.Error()))
					results <- -1
					return
				}
				results <- i
			}()
		}
	collect:
		for range h.checks {
			select {
			case i := <-results:
				if i >= 0 {
					body.Checks[h.checks[i].Name] = "ok"
				}
			case <-ctx.Done():
				h.logger.LogAttrs(ctx, slog.LevelWarn, "readiness checks timed out", slog.Duration("timeout", h.timeout))
				break collect
			}
		}
		for _, v := range body.Checks {
			if v != "ok" {
				status, body.Status = http.StatusServiceUnavailable, "failing"
			}
		}
	}
	h.mu.Lock()
	if len(h.regs) > 0 {
		body.Registration = make(map[string]string, len(h.regs))
		for _, r := range h.regs {
			body.Registration[r.backend] = string(r.state)
		}
	}
	h.mu.Unlock()
	b, err := json.Marshal(body)
	if err != nil { // cannot happen: strings only
		return http.StatusInternalServerError, []byte(`{"status":"failing"}` + "\n")
	}
	return status, append(b, '\n')
}

// runCheck runs fn, turning a panic into an error.
func runCheck(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry: check panicked: %v", p)
		}
	}()
	return fn(ctx)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
