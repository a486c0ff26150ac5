package main

// The cache's read and write paths, in process. This file uses only the
// cache's API as it has been since group commit, so cmd/perfcheck can copy
// it into an older tree that lacks it and compare both with benchstat.

import (
	"sync/atomic"
	"testing"
)

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
