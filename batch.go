package main

import (
	"errors"
	"sync"
	"time"
)

// Limits on one group-commit batch: enough to amortise a commit over many
// clients, small enough that one entry stays a modest message to replicate.
const (
	maxBatchOps   = 1024
	maxBatchBytes = 4 << 20
)

// errStopping: the node is stopping. For a write, it means the write was
// never handed to Raft, so it certainly did not happen; for any other wait
// on Raft (waitFuture, a strong read's round), that the wait was cut short.
var errStopping = errors.New("node is shutting down")

// errAbandoned: the node stopped while the write's entry was with Raft, which
// may never answer for it after its shutdown. It may or may not have happened.
var errAbandoned = errors.New("node shut down while the write was in flight (it may or may not have been applied)")

// committer is group commit: concurrent writes are coalesced into one Raft
// log entry (one Apply, one encoding, one BoltDB insert and fsync), and each
// caller is answered only when its batch is committed and applied, so every
// "ok" still means exactly that. One batch is in flight at a time; the next
// one gathers while it commits, and then for as long as it takes the writers
// just answered to send their next write (see gather), at most one more
// commit's time. A lone client pays no wait.
type committer struct {
	// apply commits and applies one entry; refused lists the positions of
	// the writes that Apply refused for the cap (see capRefusals).
	apply func(entry []byte) (index uint64, refused []int, err error)
	// onBatch, if set before the first write, hears how many writes each
	// entry carried (for /metrics; a hook, so this file knows no metrics).
	onBatch func(writes int)
	// maxBytes, set before the first write, is the cap every entry carries
	// for Apply to hold its sets to (0: none).
	maxBytes int64

	mu      sync.Mutex
	pending []*pendingWrite
	closed  bool

	wake chan struct{} // capacity 1: "pending is not empty"
	stop chan struct{}
	done chan struct{}
}

type pendingWrite struct {
	cmd   command
	index uint64     // the log index that carried it, set before done
	done  chan error // capacity 1, so the committer never blocks on a caller
}

var pendingPool = sync.Pool{New: func() any { return &pendingWrite{done: make(chan error, 1)} }}

func newCommitter(apply func([]byte) (uint64, []int, error)) *committer {
	c := &committer{
		apply: apply,
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go c.run()
	return c
}

// submit queues cmd for the next batch and waits for that batch's outcome:
// the index of the log entry that carried it, or an error: errCacheFull if
// Apply refused it for the cap (it changed nothing; the rest of its batch
// may have been applied).
func (c *committer) submit(cmd command) (uint64, error) {
	p := pendingPool.Get().(*pendingWrite)
	p.cmd = cmd
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		pendingPool.Put(p)
		return 0, errStopping
	}
	c.pending = append(c.pending, p)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // already signalled
	}
	err := <-p.done
	index := p.index
	p.cmd, p.index = command{}, 0
	pendingPool.Put(p)
	return index, err
}

func (c *committer) run() {
	defer close(c.done)
	defer c.closeQueue()
	var batch []*pendingWrite
	var cmds []command
	applied := make(chan applyResult, 1)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
		for {
			batch, cmds = c.take(batch[:0], cmds[:0])
			if len(batch) == 0 {
				break
			}
			size := 26 // version, cap, count
			for _, p := range cmds {
				size += len(p.key) + len(p.value) + 12
			}
			// A fresh buffer each time: Raft keeps the slice until the
			// entry is stored and replicated.
			start := time.Now()
			entry := encodeEntry(make([]byte, 0, size), c.maxBytes, cmds)
			// Apply runs aside so that a stop is never held up by a Raft
			// that does not answer (after its shutdown it may not).
			go func() {
				index, refused, err := c.apply(entry)
				applied <- applyResult{index, refused, err}
			}()
			var res applyResult
			stopped := false
			select {
			case res = <-applied:
			case <-c.stop:
				res.err, stopped = errAbandoned, true
			}
			round := time.Since(start)
			answered := len(batch)
			if c.onBatch != nil {
				c.onBatch(answered)
			}
			refused := res.refused
			for i, p := range batch {
				p.index = res.index
				if len(refused) > 0 && refused[0] == i {
					p.done <- errCacheFull
					refused = refused[1:]
				} else {
					p.done <- res.err
				}
				batch[i] = nil
			}
			clear(cmds)
			if stopped {
				return
			}
			err := res.err
			// A lone writer has no cohort to wait for, and after a failure
			// (lost leadership, say) the writers' next attempts go elsewhere.
			if answered > 1 && err == nil {
				c.gather(answered, round)
			}
		}
	}
}

