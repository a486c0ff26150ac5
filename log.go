package main

// The Raft log as a learner sees it: GET /log reads this node's own
// LogStore, and the store raft writes through tells when a follower drops
// conflicting entries from its tail (the truncate event).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/raft"
)

// ---- truncation: the LogStore raft writes through ----

// truncWatchStore is the LogStore raft is given. Everything passes straight
// through to the store it wraps (no work added to StoreLogs, the write
// path) except DeleteRange, which tells the two reasons raft deletes
// entries apart:
//
//   - compaction after a snapshot (snapshot.go's compactLogsWithTrailing,
//     and installSnapshot through compactLogs) deletes the HEAD of the log:
//     it always starts at the store's FirstIndex, and keeps TrailingLogs
//     entries at the tail;
//   - a follower whose entries conflict with the leader's (raft.go's
//     appendEntries: DeleteRange(entry.Index, lastLogIdx)) deletes the
//     TAIL: it ends at the store's LastIndex (only that goroutine appends to
//     a follower's log) and starts after FirstIndex, since the entry before
//     it matched the leader's.
//
// A range that reaches the last index but starts at the first would be the
// whole log conflicting, which needs the leader's and the follower's logs to
// differ from index 1 on (two bootstraps); it is read as compaction, which
// it is with -trailing-logs 0.
type truncWatchStore struct {
	raft.LogStore
	// truncated hears the dropped range and the distinct terms in it,
	// before raft writes the leader's entries in their place.
	truncated func(from, to uint64, terms []uint64)
}

// IsMonotonic passes the wrapped store's raft.MonotonicLogStore answer on,
// which embedding alone would hide. raft-wal refuses an entry that does not
// follow the last one; told so, raft empties the log after installing a
// snapshot instead of keeping the old entries, so that the next append is
// not refused ("non-monotonic log entries") on a follower sent a snapshot.
func (s *truncWatchStore) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// DeleteRange deletes [min, max] and reports it if it is a truncation.
func (s *truncWatchStore) DeleteRange(min, max uint64) error {
	first, errF := s.FirstIndex()
	last, errL := s.LastIndex()
	if errF != nil || errL != nil || min <= first || max < last {
		return s.LogStore.DeleteRange(min, max)
	}
	// Read before deleting: afterwards the terms are gone.
	terms, termsErr := termsIn(s.LogStore, min, max)
	if err := s.LogStore.DeleteRange(min, max); err != nil {
		return err
	}
	if termsErr != nil {
		terms = nil // the range is still worth reporting
	}
	s.truncated(min, max, terms)
	return nil
}

// termsIn returns the distinct terms of the entries in [lo, hi], ascending.
// Terms never decrease along a log, so each term's last index is found by
// bisection: a few reads per term, however many entries are dropped (an
// isolated leader may have appended thousands).
func termsIn(s raft.LogStore, lo, hi uint64) ([]uint64, error) {
	term := func(i uint64) (uint64, error) {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("read log entry %d: %w", i, err)
		}
		return l.Term, nil
	}
	var terms []uint64
	for lo <= hi {
		t, err := term(lo)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		// The last index in [lo, hi] whose term is t.
		a, b := lo, hi
		for a < b {
			mid := a + (b-a+1)/2
			tm, err := term(mid)
			if err != nil {
				return nil, err
			}
			if tm == t {
				a = mid
			} else {
				b = mid - 1
			}
		}
		lo = a + 1
	}
	return terms, nil
}

// truncated is this node's hook for truncWatchStore.
func (n *node) truncated(from, to uint64, terms []uint64) {
	n.log.Info("dropped conflicting log entries (the leader's log replaces them)", "from", from, "to", to, "terms", terms)
	if terms == nil {
		terms = []uint64{}
	}
	n.events.publish("truncate", map[string]any{"from": from, "to": to, "terms": terms})
}

// ---- GET /log ----

// maxLogEntries bounds one /log answer.
const maxLogEntries = 1000

// maxLogValue is how much of a value /log shows.
const maxLogValue = 32

// logEntry is one entry of /log.
type logEntry struct {
	Index uint64  `json:"index"`
	Term  uint64  `json:"term"`
	Type  string  `json:"type"`
	Ops   []logOp `json:"ops,omitempty"`
	Error string  `json:"error,omitempty"` // a command entry that does not decode
}

