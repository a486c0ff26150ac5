package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The histogram's quantiles stay within 1% of the exact ones.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
		all = append(all, d)
		h.record(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.01 || diff < -0.01 {
			t.Errorf("q%.2f: got %v, exact %v", q, got, exact)
		}
	}
	if h.max != all[len(all)-1] {
		t.Errorf("max %v, want %v", h.max, all[len(all)-1])
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		if i := histIndex(v); histIndex(histValue(i)) != i {
			t.Fatalf("bucket %d of %d does not hold its own midpoint %d", i, v, histValue(i))
		}
	}
}

func TestParseWorkload(t *testing.T) {
	for name, want := range map[string]workload{
		"set1":     {"set1", "set", 1},
		"strong64": {"strong64", "strong", 64},
		"mix16":    {"mix16", "mix", 16},
	} {
		if got, err := parseWorkload(name); err != nil || got != want {
			t.Errorf("%s: got %+v, %v", name, got, err)
		}
	}
	for _, bad := range []string{"", "set", "set0", "get-1", "put8", "set1x"} {
		if _, err := parseWorkload(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
