package main

// The fault test's history and its linearizability check (jepsen_test.go
// drives it): what each client asked and saw, recorded under one logical
// clock, and porcupine's search for an order of the operations that happened
// that explains every answer.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

type kvKind uint8

const (
	kvGet kvKind = iota
	kvSet
	kvDelete
)

func (k kvKind) String() string {
	return [...]string{"get", "set", "delete"}[k]
}

// kvInput is one client request. Values are unique per write, so a read
// names the write it saw.
type kvInput struct {
	Kind  kvKind
	Key   string
	Value string // set only
}

// kvOutput is what a get saw. Writes carry no answer beyond "it happened";
// Open marks a write that may or may not have happened.
type kvOutput struct {
	Value string
	Found bool
	Open  bool
}

// outcome is how the history treats one HTTP exchange.
type outcome int

const (
	outcomeOK            outcome = iota // happened; a get's answer is known
	outcomeRefused                      // the contract's refusal: never executed
	outcomeIndeterminate                // a write that may have happened
	outcomeFailedRead                   // a read with no answer: dropped
	outcomeUnsent                       // the node's port refused the connection: never sent
	numOutcomes
)

func (o outcome) String() string {
	return [...]string{"ok", "refused", "indeterminate", "failed read", "not sent"}[o]
}

const refusalBody = "write method not allowed\n"

// classify decides what one exchange means for the history, following the
// contract: a refusal (307 or 503 with the tutorial's words) was not
// executed; a transport error, a timeout or a 5xx may have been, so a write
// stays open and a read is dropped. The one transport error that proves the
// request was never sent is a refused dial: no server saw a byte of it (and
// writes are POSTs, which net/http never resends once it may have sent
// them). Anything else the contract does not allow
// for a well-formed request comes back as unexpected, and the test fails on
// it (a write among those is still kept open: we cannot know it did not
// happen).
func classify(in kvInput, code int, body string, err error) (o outcome, out kvOutput, unexpected bool) {
	write := in.Kind != kvGet
	ambiguous := outcomeFailedRead
	if write {
		ambiguous = outcomeIndeterminate
	}
	switch {
	case dialRefused(err):
		return outcomeUnsent, kvOutput{}, false
	case err != nil:
		return ambiguous, kvOutput{Open: write}, false
	case (code == http.StatusTemporaryRedirect || code == http.StatusServiceUnavailable) && body == refusalBody:
		return outcomeRefused, kvOutput{}, false
	case code == http.StatusServiceUnavailable && body == "not a member\n":
		// A removed node refuses before it submits anything.
		return outcomeRefused, kvOutput{}, false
	case write && code == http.StatusOK && body == "ok\n":
		return outcomeOK, kvOutput{}, false
	case !write && code == http.StatusOK && strings.HasSuffix(body, "\n") && len(body) > 1:
		return outcomeOK, kvOutput{Value: strings.TrimSuffix(body, "\n"), Found: true}, false
	case !write && code == http.StatusNotFound && body == "\n":
		return outcomeOK, kvOutput{}, false
	case code >= 500:
		return ambiguous, kvOutput{Open: write}, false
	}
	return ambiguous, kvOutput{Open: write}, true
}

func dialRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}

// histOp is one recorded operation. Times are ticks of the history's logical
// clock: only their order matters to the checker, and one clock read under
// one lock can never misorder two events the way two goroutines' wall clocks
// can.
type histOp struct {
	client int
	in     kvInput
	out    kvOutput
	call   int64
	ret    int64 // unused when out.Open: it ends after everything else
	node   string
}

// histNote is a span of the test (a fault, a time without a leader) shown in
// the visualization next to the operations.
type histNote struct {
	tag, desc  string
	start, end int64
}

// history records what the clients saw. Safe for concurrent use.
type history struct {
	mu         sync.Mutex
	clock      int64
	ops        []histOp
	notes      []histNote
	clients    int
	counts     [numOutcomes]int
	okByKind   [3]int
	unexpected []string
	openWhy    map[string]int // why writes ended open: timeout, connection error, or the 5xx code
}

