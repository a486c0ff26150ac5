package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func TestCache(t *testing.T) {
	c := newCache()
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache has a")
	}
	c.Set("a", "1")
	c.Set("b", "2")
	c.Set("a", "3")
	if v, ok := c.Get("a"); !ok || v != "3" {
		t.Fatalf("a = %q %v", v, ok)
	}
	c.Delete("b")
	c.Delete("absent")
	if c.Len() != 1 {
		t.Fatalf("len %d", c.Len())
	}
	c.Replace(kvStoreOf(map[string]string{"z": "26"}))
	if _, ok := c.Get("a"); ok || c.Len() != 1 {
		t.Fatal("replace kept old keys")
	}
	c.Replace(nil)
	c.Set("x", "y") // a nil replacement must still be writable
}

func TestCommandEncoding(t *testing.T) {
	cmds := []command{
		{op: opSet, key: "k", value: "v"},
		{op: opDelete, key: "gone"},
		{op: opSetPeer, key: "127.0.0.1:7000", value: "127.0.0.1:6000"},
		{op: opDeletePeer, key: "127.0.0.1:7001"},
		{op: opSet, key: "ключ", value: strings.Repeat("x", 300)},
	}
	for _, limit := range []int64{0, 1, 64 << 10, 1 << 30, math.MaxInt64} {
		b := encodeEntry(nil, limit, cmds)
		gotLimit, got, err := decodeEntry(b)
		if err != nil || gotLimit != limit || !reflect.DeepEqual(got, cmds) {
			t.Fatalf("round trip with cap %d: %d %v %v", limit, gotLimit, got, err)
		}
		for i := 0; i < len(b); i++ {
			if _, _, err := decodeEntry(b[:i]); !errors.Is(err, errBadEntry) {
				t.Fatalf("truncated at %d: err %v", i, err)
			}
		}
		if _, _, err := decodeEntry(append(b, 0)); !errors.Is(err, errBadEntry) {
			t.Fatal("trailing byte accepted")
		}
	}
	// An entry of the cap without the overhead decodes alike.
	if limit, got, err := decodeEntry(encodeV2(77, cmds)); err != nil || limit != 77 || !reflect.DeepEqual(got, cmds) {
		t.Fatalf("0xB2 entry: %d %v %v", limit, got, err)
	}
	// An entry written before the cap went into the log decodes, with none.
	if limit, got, err := decodeEntry(encodeV1(cmds)); err != nil || limit != 0 || !reflect.DeepEqual(got, cmds) {
		t.Fatalf("old entry: %d %v %v", limit, got, err)
	}
	if _, err := decodeCommands([]byte(`{"Key":"k","Value":"v"}`)); !errors.Is(err, errBadEntry) {
		t.Fatal("JSON accepted as an entry")
	}
	if _, _, err := decodeEntry([]byte{entryVersion, 0x80, 0x00, 0x00}); !errors.Is(err, errBadEntry) {
		t.Fatal("non-minimal cap accepted")
	}
}

// encodeV2 is the entry for cmds as stcached wrote it before the cap counted
// an overhead per key (version 0xB2: same layout).
func encodeV2(limit int64, cmds []command) []byte {
	b := encodeEntry(nil, limit, cmds)
	b[0] = entryV2
	return b
}

// encodeV1 is the entry for cmds as it was written before the cap went into
// the log (version 0xB1: the operations alone).
func encodeV1(cmds []command) []byte {
	b := encodeEntry(nil, 0, cmds) // version, cap 0 (one byte), operations
	return append([]byte{entryV1}, b[2:]...)
}

func FuzzDecodeCommands(f *testing.F) {
	f.Add(encodeCommands(nil, []command{{op: opSet, key: "k", value: "v"}, {op: opDelete, key: "k"}}))
	f.Add(encodeCommands(nil, []command{{op: opSetTTL, key: "k", value: "v", deadline: 1 << 62}, {op: opExpire, key: "k", deadline: 1 << 62}}))
	f.Add(encodeEntry(nil, 3, []command{{op: opSet, key: "k", value: "v"}, {op: opSet, key: "k2", value: "v"}}))
	f.Add(encodeV1([]command{{op: opSet, key: "k", value: "v"}}))
	f.Add(encodeV2(3, []command{{op: opSet, key: "k", value: "v"}}))
	f.Add([]byte{entryVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		limit, cmds, err := decodeEntry(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes, and apply
		// without panicking: all of it, or all but sets refused for the cap.
		again := encodeEntry(nil, limit, cmds)
		switch b[0] {
		case entryV1:
			again = encodeV1(cmds)
		case entryV2:
			again = encodeV2(limit, cmds)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode/encode not inverse: %x -> %x", b, again)
		}
		f := newFSM(newCache(), hclog.NewNullLogger())
		switch r := f.Apply(&raft.Log{Data: b}).(type) {
		case nil:
		case capRefusals:
			for _, i := range r {
				if limit == 0 || cmds[i].op != opSet && cmds[i].op != opSetTTL {
					t.Fatalf("write %d (op %d) refused with cap %d", i, cmds[i].op, limit)
				}
			}
		default:
			t.Fatalf("apply of a decodable entry: %v", r)
		}
	})
}

func applyCmds(t testing.TB, f *fsm, idx uint64, cmds ...command) {
	t.Helper()
	if r := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: encodeCommands(nil, cmds)}); r != nil {
		t.Fatalf("apply %d: %v", idx, r)
	}
}

