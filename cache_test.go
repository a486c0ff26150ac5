package main

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// cacheContents returns a copy of what c holds, as Get sees it.
func cacheContents(c *cache) map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return storeMap(c.mergedLocked())
}

// storeMap returns a copy of what s holds.
func storeMap(s *kvStore) map[string]string {
	m := make(map[string]string, s.Len())
	_ = s.each(func(k, v string) error {
		m[k] = v
		return nil
	})
	return m
}

// checkCache fails unless c holds exactly want, by Get, Len and contents.
func checkCache(t *testing.T, c *cache, want map[string]string) {
	t.Helper()
	if got := cacheContents(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("cache holds %v, want %v", got, want)
	}
	if n := c.Len(); n != len(want) {
		t.Fatalf("Len %d, want %d", n, len(want))
	}
	for k, v := range want {
		if got, ok := c.Get(k); !ok || got != v {
			t.Fatalf("Get(%q) = %q %v, want %q", k, got, ok, v)
		}
	}
}

func filledCache(m map[string]string) *cache {
	c := newCache()
	c.Replace(kvStoreOf(m))
	return c
}

// Writes while frozen are visible at once but leave the frozen map alone;
// Release folds them into the live map.
func TestCacheFreezeRelease(t *testing.T) {
	before := map[string]string{"a": "1", "b": "2", "c": "3"}
	c := filledCache(before)
	frozen, gen := c.Freeze()
	c.update(func(w cacheWriter) {
		w.Set("a", "10")   // overwrite
		w.Delete("b")      // delete
		w.Set("d", "4")    // new key
		w.Delete("absent") // no-op
		w.Set("e", "5")
		w.Delete("e") // new key, then gone
		w.Delete("c")
		w.Set("c", "30") // deleted, then back
	})
	want := map[string]string{"a": "10", "c": "30", "d": "4"}
	checkCache(t, c, want)
	if _, ok := c.Get("b"); ok {
		t.Fatal("deleted key still visible")
	}
	if !reflect.DeepEqual(storeMap(frozen), before) {
		t.Fatalf("frozen map changed: %v", storeMap(frozen))
	}

	c.Release(gen)
	checkCache(t, c, want)
	if c.overlay != nil || !reflect.DeepEqual(storeMap(c.data), want) {
		t.Fatalf("after release: data %v, overlay %v", storeMap(c.data), c.overlay)
	}
	c.Set("f", "6") // straight into the live map again
	if v, _ := c.data.get("f"); c.overlay != nil || v != "6" {
		t.Fatal("write after release did not go to the map")
	}
}

// A Restore during a snapshot swaps the map; the old snapshot's Release must
// neither merge into the new map nor touch the one it streamed.
func TestCacheReleaseAfterReplace(t *testing.T) {
	before := map[string]string{"a": "1"}
	c := filledCache(before)
	frozen, gen := c.Freeze()
	c.Set("a", "2")
	c.Set("b", "3")
	restored := map[string]string{"r": "1"}
	c.Replace(kvStoreOf(restored))
	checkCache(t, c, restored)
	c.Release(gen)
	checkCache(t, c, restored)
	if !reflect.DeepEqual(storeMap(frozen), before) {
		t.Fatalf("frozen map changed: %v", storeMap(frozen))
	}
	c.Set("x", "y")
	if v, _ := c.data.get("x"); c.overlay != nil || v != "y" {
		t.Fatal("write after replace did not go to the map")
	}
}

// Release of an older snapshot, or a second Release, does nothing.
func TestCacheStaleRelease(t *testing.T) {
	c := filledCache(map[string]string{"a": "1"})
	_, gen1 := c.Freeze()
	c.Set("b", "2")
	c.Release(gen1)
	frozen2, gen2 := c.Freeze()
	c.Set("c", "3")
	c.Release(gen1) // stale
	if c.overlay == nil || !reflect.DeepEqual(storeMap(frozen2), map[string]string{"a": "1", "b": "2"}) {
		t.Fatalf("stale release merged: frozen %v, overlay %v", storeMap(frozen2), c.overlay)
	}
	want := map[string]string{"a": "1", "b": "2", "c": "3"}
	checkCache(t, c, want)
	c.Release(gen2)
	c.Release(gen2) // twice
	checkCache(t, c, want)
	if c.overlay != nil {
		t.Fatal("overlay kept after release")
	}
}