func (h *history) tickLocked() int64 {
	h.clock++
	return h.clock
}

// now returns a fresh tick, for notes.
func (h *history) now() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tickLocked()
}

// newClient returns a fresh client id. A client whose write ended open takes
// a new id, as a crashed Jepsen process does: the open write never ends, and
// a client's operations must not overlap in the visualization.
func (h *history) newClient() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients++
	return h.clients - 1
}

// pendingOp is an operation invoked and not yet answered.
type pendingOp struct {
	h      *history
	client int
	in     kvInput
	call   int64
}

// invoke records the start of an operation. Call it before sending the
// request, so the recorded interval contains the real one.
func (h *history) invoke(client int, in kvInput) *pendingOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return &pendingOp{h: h, client: client, in: in, call: h.tickLocked()}
}

// complete records how the operation ended; refusals and failed reads leave
// no trace in the history but their count.
func (p *pendingOp) complete(o outcome, out kvOutput, node string) {
	h := p.h
	h.mu.Lock()
	defer h.mu.Unlock()
	ret := h.tickLocked()
	h.counts[o]++
	switch o {
	case outcomeOK:
		h.okByKind[p.in.Kind]++
		out.Open = false
	case outcomeIndeterminate:
		out = kvOutput{Open: true}
	default:
		return
	}
	h.ops = append(h.ops, histOp{client: p.client, in: p.in, out: out, call: p.call, ret: ret, node: node})
}

// exchange records one whole request: classification included, so the
// known-bad-history test and the fault test share every step from the HTTP
// reply to the checker.
func (p *pendingOp) exchange(code int, body string, err error, node string) (outcome, bool) {
	o, out, unexpected := classify(p.in, code, body, err)
	if o == outcomeIndeterminate {
		why := fmt.Sprint(code)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			why = "timeout"
		case err != nil:
			why = "connection error"
		}
		p.h.mu.Lock()
		if p.h.openWhy == nil {
			p.h.openWhy = map[string]int{}
		}
		p.h.openWhy[why]++
		p.h.mu.Unlock()
	}
	if unexpected {
		p.h.mu.Lock()
		if len(p.h.unexpected) < 20 {
			p.h.unexpected = append(p.h.unexpected, fmt.Sprintf("%s %s on %s: %d %q", p.in.Kind, p.in.Key, node, code, body))
		}
		p.h.mu.Unlock()
	}
	p.complete(o, out, node)
	return o, unexpected
}

func (h *history) note(tag, desc string, start, end int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, histNote{tag: tag, desc: desc, start: start, end: end})
}

// operations converts the history for porcupine. An open write returns after
// every recorded event: it may have taken effect at any point after its call,
// including after the final reads, which is the same as never.
//
// Open writes that no read can have seen are left out (pruned counts them):
// the search is exponential in the open writes pending at once, and these
// change no verdict. A set's value is unique, so if no read returned it, any
// linearization with the set is one without it (nothing read the value; the
// next operation on the key overwrote it) and any linearization without it
// stays one with the set put last. Likewise a delete after whose call no read
// saw the key absent.
func (h *history) operations() (ops []porcupine.Operation, pruned int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[kvInput]bool{} // {get, key, value} read; {get, key, ""}: absent read, see lastAbsent
	lastAbsent := map[string]int64{}
	for _, op := range h.ops {
		if op.in.Kind != kvGet {
			continue
		}
		if op.out.Found {
			seen[kvInput{Key: op.in.Key, Value: op.out.Value}] = true
		} else if op.ret > lastAbsent[op.in.Key] {
			lastAbsent[op.in.Key] = op.ret
		}
	}
	end := h.clock + 1
	ops = make([]porcupine.Operation, 0, len(h.ops))
	for _, op := range h.ops {
		ret := op.ret
		if op.out.Open {
			switch {
			case op.in.Kind == kvSet && !seen[kvInput{Key: op.in.Key, Value: op.in.Value}],
				op.in.Kind == kvDelete && lastAbsent[op.in.Key] < op.call:
				pruned++
				continue
			}
			ret = end
		}
		ops = append(ops, porcupine.Operation{ClientId: op.client, Input: op.in, Call: op.call, Output: op.out, Return: ret, Metadata: op.node})
	}
	return ops, pruned
}

