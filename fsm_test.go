package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	c.Replace(map[string]string{"z": "26"})
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
	b := encodeCommands(nil, cmds)
	got, err := decodeCommands(b)
	if err != nil || !reflect.DeepEqual(got, cmds) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for i := 0; i < len(b); i++ {
		if _, err := decodeCommands(b[:i]); !errors.Is(err, errBadEntry) {
			t.Fatalf("truncated at %d: err %v", i, err)
		}
	}
	if _, err := decodeCommands(append(b, 0)); !errors.Is(err, errBadEntry) {
		t.Fatal("trailing byte accepted")
	}
	if _, err := decodeCommands([]byte(`{"Key":"k","Value":"v"}`)); !errors.Is(err, errBadEntry) {
		t.Fatal("JSON accepted as an entry")
	}
}

func FuzzDecodeCommands(f *testing.F) {
	f.Add(encodeCommands(nil, []command{{op: opSet, key: "k", value: "v"}, {op: opDelete, key: "k"}}))
	f.Add(encodeCommands(nil, []command{{op: opSetTTL, key: "k", value: "v", deadline: 1 << 62}, {op: opExpire, key: "k", deadline: 1 << 62}}))
	f.Add([]byte{entryVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := decodeCommands(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes, and apply
		// without panicking.
		if again := encodeCommands(nil, cmds); !bytes.Equal(again, b) {
			t.Fatalf("decode/encode not inverse: %x -> %x", b, again)
		}
		f := newFSM(newCache(), hclog.NewNullLogger())
		if r := f.Apply(&raft.Log{Data: b}); r != nil {
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
			} else if ours[k] != v {
				t.Fatalf("%q: key %q: ours %q, json %q", in, k, ours[k], v)
			}
		}
		if len(ours) != len(theirs) {
			t.Fatalf("%q: %d keys, json %d", in, len(ours), len(theirs))
		}
	})
}
