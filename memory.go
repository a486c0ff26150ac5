package main

import (
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
)

// The garbage collector's headroom. With GOGC=100, Go lets the heap grow to
// twice what was live after the last collection before it collects again:
// at a million keys that is some 150 MB of RSS on top of the map, held for
// nothing. The cache's store (kvstore.go) has no pointers for the collector
// to follow, so a collection costs about the same whatever the map holds,
// and running more often costs little. So the headroom is an eighth of the
// live heap (12%) once that is large, never less than gcHeadroomFloor, and
// GOGC's 100 (the default) while the live heap is under that floor: small
// caches collect exactly as before. At a million keys under set64 a quarter
// left the leader's RSS at 2.52-2.54x the raw bytes and an eighth at 2.30x,
// at the same CPU per request (two interleaved runs each);
// docs/performance.md#memory-per-key has the measurements.
const (
	gcHeadroomFloor = 16 << 20 // bytes
	gcMinPercent    = 12
)

// gcPercentFor is the GOGC that gives a live heap of live bytes its
// headroom: max(gcHeadroomFloor, 12% of live), and at most live (GOGC 100).
func gcPercentFor(live uint64) int {
	if live <= gcHeadroomFloor {
		return 100
	}
	return max(gcMinPercent, int(100*gcHeadroomFloor/live))
}

// tuneGC sets the headroom after every collection from the live heap it
// found, for the life of the process, unless GOGC is set in the
// environment: then the operator's setting stands. It hooks the collector
// through a finalizer, which runs after each cycle that found its object
// unreachable, and arms a new one each time: no goroutine, no polling.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	armGCTuner()
}

// gcSentinel is what the finalizer hangs on: a pointer field keeps it out
// of the tiny allocator, whose objects may never be finalized.
type gcSentinel struct{ _ *byte }

var gcPercentNow atomic.Int64 // the last GOGC set, to skip setting it again

func armGCTuner() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		rtmetrics.Read(s)
		if s[0].Value.Kind() == rtmetrics.KindUint64 {
			if p := gcPercentFor(s[0].Value.Uint64()); int64(p) != gcPercentNow.Load() {
				gcPercentNow.Store(int64(p))
				debug.SetGCPercent(p)
			}
		}
		armGCTuner()
	})
}