func TestFSMApply(t *testing.T) {
	f := newFSM(newCache(), hclog.NewNullLogger())
	applyCmds(t, f, 1,
		command{op: opSet, key: "a", value: "1"},
		command{op: opSet, key: "b", value: "2"},
		command{op: opDelete, key: "a"}, // order inside a batch holds
		command{op: opSetPeer, key: "r1", value: "h1"},
	)
	if _, ok := f.cache.Get("a"); ok {
		t.Fatal("a survived its delete")
	}
	if v, _ := f.cache.Get("b"); v != "2" || f.peerHTTP("r1") != "h1" {
		t.Fatal("batch not applied")
	}
	if r := f.Apply(&raft.Log{Index: 2, Data: []byte("garbage")}); r == nil {
		t.Fatal("garbage entry applied without error")
	}
	if f.cache.Len() != 1 {
		t.Fatal("garbage entry changed the map")
	}
}

// applyCapped applies one entry with cap limit and returns the positions
// Apply refused.
func applyCapped(t testing.TB, f *fsm, idx uint64, limit int64, cmds ...command) []int {
	t.Helper()
	switch r := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: encodeEntry(nil, limit, cmds)}).(type) {
	case nil:
		return nil
	case capRefusals:
		return r
	default:
		t.Fatalf("apply %d: %v", idx, r)
		return nil
	}
}

// Apply holds each entry's cap, in log order, against the map it has:
// whatever the leader's early check believed when it let the writes in. The
// cap counts the keys' and values' bytes plus entryOverhead (P) per key.
func TestApplyHoldsTheCap(t *testing.T) {
	const P = entryOverhead
	v := func(n int) string { return strings.Repeat("v", n) }
	f := newFSM(newCache(), hclog.NewNullLogger())
	check := func(step string, got, want []int, bytes int64) {
		t.Helper()
		if !reflect.DeepEqual(got, want) || f.cache.Bytes() != bytes {
			t.Fatalf("%s: refused %v, %d bytes; want %v, %d bytes", step, got, f.cache.Bytes(), want, bytes)
		}
	}
	// Cap 100 bytes and 3 keys: a (1+39) and m (1+49) fit, b (1+19) would
	// pass it; within one entry, a delete makes room for the writes after it.
	check("fill", applyCapped(t, f, 1, 100+3*P, command{op: opSet, key: "a", value: v(39)}, command{op: opSet, key: "m", value: v(49)},
		command{op: opSet, key: "b", value: v(19)}), []int{2}, 90)
	if _, ok := f.cache.Get("b"); ok {
		t.Fatal("refused b is there")
	}
	check("delete first", applyCapped(t, f, 2, 100+3*P, command{op: opDelete, key: "a"}, command{op: opSet, key: "b", value: v(19)},
		command{op: opSet, key: "c", value: v(19)}), nil, 90)

	// The race: a set of c admitted as a same-size overwrite (no
	// growth), while a delete of c applies first and another write takes
	// its room. The set now adds all of c, and is refused.
	check("delete applies first", applyCapped(t, f, 3, 100+3*P, command{op: opDelete, key: "c"}), nil, 70)
	check("room taken", applyCapped(t, f, 4, 100+3*P, command{op: opSet, key: "d", value: v(19)}), nil, 90)
	check("raced overwrite", applyCapped(t, f, 5, 100+4*P, command{op: opSet, key: "x", value: v(3)},
		command{op: opSetTTL, key: "c", value: v(19), deadline: 1 << 62}), []int{1}, 94)
	if _, ok := f.cache.Get("c"); ok || len(f.cache.deadlines) != 0 {
		t.Fatal("refused ttl set left its key or deadline")
	}

	// A leader with a smaller cap than the map holds: overwrites that do
	// not grow and deletes are taken, growth is not; exactly at the cap is
	// within it; cap 0 is none.
	check("smaller cap", applyCapped(t, f, 6, 50+4*P, command{op: opSet, key: "m", value: v(40)}, command{op: opSet, key: "m", value: v(41)},
		command{op: opSet, key: "x", value: v(3)}, command{op: opDelete, key: "d"}, command{op: opSet, key: "e", value: v(1)}),
		[]int{1, 4}, 65)
	check("exactly at the cap", applyCapped(t, f, 7, 67+4*P, command{op: opSet, key: "e", value: v(1)}), nil, 67)
	// Room for g's byte but not for its overhead: refused.
	check("overhead", applyCapped(t, f, 8, 68+4*P, command{op: opSet, key: "g", value: ""}), []int{0}, 67)
	check("no cap", applyCapped(t, f, 9, 0, command{op: opSet, key: "big", value: v(1000)}), nil, 1070)
	// An entry from before the cap went into the log is applied whole.
	if r := f.Apply(&raft.Log{Index: 10, Data: encodeV1([]command{{op: opSet, key: "old", value: v(100)}})}); r != nil {
		t.Fatalf("old entry: %v", r)
	}

	// An entry from before the overhead (0xB2) is held to its cap on bytes
	// alone, as it was when first applied: 100 bytes take a and m, not b.
	g := newFSM(newCache(), hclog.NewNullLogger())
	r := g.Apply(&raft.Log{Index: 1, Data: encodeV2(100, []command{{op: opSet, key: "a", value: v(39)},
		{op: opSet, key: "m", value: v(49)}, {op: opSet, key: "b", value: v(19)}})})
	if !reflect.DeepEqual(r, capRefusals{2}) || g.cache.Bytes() != 90 {
		t.Fatalf("0xB2 entry: refused %v, %d bytes; want [2], 90", r, g.cache.Bytes())
	}
}

