package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/gingov/gingov/internal/shard"
)

// coalescer merges concurrent sync-mode decisions for one key into one
// round trip (group commit): while a call for a key is in flight, further
// requests for it queue; when the call returns, the first of them runs one
// call for the whole queue, taking up to len(queue) tokens from the bucket.
// The first taken requests, in arrival order, are allowed and the rest
// denied: exactly what as many sequential calls would decide, at a fraction
// of the Redis work. A request that finds no call in flight goes at once,
// so an idle key pays no added latency.
type coalescer struct {
	inFlight *shard.Map[*queue] // keys with a call in flight
}

type queue struct{ waiters []*waiter }

// waiter is one queued request. done is signalled once: either with d
// set, or with lead set and batch to run.
type waiter struct {
	done  chan struct{}
	d     Decision
	lead  bool
	batch []*waiter
}

var (
	waiterPool = sync.Pool{New: func() any { return &waiter{done: make(chan struct{}, 1)} }}
	queuePool  = sync.Pool{New: func() any { return new(queue) }}
)

func newCoalescer() *coalescer { return &coalescer{inFlight: shard.New[*queue]()} }

// allowCoalesced decides one token for rkey. A request that finds no call
// in flight makes its own (bounded by its context); a queued one waits for
// its batch, which the limiter's deadline bounds.
func (r *Redis) allowCoalesced(ctx context.Context, rkey, key string) (Decision, error) {
	s := r.coalesce.inFlight.Shard(rkey)
	s.Lock()
	q := s.M[rkey]
	if q == nil {
		s.M[rkey] = queuePool.Get().(*queue)
		s.Unlock()
		d, err := r.allowOne(ctx, rkey, key, 1)
		r.handOff(s, rkey)
		return d, err
	}
	w := waiterPool.Get().(*waiter)
	q.waiters = append(q.waiters, w)
	s.Unlock()
	<-w.done
	if w.lead {
		r.runBatch(ctx, rkey, key, w.batch)
		r.handOff(s, rkey)
	}
	d := w.d
	w.lead, w.batch, w.d = false, nil, Decision{}
	waiterPool.Put(w)
	return d, nil
}

// handOff passes the key to the next queued batch, or marks it idle.
func (r *Redis) handOff(s *shard.Shard[*queue], rkey string) {
	s.Lock()
	q := s.M[rkey]
	if len(q.waiters) == 0 {
		delete(s.M, rkey)
		s.Unlock()
		queuePool.Put(q)
		return
	}
	batch := q.waiters
	q.waiters = make([]*waiter, 0, len(batch))
	s.Unlock()
	lead := batch[0]
	lead.lead, lead.batch = true, batch
	lead.done <- struct{}{}
}

// runBatch decides a queue of single-token requests in one round trip and
// wakes every waiter but the first (the caller, whose context the health
// hook gets). The round trip serves every waiter, so the limiter's deadline
// alone bounds it.
func (r *Redis) runBatch(ctx context.Context, rkey, key string, batch []*waiter) {
	defer func() {
		for _, w := range batch[1:] {
			w.done <- struct{}{}
		}
	}()
	if len(batch) == 1 {
		batch[0].d, _ = r.allowOne(context.WithoutCancel(ctx), rkey, key, 1) // never fails without a cancel
		return
	}
	if !r.redisUp(ctx, rkey) {
		for _, w := range batch {
			w.d = r.fail(key, 1)
		}
		return
	}
	taken, us, err := r.takeUpTo(rkey, len(batch), 1)
	if err != nil {
		r.markDown(ctx, err)
		for _, w := range batch {
			w.d = r.fail(key, 1)
		}
		return
	}
	r.markUp(ctx)
	if taken < len(batch) {
		r.noteDenied(key)
	}
	interval := r.rate.intervalNanos() / 1e3 // µs
	burst := r.rate.burst()
	left := max(0, int(math.Floor((float64(burst)*interval-us)/interval+1e-9)))
	reset := time.Duration(us * 1e3)
	var retry time.Duration
	if taken < len(batch) {
		// The bucket is empty after the taken tokens: one more fits once
		// its fill (us) has drained to capacity minus one interval.
		retry = time.Duration(math.Ceil((us + interval - float64(burst)*interval) * 1e3))
		retry = max(retry, time.Microsecond)
	}
	if taken == 0 { // us is the time until one token is there
		retry = time.Duration(math.Ceil(us * 1e3))
		reset = retry + time.Duration(float64(burst-1)*interval*1e3)
	}
	for i, w := range batch {
		w.d = Decision{Allowed: i < taken, Limit: burst, ResetAfter: reset, Source: SourceRedis}
		if i < taken {
			w.d.Remaining = left + taken - 1 - i
		} else {
			w.d.RetryAfter = retry
		}
	}
}
