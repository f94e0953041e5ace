package circuitbreaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults of the SRE policy.
const (
	// DefaultSREK is the K of the SRE formula: up to K times as many
	// requests as succeed are let through before throttling starts.
	DefaultSREK = 1.5
	// DefaultSREMinRequests is how many requests the window must hold
	// before any request is throttled.
	DefaultSREMinRequests = 100
)

// SRE is Google's client-side adaptive throttling (Site Reliability
// Engineering, "Handling Overload"), the policy Kratos/aegis and go-zero
// use. Over a rolling window it counts requests and accepts (successes)
// and rejects a new request with probability
//
//	p = max(0, (requests - K*accepts) / (requests + 1))
//
// Throttling starts once fewer than 1/K of the requests succeed; while
// everything fails nearly all are rejected, yet a few still go through and
// see recovery, so there is no open timeout and no half-open state. A breaker with p > 0 reports StateOpen. Zero fields take
// the defaults: Window DefaultWindow in DefaultBuckets, K DefaultSREK,
// MinRequests DefaultSREMinRequests.
type SRE struct {
	Window      time.Duration
	Buckets     int
	K           float64
	MinRequests int
}

func (p SRE) withDefaults() SRE {
	if p.Window == 0 {
		p.Window = DefaultWindow
	}
	if p.Buckets == 0 {
		p.Buckets = DefaultBuckets
	}
	if p.K == 0 {
		p.K = DefaultSREK
	}
	if p.MinRequests == 0 {
		p.MinRequests = DefaultSREMinRequests
	}
	return p
}

// Validate reports what is wrong with the policy.
func (p SRE) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Window < 0:
		return errors.New("circuitbreaker: window must not be negative")
	case p.Buckets < 1 || time.Duration(p.Buckets) > p.Window:
		return fmt.Errorf("circuitbreaker: buckets must be between 1 and the window in ns, got %d", p.Buckets)
	case p.K < 1:
		return fmt.Errorf("circuitbreaker: SRE K must be >= 1, got %v", p.K)
	case p.MinRequests < 0:
		return fmt.Errorf("circuitbreaker: SRE min requests must be >= 0, got %d", p.MinRequests)
	}
	return nil
}

func (p SRE) newBreaker(name string, onChange func(context.Context, Event)) breaker {
	p = p.withDefaults()
	return &sre{
		name:     name,
		p:        p,
		bucket:   p.Window / time.Duration(p.Buckets),
		counts:   make([]sreBucket, p.Buckets),
		onChange: onChange,
		start:    time.Now(),
	}
}

type sreBucket struct{ requests, accepts int64 }

type sre struct {
	name     string
	p        SRE
	bucket   time.Duration
	onChange func(context.Context, Event)

	mu      sync.Mutex
	start   time.Time
	counts  []sreBucket
	last    int64 // index of the newest bucket, in buckets since start
	open    bool  // p > 0 at the last decision
	changed []Event
}

// roll clears buckets that fell out of the window. Called with mu held.
func (s *sre) roll(now time.Time) int {
	idx := int64(now.Sub(s.start) / s.bucket)
	if gap := idx - s.last; gap > 0 {
		for i := int64(1); i <= min(gap, int64(len(s.counts))); i++ {
			s.counts[(s.last+i)%int64(len(s.counts))] = sreBucket{}
		}
		s.last = idx
	}
	return int(idx % int64(len(s.counts)))
}

func (s *sre) totals() (requests, accepts int64) {
	for _, b := range s.counts {
		requests += b.requests
		accepts += b.accepts
	}
	return
}

// rejectProbability is the SRE formula; 0 below MinRequests.
func (s *sre) rejectProbability() float64 {
	requests, accepts := s.totals()
	if requests < int64(s.p.MinRequests) {
		return 0
	}
	return math.Max(0, (float64(requests)-s.p.K*float64(accepts))/float64(requests+1))
}

func (s *sre) allow(ctx context.Context) (ticket, error) {
	now := time.Now()
	s.mu.Lock()
	i := s.roll(now)
	p := s.rejectProbability()
	s.note(p > 0, now)
	reject := p > 0 && rand.Float64() < p
	s.counts[i].requests++ // a rejected request counts too: that is the formula
	changes := s.takeChanges()
	s.mu.Unlock()
	s.deliver(ctx, changes)
	if reject {
		return ticket{}, &OpenError{Name: s.name, State: StateOpen, RetryAfter: s.bucket}
	}
	return ticket{}, nil
}

func (s *sre) done(_ context.Context, _ ticket, o outcome) {
	if o == failed {
		return
	}
	now := time.Now()
	s.mu.Lock()
	b := &s.counts[s.roll(now)]
	if o == excluded {
		b.requests = max(0, b.requests-1) // as if it had not been made
	} else {
		b.accepts++
	}
	s.mu.Unlock()
}

func (s *sre) state() State {
	s.mu.Lock()
	s.roll(time.Now())
	open := s.rejectProbability() > 0
	s.mu.Unlock()
	if open {
		return StateOpen
	}
	return StateClosed
}

// note records a change of throttling state. Called with mu held.
func (s *sre) note(open bool, now time.Time) {
	if open == s.open {
		return
	}
	from, to := StateClosed, StateOpen
	if !open {
		from, to = StateOpen, StateClosed
	}
	s.open = open
	s.changed = append(s.changed, Event{Name: s.name, From: from, To: to, At: now})
}

func (s *sre) takeChanges() []Event {
	c := s.changed
	s.changed = nil
	return c
}

func (s *sre) deliver(ctx context.Context, changes []Event) {
	if s.onChange == nil {
		return
	}
	for _, c := range changes {
		s.onChange(ctx, c)
	}
}