// Random sets (growing, shrinking, with ttl), deletes and caps, as racing
// clients and leaders with different -max-memory would log them: every
// node's Apply gives the same answers and the same map, so does a node that
// restores a snapshot taken half-way and replays the rest, the answers are
// exactly the model's, and a set never takes the map past its entry's cap.
// One entry in four is of version 0xB2, whose cap counts no overhead per
// key, as in a log that spans an upgrade.
func TestApplyCapIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type entry struct {
		limit int64
		old   bool // 0xB2
		cmds  []command
	}
	var log []entry
	for range 2000 {
		e := entry{limit: []int64{0, 200, 300, 400}[rng.IntN(4)] * 3, old: rng.IntN(4) == 0}
		for range 1 + rng.IntN(8) {
			c := command{op: opSet, key: fmt.Sprint("k", rng.IntN(12)), value: strings.Repeat("v", rng.IntN(60))}
			switch rng.IntN(5) {
			case 0:
				c.op, c.value = opDelete, ""
			case 1:
				c.op, c.deadline = opSetTTL, 1<<62
			}
			e.cmds = append(e.cmds, c)
		}
		log = append(log, e)
	}

	model := map[string]string{}
	var modelBytes int64
	nodes := []*fsm{newFSM(newCache(), hclog.NewNullLogger()), newFSM(newCache(), hclog.NewNullLogger())}
	var late *fsm // restored from a snapshot of nodes[0] half-way
	var refusedAny int
	for i, e := range log {
		var want []int
		perKey := int64(entryOverhead)
		if e.old {
			perKey = 0
		}
		charged := func() int64 { return modelBytes + int64(len(model))*perKey }
		for j, c := range e.cmds {
			old, had := model[c.key]
			if c.op == opDelete {
				if had {
					modelBytes -= int64(len(c.key) + len(old))
					delete(model, c.key)
				}
				continue
			}
			grow := int64(len(c.key)+len(c.value)) + perKey
			if had {
				grow = int64(len(c.value) - len(old))
			}
			if e.limit > 0 && grow > 0 && charged()+grow > e.limit {
				want = append(want, j)
				continue
			}
			modelBytes += int64(len(c.value) - len(old))
			if !had {
				modelBytes += int64(len(c.key))
			}
			model[c.key] = c.value
		}
		refusedAny += len(want)
		if i == len(log)/2 {
			snap, err := nodes[0].Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			sink := &memSink{}
			if err := snap.Persist(sink); err != nil {
				t.Fatal(err)
			}
			snap.Release()
			late = newFSM(newCache(), hclog.NewNullLogger())
			if err := late.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, late)
		}
		for n, f := range nodes {
			counted := func() int64 { return f.cache.Bytes() + int64(f.cache.Len())*perKey }
			before := counted()
			var got []int
			if e.old {
				r := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: encodeV2(e.limit, e.cmds)})
				got, _ = r.(capRefusals)
			} else {
				got = applyCapped(t, f, uint64(i+1), e.limit, e.cmds...)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("entry %d (cap %d, old %v), node %d: refused %v, model %v", i, e.limit, e.old, n, got, want)
			}
			if b, c := f.cache.Bytes(), counted(); b != modelBytes || e.limit > 0 && c > max(before, e.limit) {
				t.Fatalf("entry %d (cap %d, old %v), node %d: %d bytes, %d counted (before %d), model %d", i, e.limit, e.old, n, b, c, before, modelBytes)
			}
		}
	}
	if refusedAny == 0 {
		t.Fatal("no set was ever refused: the test tests nothing")
	}
	for n, f := range nodes {
		if got := userKeys(cacheContents(f.cache)); !reflect.DeepEqual(got, model) {
			t.Fatalf("node %d holds %d keys, model %d", n, len(got), len(model))
		}
	}
}