// Freeze while a snapshot is unreleased still gives a point-in-time view,
// and neither snapshot's map changes until its own Release.
func TestCacheFreezeWhileFrozen(t *testing.T) {
	c := filledCache(map[string]string{"a": "1", "b": "2"})
	frozen1, gen1 := c.Freeze()
	c.Set("a", "10")
	c.Delete("b")
	c.Set("c", "3")
	frozen2, gen2 := c.Freeze()
	want1 := map[string]string{"a": "1", "b": "2"}
	want2 := map[string]string{"a": "10", "c": "3"}
	if !reflect.DeepEqual(storeMap(frozen2), want2) {
		t.Fatalf("second snapshot %v, want %v", storeMap(frozen2), want2)
	}
	c.Set("d", "4")
	c.Delete("a")
	want := map[string]string{"c": "3", "d": "4"}
	checkCache(t, c, want)
	c.Release(gen1)
	checkCache(t, c, want)
	if !reflect.DeepEqual(storeMap(frozen1), want1) || !reflect.DeepEqual(storeMap(frozen2), want2) {
		t.Fatalf("frozen maps changed: %v, %v", storeMap(frozen1), storeMap(frozen2))
	}
	c.Release(gen2)
	checkCache(t, c, want)
	if c.overlay != nil {
		t.Fatal("overlay kept after release")
	}
}

// Random operations against a plain map that holds what the cache's map
// should hold, deadline records included: Get, Len and Bytes always agree
// with it, a frozen map holds the state of its Freeze until its Release, and
// expiry follows the cache's clock.
func TestCacheModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := newCache()
	const now = int64(1_000_000)
	c.now = func() int64 { return now }
	model := map[string]string{}
	type snap struct {
		m    *kvStore
		want map[string]string
		gen  uint64
	}
	var snaps []snap
	deadline := func(k string) (int64, bool) {
		d, err := strconv.ParseInt(model[ttlKeyPrefix+k], 10, 64)
		return d, err == nil
	}
	for i := 0; i < 8000; i++ {
		k := strconv.Itoa(rng.IntN(50))
		switch r := rng.IntN(100); {
		case r < 30:
			v := strconv.Itoa(i)
			c.Set(k, v)
			model[k] = v
			delete(model, ttlKeyPrefix+k)
		case r < 50:
			v := strconv.Itoa(i)
			d := now - 500 + rng.Int64N(1000) // half of them already expired
			c.update(func(w cacheWriter) { w.SetExpiring(k, v, d) })
			model[k] = v
			model[ttlKeyPrefix+k] = strconv.FormatInt(d, 10)
		case r < 60:
			d, ok := deadline(k)
			if !ok || rng.IntN(3) == 0 {
				d = now + 1 // a stale reap: another deadline than the key's
			}
			c.update(func(w cacheWriter) { w.Expire(k, d) })
			if md, ok := deadline(k); ok && md == d {
				delete(model, k)
				delete(model, ttlKeyPrefix+k)
			}
		case r < 85:
			c.Delete(k)
			delete(model, k)
			delete(model, ttlKeyPrefix+k)
		case r < 92:
			m, gen := c.Freeze()
			snaps = append(snaps, snap{m, maps.Clone(model), gen})
		case r < 99:
			if len(snaps) > 0 {
				j := rng.IntN(len(snaps))
				c.Release(snaps[j].gen)
				snaps = append(snaps[:j], snaps[j+1:]...)
			}
		default:
			// A restore: a snapshot's map, with a deadline record whose
			// key is gone and one that does not parse (both dropped).
			model = map[string]string{"r" + k: k, k: "x", ttlKeyPrefix + k: "999", ttlKeyPrefix + "gone": "1", ttlKeyPrefix + "r" + k: "soon"}
			c.Replace(kvStoreOf(model))
			delete(model, ttlKeyPrefix+"gone")
			delete(model, ttlKeyPrefix+"r"+k)
		}
		keys, bytes := 0, int64(0)
		for mk, mv := range model {
			if !strings.HasPrefix(mk, ttlKeyPrefix) {
				keys++
				bytes += int64(len(mk) + len(mv))
			}
		}
		if n, b := c.Len(), c.Bytes(); n != keys || b != bytes {
			t.Fatalf("step %d: Len %d Bytes %d, want %d %d", i, n, b, keys, bytes)
		}
		want, present := model[k]
		if d, ok := deadline(k); ok && now >= d {
			want, present = "", false
		}
		if v, ok := c.Get(k); v != want || ok != present {
			t.Fatalf("step %d: Get(%q) = %q %v, want %q %v", i, k, v, ok, want, present)
		}
		for _, s := range snaps {
			if !reflect.DeepEqual(storeMap(s.m), s.want) {
				t.Fatalf("step %d: snapshot %d changed before its release", i, s.gen)
			}
		}
	}
	if got := cacheContents(c); !reflect.DeepEqual(got, model) {
		t.Fatalf("cache holds %v, want %v", got, model)
	}
	expired := c.Expired(now, 1000)
	for _, e := range expired {
		if d, ok := deadline(e.key); !ok || d != e.deadline || d > now {
			t.Fatalf("Expired gave %+v; model deadline %d %v", e, d, ok)
		}
	}
}

