package registry

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Load statistics of the P2C balancer.
const (
	// LatencyDecay is the time constant of the latency average: a sample
	// weighs less the older it is, and an instance not called for a while
	// looks faster and faster, so it gets a new chance.
	LatencyDecay = 10 * time.Second
	// FailurePenalty is the latency a failed call (transport error or 5xx)
	// counts as, when it was faster: a instance that fails fast must not
	// look fast.
	FailurePenalty = 500 * time.Millisecond
)

// nodeSet is one answer of the registry, with load statistics per node.
type nodeSet struct {
	instances []*ServiceInstance
	nodes     []*node
	wrrMu     *sync.Mutex // shared by all sets of a service
}

// node is one instance in one set; immutable but for its stats.
type node struct {
	ins    *ServiceInstance
	addr   string
	weight int64
	*stats
}

// stats of an address, kept across sets while the address stays.
type stats struct {
	inflight atomic.Int64

	mu   sync.Mutex
	ewma float64 // ns, peak-sensitive moving average of the latency
	last int64   // unix ns of the last sample

	current int64 // smooth weighted round robin, guarded by nodeSet.wrrMu
}

// latency returns the decayed latency average at now, in ns.
func (s *stats) latency(now int64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == 0 {
		return 0
	}
	return s.ewma * math.Exp(-float64(now-s.last)/float64(LatencyDecay))
}

// observe adds a latency sample. A sample above the average replaces it
// (peak sensitivity: a slowdown shows at once); below, it is averaged in
// with a weight that grows with the time since the last sample.
func (s *stats) observe(d time.Duration, failed bool, now int64) {
	if failed {
		d = max(d, FailurePenalty)
	}
	v := float64(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == 0 || v > s.ewma {
		s.ewma = v
	} else {
		w := math.Exp(-float64(now-s.last) / float64(LatencyDecay))
		s.ewma = s.ewma*w + v*(1-w)
	}
	s.last = now
}

// Balancer chooses one instance among candidates. The kit's are [P2C]
// (the default) and [WeightedRoundRobin]; [BalancerFunc] makes one from a
// function.
type Balancer interface {
	pick(ns *nodeSet, cands []*node) *node
}

// Candidate is one instance a [BalancerFunc] may choose, with the load
// statistics the [Transport] keeps for its address.
type Candidate struct {
	// Instance as the registry lists it; do not modify it.
	Instance *ServiceInstance
	// Weight is the instance's effective weight (DefaultWeight for 0).
	Weight int
	// InFlight is the number of requests to the instance still running.
	InFlight int64
	// Latency is the decayed average latency of its calls (see
	// [LatencyDecay], [FailurePenalty]); 0 before the first call.
	Latency time.Duration
}

// BalancerFunc is a [Balancer] implemented by a function: it gets the
// candidates (at least one; those with an open breaker, of another canary
// group, filtered out, or already tried by this request are not among
// them) and returns the index of the one to call; for an index out of
// range, [P2C] chooses instead. It is
// called for every attempt of every request, concurrently: it must be
// safe for concurrent use and fast.
//
//	first := registry.BalancerFunc(func(c []registry.Candidate) int { return 0 })
type BalancerFunc func(cands []Candidate) int

func (f BalancerFunc) pick(_ *nodeSet, cands []*node) *node {
	if len(cands) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	cs := make([]Candidate, len(cands))
	for i, n := range cands {
		cs[i] = Candidate{
			Instance: n.ins,
			Weight:   int(n.weight),
			InFlight: n.inflight.Load(),
			Latency:  time.Duration(n.latency(now)),
		}
	}
	i := f(cs)
	if i < 0 || i >= len(cands) {
		return p2c{}.pick(nil, cands)
	}
	return cands[i]
}

// P2C returns the power-of-two-choices balancer: of two instances drawn at
// random, the one with the lower load wins, load being the decayed latency
// average times the requests in flight plus one. Slow and busy instances
// get less traffic without a central view; new instances are tried first.
// Weights are ignored.
func P2C() Balancer { return p2c{} }

// WeightedRoundRobin returns the smooth weighted round robin balancer
// (each instance gets Weight shares, spread evenly, not in bursts).
// Latency is ignored.
func WeightedRoundRobin() Balancer { return wrr{} }

type p2c struct{}

func (p2c) pick(_ *nodeSet, cands []*node) *node {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	i := rand.N(len(cands))
	j := rand.N(len(cands) - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	now := time.Now().UnixNano()
	// +1 ns keeps in-flight counts meaningful between unmeasured nodes.
	la := (a.latency(now) + 1) * float64(a.inflight.Load()+1)
	lb := (b.latency(now) + 1) * float64(b.inflight.Load()+1)
	if lb < la {
		return b
	}
	return a
}

type wrr struct{}

func (wrr) pick(ns *nodeSet, cands []*node) *node {
	if len(cands) == 0 {
		return nil
	}
	ns.wrrMu.Lock()
	defer ns.wrrMu.Unlock()
	var best *node
	var total int64
	for _, n := range cands {
		n.current += n.weight
		total += n.weight
		if best == nil || n.current > best.current {
			best = n
		}
	}
	best.current -= total
	return best
}
