package main

import (
	"maps"
	"sync"
)

// cache is the key-value map every node holds: the tutorial's cacheManager.
// It knows nothing of Raft. Readers (HTTP gets) take the read lock; the FSM is
// the only writer, so a batch of writes takes the write lock once.
//
// Snapshots are copy-on-write. Freeze hands the current map to a snapshot by
// reference, in O(1), and from then on writes go to an overlay instead, so
// the frozen map never changes while the snapshot streams it without any
// lock. Release folds the overlay back into the map once the snapshot is
// done with it. At most one snapshot shares the live map: it is the one
// whose generation is gen.
//
// mu guards every field; the frozen map itself may be read without mu, but
// only by its snapshot, and only until its Release.
type cache struct {
	mu   sync.RWMutex
	data map[string]string

	// overlay is non-nil while data is frozen: it holds every write since
	// Freeze, and reads look in it first.
	overlay map[string]overlayEntry
	n       int    // number of keys while frozen; otherwise len(data)
	gen     uint64 // bumped by Freeze and Replace; names the snapshot that owns data
}

// overlayEntry is a write made while the map is frozen: a value, or a
// tombstone for a delete.
type overlayEntry struct {
	value   string
	deleted bool
}

func newCache() *cache {
	return &cache{data: make(map[string]string)}
}

// Get returns the value of key and whether it is present.
func (c *cache) Get(key string) (string, bool) {
	c.mu.RLock()
	v, ok := c.getLocked(key)
	c.mu.RUnlock()
	return v, ok
}

func (c *cache) getLocked(key string) (string, bool) {
	if e, ok := c.overlay[key]; ok {
		return e.value, !e.deleted
	}
	v, ok := c.data[key]
	return v, ok
}

// Len returns the number of keys.
func (c *cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.overlay != nil {
		return c.n
	}
	return len(c.data)
}

// Set stores value under key.
func (c *cache) Set(key, value string) {
	c.update(func(w cacheWriter) { w.Set(key, value) })
}

// Delete removes key; deleting an absent key is not an error.
func (c *cache) Delete(key string) {
	c.update(func(w cacheWriter) { w.Delete(key) })
}

// update runs fn with the write lock held, so that a batch of writes costs
// one lock acquisition and readers never see half a batch. The writer fn
// gets is valid only until fn returns.
func (c *cache) update(fn func(w cacheWriter)) {
	c.mu.Lock()
	fn(cacheWriter{c})
	c.mu.Unlock()
}

// cacheWriter writes to a cache whose write lock its holder holds (see
// update). It sends writes to the overlay while the map is frozen.
type cacheWriter struct{ c *cache }

// Set stores value under key.
func (w cacheWriter) Set(key, value string) {
	c := w.c
	if c.overlay == nil {
		c.data[key] = value
		return
	}
	if _, ok := c.getLocked(key); !ok {
		c.n++
	}
	c.overlay[key] = overlayEntry{value: value}
}

// Delete removes key; deleting an absent key is not an error.
func (w cacheWriter) Delete(key string) {
	c := w.c
	if c.overlay == nil {
		delete(c.data, key)
		return
	}
	if _, ok := c.getLocked(key); ok {
		c.n--
		c.overlay[key] = overlayEntry{deleted: true}
	}
}

// Freeze returns the current contents for a snapshot, to be read without
// the lock until Release(gen) is called, which must follow once the reading
// is done. Raft's FSM goroutine calls it (fsm.Snapshot) and Apply waits for
// it, so it does not copy the map: later writes go to the overlay.
//
// Raft releases each snapshot before it takes the next, but if a snapshot
// is still unreleased (a caller that never releases, such as
// raft.RecoverCluster), the frozen map cannot take the overlay's writes, so
// Freeze falls back to building a merged copy, which becomes the live map
// and the new snapshot's; the old snapshot's Release then does nothing.
// That is correct, just as slow as copying always was.
func (c *cache) Freeze() (m map[string]string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.overlay != nil {
		c.data = c.mergedLocked()
	} else {
		c.n = len(c.data)
	}
	c.overlay = make(map[string]overlayEntry)
	c.gen++
	return c.data, c.gen
}

// Release ends the snapshot that Freeze returned gen to: the overlay's
// writes go into the map, which is live again. Raft's snapshot goroutine
// calls it (fsmSnapshot.Release) after Persist, concurrently with Apply,
// which waits for the merge: its cost is the number of keys written during
// the snapshot, not the size of the map. Releasing a snapshot whose map is
// no longer live (after Replace, a second Freeze, or a Release) does
// nothing: that map belongs to the snapshot alone now.
func (c *cache) Release(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.overlay == nil || gen != c.gen {
		return
	}
	applyOverlay(c.data, c.overlay)
	c.overlay = nil
}

// mergedLocked returns a new map of the current contents: the frozen map
// with the overlay applied. maps.Clone copies the table wholesale, much
// faster than re-inserting each key.
func (c *cache) mergedLocked() map[string]string {
	m := maps.Clone(c.data)
	applyOverlay(m, c.overlay)
	return m
}

// applyOverlay writes the overlay's sets and deletes into m.
func applyOverlay(m map[string]string, overlay map[string]overlayEntry) {
	for k, e := range overlay {
		if e.deleted {
			delete(m, k)
		} else {
			m[k] = e.value
		}
	}
}

// Replace swaps the whole map, for snapshot restore, under the lock readers
// take, so a reader sees either the old map or the new one. A snapshot
// still streaming the old map keeps it; its Release will not touch m.
func (c *cache) Replace(m map[string]string) {
	if m == nil {
		m = make(map[string]string)
	}
	c.mu.Lock()
	c.data = m
	c.overlay = nil
	c.gen++
	c.mu.Unlock()
}
