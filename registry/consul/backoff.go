package consul

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait after the given failed attempt (0-based): doubling
// from 100 ms up to limit, drawn from its upper half so that many instances
// retrying together do not reach the agent at the same moment.
//
// registry.Backoff is to replace it once the core package exports one.
func backoff(attempt int, limit time.Duration) time.Duration {
	d := limit
	if attempt < 16 {
		d = min(d, 100*time.Millisecond<<attempt)
	}
	half := d / 2
	return half + rand.N(half+1) //nolint:gosec // jitter needs no cryptographic randomness
}
