package main

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Concurrent writes are coalesced while a batch is in flight, every caller
// gets its own batch's outcome, and nothing is lost or applied twice.
func TestCommitterGroupsWrites(t *testing.T) {
	var mu sync.Mutex
	var entries [][]command
	release := make(chan struct{})
	first := make(chan struct{})
	var calls atomic.Int32
	c := newCommitter(indexed(func(entry []byte) error {
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
	}))
	defer c.close()

	errs := make(chan error, 100)
	go func() { errs <- submitErr(c, command{op: opSet, key: "k0", value: "v"}) }()
	<-first
	for i := 1; i < 50; i++ {
		go func(i int) { errs <- submitErr(c, command{op: opSet, key: fmt.Sprintf("k%d", i), value: "v"}) }(i)
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
	if err := submitErr(c, command{op: opSet, key: "fail", value: "v"}); err == nil {
		t.Fatal("failed batch reported success")
	}

	c.close()
	if err := submitErr(c, command{op: opSet, key: "late", value: "v"}); !errors.Is(err, errStopping) {
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
	go func() { done <- v.wait(nil) }()
	<-started // round 1 is in flight
	for i := 0; i < 20; i++ {
		go func() { done <- v.wait(nil) }()
	}
	// Every one of the 20 must have joined the queued round before round 1
	// ends; otherwise a straggler would rightly need a round of its own.
	waitFor(t, 10*time.Second, "20 readers queued for the next round", func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.next == nil || v.next.readers != 20 {
			return errors.New("not all 20 queued yet")
		}
		return nil
	})
	if len(done) != 0 {
		t.Fatal("a reader finished before its round")
	}
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
	if n := rounds.Load(); n != 2 {
		t.Fatalf("%d rounds for 21 reads, want 2", n)
	}
}

// After a batch is answered, the committer waits for its writers' next
// writes to join the next batch, so writers do not split into two cohorts
// that take turns.
func TestCommitterGathersAnsweredWriters(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	hold := []chan struct{}{make(chan struct{}), make(chan struct{})}
	inFlight := make(chan int, 2)
	var calls atomic.Int32
	c := newCommitter(indexed(func(entry []byte) error {
		cmds, err := decodeCommands(entry)
		if err != nil {
			return err
		}
		if n := int(calls.Add(1)); n <= len(hold) {
			inFlight <- n
			<-hold[n-1]
		}
		mu.Lock()
		sizes = append(sizes, len(cmds))
		mu.Unlock()
		return nil
	}))
	defer c.close()
	queued := func(n int, minAge time.Duration, since time.Time) {
		waitFor(t, 10*time.Second, fmt.Sprintf("%d writes queued", n), func() error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.pending) != n {
				return fmt.Errorf("%d pending", len(c.pending))
			}
			if time.Since(since) < minAge {
				return errors.New("batch not in flight long enough yet")
			}
			return nil
		})
	}

	errs := make(chan error, 20)
	write := func(key string) { errs <- submitErr(c, command{op: opSet, key: key, value: "v"}) }
	go write("x") // batch 1, held
	<-inFlight
	// Writers A and B: batch 2, then each writes again as soon as answered.
	for _, w := range []string{"a", "b"} {
		go func() {
			for i := range 2 {
				if err := submitErr(c, command{op: opSet, key: fmt.Sprint(w, i), value: "v"}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	queued(2, 0, time.Now())
	close(hold[0])
	<-inFlight // batch 2 (A and B) is in flight
	start := time.Now()
	for i := range 4 {
		go write(fmt.Sprint("c", i))
	}
	// Batch 2's time in flight is how long the committer will wait for A
	// and B to come back: make it ample.
	queued(4, 500*time.Millisecond, start)
	close(hold[1])
	for range 1 + 2 + 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 3 || sizes[0] != 1 || sizes[1] != 2 || sizes[2] != 6 {
		t.Fatalf("batch sizes %v, want [1 2 6]: A's and B's second writes should join the four queued ones", sizes)
	}
}

// indexed adapts an apply that only fails or not to the committer's, giving
// entries the indices 1, 2, 3...
func indexed(apply func([]byte) error) func([]byte) (uint64, []int, error) {
	var next atomic.Uint64
	return func(entry []byte) (uint64, []int, error) {
		if err := apply(entry); err != nil {
			return 0, nil, err
		}
		return next.Add(1), nil, nil
	}
}

func submitErr(c *committer, cmd command) error {
	_, err := c.submit(cmd)
	return err
}

// Every write of a batch learns the index of the entry that carried it.
func TestCommitterReportsIndex(t *testing.T) {
	c := newCommitter(func([]byte) (uint64, []int, error) { return 42, nil, nil })
	defer c.close()
	if index, err := c.submit(command{op: opSet, key: "k", value: "v"}); err != nil || index != 42 {
		t.Fatalf("submit = %d, %v; want 42", index, err)
	}
}

// The committer puts its cap into every entry, and a write that Apply
// refused for it is answered errCacheFull while the rest of its batch
// succeeds.
func TestCommitterAnswersCapRefusals(t *testing.T) {
	release := make(chan struct{})
	first := make(chan struct{})
	var calls atomic.Int32
	c := newCommitter(func(entry []byte) (uint64, []int, error) {
		limit, cmds, err := decodeEntry(entry)
		if err != nil || limit != 1000 {
			return 0, nil, fmt.Errorf("entry with cap %d: %v", limit, err)
		}
		if calls.Add(1) == 1 {
			close(first)
			<-release // hold the first batch, so the rest make one batch
		}
		var refused []int
		for i, cmd := range cmds {
			if cmd.value == "big" {
				refused = append(refused, i)
			}
		}
		return 7, refused, nil
	})
	c.maxBytes = 1000
	defer c.close()
	type answer struct {
		value string
		index uint64
		err   error
	}
	answers := make(chan answer, 10)
	submit := func(i int, value string) {
		index, err := c.submit(command{op: opSet, key: fmt.Sprint("k", i), value: value})
		answers <- answer{value, index, err}
	}
	go submit(0, "small")
	<-first
	for i := 1; i <= 6; i++ {
		go submit(i, map[bool]string{true: "big", false: "small"}[i%2 == 0])
	}
	waitFor(t, 10*time.Second, "6 writes queued", func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.pending) != 6 {
			return fmt.Errorf("%d pending", len(c.pending))
		}
		return nil
	})
	close(release)
	full := 0
	for range 7 {
		a := <-answers
		switch {
		case a.value == "big" && errors.Is(a.err, errCacheFull):
			full++
		case a.value == "small" && a.err == nil && a.index == 7:
		default:
			t.Fatalf("write of %q answered %d, %v", a.value, a.index, a.err)
		}
	}
	if full != 3 || calls.Load() != 2 {
		t.Fatalf("%d refused in %d entries; want 3 in 2", full, calls.Load())
	}
}

// A Raft that never answers (as after its shutdown, for an entry still
// queued) must not hold up a stop: close returns, the write in flight gets
// errAbandoned (it may have happened), a queued one errStopping.
func TestCommitterClosesWhileApplyHangs(t *testing.T) {
	// Buffered: the apply's send must not depend on this goroutine having
	// reached its receive yet (unbuffered, the send was dropped once under
	// load and the test hung until the 10-minute timeout).
	entered := make(chan struct{}, 1)
	never := make(chan struct{})
	defer close(never) // lets the stuck apply goroutine end with the test
	c := newCommitter(func([]byte) (uint64, []int, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-never
		return 0, nil, nil
	})
	inFlight := make(chan error, 1)
	go func() { inFlight <- submitErr(c, command{op: opSet, key: "a", value: "v"}) }()
	<-entered
	queued := make(chan error, 1)
	go func() { queued <- submitErr(c, command{op: opSet, key: "b", value: "v"}) }()
	waitFor(t, 10*time.Second, "second write queued", func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.pending) != 1 {
			return fmt.Errorf("%d pending", len(c.pending))
		}
		return nil
	})
	closed := make(chan struct{})
	go func() { c.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return while apply hangs")
	}
	if err := <-inFlight; !errors.Is(err, errAbandoned) {
		t.Fatalf("in-flight write: %v, want errAbandoned", err)
	}
	if err := <-queued; !errors.Is(err, errStopping) {
		t.Fatalf("queued write: %v, want errStopping", err)
	}
}

