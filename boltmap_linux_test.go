package main

// boltmap.go on a real BoltDB log store: the pages a compaction read leave
// this process's RSS, and releases racing with writes that grow (and so
// remap) the file neither fail nor change what the store reads back.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
)

// mappedRSS returns how many bytes of the file at path are resident in this
// process's maps (the Rss of its maps in /proc/self/smaps).
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	ino := strconv.FormatUint(st.Ino, 10)
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rss int64
	inMap := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") {
			inMap = fields[4] == ino // a map's first line: range perms offset dev inode path
			continue
		}
		if inMap && len(fields) == 3 && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			rss += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rss
}

func openTestBolt(t *testing.T) (*boltLogStore, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := openBolt(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.close(); err != nil {
			t.Error(err)
		}
	})
	return st.log.(*boltLogStore), filepath.Join(dir, boltFiles[0])
}

// entryData is entry i's payload: 4 KiB, different for every entry.
func entryData(i uint64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%015d|", i)), 256)
}

func storeEntries(t *testing.T, s raft.LogStore, from, to uint64) {
	t.Helper()
	var batch []*raft.Log
	for i := from; i <= to; i++ {
		batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: entryData(i)})
		if len(batch) == 64 || i == to {
			if err := s.StoreLogs(batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
}

func checkEntry(s raft.LogStore, i uint64) error {
	var l raft.Log
	if err := s.GetLog(i, &l); err != nil {
		return fmt.Errorf("read entry %d: %w", i, err)
	}
	if !bytes.Equal(l.Data, entryData(i)) {
		return fmt.Errorf("entry %d reads back %.40q…", i, l.Data)
	}
	return nil
}

func TestBoltMapReleasedAfterCompaction(t *testing.T) {
	s, path := openTestBolt(t)
	const n = 8192 // 32 MiB of entries
	storeEntries(t, s, 1, n)
	// Read every entry through the map, as raft's replay at start does.
	for i := uint64(1); i <= n; i++ {
		if err := checkEntry(s, i); err != nil {
			t.Fatal(err)
		}
	}
	before := mappedRSS(t, path)
	if before < 16<<20 {
		t.Fatalf("only %d bytes of the log mapped after reading 32 MiB of it: the test no longer sees what it is about", before)
	}
	// Compaction, as after a snapshot: it reads every entry it deletes.
	if err := s.DeleteRange(1, n-1024); err != nil {
		t.Fatal(err)
	}
	after := mappedRSS(t, path)
	t.Logf("log's pages in this process's RSS: %d KiB after reading it all, %d KiB after compaction", before>>10, after>>10)
	if after > 1<<20 {
		t.Errorf("%d KiB of the log still mapped after compaction (was %d KiB): its pages were not handed back", after>>10, before>>10)
	}
	// The pages were only unmapped: what is left reads back whole.
	for i := uint64(n - 1023); i <= n; i++ {
		if err := checkEntry(s, i); err != nil {
			t.Fatal(err)
		}
	}
}

// Writes that grow the file make BoltDB remap it, over and over from a
// small map; releases run all the while. A release that reached a moved
// map would fail (ENOMEM), or with bad luck zero someone else's memory.
func TestBoltMapReleaseDuringRemaps(t *testing.T) {
	s, _ := openTestBolt(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var releases int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			s.writes.Lock()
			if err := releaseFileMap(s.path); err != nil {
				t.Error(err)
			}
			s.writes.Unlock()
			releases++
		}
	}()
	const n = 4096
	storeEntries(t, s, 1, n)
	cancel()
	wg.Wait()
	for i := uint64(1); i <= n; i++ {
		if err := checkEntry(s, i); err != nil {
			t.Fatal(err)
		}
	}
	if releases < 10 {
		t.Errorf("only %d releases ran during the writes", releases)
	}
}

// Compaction goes compactChunk entries at a time; a tail goes at once.
// Either way the store is left with exactly the entries raft kept.
func TestBoltMapDeleteRange(t *testing.T) {
	s, _ := openTestBolt(t)
	const n = 3*compactChunk + 100
	storeEntries(t, s, 1, n)
	if err := s.DeleteRange(1, 2*compactChunk+7); err != nil { // the head, in three transactions
		t.Fatal(err)
	}
	if err := s.DeleteRange(n-50, n); err != nil { // a conflicting tail
		t.Fatal(err)
	}
	first, err1 := s.FirstIndex()
	last, err2 := s.LastIndex()
	if err1 != nil || err2 != nil || first != 2*compactChunk+8 || last != n-51 {
		t.Fatalf("log holds [%d, %d] (%v, %v), want [%d, %d]", first, last, err1, err2, 2*compactChunk+8, n-51)
	}
	for i := first; i <= last; i++ {
		if err := checkEntry(s, i); err != nil {
			t.Fatal(err)
		}
	}
}
