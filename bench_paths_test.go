package main

// Benchmarks of the committer and the cache, the write and read paths' own
// parts, in process. This file uses only APIs that have not changed since
// group commit, so cmd/perfcheck can copy it into an older tree that lacks
// it and compare both with benchstat.

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
		return newCommitter(func([]byte) (uint64, error) {
			return uint64(entries.Add(1)), nil
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

// BenchmarkCache is a stale get's map lookup under the read lock, with
// readers on every core ("get", and "get-ttl" when some keys expire, which
// adds a deadline lookup), and one writer's overwrite under the write lock
// ("set").
func BenchmarkCache(b *testing.B) {
	const keys = 10000
	fill := func(ttl bool) *cache {
		c := newCache()
		c.update(func(w cacheWriter) {
			for i := range keys {
				if ttl && i%2 == 0 {
					w.SetExpiring(benchKey(i), benchValue(i), 1<<62)
				} else {
					w.Set(benchKey(i), benchValue(i))
				}
			}
		})
		return c
	}
	names := make([]string, keys)
	for i := range names {
		names[i] = benchKey(i)
	}
	for _, ttl := range []bool{false, true} {
		name := "get"
		if ttl {
			name = "get-ttl"
		}
		b.Run(name, func(b *testing.B) {
			c := fill(ttl)
			var seed atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(7919))
				for pb.Next() {
					i = (i + 7) % keys
					if _, ok := c.Get(names[i]); !ok {
						b.Error("missing key", names[i])
						return
					}
				}
			})
		})
	}
	b.Run("set", func(b *testing.B) {
		c := fill(false)
		values := make([]string, keys)
		for i := range values {
			values[i] = benchValue(i + 1)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Set(names[i], values[i])
			i = (i + 1) % keys
		}
	})
}