// A strong read waiting on a leadership check that Raft never answers gives
// up when the node stops.
func TestVerifierWaitEndsOnStop(t *testing.T) {
	never := make(chan struct{})
	defer close(never)
	v := &verifier{verify: func() error { <-never; return nil }}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- v.wait(stop) }()
	close(stop)
	select {
	case err := <-done:
		if !errors.Is(err, errStopping) {
			t.Fatalf("wait = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not end on stop")
	}
}

// While a leadership transfer is in progress raft refuses a barrier at
// once; the retry loop must pause, longer each time, not spin.
func TestBarrierRetryBacksOff(t *testing.T) {
	calls := 0
	barrier := func() error {
		calls++
		if calls <= 8 {
			return raft.ErrLeadershipTransferInProgress
		}
		return nil
	}
	var pauses []time.Duration
	pause := func(d time.Duration) bool { pauses = append(pauses, d); return true }
	if err := retryBarrier(barrier, func() bool { return true }, pause); err != nil {
		t.Fatal(err)
	}
	if calls != 9 || len(pauses) != 8 {
		t.Fatalf("%d barriers, %d pauses; want 9 and 8", calls, len(pauses))
	}
	for i, d := range pauses {
		if d < 10*time.Millisecond || d > time.Second || (i > 0 && d < pauses[i-1]) {
			t.Fatalf("pauses %v: want growing pauses between 10ms and 1s", pauses)
		}
	}
	if pauses[len(pauses)-1] < 500*time.Millisecond {
		t.Fatalf("pauses %v never grew", pauses)
	}
	// A node that stops ends the loop.
	if err := retryBarrier(func() error { return raft.ErrLeadershipTransferInProgress }, func() bool { return true },
		func(time.Duration) bool { return false }); err == nil {
		t.Fatal("retry went on after stop")
	}
}
