package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Operation kinds inside a log entry.
const (
	opSet        byte = 1 // key = user key, value = value
	opDelete     byte = 2 // key = user key
	opSetPeer    byte = 3 // key = Raft address (server ID), value = its HTTP address
	opDeletePeer byte = 4 // key = Raft address
	opSetTTL     byte = 5 // key, value, deadline: a set that expires
	opExpire     byte = 6 // key, deadline: the leader reaps a key found expired
)

// entryVersion is the first byte of every log entry we write. A log entry
// holds a batch of operations (group commit: one Raft entry, one BoltDB
// insert and one fsync for many concurrent writes), encoded compactly instead
// of the tutorial's JSON: kind byte, uvarint length, bytes. Since 0xB2 the
// operations follow the cap (-max-memory) of the leader that wrote the
// entry, as a uvarint (0: none), because Apply enforces it: the entry alone
// then decides, on every node, in every replay, whatever -max-memory each
// node was started with. Entries written before (entryV1) still decode, with
// no cap, which is how they were applied when they were new.
//
// Since 0xB3 the cap counts entryOverhead bytes per key on top of the keys'
// and values' bytes (see entryOverhead). 0xB2 entries, same layout, are
// still held to their cap without it: a replay must decide as the first
// application did, so the charge is a function of the entry's version, the
// entry and the map, never of the binary that replays it.
const (
	entryVersion byte = 0xB3
	entryV2      byte = 0xB2
	entryV1      byte = 0xB1
)

// entryOverhead is what the cap (-max-memory) charges each key beyond its
// bytes and its value's: what holding an entry costs the heap besides
// them, so that a full cache's memory stays near the cap. Measured at a
// million keys of 100-byte values (docs/performance.md#memory-per-key):
// the store's index (about 36 bytes a key) and entry header (2), the dead
// bytes compaction has not reclaimed yet, and the garbage collector's
// headroom over all of it (memory.go). Changing it changes which writes
// Apply refuses, so it goes with a new entryVersion: nodes of one cluster
// must run the same stcached (docs/operating.md).
const entryOverhead = 96

// perKeyCharge is the per-key overhead the cap of an entry of version v
// counts.
func perKeyCharge(v byte) int64 {
	if v == entryVersion {
		return entryOverhead
	}
	return 0
}

// peerKeyPrefix marks, inside a snapshot's JSON object, the entries that
// record a member's HTTP address rather than a user key. User keys may not
// start with NUL (http.go refuses them), so the two cannot collide, and
// state.bin stays the tutorial's flat JSON object.
const peerKeyPrefix = "\x00peer:"

// command is one operation of a log entry.
type command struct {
	op    byte
	key   string
	value string
	// deadline (opSetTTL, opExpire) is in Unix nanoseconds by the leader's
	// clock when it took the write: absolute, so replaying the log or a
	// snapshot gives every node the same deadline, whatever its clock.
	deadline int64
}

var errBadEntry = errors.New("malformed log entry")

// encodeEntry appends the log entry for cmds to dst, with the cap limit
// (bytes; 0: none) that Apply holds its sets to.
func encodeEntry(dst []byte, limit int64, cmds []command) []byte {
	dst = append(dst, entryVersion)
	dst = binary.AppendUvarint(dst, uint64(limit))
	dst = binary.AppendUvarint(dst, uint64(len(cmds)))
	for _, c := range cmds {
		dst = append(dst, c.op)
		dst = binary.AppendUvarint(dst, uint64(len(c.key)))
		dst = append(dst, c.key...)
		if c.op == opSet || c.op == opSetPeer || c.op == opSetTTL {
			dst = binary.AppendUvarint(dst, uint64(len(c.value)))
			dst = append(dst, c.value...)
		}
		if c.op == opSetTTL || c.op == opExpire {
			dst = binary.AppendUvarint(dst, uint64(c.deadline))
		}
	}
	return dst
}

// encodeCommands is encodeEntry with no cap: for entries that cannot grow
// the map (the reaper's expiries), and for tests.
func encodeCommands(dst []byte, cmds []command) []byte { return encodeEntry(dst, 0, cmds) }

// decodeCommands is decodeEntry for a reader that wants only the operations.
func decodeCommands(b []byte) ([]command, error) {
	_, cmds, err := decodeEntry(b)
	return cmds, err
}

