// Package ratelimit limits request rates with token buckets: rules that say
// what a request is keyed by ([PerIP], [PerRoute], [PerHeader], [PerUser],
// [Global], [By]), an in-process limiter ([Local]), a distributed one on
// Redis shared by every instance ([Redis]: sync, coalesced or lease mode,
// with a failure policy while Redis is unreachable), and the Gin middleware
// that applies the rules ([Guard], built by [New]).
//
// A Redis limiter learns the size of its fleet through Redis while it
// answers (a membership sorted set per rule, [Redis.Instances]), so that
// during an outage [FailLocal] keeps the fleet near the configured rate
// without a service registry: over an outage of length T, N instances
// admit at most limit × T/period + burst in all (each at limit/N, plus
// each local bucket's burst/N), and no extra burst for keys Redis was
// denying when it went down. See the [Redis] type for the details.
//
// Options follow the kit's convention: [New] takes [Option]s, [NewLocal]
// [LocalOption]s and [NewRedis] [RedisOption]s; a setting valid for several
// constructors returns a type that is each of their options
// ([RedisGuardOption], [MaxKeysOption]), so that a misplaced option does not
// compile. Hooks receive one [Event] type, whose Kind says what happened.
package ratelimit
