package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Membership: how many instances share a limiter's buckets, learnt through
// Redis while it answers, so that FailLocal divides the rate by the fleet's
// size during an outage without a service registry.
//
// Every limiter has a random instance id. While Redis answers, a decision
// that finds the membership due for refresh (every probe interval /
// MembershipRefreshFraction) starts one background round trip running
// membershipScript on the limiter's membership key: a sorted
// set per key prefix and limiter name, member = instance id, score = Redis's
// TIME in milliseconds. The same script prunes members whose score is older
// than the TTL (ZREMRANGEBYSCORE) and answers ZCARD, the live fleet size,
// which the limiter keeps as the last count seen. At most one refresh is in
// flight per limiter; a request never waits for one.
//
// The key carries its own hash tag ({name}), so on Redis Cluster the script
// touches one slot; decisions' keys are in other slots and never share a
// script with it. Close removes the instance's member, so a graceful
// shutdown shrinks the count at once; a crashed instance drops out after
// the TTL.

// Membership timing, in probe intervals (WithProbeInterval).
const (
	// MembershipRefreshFraction: an instance refreshes its membership
	// every probe interval / MembershipRefreshFraction while it takes
	// decisions and Redis answers (100 ms with the default probe interval).
	MembershipRefreshFraction = 2
	// MembershipTTLProbes: a member not refreshed for this many probe
	// intervals is pruned (1 s with the default probe interval).
	MembershipTTLProbes = 5
)

// membershipScript refreshes ARGV[1]'s entry in the sorted set KEYS[1],
// prunes entries older than ARGV[2] ms (Redis's clock), keeps the set for
// twice that, and answers the number of live entries. Scores are ms since
// the epoch: 13 digits, exact through Lua's number formatting.
var membershipScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return redis.call('ZCARD', KEYS[1])
`)

// fleet is a limiter's membership state.
type fleet struct {
	off     bool
	key     string // the sorted set
	id      string // this instance's member
	refresh int64  // ns between refreshes
	ttl     string // ms, for the script

	count       atomic.Int64 // the last fleet size seen; 0 before the first
	nextRefresh atomic.Int64 // unix ns
}

// newFleet sets up membership for a limiter whose keys start with prefix.
func newFleet(prefix, name string, cfg redisConfig) *fleet {
	f := &fleet{off: cfg.noMembership}
	if f.off {
		return f
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	f.id = hex.EncodeToString(b[:])
	f.key = prefix + "{" + safeKey(name) + "}:instances"
	f.refresh = int64(cfg.probeInterval / MembershipRefreshFraction)
	ttl := max(time.Millisecond, cfg.probeInterval*MembershipTTLProbes)
	f.ttl = strconv.FormatInt(ttl.Milliseconds(), 10)
	return f
}

// Instances returns the number of limiter instances (processes, or Redis
// limiters with the same name and key prefix) that shared this limiter's
// buckets when Redis last answered its membership refresh: itself included,
// so at least 1 once Redis has answered, and 0 before. It keeps its last
// value while Redis is unreachable, when FailLocal divides the rate by it.
func (r *Redis) Instances() int { return int(r.fleet.count.Load()) }

// touchFleet starts a membership refresh when one is due and Redis is up.
// It costs one clock read and an atomic load per call otherwise.
func (r *Redis) touchFleet() {
	f := r.fleet
	if f.off || r.health.down.Load() != 0 {
		return
	}
	now := r.cfg.clock().UnixNano()
	next := f.nextRefresh.Load()
	if now < next || !f.nextRefresh.CompareAndSwap(next, now+f.refresh) {
		return
	}
	if !r.bg.add() {
		return
	}
	go func() {
		defer r.bg.done()
		r.refreshFleet()
	}()
}

// refreshFleet runs the membership script once, bounded by the deadline.
// A failure keeps the last count: the decisions, not the membership, say
// whether Redis is down.
func (r *Redis) refreshFleet() {
	f := r.fleet
	n, err := membershipScript.Run(r.deadline.ctx(), r.rdb(), []string{f.key}, f.id, f.ttl).Int64()
	if err != nil || n < 1 {
		return
	}
	if old := f.count.Swap(n); old != n && r.cfg.onHealth != nil {
		r.cfg.onHealth(context.Background(), Event{Kind: EventInstances, Rule: r.name, Instances: int(n)})
	}
}

// closeFleet removes the instance's member, while the limiter's client is
// still open (after the background goroutines have ended).
func (r *Redis) closeFleet() {
	f := r.fleet
	if f.off {
		return
	}
	if r.health.down.Load() == 0 && f.count.Load() > 0 {
		_ = r.rdb().ZRem(r.deadline.ctx(), f.key, f.id).Err()
	}
}

// fallbackInstances is the count FailLocal divides the rate by: the
// policy's function when it has one, else the larger of its fixed count
// and the fleet size last seen.
func (r *Redis) fallbackInstances() int {
	p := r.cfg.policy
	if p.fn != nil {
		return max(1, p.fn())
	}
	return max(1, p.fixed, int(r.fleet.count.Load()))
}
