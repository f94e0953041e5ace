// Package ratelimit will hold gingov's rate limiters: rules and keys, local
// token buckets, Redis-backed distributed buckets and the Gin middleware.
package ratelimit
