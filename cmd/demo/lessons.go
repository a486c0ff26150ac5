package main

// The page's lessons in the terminal. Their steps and words are ui/lessons.json,
// which the page's Lessons panel (ui/lessons.js) reads too: this file only
// implements each step, by its id, doing what the page's step does (the same
// writes and reads to the same nodes, the same supervisor and /lab calls) and
// checking its outcome on the real cluster (/status, /log).
//
// The demo reads lessons.json from the cluster it drives (GET /ui/lessons.json,
// which every node serves from its embedded ui/), not from the checkout: the
// words are then those of the very page the learner has open beside the
// terminal, even when the checkout has moved on since the cluster was built,
// and ui/ stays a plain directory that the daemon embeds (a Go package of its
// own would be needed to share it at build time, cmd/demo being unable to
// embed a parent directory). A step the cluster's lessons.json has and the
// demo does not know is refused before anything runs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// lessonSource is lessons.json.
type lessonSource struct {
	StepTimeoutSeconds int      `json:"step_timeout_seconds"`
	Lessons            []lesson `json:"lessons"`
}

type lesson struct {
	ID    string       `json:"id"`
	Title string       `json:"title"`
	Needs []string     `json:"needs"`
	Steps []lessonStep `json:"steps"`
}

// lessonStep is one step's words: said before it acts, after it when the
// expected outcome happened, and otherwise.
type lessonStep struct {
	ID        string `json:"id"`
	Intro     string `json:"intro"`
	Outcome   string `json:"outcome"`
	Otherwise string `json:"otherwise"`
}

func parseLessons(b []byte) (*lessonSource, error) {
	var src lessonSource
	if err := json.Unmarshal(b, &src); err != nil {
		return nil, fmt.Errorf("lessons.json: %w", err)
	}
	if len(src.Lessons) == 0 {
		return nil, fmt.Errorf("lessons.json: no lessons")
	}
	if src.StepTimeoutSeconds <= 0 {
		src.StepTimeoutSeconds = 20
	}
	return &src, nil
}

