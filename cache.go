package main

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// ttlKeyPrefix marks, inside the map (and so inside every snapshot's
// state.bin), the record of a key's expiry deadline: "\x00ttl:<key>" holds
// the deadline in Unix nanoseconds, in decimal. User keys may not start
// with NUL, so records and keys cannot collide, and state.bin stays the
// tutorial's flat JSON object. Records are neither keys nor bytes.
const ttlKeyPrefix = "\x00ttl:"

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
	data *kvStore // see kvstore.go for its layout

	// overlay is non-nil while data is frozen: it holds every write since
	// Freeze, and reads look in it first.
	overlay map[string]overlayEntry
	gen     uint64 // bumped by Freeze and Replace; names the snapshot that owns data

	// Derived from the contents, kept exact by every write and rebuilt by
	// Replace: user keys, their bytes (key plus value), and the deadlines
	// of the keys that expire (their records' values, parsed).
	keys      int
	bytes     int64
	deadlines map[string]int64

	now func() int64 // Unix nanoseconds; a field so tests can move time
}

// overlayEntry is a write made while the map is frozen: a value, or a
// tombstone for a delete.
type overlayEntry struct {
	value   string
	deleted bool
}

func newCache() *cache {
	return &cache{data: newKVStore(), deadlines: make(map[string]int64),
		now: func() int64 { return time.Now().UnixNano() }}
}

// Get returns the value of key and whether it is present. A key past its
// deadline by this node's clock is absent, though it stays in the map (and
// counts) until the leader reaps it through the log.
func (c *cache) Get(key string) (string, bool) {
	c.mu.RLock()
	v, ok := c.getLocked(key)
	if ok && len(c.deadlines) > 0 {
		if d, expiring := c.deadlines[key]; expiring && c.now() >= d {
			v, ok = "", false
		}
	}
	c.mu.RUnlock()
	return v, ok
}

func (c *cache) getLocked(key string) (string, bool) {
	if e, ok := c.overlay[key]; ok {
		return e.value, !e.deleted
	}
	return c.data.get(key)
}

// Len returns the number of keys (expired ones too, until reaped).
func (c *cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.keys
}

// Bytes returns the length of every key plus its value, records excluded.
func (c *cache) Bytes() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes
}

// Charged is what the cap (-max-memory) counts of the map as the leader
// writes it now: the bytes plus entryOverhead per key.
func (c *cache) Charged() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes + int64(c.keys)*entryOverhead
}

// growth is how much setting key to value would add to Charged: an
// overwrite is charged by the difference, so it may be negative.
func (c *cache) growth(key, value string) int64 {
	c.mu.RLock()
	old, had := c.getLocked(key)
	c.mu.RUnlock()
	return charge(key, value, old, had, entryOverhead)
}

// charge is what setting key to value adds to what the cap counts, given
// its old value if it had one and the overhead per key: a new key is
// charged its bytes and the overhead, an overwrite the difference.
func charge(key, value, old string, had bool, perKey int64) int64 {
	if had {
		return int64(len(value) - len(old))
	}
	return int64(len(key)+len(value)) + perKey
}

// expiry is a key and the deadline it had when found expired.
type expiry struct {
	key      string
	deadline int64
}

// Expired returns up to max keys whose deadline is at or before now.
func (c *cache) Expired(now int64, max int) []expiry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []expiry
	for k, d := range c.deadlines {
		if d <= now {
			out = append(out, expiry{k, d})
			if len(out) == max {
				break
			}
		}
	}
	return out
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

// Set stores value under key, with no deadline (clearing an earlier one).
func (w cacheWriter) Set(key, value string) { w.SetWithin(key, value, 0, 0, 0) }

// SetExpiring stores value under key until deadline (Unix nanoseconds, as
// recorded in the log entry by the leader: never this node's clock).
func (w cacheWriter) SetExpiring(key, value string, deadline int64) {
	w.SetWithin(key, value, deadline, 0, 0)
}