// userKeys drops the deadline records from a cache's contents.
func userKeys(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !strings.HasPrefix(k, ttlKeyPrefix) {
			out[k] = v
		}
	}
	return out
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// The snapshot holds exactly the state at the moment Snapshot() was called,
// however many applies (sets and deletes) run while Persist writes it.
func TestSnapshotIsPointInTime(t *testing.T) {
	f := newFSM(newCache(), hclog.NewNullLogger())
	want := map[string]string{}
	for i := 0; i < 1000; i++ {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		applyCmds(t, f, uint64(i+1), command{op: opSet, key: k, value: v})
		want[k] = v
	}
	applyCmds(t, f, 1001, command{op: opDelete, key: "k7"}, command{op: opSetPeer, key: "r", value: "h"})
	delete(want, "k7")

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // applies race with Persist, as raft allows
		defer wg.Done()
		for i := 0; i < 1000; i++ {
			applyCmds(t, f, uint64(2000+i),
				command{op: opSet, key: fmt.Sprintf("k%d", i), value: "changed"},
				command{op: opDelete, key: fmt.Sprintf("k%d", i+1)},
				command{op: opSet, key: fmt.Sprintf("new%d", i), value: "x"})
		}
	}()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v closed=%v", err, sink.closed)
	}
	wg.Wait()
	snap.Release()

	// state.bin is a JSON object; our own peer record hides under a NUL key.
	var onDisk map[string]string
	if err := json.Unmarshal(sink.Bytes(), &onDisk); err != nil {
		t.Fatalf("state.bin not JSON: %v", err)
	}
	if onDisk[peerKeyPrefix+"r"] != "h" {
		t.Fatal("peer record missing from snapshot")
	}
	delete(onDisk, peerKeyPrefix+"r")
	if !reflect.DeepEqual(onDisk, want) {
		t.Fatalf("snapshot is not the state at the snapshot point (%d keys, want %d)", len(onDisk), len(want))
	}

	// Restore replaces everything, including keys set after the snapshot.
	applyCmds(t, f, 5000, command{op: opSet, key: "after", value: "snapshot"})
	if err := f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := cacheContents(f.cache); !reflect.DeepEqual(got, want) {
		t.Fatalf("restore: %d keys, want %d", len(got), len(want))
	}
	if f.peerHTTP("r") != "h" {
		t.Fatal("restore lost peer record")
	}
	if err := f.Restore(io.NopCloser(strings.NewReader(`["not an object"]`))); err == nil {
		t.Fatal("restore accepted garbage")
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\n\r\t\x1f", "ünï©ødé 🎉", "<html>&", "\u2028"} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil || got != s {
			t.Errorf("%q: got %q err %v", s, got, err)
		}
	}
}

// The streaming reader accepts exactly what encoding/json accepts for a
// map[string]string and yields the same map.
func FuzzReadSnapshot(f *testing.F) {
	f.Add(`{"a":"b","c":"d"}`)
	f.Add(` { "k\"ey" : "v\\al\u00e9\ud83c\udf89" , "x":"" } `)
	f.Add(`{"lone":"\ud800x","bad":"\xff"}`)
	f.Add(`{"a":"b",}`)
	f.Add(`{"a":1}`)
	f.Add(`{}` + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		ours, _, err := readSnapshot(strings.NewReader(in))
		var theirs map[string]string
		jerr := json.Unmarshal([]byte(in), &theirs)
		if strings.TrimSpace(in) == "null" {
			return // json's nil map; never written by us
		}
		if (err == nil) != (jerr == nil) {
			t.Fatalf("%q: ours %v, encoding/json %v", in, err, jerr)
		}
		if err != nil {
			return
		}
		for k, v := range theirs {
			if strings.HasPrefix(k, peerKeyPrefix) {
				delete(theirs, k) // split off as peer records
			} else if got, ok := ours.get(k); !ok || got != v {
				t.Fatalf("%q: key %q: ours %q, json %q", in, k, got, v)
			}
		}
		if ours.Len() != len(theirs) {
			t.Fatalf("%q: %d keys, json %d", in, ours.Len(), len(theirs))
		}
	})
}
