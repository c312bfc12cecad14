package client

import (
	"math"
	"math/bits"
	"time"
)

// Latencies are recorded in microseconds into log-linear buckets: values
// below 2^subBits µs exactly, larger ones with subBits bits of mantissa
// (a relative error under 1/2^(subBits-1), 1.6% with 7 bits). A Histogram
// is a flat array, so recording allocates nothing, and two histograms merge
// by adding their counts: workers send theirs to the parent sparsely.
const (
	subBits    = 7
	subCount   = 1 << subBits
	histGroups = 64 - subBits + 1
)

// Histogram counts latencies. The zero value is empty and ready to use. It
// is not safe for concurrent use: each poller owns its own.
type Histogram struct {
	counts [histGroups * subCount]uint32
	n      uint64
	min    uint64 // µs, valid when n > 0
	max    uint64 // µs
}

func bucketOf(us uint64) int {
	if us < subCount {
		return int(us)
	}
	shift := bits.Len64(us) - subBits
	return shift*subCount + int(us>>uint(shift))
}

// bucketValue is a representative value (the middle) of bucket i, in µs.
func bucketValue(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i / subCount
	mant := uint64(i % subCount)
	lo := mant << uint(shift)
	return lo + (uint64(1)<<uint(shift))/2
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)]++
	if h.n == 0 || us < h.min {
		h.min = us
	}
	if us > h.max {
		h.max = us
	}
	h.n++
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) in milliseconds; q = 0 and
// q = 1 are the exact minimum and maximum. It is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return float64(h.min) / 1000
	}
	if q >= 1 {
		return float64(h.max) / 1000
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			v := bucketValue(i)
			v = min(max(v, h.min), h.max)
			return float64(v) / 1000
		}
	}
	return float64(h.max) / 1000
}

// Sparse is a Histogram on the wire: the non-empty buckets only.
type Sparse struct {
	B   []int    `json:"b,omitempty"` // bucket indexes
	C   []uint32 `json:"c,omitempty"` // their counts
	N   uint64   `json:"n"`
	Min uint64   `json:"min"`
	Max uint64   `json:"max"`
}

func (h *Histogram) Sparse() Sparse {
	s := Sparse{N: h.n, Min: h.min, Max: h.max}
	for i, c := range h.counts {
		if c != 0 {
			s.B = append(s.B, i)
			s.C = append(s.C, c)
		}
	}
	return s
}

func (s Sparse) MergeInto(h *Histogram) {
	if s.N == 0 {
		return
	}
	var o Histogram
	for i, b := range s.B {
		if b >= 0 && b < len(o.counts) && i < len(s.C) {
			o.counts[b] = s.C[i]
		}
	}
	o.n, o.min, o.max = s.N, s.Min, s.Max
	h.Merge(&o)
}
