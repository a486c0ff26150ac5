package main

// The committer's own cost per write, in process. cmd/perfcheck copies this
// file into an older tree that lacks it, when that tree builds with it: not
// before the memory cap changed the committer's apply (it returns the
// writes the cap refused).

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkCommitter is group commit's own cost per write, with an apply
// that answers at once (no Raft, no disk): the pool, the queue's lock, the
// wake-up, the encoding and the answer. "writers=1" is a lone client;
// "writers=64" is 64 goroutines submitting at once, reporting writes per
// entry as well.
func BenchmarkCommitter(b *testing.B) {
	cmd := command{op: opSet, key: benchKey(123), value: benchValue(123)}
	newC := func(entries *atomic.Int64) *committer {
		return newCommitter(func([]byte) (uint64, []int, error) {
			return uint64(entries.Add(1)), nil, nil
		})
	}
	b.Run("writers=1", func(b *testing.B) {
		var entries atomic.Int64
		c := newC(&entries)
		defer c.close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.submit(cmd); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("writers=64", func(b *testing.B) {
		var entries atomic.Int64
		c := newC(&entries)
		defer c.close()
		b.ReportAllocs()
		// RunParallel starts parallelism × GOMAXPROCS goroutines.
		b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.submit(cmd); err != nil {
					b.Error(err)
					return
				}
			}
		})
		if n := entries.Load(); n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "writes/entry")
		}
	})
}
