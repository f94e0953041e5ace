package registry

import (
	"time"

	"github.com/gingov/gingov/internal/backoff"
)

// Backoff is the kit's one capped exponential backoff with jitter, used
// between registration attempts, watch rebuilds and re-registrations, here
// and in the backend modules (and by the kit's other retry loops).
//
// The base wait of attempt n (0-based) is Min·2ⁿ, capped at Max; the delay
// is drawn from the upper half of it ("equal jitter": half fixed, half
// random), so that a fleet restarted together does not retry in step while
// every wait stays at least half its base:
//
//	attempt:  0           1            2            ...  capped
//	delay:    [Min/2,Min] [Min,2·Min]  [2·Min,4·Min]      [Max/2,Max]
//
// A Min <= 0 makes every delay 0; a Max below Min caps the base at Min.
// The zero value is a Backoff with no delay. A Backoff is a value: it
// keeps no state between calls and is safe for concurrent use.
type Backoff struct {
	Min time.Duration // base wait of the first attempt
	Max time.Duration // cap of the base wait
}

// Delay returns the wait after failed attempt number attempt (0-based; a
// negative attempt counts as 0). It never exceeds max(Max, Min), and never
// overflows however large attempt is.
func (b Backoff) Delay(attempt int) time.Duration { return backoff.Backoff(b).Delay(attempt) }