// gather waits, after a batch is answered, for its writers to come back.
// Without it, under load the writers split into two cohorts that take turns
// (one gathers while the other's batch commits), and every batch holds only
// half of them, for the same fsyncs. It returns as soon as pending has grown
// by the number just answered, and never waits longer than limit (the last
// commit's duration, so it scales with the disk and the load instead of
// being a tuned constant: half of it gathered only about 40 of 64 writers
// on a busy 2-core machine, all of it about 58). Writers that do not come
// back (they read next, or are done) cost at most that.
func (c *committer) gather(answered int, limit time.Duration) {
	c.mu.Lock()
	target := min(len(c.pending)+answered, maxBatchOps)
	c.mu.Unlock()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n >= target {
			return
		}
		select {
		case <-c.wake:
		case <-timer.C:
			return
		case <-c.stop: // run sees it next
			return
		}
	}
}

type applyResult struct {
	index   uint64
	refused []int
	err     error
}

// closeQueue refuses every write still queued and every later one.
func (c *committer) closeQueue() {
	c.mu.Lock()
	c.closed = true
	rest := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, p := range rest {
		p.done <- errStopping
	}
}

// take moves the next batch out of pending, within the batch limits.
func (c *committer) take(batch []*pendingWrite, cmds []command) ([]*pendingWrite, []command) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bytes := 0
	n := 0
	for n < len(c.pending) && n < maxBatchOps {
		p := c.pending[n]
		sz := len(p.cmd.key) + len(p.cmd.value)
		if n > 0 && bytes+sz > maxBatchBytes {
			break
		}
		bytes += sz
		batch = append(batch, p)
		cmds = append(cmds, p.cmd)
		n++
	}
	rest := copy(c.pending, c.pending[n:])
	clear(c.pending[rest:])
	c.pending = c.pending[:rest]
	return batch, cmds
}

// close stops the committer; queued and later writes fail. It returns
// promptly even if Raft never answers for the batch in flight, whose writers
// get errAbandoned.
func (c *committer) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// verifier shares leadership checks among concurrent strong reads. A read
// may only rely on a check that started after the read arrived, so a reader
// that finds a round in flight waits for the next one; every reader that
// arrives meanwhile shares that next round. Under load that is one quorum
// round trip per round, not one per read.
type verifier struct {
	verify func() error

	mu      sync.Mutex
	running bool
	next    *readRound
}

type readRound struct {
	done    chan struct{}
	err     error
	readers int // how many share it (guarded by verifier.mu; for tests)
}

// wait returns the outcome of a leadership check that started after the
// call, or errStopping once stop is closed: Raft may never answer a
// check that was pending when it shut down.
func (v *verifier) wait(stop <-chan struct{}) error {
	v.mu.Lock()
	if v.next == nil {
		v.next = &readRound{done: make(chan struct{})}
	}
	r := v.next
	r.readers++
	if !v.running {
		v.running = true
		v.next = nil
		go v.run(r)
	}
	v.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-stop:
		return errStopping
	}
}

func (v *verifier) run(r *readRound) {
	for r != nil {
		r.err = v.verify()
		close(r.done)
		v.mu.Lock()
		r = v.next
		v.next = nil
		if r == nil {
			v.running = false
		}
		v.mu.Unlock()
	}
}