// decodeEntry parses a log entry: its cap (0: none) and its operations. It
// never panics: any input that is not exactly what encodeEntry (or, for
// entryV1, the encoder before it) produces is errBadEntry.
func decodeEntry(b []byte) (limit int64, cmds []command, err error) {
	if len(b) == 0 || (b[0] != entryVersion && b[0] != entryV2 && b[0] != entryV1) {
		return 0, nil, fmt.Errorf("%w: unknown version", errBadEntry)
	}
	v := b[0]
	b = b[1:]
	if v != entryV1 {
		l, k := uvarint(b)
		if k <= 0 || l > math.MaxInt64 {
			return 0, nil, fmt.Errorf("%w: bad cap", errBadEntry)
		}
		limit, b = int64(l), b[k:]
	}
	cmds, err = decodeOps(b)
	return limit, cmds, err
}

// decodeOps parses an entry's count and operations.
func decodeOps(b []byte) ([]command, error) {
	n, k := uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad count", errBadEntry)
	}
	b = b[k:]
	// Each operation takes at least two bytes: a cheap bound against a
	// forged count that would allocate without limit.
	if n > uint64(len(b))/2 {
		return nil, fmt.Errorf("%w: count %d exceeds entry size", errBadEntry, n)
	}
	cmds := make([]command, 0, n)
	readString := func() (string, bool) {
		l, k := uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s, true
	}
	for i := uint64(0); i < n; i++ {
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: truncated", errBadEntry)
		}
		c := command{op: b[0]}
		b = b[1:]
		var ok bool
		if c.key, ok = readString(); !ok {
			return nil, fmt.Errorf("%w: bad key", errBadEntry)
		}
		switch c.op {
		case opSet, opSetPeer, opSetTTL:
			if c.value, ok = readString(); !ok {
				return nil, fmt.Errorf("%w: bad value", errBadEntry)
			}
		case opDelete, opDeletePeer, opExpire:
		default:
			return nil, fmt.Errorf("%w: unknown operation %d", errBadEntry, c.op)
		}
		if c.op == opSetTTL || c.op == opExpire {
			d, k := uvarint(b)
			if k <= 0 || d == 0 || d > math.MaxInt64 {
				return nil, fmt.Errorf("%w: bad deadline", errBadEntry)
			}
			c.deadline = int64(d)
			b = b[k:]
		}
		cmds = append(cmds, c)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadEntry, len(b))
	}
	return cmds, nil
}

// uvarint is binary.Uvarint that also refuses non-minimal encodings, so one
// list of commands has exactly one encoding.
func uvarint(b []byte) (uint64, int) {
	n, k := binary.Uvarint(b)
	if k > 1 && b[k-1] == 0 {
		return 0, 0
	}
	return n, k
}

// fsm is stcache's raft.FSM. Raft calls Apply, Snapshot and Restore from one
// goroutine, never concurrently with each other; Persist and Release run on
// its snapshot goroutine, concurrently with Apply, which is why Snapshot
// freezes the map (see cache.Freeze).
type fsm struct {
	cache *cache
	log   hclog.Logger

	// peers maps each member's Raft address to its HTTP address, so any node
	// can point a client at the leader. It is replicated like user data.
	peersMu sync.RWMutex
	peers   map[string]string

	// What the event poller reads to report snapshots and restores, which
	// raft's observer does not (observe.go).
	lastPersist atomic.Pointer[persistInfo]
	restores    atomic.Uint64 // how many Restores so far
	restoredLen atomic.Int64  // keys in the last one

	// applied is the index of the last entry the map has taken in: an
	// Apply, a configuration (configFSM), or the snapshot a Restore loaded.
	// raft's own AppliedIndex runs ahead of it: raft counts an entry
	// applied once it hands it to the FSM's goroutine (node.appliedIndex).
	applied atomic.Uint64
}

// persistInfo describes the last snapshot this node wrote.
type persistInfo struct {
	keys int
	took time.Duration
}

func newFSM(c *cache, log hclog.Logger) *fsm {
	return &fsm{cache: c, log: log, peers: make(map[string]string)}
}

// capRefusals is Apply's answer for an entry some of whose sets it refused
// for the cap: their positions in the entry, ascending. The other writes of
// the entry were applied.
type capRefusals []int

