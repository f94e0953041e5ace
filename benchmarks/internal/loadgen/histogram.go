package loadgen

import (
	"math/bits"
	"time"
)

// Histogram counts durations in log-linear buckets, as HDR histograms do:
// exact below 128 ns, then 64 buckets per power of two, so a quantile is
// off by at most 1/64 (1.6%) of its value. The zero value is empty; it is
// not safe for concurrent use (one per connection, merged at the end).
type Histogram struct {
	counts [nBuckets]uint64
	total  uint64
	max    time.Duration
}

const (
	subBits  = 6                                // 64 sub-buckets per power of two
	linear   = 2 << subBits                     // values below 128 have a bucket each
	nBuckets = linear + (64-subBits-1)<<subBits // shifts 1..57
)

func bucket(v uint64) int {
	if v < linear {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // >= 1
	top := v >> shift                    // in [64, 128)
	return linear + (shift-1)<<subBits + int(top-1<<subBits)
}

// upper returns the largest value that falls in bucket i.
func upper(i int) uint64 {
	if i < linear {
		return uint64(i)
	}
	shift := (i-linear)>>subBits + 1
	top := uint64((i-linear)&(1<<subBits-1)) + 1<<subBits
	return (top+1)<<shift - 1
}

// Record counts one duration (negative ones as 0).
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucket(uint64(max(d, 0)))]++
	h.total++
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Quantile returns the duration at or below which a fraction q (0 to 1)
// of the recorded ones lie: the upper bound of its bucket, never above the
// largest duration recorded; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(upper(i)), h.max)
		}
	}
	return h.max
}
