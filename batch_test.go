package main

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent writes are coalesced while a batch is in flight, every caller
// gets its own batch's outcome, and nothing is lost or applied twice.
func TestCommitterGroupsWrites(t *testing.T) {
	var mu sync.Mutex
	var entries [][]command
	release := make(chan struct{})
	first := make(chan struct{})
	var calls atomic.Int32
	c := newCommitter(func(entry []byte) error {
		cmds, err := decodeCommands(entry)
		if err != nil {
			return err
		}
		if calls.Add(1) == 1 {
			close(first)
			<-release // hold the first batch in flight
		}
		mu.Lock()
		entries = append(entries, cmds)
		mu.Unlock()
		for _, cmd := range cmds {
			if cmd.key == "fail" {
				return errors.New("boom")
			}
		}
		return nil
	})
	defer c.close()

	errs := make(chan error, 100)
	go func() { errs <- c.submit(command{op: opSet, key: "k0", value: "v"}) }()
	<-first
	for i := 1; i < 50; i++ {
		go func(i int) { errs <- c.submit(command{op: opSet, key: fmt.Sprintf("k%d", i), value: "v"}) }(i)
	}
	waitFor(t, 10*time.Second, "49 writes queued", func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.pending) != 49 {
			return fmt.Errorf("%d pending", len(c.pending))
		}
		return nil
	})
	close(release)
	for i := 0; i < 50; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(entries) != 2 || len(entries[0]) != 1 || len(entries[1]) != 49 {
		t.Fatalf("want batches of 1 and 49, got %d batches", len(entries))
	}

	// A failed batch fails each of its writes.
	if err := c.submit(command{op: opSet, key: "fail", value: "v"}); err == nil {
		t.Fatal("failed batch reported success")
	}

	c.close()
	if err := c.submit(command{op: opSet, key: "late", value: "v"}); !errors.Is(err, errCommitterClosed) {
		t.Fatalf("submit after close: %v", err)
	}
}

// Strong reads that arrive while a check is in flight share the next one; a
// read never relies on a check that started before it arrived.
func TestVerifierSharesRounds(t *testing.T) {
	var rounds atomic.Int32
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	v := &verifier{verify: func() error {
		rounds.Add(1)
		started <- struct{}{}
		<-release
		return nil
	}}
	done := make(chan error, 30)
	go func() { done <- v.wait() }()
	<-started // round 1 is in flight
	for i := 0; i < 20; i++ {
		go func() { done <- v.wait() }()
	}
	waitFor(t, 10*time.Second, "20 readers queued for the next round", func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.next == nil {
			return errors.New("no next round yet")
		}
		return nil
	})
	// Give the 20 goroutines a bounded chance to join the queued round:
	// poll until none is left outside it.
	waitFor(t, 10*time.Second, "readers parked", func() error {
		if len(done) != 0 {
			return errors.New("a reader finished early")
		}
		return nil
	})
	release <- struct{}{} // finish round 1: only the first reader may return
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-started // round 2 runs for everyone else
	close(release)
	for i := 0; i < 20; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := rounds.Load(); n < 2 || n > 3 {
		t.Fatalf("%d rounds for 21 reads, want 2 (3 if a reader was slow to queue)", n)
	}
}
