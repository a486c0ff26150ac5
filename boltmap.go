package main

// BoltDB reads raft-log.bolt through a read-only shared memory map. Every
// page read through it stays mapped into this process, and counts in its
// RSS, for as long as the map lives: in practice every page of the log that
// raft ever read back (replay at start, a lagging follower's entries) or
// deleted (compaction walks every entry it drops), and pages freed that way
// stay mapped when BoltDB writes new entries into them. At a million keys
// that was 118–150 bytes a key of RSS (issue 20), as much as the keys and
// values themselves, for data the process does not need in memory.
//
// boltLogStore hands those pages back to the kernel after each compaction
// and every ten seconds (madvise MADV_DONTNEED on the map). For a shared file
// map that only unmaps the pages: their contents stay in the page cache,
// where the kernel may keep or drop them like any cached file, and the next
// read through the map finds them there again (a minor fault, no disk
// read). So it changes whom the memory is charged to and how easily the
// kernel reclaims it, not what BoltDB reads.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// releaseEvery is how often boltLogStore hands back the pages read since
// the last compaction. Pages are read between compactions too: each write
// reads the log's last leaf to append after it, raft reads back entries a
// lagging follower needs, a restart replays the whole log, and a log
// shorter than -trailing-logs is never compacted. At a million keys under
// set64, once a minute left 10 MB of them resident at times; a release
// costs a read of /proc/self/maps and one madvise per map.
const releaseEvery = 10 * time.Second

// boltLogStore is raft-boltdb's store as raft's LogStore, with its mapped
// pages handed back after each compaction and every releaseEvery.
type boltLogStore struct {
	*raftboltdb.BoltStore
	path string
	log  hclog.Logger

	// writes is held by every write to the store and by a release. BoltDB
	// moves its map (munmap, then mmap) only inside a write transaction
	// that grows the file, and unmaps it on Close. A release reads the
	// map's address from /proc/self/maps and then calls madvise on it: if
	// the map moved in between, the call could land on memory mapped since
	// for something else, and MADV_DONTNEED zeroes anonymous memory.
	// Raft's writes to one store are already serialized by BoltDB's own
	// write lock, so this adds no wait but a release's: 1-3 ms measured
	// with 0 to 64 MiB of the log mapped (reading /proc/self/maps, and the
	// kernel walking the map's page tables), after each compactChunk of a
	// compaction and every releaseEvery.
	writes sync.Mutex
}

// StoreLog stores one entry, excluding a release.
func (s *boltLogStore) StoreLog(l *raft.Log) error {
	s.writes.Lock()
	defer s.writes.Unlock()
	return s.BoltStore.StoreLog(l)
}

// StoreLogs stores entries, excluding a release.
func (s *boltLogStore) StoreLogs(logs []*raft.Log) error {
	s.writes.Lock()
	defer s.writes.Unlock()
	return s.BoltStore.StoreLogs(logs)
}

// Close closes the store, excluding a release: it unmaps the file.
func (s *boltLogStore) Close() error {
	s.writes.Lock()
	defer s.writes.Unlock()
	return s.BoltStore.Close()
}

// compactChunk is how many entries DeleteRange drops from the head of the
// log in one transaction before handing the pages back. In one transaction,
// a compaction at a million keys (some 10,000 entries of a batch each)
// mapped 90 MB of the log at once: the leader's peak RSS was 326 MiB for
// 233 in steady state.
const compactChunk = 1024

// DeleteRange deletes [lo, hi] and hands back the pages the deletion read
// (BoltDB's cursor reads every entry it drops). The head of the log
// (compaction after a snapshot) goes compactChunk entries at a time, first
// ones first: interrupted, the log is still contiguous, only less
// compacted. Anything else, a follower's conflicting tail, goes in one
// transaction, since a tail deleted piecemeal from its start would leave a
// gap if interrupted.
func (s *boltLogStore) DeleteRange(lo, hi uint64) error {
	first, err := s.FirstIndex()
	if err != nil {
		return fmt.Errorf("first index: %w", err)
	}
	if lo > first {
		return s.deleteAndRelease(lo, hi)
	}
	for from := lo; from <= hi; from += compactChunk {
		to := hi
		if hi-from >= compactChunk {
			to = from + compactChunk - 1
		}
		if err := s.deleteAndRelease(from, to); err != nil {
			return err
		}
		if to == hi {
			break // from += compactChunk could wrap at the top of uint64
		}
	}
	return nil
}

func (s *boltLogStore) deleteAndRelease(lo, hi uint64) error {
	s.writes.Lock()
	defer s.writes.Unlock()
	if err := s.BoltStore.DeleteRange(lo, hi); err != nil {
		return err
	}
	s.release()
	return nil
}

// release hands back the map's pages; s.writes must be held. A failure
// costs memory, not data, so it is logged and raft goes on.
func (s *boltLogStore) release() {
	if err := releaseFileMap(s.path); err != nil {
		s.log.Warn("could not hand back the log store's mapped pages (RSS keeps them until the next try)", "path", s.path, "error", err)
	}
}

// releaseLoop calls release every releaseEvery until ctx ends.
func (s *boltLogStore) releaseLoop(ctx context.Context) {
	t := time.NewTicker(releaseEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.writes.Lock()
			s.release()
			s.writes.Unlock()
		}
	}
}
