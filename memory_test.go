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
		{0, 100}, {10 * MiB, 100}, {16 * MiB, 100}, // headroom = live, under the floor
		{32 * MiB, 50}, {100 * MiB, 16}, // headroom = the 16 MiB floor
		{134 * MiB, 12}, {200 * MiB, 12}, {4096 * MiB, 12}, // an eighth
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live/MiB, got, c.want)
		}
	}
}
