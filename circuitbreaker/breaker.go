// Package circuitbreaker stops calling what is failing: a server middleware
// with one breaker per route template, and an http.RoundTripper with one
// breaker per upstream host. Two policies are offered: the classic
// closed/open/half-open breaker (sony/gobreaker underneath) and Google's
// SRE adaptive throttling. Open breakers answer with the errcode envelope
// 503 CIRCUIT_OPEN and Retry-After, or with a fallback handler.
//
// Options follow the kit's convention: [New] takes [Option]s,
// [NewTransport] [TransportOption]s, and the settings of both are
// [CommonOption]s. State-change hooks get one [Event] per change; they run
// after the breaker's lock is released, on the goroutine whose request
// caused the change and with its context, so a hook may call back into the
// breaker.
package circuitbreaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// State of a breaker.
type State uint8

// States.
const (
	StateClosed   State = iota // requests pass, outcomes are counted
	StateHalfOpen              // a bounded number of probes pass
	StateOpen                  // requests are rejected (for SRE: some are, by probability)
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return "unknown"
}

// Defaults of the classic policy.
const (
	// DefaultWindow is how far back outcomes count, in DefaultBuckets slices.
	DefaultWindow = 10 * time.Second
	// DefaultBuckets slices the window so that old outcomes leave it gradually.
	DefaultBuckets = 10
	// DefaultMinRequests is how many requests the window must hold before
	// the failure ratio can open the breaker.
	DefaultMinRequests = 20
	// DefaultFailureRatio opens the breaker at this share of failures.
	DefaultFailureRatio = 0.5
	// DefaultOpenTimeout is how long the breaker stays open before probing.
	DefaultOpenTimeout = 5 * time.Second
	// DefaultHalfOpenProbes is how many requests pass while half-open; all
	// must succeed to close the breaker, one failure opens it again.
	DefaultHalfOpenProbes = 5
)

// ErrOpen is returned (wrapped in an *OpenError) when a breaker rejects.
var ErrOpen = errors.New("circuitbreaker: open")

// OpenError says a breaker rejected a request and when to retry.
type OpenError struct {
	Name       string
	State      State
	RetryAfter time.Duration
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("circuitbreaker: %s is %s, retry after %s", e.Name, e.State, e.RetryAfter)
}

// Unwrap returns ErrOpen.
func (e *OpenError) Unwrap() error { return ErrOpen }

// Event is one state transition of a breaker, reported to the
// WithOnStateChange hook.
type Event struct {
	// Name is the breaker's: "GET /orders/:id" (server), the host
	// (transport), or OverflowName.
	Name     string
	From, To State
	At       time.Time
}

// Policy builds the breaker for one name (route or host): Classic or SRE.
type Policy interface {
	newBreaker(name string, onChange func(context.Context, Event)) breaker
}

// outcome of a request, reported to done.
type outcome uint8

const (
	succeeded outcome = iota
	failed
	excluded // neither: e.g. the caller gave up
)

// breaker is what a Policy builds. allow admits a request (its ticket is
// then handed to done with the outcome) or returns an *OpenError. The
// context is the request's, for the state-change hook.
type breaker interface {
	allow(ctx context.Context) (ticket, error)
	done(ctx context.Context, t ticket, o outcome)
	state() State
}

// ticket carries what done needs of allow: gobreaker's completion for the
// classic policy, nothing for SRE.
type ticket struct{ complete func(error) }

// Classic is the closed/open/half-open policy. Zero fields take the
// Default constants; see each.
type Classic struct {
	Window       time.Duration // DefaultWindow
	Buckets      int           // DefaultBuckets
	MinRequests  uint32        // DefaultMinRequests
	FailureRatio float64       // DefaultFailureRatio, in (0, 1]
	OpenTimeout  time.Duration // DefaultOpenTimeout
	Probes       uint32        // DefaultHalfOpenProbes
}

func (p Classic) withDefaults() Classic {
	if p.Window == 0 {
		p.Window = DefaultWindow
	}
	if p.Buckets == 0 {
		p.Buckets = DefaultBuckets
	}
	if p.MinRequests == 0 {
		p.MinRequests = DefaultMinRequests
	}
	if p.FailureRatio == 0 {
		p.FailureRatio = DefaultFailureRatio
	}
	if p.OpenTimeout == 0 {
		p.OpenTimeout = DefaultOpenTimeout
	}
	if p.Probes == 0 {
		p.Probes = DefaultHalfOpenProbes
	}
	return p
}