// kvState is one key's value in the model; the zero value is "absent"
// (the daemon refuses empty values, so "" never names a write).
type kvState struct {
	Value string
	Found bool
}

// kvModel is a register per key: porcupine checks each key's operations on
// their own, which keeps the search small.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() interface{} { return kvState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case kvSet:
			return true, kvState{Value: in.Value, Found: true}
		case kvDelete:
			return true, kvState{}
		}
		return out.Found == s.Found && out.Value == s.Value, s
	},
	Hash: func(state interface{}) uint64 {
		s := state.(kvState)
		f := fnv.New64a()
		_, _ = f.Write([]byte(s.Value)) // hash writes never fail
		if s.Found {
			_, _ = f.Write([]byte{1})
		}
		return f.Sum64()
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(kvInput), output.(kvOutput)
		var s string
		switch in.Kind {
		case kvSet:
			s = fmt.Sprintf("set(%s, %s)", in.Key, in.Value)
		case kvDelete:
			s = fmt.Sprintf("delete(%s)", in.Key)
		default:
			if out.Found {
				return fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
			}
			return fmt.Sprintf("get(%s) -> absent", in.Key)
		}
		if out.Open {
			return s + " ?"
		}
		return s
	},
	DescribeState: func(state interface{}) string {
		if s := state.(kvState); s.Found {
			return s.Value
		}
		return "absent"
	},
	DescribeOperationMetadata: func(info interface{}) string {
		if s, _ := info.(string); s != "" {
			return "answered by " + s
		}
		return ""
	},
}

// checkReport is the checker's verdict on a history.
type checkReport struct {
	result  porcupine.CheckResult
	ops     int
	keys    int
	open    int // open writes checked
	pruned  int // open writes no read can have seen, left out
	elapsed time.Duration
	vizPath string // written unless the result is Ok
	vizErr  error
}

func (r checkReport) String() string {
	s := fmt.Sprintf("%s (%d operations on %d keys, %d of them open writes, checked in %v; %d open writes that no read can have seen left out)", r.result, r.ops, r.keys, r.open, r.elapsed.Round(time.Millisecond), r.pruned)
	if r.result == porcupine.Unknown {
		s += ": the checker timed out, which proves nothing either way"
	}
	if r.vizPath != "" {
		s += "; visualization: " + r.vizPath
	}
	if r.vizErr != nil {
		s += fmt.Sprintf("; visualization failed: %v", r.vizErr)
	}
	return s
}

// checkHistory runs porcupine on the history and, unless it is linearizable,
// writes porcupine's HTML visualization into vizDir.
func checkHistory(h *history, timeout time.Duration, vizDir string) checkReport {
	ops, pruned := h.operations()
	keys := map[string]bool{}
	rep := checkReport{ops: len(ops), pruned: pruned}
	for _, op := range ops {
		keys[op.Input.(kvInput).Key] = true
		if op.Output.(kvOutput).Open {
			rep.open++
		}
	}
	rep.keys = len(keys)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	rep.elapsed = time.Since(start)
	rep.result = res
	if res == porcupine.Ok {
		return rep
	}
	h.mu.Lock()
	var anns []porcupine.Annotation
	for _, n := range h.notes {
		anns = append(anns, porcupine.Annotation{Tag: n.tag, Start: n.start, End: n.end, Description: n.desc})
	}
	h.mu.Unlock()
	info.AddAnnotations(anns)
	if err := os.MkdirAll(vizDir, 0o755); err != nil {
		rep.vizErr = err
		return rep
	}
	path := filepath.Join(vizDir, fmt.Sprintf("jepsen-%s-%s.html", time.Now().Format("20060102-150405.000"), strings.ToLower(string(res))))
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
		rep.vizErr = err
		return rep
	}
	rep.vizPath = path
	return rep
}

