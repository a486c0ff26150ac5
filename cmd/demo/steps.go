package main

// Each lesson step, by its id in ui/lessons.json, doing what the page's step
// of the same id does (ui/lessons.js, STEPS): act, wait until the cluster
// shows the outcome, then tell whether the expected outcome happened and the
// facts for the words' placeholders.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type stepImpl struct {
	act   func(ctx context.Context, d *demo, c *lessonRun) error
	until func(ctx context.Context, d *demo, c *lessonRun) (bool, error)
	tell  func(ctx context.Context, d *demo, c *lessonRun) (ok bool, facts map[string]string, err error)
}

func u(i uint64) string { return strconv.FormatUint(i, 10) }

var steps = map[string]stepImpl{
	// 1. A write travels.
	"write": {
		act: func(ctx context.Context, d *demo, c *lessonRun) (err error) {
			if c.leader, _, err = d.mustLeader(ctx); err != nil {
				return err
			}
			c.t0 = time.Now()
			c.w = d.setKey(ctx, c.leader, "lesson1", "hello", 15*time.Second)
			return nil
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			if !c.w.ok {
				return true, nil
			}
			all := true
			for _, n := range d.nodes {
				if c.appliedSeen[n] {
					continue
				}
				s, err := d.status(ctx, n)
				if err != nil {
					continue // a node that does not answer is not waited for, as on the page
				}
				if s.AppliedIndex >= c.w.index {
					c.appliedSeen[n] = true
					c.applied = append(c.applied, fmt.Sprintf("%s after %d ms", n.Name, time.Since(c.t0).Milliseconds()))
				} else {
					all = false
				}
			}
			return all, nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			return c.w.ok, map[string]string{"leader": c.leader.Name, "index": u(c.w.index), "answer": c.w.answer(),
				"applied": strings.Join(c.applied, ", ")}, nil
		},
	},

	// 2. The leader crashes.
	"crash-leader": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			l, ls, err := d.mustLeader(ctx)
			if err != nil {
				return err
			}
			c.old, c.oldTerm = l, ls.Term
			c.r = result{ok: true, text: "ok"}
			if err := d.proc(ctx, l, "crash"); err != nil {
				c.r = result{text: err.Error()}
			}
			c.t0 = time.Now()
			return nil
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			l, ls := d.leaderNow(ctx)
			return l != nil && l != c.old && ls.Term > c.oldTerm && ls.Writable, nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			l, ls, err := d.mustLeader(ctx)
			if err != nil {
				return false, nil, err
			}
			return true, map[string]string{"leader": l.Name, "term": u(ls.Term), "old_term": u(c.oldTerm), "old": c.old.Name,
				"answer": c.r.answer(), "seconds": fmt.Sprintf("%.1f", time.Since(c.t0).Seconds())}, nil
		},
	},
	"restart-old-leader": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			c.r = result{ok: true, text: "ok"}
			if err := d.proc(ctx, c.old, "restart"); err != nil {
				c.r = result{text: err.Error()}
			}
			return nil
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			l, ls := d.leaderNow(ctx)
			s, err := d.status(ctx, c.old)
			return err == nil && l != nil && s.State == "Follower" && s.Leader == l.ID && s.AppliedIndex >= ls.CommitIndex, nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			l, _, err := d.mustLeader(ctx)
			if err != nil {
				return false, nil, err
			}
			s, err := d.status(ctx, c.old)
			if err != nil {
				return false, nil, err
			}
			return true, map[string]string{"leader": l.Name, "applied": u(s.AppliedIndex), "answer": c.r.answer()}, nil
		},
	},

	// 3. A stale read, then a strong one.
	"freeze-and-write": {
		act: func(ctx context.Context, d *demo, c *lessonRun) (err error) {
			if c.leader, _, err = d.mustLeader(ctx); err != nil {
				return err
			}
			if c.f, err = d.followerOf(ctx, c.leader, false); err != nil {
				return err
			}
			w := d.setKey(ctx, c.leader, "lesson3", "old", 15*time.Second)
			if !w.ok {
				return fmt.Errorf("write lesson3=old: %s", w.answer())
			}
			if err := d.poll(ctx, 5*time.Second, "every node to apply lesson3=old", func() error {
				for _, n := range d.nodes {
					if s, err := d.status(ctx, n); err != nil || s.AppliedIndex < w.index {
						return fmt.Errorf("%s has not applied it", n.Name)
					}
				}
				return nil
			}); err != nil {
				return err
			}
			if err := d.proc(ctx, c.f, "freeze"); err != nil {
				return err
			}
			// Keep the leader's news from it for now, so the read that
			// follows is stale for sure; cut before the write, so nothing
			// about the write can already sit in the frozen node's socket
			// when it thaws.
			if err := d.labCall(ctx, c.leader, "cut", c.f); err != nil {
				return err
			}
			c.w = d.setKey(ctx, c.leader, "lesson3", "new", 15*time.Second)
			return d.proc(ctx, c.f, "thaw")
		},
		until: func(context.Context, *demo, *lessonRun) (bool, error) { return true, nil },
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			return c.w.ok, map[string]string{"leader": c.leader.Name, "follower": c.f.Name, "index": u(c.w.index), "answer": c.w.answer()}, nil
		},
	},
	"stale-read": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			c.stale = d.getKey(ctx, c.f, "lesson3", false)
			return nil
		},
		until: func(context.Context, *demo, *lessonRun) (bool, error) { return true, nil },
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			v := c.stale.text
			if !c.stale.ok {
				v = c.stale.answer()
			}
			return c.stale.ok && c.stale.text == "old", map[string]string{"value": v}, nil
		},
	},
	"strong-read": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			c.strongF = d.getKey(ctx, c.f, "lesson3", true)
			c.strongL = d.getKey(ctx, c.leader, "lesson3", true)
			return d.labCall(ctx, c.leader, "heal", c.f)
		},
		until: func(context.Context, *demo, *lessonRun) (bool, error) { return true, nil },
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			v := c.strongL.text
			if !c.strongL.ok {
				v = c.strongL.answer()
			}
			return !c.strongF.ok && c.strongL.ok && c.strongL.text == "new", map[string]string{"refusal": c.strongF.answer(), "value": v}, nil
		},
	},

	// 4. An isolated leader.
	"isolate-leader": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			l, ls, err := d.mustLeader(ctx)
			if err != nil {
				return err
			}
			c.old, c.oldTerm = l, ls.Term
			if err := d.isolate(ctx, l); err != nil {
				return err
			}
			// Sent now, answered later or never: the client waits.
			c.lost = make([]result, 2)
			var wg sync.WaitGroup
			for i, kv := range [][2]string{{"lesson4", "lost-1"}, {"lesson4-b", "lost-2"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := d.setKey(context.WithoutCancel(ctx), l, kv[0], kv[1], 12*time.Second)
					c.lostMu.Lock()
					c.lost[i] = r
					c.lostMu.Unlock()
				}()
			}
			go func() {
				wg.Wait()
				c.lostMu.Lock()
				c.lostDone = true
				c.lostMu.Unlock()
			}()
			return nil
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			l, ls := d.leaderNow(ctx)
			return l != nil && l != c.old && ls.Term > c.oldTerm, nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			l, ls, err := d.mustLeader(ctx)
			if err != nil {
				return false, nil, err
			}
			s, err := d.status(ctx, c.old)
			if err != nil {
				return false, nil, err
			}
			return true, map[string]string{"old": c.old.Name, "leader": l.Name, "term": u(ls.Term), "last": u(s.LastLogIndex)}, nil
		},
	},
	"write-to-majority": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			l, _, err := d.mustLeader(ctx)
			if err != nil {
				return err
			}
			c.kept = d.setKey(ctx, l, "lesson4", "kept", 15*time.Second)
			return nil
		},
		until: func(context.Context, *demo, *lessonRun) (bool, error) { return true, nil },
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			return c.kept.ok, map[string]string{"answer": c.kept.answer()}, nil
		},
	},
	"heal": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			// What the isolated leader holds beyond its commit index: the
			// entries the heal must replace (the page sees the truncate
			// event; here the terms in /log change).
			s, err := d.status(ctx, c.old)
			if err != nil {
				return err
			}
			if s.LastLogIndex > s.CommitIndex {
				if c.before, err = d.logTerms(ctx, c.old, s.CommitIndex+1, s.LastLogIndex); err != nil {
					return err
				}
			}
			return d.heal(ctx, c.old)
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			c.lostMu.Lock()
			lostDone := c.lostDone
			c.lostMu.Unlock()
			s, err := d.status(ctx, c.old)
			if err != nil || !lostDone || s.State != "Follower" || len(c.before) == 0 {
				return false, nil
			}
			lo, hi := bounds(c.before)
			now, err := d.logTerms(ctx, c.old, lo, hi)
			if err != nil {
				return false, nil
			}
			c.replaced = c.replaced[:0]
			for i, term := range c.before {
				if t, ok := now[i]; ok && t != term || !ok && i > s.LastLogIndex {
					c.replaced = append(c.replaced, i)
				}
			}
			return len(c.replaced) == len(c.before), nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			lo, hi := bounds(c.before)
			dropped := "entry " + u(lo)
			if lo != hi {
				dropped = "entries " + u(lo) + "–" + u(hi)
			}
			var terms []uint64
			for _, t := range c.before {
				if !slices.Contains(terms, t) {
					terms = append(terms, t)
				}
			}
			slices.Sort(terms)
			var ts, lost []string
			for _, t := range terms {
				ts = append(ts, u(t))
			}
			ok := true
			for _, r := range c.lost {
				lost = append(lost, r.answer())
				ok = ok && !r.ok
			}
			return ok, map[string]string{"dropped": dropped, "terms": strings.Join(ts, ", "), "lost": strings.Join(lost, "; ")}, nil
		},
	},

	// 5. Catching up by snapshot.
	"crash-follower-and-write": {
		act: func(ctx context.Context, d *demo, c *lessonRun) (err error) {
			if c.leader, _, err = d.mustLeader(ctx); err != nil {
				return err
			}
			if c.f, err = d.followerOf(ctx, c.leader, false); err != nil {
				return err
			}
			s, err := d.status(ctx, c.f)
			if err != nil {
				return err
			}
			c.fLast = s.LastLogIndex
			if err := d.proc(ctx, c.f, "crash"); err != nil {
				return err
			}
			for i := range 300 {
				if w := d.setKey(ctx, c.leader, fmt.Sprintf("lesson5-%d", i%20), strconv.Itoa(i), 15*time.Second); !w.ok {
					return fmt.Errorf("write %d of 300: %s", i+1, w.answer())
				}
			}
			return d.labCall(ctx, c.leader, "snapshot", nil)
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			s, err := d.status(ctx, c.leader)
			if err != nil {
				return false, nil
			}
			c.snap = s.LastSnapshotIndex
			return c.snap > c.fLast+128, nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			return true, map[string]string{"follower": c.f.Name, "snapshot": u(c.snap), "last": u(c.fLast)}, nil
		},
	},
	"restart-follower": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			c.r = result{ok: true, text: "ok"}
			if err := d.proc(ctx, c.f, "restart"); err != nil {
				c.r = result{text: err.Error()}
			}
			return nil
		},
		// Its own snapshots cannot reach the leader's: the entries between
		// are gone from every log, so only InstallSnapshot brings it there.
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			s, err := d.status(ctx, c.f)
			return err == nil && s.LastSnapshotIndex >= c.snap && s.AppliedIndex >= c.snap, nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			s, err := d.status(ctx, c.f)
			if err != nil {
				return false, nil, err
			}
			return true, map[string]string{"applied": u(s.AppliedIndex), "answer": c.r.answer()}, nil
		},
	},

	// 6. Membership: remove a node, add it back.
	"remove-follower": {
		act: func(ctx context.Context, d *demo, c *lessonRun) (err error) {
			if c.leader, _, err = d.mustLeader(ctx); err != nil {
				return err
			}
			if c.f, err = d.followerOf(ctx, c.leader, true); err != nil {
				return err
			}
			c.r = d.request(ctx, "http://"+c.leader.HTTP, "GET", "/leave?peerAddress="+c.f.ID, nil, 15*time.Second)
			return nil
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			if !c.r.ok {
				return true, nil
			}
			s, err := d.status(ctx, c.leader)
			return err == nil && !s.hasServer(c.f.ID), nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			s, err := d.status(ctx, c.leader)
			if err != nil {
				return false, nil, err
			}
			return c.r.ok, map[string]string{"follower": c.f.Name, "answer": c.r.answer(),
				"members": strconv.Itoa(len(s.Servers)), "majority": strconv.Itoa(majority(len(s.Servers)))}, nil
		},
	},
	"add-back": {
		act: func(ctx context.Context, d *demo, c *lessonRun) error {
			c.r = d.request(ctx, "http://"+c.leader.HTTP, "GET", "/join?peerAddress="+c.f.ID+"&httpAddress="+c.f.HTTP, nil, 15*time.Second)
			return nil
		},
		until: func(ctx context.Context, d *demo, c *lessonRun) (bool, error) {
			if !c.r.ok {
				return true, nil
			}
			ls, err := d.status(ctx, c.leader)
			if err != nil {
				return false, nil
			}
			s, err := d.status(ctx, c.f)
			return err == nil && ls.hasServer(c.f.ID) && s.AppliedIndex >= ls.CommitIndex, nil
		},
		tell: func(ctx context.Context, d *demo, c *lessonRun) (bool, map[string]string, error) {
			ls, err := d.status(ctx, c.leader)
			if err != nil {
				return false, nil, err
			}
			s, err := d.status(ctx, c.f)
			if err != nil {
				return false, nil, err
			}
			return c.r.ok, map[string]string{"answer": c.r.answer(), "applied": u(s.AppliedIndex),
				"members": strconv.Itoa(len(ls.Servers)), "majority": strconv.Itoa(majority(len(ls.Servers)))}, nil
		},
	},
}

// bounds is the lowest and highest index of m (non-empty).
func bounds(m map[uint64]uint64) (lo, hi uint64) {
	for i := range m {
		if lo == 0 || i < lo {
			lo = i
		}
		hi = max(hi, i)
	}
	return lo, hi
}
