package ratelimit

import (
	"context"
	"sync/atomic"
	"time"
)

// sharedDeadline hands out one context with a deadline to many calls,
// renewing it every quarter of the deadline, so that bounding a Redis call
// costs no allocation per call. A call gets between 3/4 of the deadline and
// all of it. Each context's timer releases it when it expires.
type sharedDeadline struct {
	d     time.Duration
	clock func() time.Time
	cur   atomic.Pointer[deadlineCtx]
}

type deadlineCtx struct {
	ctx     context.Context
	cancel  context.CancelFunc
	renewAt time.Time
}

func (s *sharedDeadline) ctx() context.Context {
	c := s.cur.Load()
	now := s.clock()
	if c != nil && now.Before(c.renewAt) {
		return c.ctx
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.d)
	n := &deadlineCtx{ctx: ctx, cancel: cancel, renewAt: now.Add(s.d / 4)}
	if !s.cur.CompareAndSwap(c, n) {
		cancel()
		if c2 := s.cur.Load(); c2 != nil {
			return c2.ctx
		}
	}
	return ctx
}

// bound returns the context of a Redis call made for one request alone:
// the caller's context (its cancellation, deadline and values, which the
// client's hooks see) bounded by the limiter's deadline. A context that can
// never be cancelled (context.Background) costs nothing: the shared
// deadline context is used instead.
func (s *sharedDeadline) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Done() == nil {
		return s.ctx(), func() {}
	}
	return context.WithTimeout(ctx, s.d)
}