// kvClient sends operations over HTTP and records them.
type kvClient struct {
	h      *history
	hc     *http.Client
	id     int
	stale  bool   // reads use consistency=stale
	scheme string // "http://", or "https://" for a cluster run with TLS
	token  string // sent as Bearer when not ""
}

func newKVClient(h *history, hc *http.Client) *kvClient {
	return &kvClient{h: h, hc: hc, id: h.newClient(), scheme: "http://"}
}

func opPath(in kvInput, stale bool) string {
	q := url.Values{"key": {in.Key}}
	switch in.Kind {
	case kvSet:
		q.Set("value", in.Value)
		return "/set?" + q.Encode()
	case kvDelete:
		return "/delete?" + q.Encode()
	}
	if stale {
		q.Set("consistency", "stale")
	} else {
		q.Set("consistency", "strong")
	}
	return "/get?" + q.Encode()
}

// do runs one operation against the node at addr (named node in the
// history) and records it. The reply is returned for its leader hints.
func (c *kvClient) do(ctx context.Context, addr, node string, in kvInput) (reply, outcome, error) {
	p := c.h.invoke(c.id, in)
	var r reply
	path := opPath(in, c.stale)
	var req *http.Request
	var err error
	if in.Kind == kvGet {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, c.scheme+addr+path, nil)
	} else {
		// A POST, so net/http never sends the write twice (it resends a
		// GET on a reused connection that failed, even after sending it).
		u, q, _ := strings.Cut(path, "?")
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.scheme+addr+u, strings.NewReader(q))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if req != nil && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if err == nil {
		var resp *http.Response
		if resp, err = c.hc.Do(req); err == nil {
			var b []byte
			b, err = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			r = reply{code: resp.StatusCode, body: string(b), header: resp.Header}
		}
	}
	o, unexpected := p.exchange(r.code, r.body, err, node)
	if o == outcomeIndeterminate {
		c.id = c.h.newClient()
	}
	if unexpected {
		return r, o, fmt.Errorf("unexpected reply to %s: %d %q", path, r.code, r.body)
	}
	return r, o, err
}