// Validate reports what is wrong with the policy.
func (p Classic) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Window < 0 || p.OpenTimeout < 0:
		return errors.New("circuitbreaker: window and open timeout must not be negative")
	case p.Buckets < 1 || time.Duration(p.Buckets) > p.Window:
		return fmt.Errorf("circuitbreaker: buckets must be between 1 and the window in ns, got %d", p.Buckets)
	case p.FailureRatio <= 0 || p.FailureRatio > 1:
		return fmt.Errorf("circuitbreaker: failure ratio must be in (0, 1], got %v", p.FailureRatio)
	}
	return nil
}

func (p Classic) newBreaker(name string, onChange func(context.Context, Event)) breaker {
	p = p.withDefaults()
	b := &classic{name: name, onChange: onChange, openTimeout: p.OpenTimeout}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  p.Probes,
		Interval:     p.Window,
		BucketPeriod: p.Window / time.Duration(p.Buckets),
		Timeout:      p.OpenTimeout,
		IsExcluded:   func(err error) bool { return err == errExcluded }, //nolint:errorlint // sentinel
		ReadyToTrip: func(c gobreaker.Counts) bool {
			counted := c.Requests - min(c.Requests, c.TotalExclusions)
			return counted >= p.MinRequests && float64(c.TotalFailures) >= p.FailureRatio*float64(counted)
		},
		// Called under gobreaker's lock: only record; hooks run in flush.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			now := time.Now()
			if to == gobreaker.StateOpen {
				b.openedAt.Store(now.UnixNano())
			}
			b.pendingMu.Lock()
			b.pending = append(b.pending, Event{Name: name, From: fromGo(from), To: fromGo(to), At: now})
			b.pendingMu.Unlock()
			b.hasPending.Store(true)
		},
	})
	return b
}

type classic struct {
	name        string
	cb          *gobreaker.TwoStepCircuitBreaker[struct{}]
	openTimeout time.Duration
	openedAt    atomic.Int64
	onChange    func(context.Context, Event)

	hasPending atomic.Bool
	pendingMu  sync.Mutex
	pending    []Event
	deliverMu  sync.Mutex
}

var (
	errFailed   = errors.New("failed")
	errExcluded = errors.New("excluded")
)

func (b *classic) allow(ctx context.Context) (ticket, error) {
	complete, err := b.cb.Allow()
	b.flush(ctx)
	if err != nil {
		st := fromGo(b.cb.State())
		b.flush(ctx)
		retry := time.Second // half-open and full of probes: soon
		if st == StateOpen {
			retry = max(time.Millisecond, time.Until(time.Unix(0, b.openedAt.Load()).Add(b.openTimeout)))
		}
		return ticket{}, &OpenError{Name: b.name, State: st, RetryAfter: retry}
	}
	return ticket{complete: complete}, nil
}

func (b *classic) done(ctx context.Context, t ticket, o outcome) {
	switch o {
	case failed:
		t.complete(errFailed)
	case excluded:
		t.complete(errExcluded)
	default:
		t.complete(nil)
	}
	b.flush(ctx)
}

func (b *classic) state() State {
	s := fromGo(b.cb.State())
	b.flush(context.Background())
	return s
}

// flush reports recorded changes outside gobreaker's lock, in order: one
// goroutine delivers at a time, and a hook that calls back into the
// breaker (and so into flush) leaves the delivery to the outer call.
func (b *classic) flush(ctx context.Context) {
	for b.hasPending.Load() && b.deliverMu.TryLock() {
		for {
			b.pendingMu.Lock()
			changes := b.pending
			b.pending = nil
			b.hasPending.Store(false)
			b.pendingMu.Unlock()
			if len(changes) == 0 {
				break
			}
			if b.onChange != nil {
				for _, c := range changes {
					b.onChange(ctx, c)
				}
			}
		}
		b.deliverMu.Unlock()
	}
}

func fromGo(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return StateOpen
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	}
	return StateClosed
}