// stepIDs lists every step's id, lesson by lesson, in order.
func (src *lessonSource) stepIDs() []string {
	var ids []string
	for _, l := range src.Lessons {
		for _, s := range l.Steps {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

var (
	placeholder = regexp.MustCompile(`\{([a-z_]+)\}`)
	markupTag   = regexp.MustCompile(`</?(b|em)>`)
)

// fill puts the facts in a text's placeholders and makes it plain text for
// a terminal (the page shows <b> and <em>; here they go). It also returns
// the placeholders no fact filled.
func fill(text string, facts map[string]string) (string, []string) {
	var missing []string
	text = placeholder.ReplaceAllStringFunc(text, func(m string) string {
		if v, ok := facts[m[1:len(m)-1]]; ok {
			return v
		}
		missing = append(missing, m)
		return m
	})
	return html.UnescapeString(markupTag.ReplaceAllString(text, "")), missing
}

// wrap breaks text into lines of at most 78 columns, each after the first
// indented by indent.
func wrap(text, indent string) string {
	var b strings.Builder
	col := 0
	for i, w := range strings.Fields(text) {
		n := len([]rune(w))
		if i > 0 && col+1+n > 78 {
			b.WriteString("\n" + indent)
			col = len([]rune(indent))
		} else if i > 0 {
			b.WriteString(" ")
			col++
		}
		b.WriteString(w)
		col += n
	}
	return b.String()
}

// ---- walking them ----

// loadLessons reads lessons.json from the cluster, through the supervisor
// (which relays it from a node), and checks the demo implements every step.
func (d *demo) loadLessons(ctx context.Context) (*lessonSource, error) {
	r := d.request(ctx, "http://"+d.lab, "GET", "/ui/lessons.json", nil, 10*time.Second)
	if !r.ok {
		return nil, fmt.Errorf("GET /ui/lessons.json: %s", r.answer())
	}
	src, err := parseLessons([]byte(r.text))
	if err != nil {
		return nil, err
	}
	for _, id := range src.stepIDs() {
		if _, ok := steps[id]; !ok {
			return nil, fmt.Errorf("the cluster's lessons have a step %q this demo does not know: is the cluster built from another revision? (make stop, make cluster)", id)
		}
	}
	return src, nil
}

func (d *demo) walkLessons(ctx context.Context) error {
	src, err := d.loadLessons(ctx)
	if err != nil {
		return err
	}
	if d.allLesson {
		d.lessonSel = nil
		for i := range src.Lessons {
			d.lessonSel = append(d.lessonSel, i+1)
		}
	}
	for _, i := range d.lessonSel {
		if i > len(src.Lessons) {
			return fmt.Errorf("-lessons: there is no lesson %d (%d lessons)", i, len(src.Lessons))
		}
		if err := d.walkLesson(ctx, src, src.Lessons[i-1]); err != nil {
			return fmt.Errorf("lesson %q: %w", src.Lessons[i-1].Title, err)
		}
	}
	return nil
}

// lessonRun is what a lesson's steps learn and leave for the steps after
// them, as the page's step context.
type lessonRun struct {
	say map[string]string // the facts told so far

	leader, old, f *node
	oldTerm        uint64
	w, stale       result
	strongF        result
	strongL        result
	r              result
	t0             time.Time
	applied        []string // "node2 after 3 ms", in the order seen
	appliedSeen    map[*node]bool
	// lesson 4: the isolated leader's two writes, answered later or never
	lostMu   sync.Mutex
	lost     []result
	lostDone bool
	kept     result
	before   map[uint64]uint64 // index → term: the isolated leader's uncommitted entries
	replaced []uint64
	fLast    uint64
	snap     uint64
}

func (d *demo) walkLesson(ctx context.Context, src *lessonSource, l lesson) error {
	d.say("\n=== Lesson %s ===", l.Title)
	if err := d.settle(ctx); err != nil {
		return err
	}
	if slices.Contains(l.Needs, "lab") {
		s, err := d.status(ctx, d.nodes[0])
		if err != nil {
			return err
		}
		if s.Lab == nil {
			return fmt.Errorf("it needs nodes started with -lab (make cluster's NODEFLAGS have it)")
		}
	}
	c := &lessonRun{say: map[string]string{}, appliedSeen: map[*node]bool{}}
	for k, s := range l.Steps {
		impl := steps[s.ID]
		d.steps++
		intro, missing := fill(s.Intro, c.say)
		d.say("\n== %d. Lesson %s — step %d of %d ==", d.steps, l.Title, k+1, len(l.Steps))
		d.say("%s", wrap(intro, ""))
		if err := d.unfilled(s.ID, "intro", missing); err != nil {
			return err
		}
		d.pause()
		d.walked = append(d.walked, s.ID)
		if err := impl.act(ctx, d, c); err != nil {
			return fmt.Errorf("step %s: %w", s.ID, err)
		}
		timeout := time.Duration(src.StepTimeoutSeconds) * time.Second
		var last error
		err := d.poll(ctx, timeout, "the step's outcome", func() error {
			done, err := impl.until(ctx, d, c)
			if err != nil {
				last = err
				return err
			}
			if !done {
				return errNotYet
			}
			return nil
		})
		if err != nil {
			text, _ := fill(s.Otherwise, c.say)
			why := ""
			if last != nil {
				why = fmt.Sprintf(" (%v)", last)
			}
			d.say("  ✗ %s", wrap(fmt.Sprintf("This did not happen within %d s%s. %s", src.StepTimeoutSeconds, why, text), "    "))
			if d.auto {
				return fmt.Errorf("step %s: its outcome did not come within %d s", s.ID, src.StepTimeoutSeconds)
			}
			continue
		}
		ok, facts, err := impl.tell(ctx, d, c)
		if err != nil {
			return fmt.Errorf("step %s: %w", s.ID, err)
		}
		for k, v := range facts {
			c.say[k] = v
		}
		words := s.Outcome
		mark := "✓"
		if !ok {
			words, mark = s.Otherwise, "✗"
		}
		text, missing := fill(words, c.say)
		d.say("  %s %s", mark, wrap(text, "    "))
		if err := d.unfilled(s.ID, "outcome", missing); err != nil {
			return err
		}
		if !ok && d.auto {
			return fmt.Errorf("step %s: not the expected outcome", s.ID)
		}
	}
	return nil
}

var errNotYet = errors.New("not yet")

// unfilled: a placeholder no fact filled is the page and the demo
// disagreeing on a step's facts; -auto stops there.
func (d *demo) unfilled(id, part string, missing []string) error {
	if len(missing) > 0 && d.auto {
		return fmt.Errorf("step %s: its %s has placeholders the demo does not fill: %v", id, part, missing)
	}
	return nil
}

// settle waits, before a lesson, for the cluster to be whole again: every
// node running (the supervisor starts what a lesson crashed), no link
// faults, a leader, and every node following it, caught up.
func (d *demo) settle(ctx context.Context) error {
	if err := d.startAll(ctx); err != nil {
		return err
	}
	for _, n := range d.nodes {
		if r := d.request(ctx, "http://"+n.HTTP, "POST", "/lab/heal", nil, 5*time.Second); !r.ok && r.status != http.StatusNotFound {
			return fmt.Errorf("heal %s's links: %s", n.Name, r.answer())
		}
	}
	return d.poll(ctx, 60*time.Second, "every node following one leader, caught up", func() error {
		l, ls := d.leaderNow(ctx)
		if l == nil {
			return fmt.Errorf("no leader")
		}
		for _, n := range d.nodes {
			s, err := d.status(ctx, n)
			if err != nil {
				return err
			}
			if n != l && (s.State != "Follower" || s.Leader != l.ID) || s.AppliedIndex < ls.CommitIndex || !ls.hasServer(n.ID) {
				return fmt.Errorf("%s: %s, leader %q, applied %d of %d", n.Name, s.State, s.Leader, s.AppliedIndex, ls.CommitIndex)
			}
		}
		return nil
	})
}

// ---- talking to the cluster as the page does ----

// result is an answer, or its absence, as the page's tryRequest has it.
type result struct {
	ok     bool
	status int // 0: no answer
	text   string
	index  uint64
}

// answer words a result as the page does (ui/lessons.js, answer): a 307
// is named, not quoted, since a page cannot read one.
func (r result) answer() string {
	switch {
	case r.ok && r.index > 0:
		return fmt.Sprintf("ok (log index %d)", r.index)
	case r.ok:
		return "ok"
	case r.status == http.StatusTemporaryRedirect:
		return "307, a redirect to the leader"
	case r.status > 0:
		return fmt.Sprintf("%d %s", r.status, r.text)
	}
	return r.text
}

// request sends one request, never following a redirect; a refusal or no
// answer is a result, not an error.
func (d *demo) request(ctx context.Context, base, method, path string, form url.Values, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return result{text: err.Error()}
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return result{text: fmt.Sprintf("no answer within %v", timeout)}
		}
		return result{text: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{status: resp.StatusCode, text: err.Error()}
	}
	var idx uint64
	fmt.Sscan(resp.Header.Get("X-Raft-Index"), &idx)
	return result{ok: resp.StatusCode/100 == 2, status: resp.StatusCode, text: strings.TrimSpace(string(b)), index: idx}
}

// Writes go as a form body (POST), as the page sends them.
func (d *demo) setKey(ctx context.Context, n *node, key, value string, timeout time.Duration) result {
	return d.request(ctx, "http://"+n.HTTP, "POST", "/set", url.Values{"key": {key}, "value": {value}}, timeout)
}

func (d *demo) getKey(ctx context.Context, n *node, key string, strong bool) result {
	q := "/get?key=" + url.QueryEscape(key)
	if strong {
		q += "&consistency=strong"
	}
	return d.request(ctx, "http://"+n.HTTP, "GET", q, nil, 15*time.Second)
}

// labCall is POST /lab/<what> on n, about peer (nil: none).
func (d *demo) labCall(ctx context.Context, n *node, what string, peer *node) error {
	q := "/lab/" + what
	if peer != nil {
		q += "?peer=" + url.QueryEscape(peer.ID)
	}
	if r := d.request(ctx, "http://"+n.HTTP, "POST", q, nil, 10*time.Second); !r.ok {
		return fmt.Errorf("%s %s: %s", q, n.Name, r.answer())
	}
	return nil
}

// isolate and heal are the page's node-menu actions of the same names.
func (d *demo) isolate(ctx context.Context, n *node) error {
	for _, m := range d.others(n) {
		if err := d.labCall(ctx, n, "cut", m); err != nil {
			return err
		}
		if err := d.labCall(ctx, m, "cut", n); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) heal(ctx context.Context, n *node) error {
	if err := d.labCall(ctx, n, "heal", nil); err != nil {
		return err
	}
	for _, m := range d.others(n) {
		if err := d.labCall(ctx, m, "heal", n); err != nil {
			return err
		}
	}
	return nil
}

// leaderNow is the leader of the highest term any node claims to lead, as
// the page's clusterLeader (an isolated old leader may still say Leader).
func (d *demo) leaderNow(ctx context.Context) (*node, *nodeStatus) {
	var l *node
	var ls *nodeStatus
	for _, n := range d.nodes {
		if s, err := d.status(ctx, n); err == nil && s.State == "Leader" && (ls == nil || s.Term > ls.Term) {
			l, ls = n, s
		}
	}
	return l, ls
}

func (d *demo) mustLeader(ctx context.Context) (*node, *nodeStatus, error) {
	if l, ls := d.leaderNow(ctx); l != nil {
		return l, ls, nil
	}
	return nil, nil, fmt.Errorf("no leader")
}

// followerOf is a node other than l that answers.
func (d *demo) followerOf(ctx context.Context, l *node, last bool) (*node, error) {
	fs := d.others(l)
	if last {
		slices.Reverse(fs)
	}
	for _, n := range fs {
		if _, err := d.status(ctx, n); err == nil {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no follower of %s answers", l.Name)
}

// logTerms is n's /log from..to: index → term.
func (d *demo) logTerms(ctx context.Context, n *node, from, to uint64) (map[uint64]uint64, error) {
	r := d.request(ctx, "http://"+n.HTTP, "GET", fmt.Sprintf("/log?from=%d&to=%d", from, to), nil, 5*time.Second)
	if !r.ok {
		return nil, fmt.Errorf("%s /log: %s", n.Name, r.answer())
	}
	var log struct {
		Entries []struct {
			Index uint64 `json:"index"`
			Term  uint64 `json:"term"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.text), &log); err != nil {
		return nil, fmt.Errorf("%s /log: %w", n.Name, err)
	}
	out := map[uint64]uint64{}
	for _, e := range log.Entries {
		out[e.Index] = e.Term
	}
	return out, nil
}

func majority(members int) int { return members/2 + 1 }
