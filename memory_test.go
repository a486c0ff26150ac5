package main

import "testing"

// The collector's headroom: GOGC's 100 for a small live heap (small caches
// collect as before), then never less than gcHeadroomFloor, then a quarter
// of the live heap.
func TestGCPercentFor(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 100}, {10 * MiB, 100}, {32 * MiB, 100}, // headroom = live, under the floor
		{64 * MiB, 50}, {100 * MiB, 32}, // headroom = the 32 MiB floor
		{128 * MiB, 25}, {200 * MiB, 25}, {4096 * MiB, 25}, // a quarter
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live/MiB, got, c.want)
		}
	}
}
