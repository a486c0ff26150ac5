package main

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Random sets, overwrites and deletes against a plain map, with values from
// empty to larger than a shared chunk, so that chunks fill, compact and are
// reused: the store always holds exactly the model, by get, Len and each.
// With the hash cut to 8 bits, many keys collide with another and live in
// spill, which must behave the same; with 3 bits, nearly all do.
func TestKVStoreModel(t *testing.T) {
	for _, bits := range []uint{64, 8, 3} {
		t.Run("hash bits "+strconv.Itoa(int(bits)), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(bits)))
			s := newKVStore()
			if bits < 64 {
				s.mask = 1<<bits - 1
			}
			model := map[string]string{}
			sizes := []int{0, 1, 10, 100, 1000, 30 << 10, ownChunk + 1}
			for i := range 30000 {
				k := "k" + strconv.Itoa(rng.IntN(300))
				switch r := rng.IntN(10); {
				case r < 7:
					v := strings.Repeat(string(rune('a'+i%26)), sizes[rng.IntN(len(sizes)-1)])
					if rng.IntN(200) == 0 {
						v = strings.Repeat("B", sizes[len(sizes)-1])
					}
					s.set(k, v)
					model[k] = v
				default:
					s.delete(k)
					delete(model, k)
				}
				if got, want := s.Len(), len(model); got != want {
					t.Fatalf("step %d: Len %d, want %d", i, got, want)
				}
				want, present := model[k]
				if v, ok := s.get(k); v != want || ok != present {
					t.Fatalf("step %d: get(%q) = %d bytes %v, want %d bytes %v", i, k, len(v), ok, len(want), present)
				}
			}
			if got := storeMap(s); !reflect.DeepEqual(got, model) {
				t.Fatalf("store holds %d keys, model %d (or other values)", len(got), len(model))
			}
			if bits < 64 && len(s.spill) == 0 {
				t.Fatal("no key went to spill: the collisions are not tested")
			}
			// Chunks hold at most 1.5 times the live entries, plus the
			// unused end of each shared chunk, plus the one being filled.
			capacity, live := s.footprint()
			if capacity > live*3/2+int64(len(s.chunks))*ownChunk+chunkSize {
				t.Fatalf("chunks take %d bytes for %d live", capacity, live)
			}
		})
	}
}

// Compaction drops the chunks that overwrites left mostly dead; a value got
// before, which points into such a chunk, stays as it was.
func TestKVStoreCompaction(t *testing.T) {
	s := newKVStore()
	const keys = 2000
	val := func(round, i int) string { return strconv.Itoa(round) + strings.Repeat("v", 1000) + strconv.Itoa(i) }
	for i := range keys {
		s.set(strconv.Itoa(i), val(0, i))
	}
	held, _ := s.get("7")
	for round := 1; round <= 20; round++ {
		for i := range keys {
			s.set(strconv.Itoa(i), val(round, i))
		}
	}
	if held != val(0, 7) {
		t.Fatal("a value got before compaction changed")
	}
	capacity, live := s.footprint()
	if live < keys*1000 || capacity > live*3/2+chunkSize {
		t.Fatalf("after 20 rewrites: chunks of %d bytes for %d live (20 times the data written)", capacity, live)
	}
	for i := range keys {
		if v, _ := s.get(strconv.Itoa(i)); v != val(20, i) {
			t.Fatalf("key %d: %.10q", i, v)
		}
	}
}

// A clone shares its source's chunks but never writes to them: the source,
// read as a frozen snapshot is, keeps its contents while the clone is
// written, compacted and cloned again; and a source written after it was
// cloned (which the cache never does, but nothing forbids) does not show
// through in the clone either.
func TestKVStoreClone(t *testing.T) {
	s := newKVStore()
	for i := range 3000 {
		s.set(strconv.Itoa(i), strings.Repeat("x", 500))
	}
	s.delete("5")
	want := storeMap(s)
	c := s.clone()
	for round := range 5 {
		for i := range 3000 {
			c.set(strconv.Itoa(i), strings.Repeat("y", 400+round))
		}
		c.delete(strconv.Itoa(round))
		c = c.clone()
	}
	if got := storeMap(s); !maps.Equal(got, want) {
		t.Fatal("the source changed under its clone's writes")
	}
	// Each round sets every key again, then deletes one.
	if v, _ := c.get("100"); v != strings.Repeat("y", 404) || c.Len() != 2999 {
		t.Fatalf("clone: %d keys, %.10q", c.Len(), v)
	}
	if _, ok := c.get("4"); ok {
		t.Fatal("clone: the last round's delete is not there")
	}

	// Both written after the clone: each sees only its own writes.
	s, want = newKVStore(), map[string]string{}
	for i := range 10 {
		s.set(strconv.Itoa(i), "s")
		want[strconv.Itoa(i)] = "s"
	}
	c = s.clone()
	cwant := maps.Clone(want)
	for i := range 10 {
		c.set("c"+strconv.Itoa(i), "clone")
		cwant["c"+strconv.Itoa(i)] = "clone"
		s.set("s"+strconv.Itoa(i), "source")
		want["s"+strconv.Itoa(i)] = "source"
	}
	if got := storeMap(s); !maps.Equal(got, want) {
		t.Fatalf("source: %v", got)
	}
	if got := storeMap(c); !maps.Equal(got, cwant) {
		t.Fatalf("clone: %v", got)
	}
}
