// Package ratelimit limits request rates with token buckets: rules that say
// what a request is keyed by ([PerIP], [PerRoute], [PerHeader], [PerUser],
// [Global], [By]), an in-process limiter ([Local]), a distributed one on
// Redis shared by every instance ([Redis]: sync, coalesced or lease mode,
// with a failure policy while Redis is unreachable), and the Gin middleware
// that applies the rules ([Guard], built by [New]).
//
// Options follow the kit's convention: [New] takes [Option]s, [NewLocal]
// [LocalOption]s and [NewRedis] [RedisOption]s; a setting valid for several
// constructors returns a type that is each of their options
// ([RedisGuardOption], [MaxKeysOption]), so that a misplaced option does not
// compile. Hooks receive one [Event] type, whose Kind says what happened.
package ratelimit
