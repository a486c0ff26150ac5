package main

import (
	"maps"
	"sync"
)

// cache is the key-value map every node holds: the tutorial's cacheManager.
// It knows nothing of Raft. Readers (HTTP gets) take the read lock; the FSM is
// the only writer, so a batch of writes takes the write lock once.
type cache struct {
	mu   sync.RWMutex
	data map[string]string
}

func newCache() *cache {
	return &cache{data: make(map[string]string)}
}

// Get returns the value of key and whether it is present.
func (c *cache) Get(key string) (string, bool) {
	c.mu.RLock()
	v, ok := c.data[key]
	c.mu.RUnlock()
	return v, ok
}

// Set stores value under key.
func (c *cache) Set(key, value string) {
	c.mu.Lock()
	c.data[key] = value
	c.mu.Unlock()
}

// Delete removes key; deleting an absent key is not an error.
func (c *cache) Delete(key string) {
	c.mu.Lock()
	delete(c.data, key)
	c.mu.Unlock()
}

// Len returns the number of keys.
func (c *cache) Len() int {
	c.mu.RLock()
	n := len(c.data)
	c.mu.RUnlock()
	return n
}

// update runs fn with the write lock held, so that a batch of writes costs
// one lock acquisition and readers never see half a batch.
func (c *cache) update(fn func(m map[string]string)) {
	c.mu.Lock()
	fn(c.data)
	c.mu.Unlock()
}

// Copy returns a point-in-time copy of the map, for snapshots: the copy is
// taken while no write can run, and later writes never touch it. Raft's FSM
// goroutine waits for it, so every write does: maps.Clone copies the table
// wholesale, about 6x faster than re-inserting each key (bench_test.go).
func (c *cache) Copy() map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return maps.Clone(c.data)
}

// Replace swaps the whole map, for snapshot restore, under the lock readers
// take, so a reader sees either the old map or the new one.
func (c *cache) Replace(m map[string]string) {
	if m == nil {
		m = make(map[string]string)
	}
	c.mu.Lock()
	c.data = m
	c.mu.Unlock()
}
