package main

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"unsafe"
)

// kvStore is the cache's map of strings, laid out so that the garbage
// collector has almost nothing to look at: the entries (key and value, one
// after the other) sit in large byte chunks, and the index is a
// map[uint64]uint64 from the hash of a key to where its entry is. Neither
// holds a pointer the collector must follow, so a collection costs about the
// same at a million keys as at ten thousand, and each entry costs its bytes,
// a header of two to six bytes and about 20-40 bytes of index. A
// map[string]string cost two allocations per entry (the key, the value,
// each rounded up to a size class) plus 32 bytes a slot, and a collection
// marked every one of them (docs/performance.md#memory-per-key).
//
// Entries are appended; an overwrite or delete leaves the old bytes dead in
// their chunk, and once a quarter of all the chunks' bytes are dead, the
// chunk with the most dead bytes is compacted: its live entries are
// appended anew and the chunk is dropped. Bytes once written to
// a chunk never change, so the strings get hands out point into the chunks
// without a copy, and stay valid (and keep their chunk alive) after it is
// dropped.
//
// Two keys with the same 64-bit hash (about one pair in 10^7 at a million
// keys) cannot share the index: the second goes to spill, an ordinary map,
// which every operation looks in first while it is not empty.
//
// A store is not safe for concurrent use; the cache's lock guards it, and a
// frozen store (cache.Freeze) is only read.
type kvStore struct {
	seed   maphash.Seed
	mask   uint64            // of the hash: all ones, except in tests that want collisions
	index  map[uint64]uint64 // hash of key -> ref: chunk number << 32 | offset
	spill  map[string]string // keys whose hash another key in index has
	chunks []chunk
	free   []uint32 // numbers of dropped chunks, to reuse
	cur    uint32   // the chunk small entries are appended to; noChunk: none yet
	used   int      // bytes appended to the chunks
	dead   int      // of those, the bytes of entries overwritten or deleted
}

type chunk struct {
	buf  []byte // entries: uvarint key length, uvarint value length, key, value
	dead int    // bytes of buf whose entries are overwritten or deleted
}

const (
	// chunkSize is the size of the chunks entries share. An entry larger
	// than a sixteenth of it gets a chunk of its own, so at most that much
	// of a chunk's end goes unused when the next entry does not fit.
	chunkSize = 1 << 20
	ownChunk  = chunkSize / 16
	noChunk   = ^uint32(0)
)

func newKVStore() *kvStore {
	return &kvStore{seed: maphash.MakeSeed(), mask: ^uint64(0), index: make(map[uint64]uint64), cur: noChunk}
}

// kvStoreOf returns a store holding m.
func kvStoreOf(m map[string]string) *kvStore {
	s := newKVStore()
	for k, v := range m {
		s.set(k, v)
	}
	return s
}

func (s *kvStore) hash(key string) uint64 { return maphash.String(s.seed, key) & s.mask }

// Len returns the number of entries.
func (s *kvStore) Len() int { return len(s.index) + len(s.spill) }

// get returns the value stored under key. The string points into a chunk.
func (s *kvStore) get(key string) (string, bool) {
	if len(s.spill) > 0 {
		if v, ok := s.spill[key]; ok {
			return v, true
		}
	}
	ref, ok := s.index[s.hash(key)]
	if !ok {
		return "", false
	}
	k, v, _ := s.at(ref)
	if k != key {
		return "", false
	}
	return v, true
}

// set stores value under key, copying both into a chunk.
func (s *kvStore) set(key, value string) {
	if len(s.spill) > 0 {
		if _, ok := s.spill[key]; ok {
			s.spill[key] = value
			return
		}
	}
	h := s.hash(key)
	if ref, ok := s.index[h]; ok {
		k, _, size := s.at(ref)
		if k != key {
			if s.spill == nil {
				s.spill = make(map[string]string)
			}
			s.spill[key] = value
			return
		}
		s.kill(ref, size)
	}
	s.index[h] = s.append(key, value)
	s.tidy()
}

// delete removes key, if present.
func (s *kvStore) delete(key string) {
	if len(s.spill) > 0 {
		if _, ok := s.spill[key]; ok {
			delete(s.spill, key)
			return
		}
	}
	h := s.hash(key)
	ref, ok := s.index[h]
	if !ok {
		return
	}
	k, _, size := s.at(ref)
	if k != key {
		return
	}
	delete(s.index, h)
	s.kill(ref, size)
	s.tidy()
}