// TestCheckerCatchesBadHistories feeds histories through the same client,
// classification, recording and checking code as the fault test, from fake
// servers that break the contract in known ways (and from correct ones), so
// a passing fault test means something.
func TestCheckerCatchesBadHistories(t *testing.T) {
	type step struct {
		in kvInput
		// timeout: the fake server answers only after the client gave up.
		timeout bool
	}
	set := func(k, v string) step { return step{in: kvInput{Kind: kvSet, Key: k, Value: v}} }
	get := func(k string) step { return step{in: kvInput{Kind: kvGet, Key: k}} }
	del := func(k string) step { return step{in: kvInput{Kind: kvDelete, Key: k}} }

	// fakeStore answers like a one-node stcache whose behaviour the case
	// bends: answer(kind, key, value, data) returns the status code and body
	// and may change data.
	type fake func(n int, in kvInput, data map[string]string) (int, string)
	correct := func(_ int, in kvInput, data map[string]string) (int, string) {
		switch in.Kind {
		case kvSet:
			data[in.Key] = in.Value
			return 200, "ok\n"
		case kvDelete:
			delete(data, in.Key)
			return 200, "ok\n"
		}
		if v, ok := data[in.Key]; ok {
			return 200, v + "\n"
		}
		return 404, "\n"
	}
	// on replaces the answer to the n-th request (counted from 0).
	on := func(at int, f fake) fake {
		return func(n int, in kvInput, data map[string]string) (int, string) {
			if n == at {
				return f(n, in, data)
			}
			return correct(n, in, data)
		}
	}
	// prev remembers each key's value before the last write, to serve stale
	// reads.
	prev := map[string]string{}

	cases := []struct {
		name   string
		steps  []step
		server fake
		want   porcupine.CheckResult
	}{
		{"correct store", []step{set("a", "1"), get("a"), set("b", "x"), set("a", "2"), get("a"), get("b"), del("a"), get("a")}, correct, porcupine.Ok},
		{"stale read after an acknowledged write", []step{set("a", "1"), set("a", "2"), get("a")},
			func(n int, in kvInput, data map[string]string) (int, string) {
				if in.Kind == kvSet {
					prev[in.Key] = data[in.Key]
				}
				code, body := correct(n, in, data)
				if in.Kind == kvGet {
					return 200, prev[in.Key] + "\n"
				}
				return code, body
			}, porcupine.Illegal},
		{"acknowledged write lost: read absent", []step{set("a", "1"), get("a")},
			on(0, func(int, kvInput, map[string]string) (int, string) { return 200, "ok\n" }), porcupine.Illegal},
		{"acknowledged write lost: older value read after the new one", []step{set("a", "1"), set("a", "2"), get("a"), get("a")},
			on(3, func(int, kvInput, map[string]string) (int, string) { return 200, "1\n" }), porcupine.Illegal},
		{"acknowledged delete lost", []step{set("a", "1"), del("a"), get("a")},
			on(1, func(int, kvInput, map[string]string) (int, string) { return 200, "ok\n" }), porcupine.Illegal},
		{"refused write that happened", []step{set("a", "1"), get("a")},
			on(0, func(n int, in kvInput, data map[string]string) (int, string) {
				correct(n, in, data)
				return 503, refusalBody
			}), porcupine.Illegal},
		{"5xx write that happened", []step{set("a", "1"), get("a")},
			on(0, func(n int, in kvInput, data map[string]string) (int, string) {
				correct(n, in, data)
				return 500, "internal error: leadership lost\n"
			}), porcupine.Ok},
		{"5xx write that did not happen", []step{set("a", "1"), get("a")},
			on(0, func(int, kvInput, map[string]string) (int, string) { return 500, "internal error\n" }), porcupine.Ok},
		{"timed-out write that happened", []step{set("a", "1"), {in: kvInput{Kind: kvSet, Key: "a", Value: "2"}, timeout: true}, get("a")}, correct, porcupine.Ok},
		{"open write seen, then unseen", []step{set("a", "1"), set("a", "2"), get("a"), get("a")},
			func(n int, in kvInput, data map[string]string) (int, string) {
				switch n {
				case 1:
					correct(n, in, data)
					return 500, "internal error\n"
				case 3:
					return 200, "1\n"
				}
				return correct(n, in, data)
			}, porcupine.Illegal},
		{"violation on one key among good ones", []step{set("a", "1"), set("b", "1"), get("a"), get("b"), set("c", "1"), get("c")},
			on(3, func(int, kvInput, map[string]string) (int, string) { return 404, "\n" }), porcupine.Illegal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			data := map[string]string{}
			n := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				in := kvInput{Key: r.FormValue("key"), Value: r.FormValue("value")}
				switch r.URL.Path {
				case "/set":
					in.Kind = kvSet
				case "/delete":
					in.Kind = kvDelete
				}
				mu.Lock()
				code, body := tc.server(n, in, data)
				timeout := tc.steps[n].timeout
				n++
				mu.Unlock()
				if timeout {
					// Answer only once the client has given up on us.
					<-r.Context().Done()
					return
				}
				w.WriteHeader(code)
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			h := &history{}
			c := newKVClient(h, &http.Client{Timeout: 500 * time.Millisecond})
			for _, s := range tc.steps {
				_, _, _ = c.do(context.Background(), srv.Listener.Addr().String(), "fake", s.in)
			}
			rep := checkHistory(h, 10*time.Second, t.TempDir())
			t.Logf("%s", rep)
			if rep.result != tc.want {
				t.Fatalf("checker says %s, want %s", rep.result, tc.want)
			}
			if rep.result != porcupine.Ok {
				if fi, err := os.Stat(rep.vizPath); err != nil || fi.Size() == 0 {
					t.Fatalf("no visualization written: %v", rep)
				}
			}
		})
	}

	// Concurrency decides: a read overlapping a write may see either value,
	// but one that starts after the write was acknowledged must see it.
	t.Run("concurrent read may see a write in flight", func(t *testing.T) {
		h := &history{}
		w := h.invoke(0, kvInput{Kind: kvSet, Key: "a", Value: "1"})
		r := h.invoke(1, kvInput{Kind: kvGet, Key: "a"})
		r.exchange(200, "1\n", nil, "n1")
		r2 := h.invoke(1, kvInput{Kind: kvGet, Key: "a"})
		r2.exchange(404, "\n", nil, "n2") // fine only if the write is not yet in place: but r saw it
		w.exchange(200, "ok\n", nil, "n1")
		if rep := checkHistory(h, 10*time.Second, t.TempDir()); rep.result != porcupine.Illegal {
			t.Fatalf("value went back to absent after a read saw it: checker says %s", rep)
		}
		h = &history{}
		w = h.invoke(0, kvInput{Kind: kvSet, Key: "a", Value: "1"})
		r = h.invoke(1, kvInput{Kind: kvGet, Key: "a"})
		r.exchange(404, "\n", nil, "n1")
		r = h.invoke(1, kvInput{Kind: kvGet, Key: "a"})
		r.exchange(200, "1\n", nil, "n1")
		w.exchange(200, "ok\n", nil, "n1")
		if rep := checkHistory(h, 10*time.Second, t.TempDir()); rep.result != porcupine.Ok {
			t.Fatalf("reads during a write: checker says %s", rep)
		}
	})

	t.Run("classification", func(t *testing.T) {
		set, get := kvInput{Kind: kvSet, Key: "k", Value: "v"}, kvInput{Kind: kvGet, Key: "k"}
		_, refused := http.Get("http://" + freeAddr(t) + "/set") // nothing listens there
		for _, c := range []struct {
			in         kvInput
			code       int
			body       string
			err        error
			want       outcome
			unexpected bool
		}{
			{set, 200, "ok\n", nil, outcomeOK, false},
			{set, 307, refusalBody, nil, outcomeRefused, false},
			{set, 503, refusalBody, nil, outcomeRefused, false},
			{set, 503, "internal error\n", nil, outcomeIndeterminate, false},
			{set, 500, "internal error: x\n", nil, outcomeIndeterminate, false},
			{set, 0, "", context.DeadlineExceeded, outcomeIndeterminate, false},
			{set, 0, "", refused, outcomeUnsent, false},
			{set, 0, "", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, outcomeIndeterminate, false},
			{set, 400, "param error\n", nil, outcomeIndeterminate, true},
			{get, 200, "v\n", nil, outcomeOK, false},
			{get, 404, "\n", nil, outcomeOK, false},
			{get, 307, refusalBody, nil, outcomeRefused, false},
			{get, 500, "internal error\n", nil, outcomeFailedRead, false},
			{get, 0, "", context.DeadlineExceeded, outcomeFailedRead, false},
			{get, 200, "\n", nil, outcomeFailedRead, true},
		} {
			o, _, unexpected := classify(c.in, c.code, c.body, c.err)
			if o != c.want || unexpected != c.unexpected {
				t.Errorf("classify(%s, %d %q, %v) = %s, unexpected %v; want %s, %v", c.in.Kind, c.code, c.body, c.err, o, unexpected, c.want, c.unexpected)
			}
		}
	})
}

// A failed run's record holds its schedule and its leaders and terms.
func TestWriteRecord(t *testing.T) {
	nm := &nemesis{schedule: []string{"nemesis at 1.2s: SIGKILL node1[leader] for 2s"}}
	mon := &leaderMonitor{timeline: []string{"    0s  node1 leads term 2", "  1.3s  no usable leader", "  2.4s  node2 leads term 3"}}
	path := writeRecord(t, t.TempDir(), jepsenConfig{mode: "short", nodes: 3, seed: 42}, nm, mon)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range append(append([]string{"seed 42"}, nm.schedule...), mon.timeline...) {
		if !strings.Contains(string(b), want) {
			t.Fatalf("record lacks %q:\n%s", want, b)
		}
	}
}