// growth charges a new key its key, its value and entryOverhead, an
// overwrite the difference; Charged counts the overhead of every key.
func TestCacheGrowth(t *testing.T) {
	c := newCache()
	if g := c.growth("key", "12345"); g != 8+entryOverhead {
		t.Fatalf("new key: %d", g)
	}
	c.Set("key", "12345")
	c.Set("k2", "1")
	if b, ch := c.Bytes(), c.Charged(); b != 11 || ch != 11+2*entryOverhead {
		t.Fatalf("bytes %d, charged %d", b, ch)
	}
	if g := c.growth("key", "12"); g != -3 {
		t.Fatalf("shrinking overwrite: %d", g)
	}
	if g := c.growth("key", "1234567"); g != 2 {
		t.Fatalf("growing overwrite: %d", g)
	}
}

// Readers, a batch writer (with an occasional Replace, as Restore does) and
// a snapshotter that reads its frozen map without the lock, as Persist
// does, all at once: run with -race. Each batch sets every key to one value,
// so a frozen map must hold one value throughout.
func TestCacheConcurrent(t *testing.T) {
	const keys, rounds = 20, 2000
	c := newCache()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(3)
	go func() { // the FSM goroutine
		defer wg.Done()
		defer close(stop)
		for i := 0; i < rounds; i++ {
			v := strconv.Itoa(i)
			if i%500 == 499 {
				m := map[string]string{}
				for k := 0; k < keys; k++ {
					m[strconv.Itoa(k)] = v
				}
				c.Replace(kvStoreOf(m))
				continue
			}
			c.update(func(w cacheWriter) {
				for k := 0; k < keys; k++ {
					w.Delete(strconv.Itoa(k))
					w.Set(strconv.Itoa(k), v)
				}
			})
		}
	}()
	// untilStop runs fn over and over until the writer is done.
	untilStop := func(fn func()) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				fn()
			}
		}
	}
	go untilStop(func() { // the snapshot goroutine
		m, gen := c.Freeze()
		if m.Len() != 0 && m.Len() != keys {
			t.Errorf("snapshot of %d keys", m.Len())
		}
		seen := map[string]bool{}
		_ = m.each(func(_, v string) error {
			seen[v] = true
			return nil
		})
		if len(seen) > 1 {
			t.Errorf("snapshot holds half a batch: %v", seen)
		}
		c.Release(gen)
	})
	go untilStop(func() { // HTTP readers
		if n := c.Len(); n != 0 && n != keys {
			t.Errorf("Len %d between batches", n)
		}
		c.Get("7")
	})
	wg.Wait()
	want := map[string]string{}
	for k := 0; k < keys; k++ {
		want[strconv.Itoa(k)] = strconv.Itoa(rounds - 1)
	}
	checkCache(t, c, want)
}
