package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/backoff"
)

func TestBackoffBounds(t *testing.T) {
	b := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := -1; attempt <= 100; attempt++ {
		base := b.Max
		if n := max(attempt, 0); n < 6 { // 100ms·2⁶ > 5s
			base = min(b.Max, b.Min<<n)
		}
		lo, hi := base-base/2, base
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.Delay(attempt)
			if d < lo || d > hi {
				t.Fatalf("Delay(%d) = %v; want in [%v, %v]", attempt, d, lo, hi)
			}
			if d > b.Max {
				t.Fatalf("Delay(%d) = %v exceeds Max %v", attempt, d, b.Max)
			}
			if base == b.Max && d < b.Max/2 {
				t.Fatalf("Delay(%d) = %v below Max/2 once capped", attempt, d)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("Delay(%d) is not jittered: always %v", attempt, b.Delay(attempt))
		}
	}
}

func TestBackoffNoOverflow(t *testing.T) {
	for _, b := range []backoff.Backoff{
		{Min: time.Nanosecond, Max: math.MaxInt64},
		{Min: math.MaxInt64 / 3, Max: math.MaxInt64},
		{Min: time.Second, Max: math.MaxInt64},
	} {
		for _, attempt := range []int{63, 64, 100, math.MaxInt32} {
			if d := b.Delay(attempt); d < b.Max/2 || d > b.Max {
				t.Fatalf("%+v.Delay(%d) = %v; want in [Max/2, Max]", b, attempt, d)
			}
		}
	}
}

func TestBackoffEdges(t *testing.T) {
	if d := (backoff.Backoff{}).Delay(3); d != 0 {
		t.Fatalf("zero Backoff: %v", d)
	}
	if d := (backoff.Backoff{Min: -time.Second, Max: time.Second}).Delay(3); d != 0 {
		t.Fatalf("negative Min: %v", d)
	}
	// Max below Min caps the base at Min.
	b := backoff.Backoff{Min: time.Second, Max: time.Millisecond}
	for range 100 {
		if d := b.Delay(10); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("Max < Min: Delay(10) = %v; want in [500ms, 1s]", d)
		}
	}
	// An odd base never yields more than itself.
	odd := backoff.Backoff{Min: 3, Max: 3}
	for range 100 {
		if d := odd.Delay(0); d < 2 || d > 3 {
			t.Fatalf("odd base: %v", d)
		}
	}
}
