package main

// Where Raft keeps its log and its term and vote (-log-store): BoltDB, as
// in the tutorial, or hashicorp/raft-wal, an append-only log.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// The -log-store values.
const (
	storeBolt = "bolt"
	storeWAL  = "wal"
)

// walDirName is the directory under the data dir that holds raft-wal's
// files: its segment files (<first index>-<segment id>.wal) and wal-meta.db
// (the segments' list and the StableStore). A directory of its own, because
// raft-wal deletes any *.wal file in it that its meta data does not list.
const walDirName = "wal"

// The bounds of -wal-segment-size. raft-wal takes up to 4 GiB, but its
// files are allocated whole (fallocate) and deleted whole: past 1 GiB a
// segment is mostly disk held for entries a snapshot made useless.
const (
	minWALSegment = 4 << 10
	maxWALSegment = 1 << 30
)

// boltFiles are the BoltDB stores' files in the data dir (the contract's
// "On disk" section).
var boltFiles = []string{"raft-log.bolt", "raft-stable.bolt"}

// stores are a node's LogStore and StableStore, and how to close them once
// Raft has stopped.
type stores struct {
	log    raft.LogStore
	stable raft.StableStore
	close  func() error
}

// openStores opens the stores of kind (storeBolt or storeWAL) in dir. A
// data dir holding the other kind's files is refused before anything is
// opened or created: starting would give an empty log and term, and the
// node would rejoin its cluster as if new, or bootstrap a second cluster.
func openStores(kind, dir string, walSegment int, log hclog.Logger) (*stores, error) {
	if err := checkStoreKind(kind, dir); err != nil {
		return nil, err
	}
	if kind == storeWAL {
		return openWAL(filepath.Join(dir, walDirName), walSegment, log)
	}
	return openBolt(dir, log)
}

// checkStoreKind refuses a data dir that holds the other store's files.
func checkStoreKind(kind, dir string) error {
	switch kind {
	case storeBolt:
		walDir := filepath.Join(dir, walDirName)
		if entries, err := os.ReadDir(walDir); err == nil && len(entries) > 0 {
			return fmt.Errorf("data dir %s holds a wal log store (%s): start with -log-store wal; stcached does not convert between stores", dir, walDir)
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("look for a wal log store in %s: %w", walDir, err)
		}
	case storeWAL:
		for _, name := range boltFiles {
			path := filepath.Join(dir, name)
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("data dir %s holds a bolt log store (%s): start with -log-store bolt; stcached does not convert between stores", dir, path)
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("look for a bolt log store in %s: %w", dir, err)
			}
		}
	default:
		return fmt.Errorf("log store %q: want %s or %s", kind, storeBolt, storeWAL)
	}
	return nil
}

// openBolt opens raft-boltdb's two stores, as the tutorial does; the log
// store hands its mapped pages back (boltmap.go).
func openBolt(dir string, log hclog.Logger) (s *stores, err error) {
	var opened []*raftboltdb.BoltStore
	defer func() {
		if err != nil {
			for _, b := range opened {
				_ = b.Close() // already failing; the first error is the one to report
			}
		}
	}()
	open := func(name string) (*raftboltdb.BoltStore, error) {
		path := filepath.Join(dir, name)
		// A timeout, because bbolt otherwise waits forever for the file
		// lock that another stcached on the same dir holds.
		b, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second}})
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: locked by another process (is a node already running on %s?)", path, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		opened = append(opened, b)
		return b, nil
	}
	logs, err := open(boltFiles[0])
	if err != nil {
		return nil, err
	}
	stable, err := open(boltFiles[1])
	if err != nil {
		return nil, err
	}
	// raft-boltdb reports its gauges (free pages, transactions) only while
	// RunMetrics runs.
	ctx, stopStats := context.WithCancel(context.Background())
	go logs.RunMetrics(ctx, 0)
	go stable.RunMetrics(ctx, 0)
	mapped := &boltLogStore{BoltStore: logs, path: filepath.Join(dir, boltFiles[0]), log: log.Named("store")}
	go mapped.releaseLoop(ctx)
	return &stores{log: mapped, stable: stable, close: func() error {
		stopStats()
		var errs []error
		if err := mapped.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close log store: %w", err))
		}
		if err := stable.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close stable store: %w", err))
		}
		return errors.Join(errs...)
	}}, nil
}

// openWAL opens hashicorp/raft-wal in walDir: one store for both the log
// and the StableStore. A new segment size applies to the segments created
// from then on. Its counters are left out of /metrics: through
// go-metrics they would cost three sink updates on every append, on the
// write path.
func openWAL(walDir string, segmentSize int, log hclog.Logger) (*stores, error) {
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", walDir, err)
	}
	metaPath := filepath.Join(walDir, metadb.FileName)
	if err := checkUnlocked(metaPath, filepath.Dir(walDir)); err != nil {
		return nil, err
	}
	// Our own meta store, so that it can be closed: WAL.Close leaves it,
	// and with it wal-meta.db's file lock, open.
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithMetaStore(meta), wal.WithSegmentSize(segmentSize), wal.WithLogger(log.Named("wal")))
	if err != nil {
		_ = meta.Close() // already failing
		return nil, fmt.Errorf("open wal log store %s: %w", walDir, err)
	}
	return &stores{log: w, stable: w, close: func() error {
		var errs []error
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close wal log store: %w", err))
		}
		if err := meta.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", metaPath, err))
		}
		return errors.Join(errs...)
	}}, nil
}

// checkUnlocked fails if another process holds the BoltDB file at path
// (raft-wal opens wal-meta.db with no timeout, so it would wait for the lock
// for ever). It takes the shared lock for a moment, read-only; a missing
// file is a new store.
func checkUnlocked(path, dataDir string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bbolt.Open(path, 0o644, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if errors.Is(err, bbolt.ErrTimeout) {
		return fmt.Errorf("open %s: locked by another process (is a node already running on %s?)", path, dataDir)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
