package main

// Bounded memory and expiry. Every node holds the whole map, so a client
// writing without end would exhaust every replica at the same moment.
//
// The cap is held in two places. The guarantee is fsm.Apply's: each log
// entry carries its leader's -max-memory, and Apply refuses, on every node
// alike, a set that would take the map past it (see capRefusals); a write
// refused there changed nothing and is answered 507. Before that, the
// leader refuses early (reserve), before the log, a write that its own view
// says would not fit, so that a flood of refused writes never reaches the
// disk. That view can be wrong under races (a delete applied between a
// write's admission and its commit, a reservation given up by a write that
// timed out but still commits, a new leader that has not applied the last
// term yet), which is why it is only a filter.
//
// Expired keys are reaped through the log, so every node frees the same
// memory, and snapshots lose them alike.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// errCacheFull: the write would take the map past -max-memory, refused by
// the leader before the log, or by Apply. Not executed (507).
var errCacheFull = errors.New("cache full")

// reapEvery is how often the leader looks for expired keys; a key is gone
// from every node's map within about this plus a commit after its deadline
// (and reads as absent from the deadline on).
const reapEvery = 500 * time.Millisecond

// reserve makes room for cmd among the writes queued and in flight, or
// refuses it with errCacheFull: the leader's early filter. Only sets that
// grow the map count; deletes are always accepted. It returns the bytes it
// holds, which the caller gives back (n.inFlight.Add(-held)) once the write
// is answered: by then the map itself holds the bytes (briefly, both count:
// a refusal errs on the safe side). A write it lets through may still be
// refused by Apply, which decides.
//
// Far from the cap it holds what the set would add as a new key, the most
// any set can add, without looking the key up: that lookup took the map's
// lock on every write (1.5% of the leader's CPU at set64, issue 20). Only
// near the cap does it charge the write exactly.
func (n *node) reserve(cmd command) (held int64, err error) {
	max := n.cfg.MaxMemory
	if max <= 0 || (cmd.op != opSet && cmd.op != opSetTTL) {
		return 0, nil
	}
	used := n.cache.Charged()
	grow := charge(cmd.key, cmd.value, "", false, entryOverhead)
	exact := false
	for {
		held := n.inFlight.Load()
		if used+held+grow > max {
			// The guess does not fit: only the exact charge may refuse.
			// Checked here, in the loop, and not once before it: a write
			// admitted meanwhile (a failed CompareAndSwap) made an
			// overwrite that adds nothing a 507 at a full cache (one in a
			// million-key run filled to the cap).
			if exact {
				return 0, errCacheFull
			}
			exact = true
			if grow = n.cache.growth(cmd.key, cmd.value); grow <= 0 {
				return 0, nil
			}
			continue
		}
		if n.inFlight.CompareAndSwap(held, held+grow) {
			return grow, nil
		}
	}
}

// deadlineAfter is now plus ttl by this node's clock (the leader's, since
// only a leader takes writes), in Unix nanoseconds, the form the log entry
// carries. Past what int64 nanoseconds can say (year 2262), it saturates:
// such a key never expires in practice.
func deadlineAfter(ttl time.Duration) int64 {
	now := time.Now().UnixNano()
	if ttl > time.Duration(math.MaxInt64-now) {
		return math.MaxInt64
	}
	return now + int64(ttl)
}

// reapExpired runs for the node's life; while this node is a writable
// leader, it deletes expired keys through the log, at most maxBatchOps per
// entry. An opExpire names the deadline it found, so a key written again
// meanwhile survives it.
func (n *node) reapExpired() {
	defer close(n.reaperDone)
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.stopWatch:
			return
		}
		for n.writable.Load() && !n.removed.Load() {
			found := n.cache.Expired(time.Now().UnixNano(), maxBatchOps)
			if len(found) == 0 {
				break
			}
			cmds := make([]command, len(found))
			for i, e := range found {
				cmds[i] = command{op: opExpire, key: e.key, deadline: e.deadline}
			}
			timer := time.NewTimer(applyTimeout)
			err := n.waitFuture(n.raft.Apply(encodeCommands(nil, cmds), applyTimeout), timer.C)
			timer.Stop()
			if err != nil {
				if !notExecuted(err) && !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, errStopping) {
					n.log.Warn("reaping expired keys failed; will retry", "keys", len(cmds), "error", err)
				}
				break
			}
			if len(found) < maxBatchOps {
				break
			}
		}
	}
}

// parseBytes reads -max-memory: plain bytes, or a number with KiB, MiB or
// GiB (powers of 1024; KB, MB, GB are taken as the same). 0 is no limit.
func parseBytes(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: want bytes, or a number with KiB, MiB or GiB (0: no limit)", s)
	}
	return v * mult, nil
}
