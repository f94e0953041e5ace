package registry_test

import (
	"testing"
	"time"

	"github.com/gingov/gingov/registry"
)

// registry.Backoff is the exported face of the kit's one backoff (its
// schedule is tested in internal/backoff); this checks that it delegates.
func TestBackoffDelegates(t *testing.T) {
	b := registry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt, base := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		for range 50 {
			if d := b.Delay(attempt); d < base/2 || d > base {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
	if d := b.Delay(1000); d < b.Max/2 || d > b.Max {
		t.Fatalf("attempt 1000: delay %v outside [%v, %v]", d, b.Max/2, b.Max)
	}
	if d := (registry.Backoff{}).Delay(3); d != 0 {
		t.Fatalf("zero Backoff: delay %v, want 0", d)
	}
}