// each calls fn for every entry, in no particular order, until fn fails.
func (s *kvStore) each(fn func(k, v string) error) error {
	for _, ref := range s.index {
		k, v, _ := s.at(ref)
		if err := fn(k, v); err != nil {
			return err
		}
	}
	for k, v := range s.spill {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// clone returns a store with the same entries that shares s's chunks but
// never writes to them (their capacity is cut to their length, so appends
// go to new chunks), so s may still be read, without a lock, while the
// clone is written.
func (s *kvStore) clone() *kvStore {
	c := &kvStore{seed: s.seed, mask: s.mask, index: maps.Clone(s.index), spill: maps.Clone(s.spill),
		chunks: make([]chunk, len(s.chunks)), free: append([]uint32(nil), s.free...), cur: noChunk,
		used: s.used, dead: s.dead}
	for i, ch := range s.chunks {
		c.chunks[i] = chunk{buf: ch.buf[:len(ch.buf):len(ch.buf)], dead: ch.dead}
	}
	return c
}

// at decodes the entry at ref, and returns its size in its chunk.
func (s *kvStore) at(ref uint64) (key, value string, size int) {
	b := s.chunks[ref>>32].buf[uint32(ref):]
	kl, n1 := binary.Uvarint(b)
	vl, n2 := binary.Uvarint(b[n1:])
	p := n1 + n2
	return bytesString(b[p : p+int(kl)]), bytesString(b[p+int(kl) : p+int(kl)+int(vl)]), p + int(kl) + int(vl)
}

// bytesString is b as a string, without a copy: b must never change.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// append writes an entry for key and value into a chunk and returns its ref.
func (s *kvStore) append(key, value string) uint64 {
	size := uvarintLen(len(key)) + uvarintLen(len(value)) + len(key) + len(value)
	var n uint32
	switch {
	case size > ownChunk:
		n = s.newChunk(size)
	case s.cur != noChunk && len(s.chunks[s.cur].buf)+size <= cap(s.chunks[s.cur].buf):
		n = s.cur
	default:
		s.cur = s.newChunk(chunkSize)
		n = s.cur
	}
	c := &s.chunks[n]
	off := len(c.buf)
	c.buf = binary.AppendUvarint(c.buf, uint64(len(key)))
	c.buf = binary.AppendUvarint(c.buf, uint64(len(value)))
	c.buf = append(c.buf, key...)
	c.buf = append(c.buf, value...)
	s.used += size
	return uint64(n)<<32 | uint64(off)
}

func (s *kvStore) newChunk(size int) uint32 {
	c := chunk{buf: make([]byte, 0, size)}
	if k := len(s.free); k > 0 {
		n := s.free[k-1]
		s.free = s.free[:k-1]
		s.chunks[n] = c
		return n
	}
	s.chunks = append(s.chunks, c)
	return uint32(len(s.chunks) - 1)
}

// kill counts the entry at ref, of size bytes, as dead.
func (s *kvStore) kill(ref uint64, size int) {
	s.chunks[ref>>32].dead += size
	s.dead += size
}

// tidy compacts while more than a quarter of the chunks' bytes are dead:
// the chunk with the most dead bytes (not the one being appended to) has
// its live entries appended anew, then is dropped. The chunks then hold at
// most 4/3 of the live bytes. Picking the deadest chunk (a log-structured
// store's greedy cleaner) copies less than compacting each chunk at a fixed
// share: under overwrites spread evenly the oldest chunks are the deadest.
// Measured at a million keys under set64: compacting each chunk once half
// dead kept 232 bytes/key of heap, once a third dead about 186 but copying
// about twice as much as this does (docs/performance.md#memory-per-key).
func (s *kvStore) tidy() {
	for s.dead*4 > s.used {
		n, most := noChunk, 0
		for i := range s.chunks {
			if d := s.chunks[i].dead; d > most && uint32(i) != s.cur {
				n, most = uint32(i), d
			}
		}
		if n == noChunk {
			return // all of it in the chunk being filled, for now
		}
		buf := s.chunks[n].buf
		for off := 0; off < len(buf); {
			ref := uint64(n)<<32 | uint64(off)
			k, v, size := s.at(ref)
			h := s.hash(k)
			if r, ok := s.index[h]; ok && r == ref {
				s.index[h] = s.append(k, v)
			}
			off += size
		}
		s.used -= len(buf)
		s.dead -= most
		s.chunks[n] = chunk{}
		s.free = append(s.free, n)
	}
}

// footprint returns the bytes the chunks take (capacity, dead bytes and
// unused ends included) and the bytes of their live entries.
func (s *kvStore) footprint() (chunks, live int64) {
	for _, c := range s.chunks {
		chunks += int64(cap(c.buf))
		live += int64(len(c.buf) - c.dead)
	}
	return chunks, live
}

func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}