// SetWithin stores value under key until deadline (0: none, clearing an
// earlier one), unless that would take the bytes plus perKey per key past
// limit (0: no limit): then it changes nothing and returns false. An
// overwrite is charged the difference, so one that does not grow the map
// is always taken, even above limit (a leader may have a smaller cap than
// the map already holds).
func (w cacheWriter) SetWithin(key, value string, deadline, limit, perKey int64) bool {
	c := w.c
	old, had := c.getLocked(key)
	grow := charge(key, value, old, had, perKey)
	if limit > 0 && grow > 0 && c.bytes+int64(c.keys)*perKey+grow > limit {
		return false
	}
	if had {
		c.bytes += grow
	} else {
		c.keys++
		c.bytes += int64(len(key) + len(value))
	}
	c.put(key, value)
	if deadline != 0 {
		c.deadlines[key] = deadline
		c.put(ttlKeyPrefix+key, strconv.FormatInt(deadline, 10))
	} else if _, had := c.deadlines[key]; had {
		delete(c.deadlines, key)
		c.remove(ttlKeyPrefix + key)
	}
	return true
}

// Delete removes key; deleting an absent key is not an error.
func (w cacheWriter) Delete(key string) {
	c := w.c
	old, had := c.getLocked(key)
	if !had {
		return
	}
	c.keys--
	c.bytes -= int64(len(key) + len(old))
	c.remove(key)
	if _, expiring := c.deadlines[key]; expiring {
		delete(c.deadlines, key)
		c.remove(ttlKeyPrefix + key)
	}
}

// Expire removes key if its deadline is still deadline: if it was set again
// since the leader found it expired, it stays.
func (w cacheWriter) Expire(key string, deadline int64) {
	if d, ok := w.c.deadlines[key]; ok && d == deadline {
		w.Delete(key)
	}
}

// put and remove write to the live map, or to the overlay while frozen.
func (c *cache) put(key, value string) {
	if c.overlay == nil {
		c.data.set(key, value)
		return
	}
	c.overlay[key] = overlayEntry{value: value}
}

func (c *cache) remove(key string) {
	if c.overlay == nil {
		c.data.delete(key)
		return
	}
	c.overlay[key] = overlayEntry{deleted: true}
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
func (c *cache) Freeze() (m *kvStore, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.overlay != nil {
		c.data = c.mergedLocked()
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

// mergedLocked returns a new store of the current contents: the frozen
// store with the overlay applied. clone copies the index wholesale and
// shares the chunks, much faster than re-inserting each key.
func (c *cache) mergedLocked() *kvStore {
	m := c.data.clone()
	applyOverlay(m, c.overlay)
	return m
}

// applyOverlay writes the overlay's sets and deletes into m.
func applyOverlay(m *kvStore, overlay map[string]overlayEntry) {
	for k, e := range overlay {
		if e.deleted {
			m.delete(k)
		} else {
			m.set(k, e.value)
		}
	}
}

// Replace swaps the whole map, for snapshot restore, under the lock readers
// take, so a reader sees either the old map or the new one. A snapshot
// still streaming the old map keeps it; its Release will not touch m.
//
// The counts and deadlines are rebuilt from m, in one pass before the lock.
// A deadline record whose value does not parse, or whose key is absent, is
// dropped: every node reads the same bytes and drops it alike.
func (c *cache) Replace(m *kvStore) {
	if m == nil {
		m = newKVStore()
	}
	keys, bytes, deadlines := 0, int64(0), make(map[string]int64)
	var bad []string
	_ = m.each(func(k, v string) error {
		if rest, ok := strings.CutPrefix(k, ttlKeyPrefix); ok {
			d, err := strconv.ParseInt(v, 10, 64)
			if _, present := m.get(rest); err != nil || !present {
				bad = append(bad, k)
				return nil
			}
			// A copy: k points into one of m's chunks, which the
			// deadline would keep alive after compaction drops it.
			deadlines[strings.Clone(rest)] = d
			return nil
		}
		keys++
		bytes += int64(len(k) + len(v))
		return nil
	})
	for _, k := range bad {
		m.delete(k)
	}
	c.mu.Lock()
	c.data = m
	c.overlay = nil
	c.gen++
	c.keys, c.bytes, c.deadlines = keys, bytes, deadlines
	c.mu.Unlock()
}