// logOp is one operation of a command entry.
type logOp struct {
	Op         string `json:"op"`
	Key        string `json:"key"`
	Value      string `json:"value,omitempty"`
	ValueBytes int    `json:"value_bytes,omitempty"` // the whole value's size, when Value is cut
	Expires    string `json:"expires,omitempty"`     // a set with a TTL, an expiry
}

// opNames are the operations' names in /log; the internal records (a
// member's HTTP address) have their own.
var opNames = map[byte]string{
	opSet: "set", opSetTTL: "set", opDelete: "delete", opExpire: "expire",
	opSetPeer: "set_peer", opDeletePeer: "delete_peer",
}

// viewEntry turns a raft log entry into what /log shows.
func viewEntry(l *raft.Log) logEntry {
	e := logEntry{Index: l.Index, Term: l.Term, Type: strings.ToLower(strings.TrimPrefix(l.Type.String(), "Log"))}
	if l.Type != raft.LogCommand {
		return e
	}
	cmds, err := decodeCommands(l.Data)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	e.Ops = make([]logOp, len(cmds))
	for i, c := range cmds {
		op := logOp{Op: opNames[c.op], Key: c.key, Value: cutValue(c.value)}
		if op.Op == "" {
			op.Op = "op" + strconv.Itoa(int(c.op))
		}
		if len(op.Value) < len(c.value) {
			op.ValueBytes = len(c.value)
		}
		if c.deadline != 0 {
			op.Expires = time.Unix(0, c.deadline).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		}
		e.Ops[i] = op
	}
	return e
}

// cutValue returns at most maxLogValue bytes of v, never splitting a
// character (values are UTF-8, checked at /set).
func cutValue(v string) string {
	if len(v) <= maxLogValue {
		return v
	}
	i := maxLogValue
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i]
}

// Log calls visit with this node's log entries from max(from, first) to
// min(to, last), at most maxLogEntries of them, after telling head the
// log's bounds. An entry compacted away while it reads is skipped.
func (n *node) Log(from, to uint64, head func(first, last uint64), visit func(logEntry) error) error {
	first, err := n.raftLog.FirstIndex()
	if err != nil {
		return fmt.Errorf("log first index: %w", err)
	}
	last, err := n.raftLog.LastIndex()
	if err != nil {
		return fmt.Errorf("log last index: %w", err)
	}
	head(first, last)
	lo, hi := max(from, first), min(to, last)
	if hi >= lo && hi-lo >= maxLogEntries {
		hi = lo + maxLogEntries - 1
	}
	for i := lo; i <= hi && i != 0; i++ {
		var l raft.Log
		switch err := n.raftLog.GetLog(i, &l); {
		case errors.Is(err, raft.ErrLogNotFound):
			continue // compacted (or truncated) since we looked
		case err != nil:
			return fmt.Errorf("read log entry %d: %w", i, err)
		}
		if err := visit(viewEntry(&l)); err != nil {
			return err
		}
	}
	return nil
}

// logView is GET /log?from=I&to=J. The entries are written as they are read:
// a thousand entries of a thousand operations each must not sit in memory.
func (a *api) logView(w http.ResponseWriter, r *http.Request, p url.Values) {
	from, errF := strconv.ParseUint(p.Get("from"), 10, 64)
	to, errT := strconv.ParseUint(p.Get("to"), 10, 64)
	if errF != nil || errT != nil || from > to {
		text(w, http.StatusBadRequest, "param error\n")
		return
	}
	var buf []byte
	started, hungUp := false, false
	head := func(first, last uint64) {
		started = true
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		buf = fmt.Appendf(buf, `{"first_index":%d,"last_index":%d,"entries":[`, first, last)
	}
	n := 0
	err := a.store.Log(from, to, head, func(e logEntry) error {
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode log entry %d: %w", e.Index, err)
		}
		buf = append(buf, b...)
		if len(buf) >= 64<<10 {
			if _, err := w.Write(buf); err != nil {
				hungUp = true
				return err
			}
			buf = buf[:0]
		}
		return nil
	})
	switch {
	case hungUp:
	case err != nil && !started:
		a.log.Error("read log", "error", err)
		text(w, http.StatusInternalServerError, "internal error: "+err.Error()+"\n")
	case err != nil:
		// The status line is gone: cut the answer short, so the client sees
		// a broken JSON document rather than a complete-looking one.
		a.log.Error("read log", "error", err)
		panic(http.ErrAbortHandler)
	default:
		_, _ = w.Write(append(buf, "]}\n"...)) // a client that hung up is not our error
	}
}