// Apply applies one committed log entry (a batch of operations) to the map.
// It returns nil (all applied), capRefusals, or an error (nothing applied),
// which the leader's ApplyFuture carries.
//
// The cap is decided here, in log order, against the map as every node
// holds it at this entry: a set that would take the map past the entry's
// cap changes nothing, on every node alike, however it got past the
// leader's early check (bounds.go). Only the entry and the map decide it,
// never a clock or a flag, so replaying the log gives the same answers.
func (f *fsm) Apply(l *raft.Log) interface{} {
	defer f.applied.Store(l.Index) // once the map holds it (or skips it)
	limit, cmds, err := decodeEntry(l.Data)
	if err != nil {
		// The leader only appends what encodeEntry produced, so this is
		// a bug or disk corruption. Every node sees the same bytes and skips
		// the entry alike, so the replicas stay identical.
		f.log.Error("skipping undecodable log entry", "index", l.Index, "error", err)
		return err
	}
	var refused capRefusals
	perKey := perKeyCharge(l.Data[0]) // decodeEntry took it: not empty
	f.cache.update(func(w cacheWriter) {
		for i, c := range cmds {
			switch c.op {
			case opSet, opSetTTL: // opSet's deadline is 0: none
				if !w.SetWithin(c.key, c.value, c.deadline, limit, perKey) {
					refused = append(refused, i)
				}
			case opDelete:
				w.Delete(c.key)
			case opExpire:
				w.Expire(c.key, c.deadline)
			}
		}
	})
	for _, c := range cmds {
		switch c.op {
		case opSetPeer:
			f.peersMu.Lock()
			f.peers[c.key] = c.value
			f.peersMu.Unlock()
		case opDeletePeer:
			f.peersMu.Lock()
			delete(f.peers, c.key)
			f.peersMu.Unlock()
		}
	}
	if f.log.IsTrace() {
		f.log.Trace("applied", "index", l.Index, "ops", len(cmds), "refused_for_cap", len(refused))
	}
	if refused != nil {
		return refused
	}
	return nil
}

// indexedSnapshot is a snapshot's reader tagged with the snapshot's index
// (configSnapshots.Open), so that Restore, which raft hands only a reader,
// knows which entry the map holds after it.
type indexedSnapshot struct {
	io.ReadCloser
	index uint64
}

// taggedSnapshotIndex finds the index configSnapshots.Open tagged rc with,
// through the wrappers raft puts around it (raft.ReadCloserWrapper).
func taggedSnapshotIndex(rc io.ReadCloser) (uint64, bool) {
	for {
		switch r := rc.(type) {
		case indexedSnapshot:
			return r.index, true
		case raft.ReadCloserWrapper:
			rc = r.WrappedReadCloser()
		default:
			return 0, false
		}
	}
}

// peerHTTP returns the HTTP address recorded for a Raft address, or "".
func (f *fsm) peerHTTP(raftAddr string) string {
	f.peersMu.RLock()
	defer f.peersMu.RUnlock()
	return f.peers[raftAddr]
}

func (f *fsm) copyPeers() map[string]string {
	f.peersMu.RLock()
	defer f.peersMu.RUnlock()
	m := make(map[string]string, len(f.peers))
	for k, v := range f.peers {
		m[k] = v
	}
	return m
}

// Snapshot freezes the point-in-time state that Persist writes. Apply cannot
// run while it does (same goroutine), so the state is exactly that at the
// snapshot's index. Freezing is O(1), so Apply does not wait for a copy of
// the map; the peers, a few entries, are copied.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	data, gen := f.cache.Freeze()
	return &fsmSnapshot{data: data, peers: f.copyPeers(), keys: f.cache.Len(), release: func() { f.cache.Release(gen) },
		persisted: func(keys int, took time.Duration) { f.lastPersist.Store(&persistInfo{keys, took}) }}, nil
}

// Restore replaces the whole state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, peers, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.cache.Replace(data)
	f.peersMu.Lock()
	f.peers = peers
	f.peersMu.Unlock()
	f.restoredLen.Store(int64(f.cache.Len()))
	f.restores.Add(1)
	if index, ok := taggedSnapshotIndex(rc); ok {
		f.applied.Store(index)
	} else {
		f.log.Warn("restored a snapshot of unknown index: /status applied_index is behind until the next entry")
	}
	f.log.Info("restored snapshot", "keys", f.cache.Len())
	return nil
}
