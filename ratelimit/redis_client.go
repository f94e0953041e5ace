package ratelimit

import "github.com/redis/go-redis/v9"

type clientBox struct{ c redis.UniversalClient }

func (r *Redis) rdb() redis.UniversalClient { return r.client.Load().c }

// Close removes the instance from the limiter's membership in Redis (one
// round trip, bounded by the deadline, skipped while Redis is down) and
// releases the connections the limiter opened (none when it uses the
// caller's client as it is). Decisions after Close take the failure policy.
func (r *Redis) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	r.bg.close()
	r.closeFleet()
	if r.factory == nil {
		return nil
	}
	return r.client.Load().c.Close()
}

// renewClient replaces the limiter's own pool after a failed probe: go-redis
// stops dialling for callers once a pool has failed PoolSize dials and then
// retries only once a second, which would hold recovery back.
func (r *Redis) renewClient() {
	if r.factory == nil || r.closed.Load() {
		return
	}
	// Calls in flight when Redis goes down all fail at once: renew once.
	now, last := r.cfg.clock().UnixNano(), r.renewed.Load()
	if now-last < int64(r.cfg.probeInterval/2) || !r.renewed.CompareAndSwap(last, now) {
		return
	}
	old := r.client.Swap(&clientBox{r.factory()})
	_ = old.c.Close()
	if r.closed.Load() { // Close ran meanwhile and closed the old one only
		_ = r.client.Load().c.Close()
	}
}

// ownClientFactory returns how to open the limiter's own pool for the
// client types whose options it can copy, or nil.
func ownClientFactory(rdb redis.UniversalClient) func() redis.UniversalClient {
	switch c := rdb.(type) {
	case *redis.Client:
		o := *c.Options()
		return func() redis.UniversalClient {
			oo := o
			oo.ContextTimeoutEnabled = true
			oo.DialerRetries = 1 // the limiter's probe is the retry
			// NewClient stores its push-notification processor in the
			// options it is given: each pool needs its own.
			oo.PushNotificationProcessor = nil
			if o.MaintNotificationsConfig != nil {
				mc := *o.MaintNotificationsConfig
				oo.MaintNotificationsConfig = &mc
			}
			return redis.NewClient(&oo)
		}
	case *redis.ClusterClient:
		o := *c.Options()
		return func() redis.UniversalClient {
			oo := o
			oo.ContextTimeoutEnabled = true
			oo.DialerRetries = 1
			if o.MaintNotificationsConfig != nil {
				mc := *o.MaintNotificationsConfig
				oo.MaintNotificationsConfig = &mc
			}
			return redis.NewClusterClient(&oo)
		}
	}
	return nil
}

// contextTimeouts reports whether a client is known to honour context deadlines.
func contextTimeouts(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}
