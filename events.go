package main

// The event hub behind GET /events: what this node's Raft does, as a stream
// of Server-Sent Events that the live view (ui/) draws. The hub never blocks
// its publishers (Raft's observer, the FSM, the progress poller): each
// subscriber has a small bounded queue, and a full queue drops the event and
// counts it, so a slow or stuck browser costs the cluster nothing.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxSubscribers caps /events streams per node; the next one gets 503.
	maxSubscribers = 64
	// subscriberQueue is how many events may wait for a slow subscriber
	// before it starts losing them: a few seconds of a busy cluster.
	subscriberQueue = 256
	// pingEvery keeps idle streams alive through proxies (a comment line).
	pingEvery = 15 * time.Second
	// writeTimeout drops a subscriber that stopped reading altogether.
	writeTimeout = 10 * time.Second
	// streamLifetime ends every stream after this long, so that a client
	// that connects and never reads holds its place at most this plus
	// writeTimeout: socket buffers absorb its pings (14 bytes on the wire
	// every 15 s) for weeks before a write blocks (over loopback, 4 MB went
	// in before one did). The stream's last event, "end", says so; the live
	// view reconnects at once, and any EventSource does by itself after the
	// "retry:" it carries.
	streamLifetime = 5 * time.Minute
	// reconnectMillis is the "retry:" of that last event: how long an
	// EventSource waits before it reconnects.
	reconnectMillis = 1000
)

// message is one encoded event: its type and its JSON object.
type message struct {
	typ  string
	data []byte
}

// subscriber is one /events stream.
type subscriber struct {
	queue   chan message
	dropped atomic.Uint64 // events lost since the last one delivered
}

// hub fans events out to every subscriber.
type hub struct {
	node     string        // this node's Raft server ID, in every event
	lifetime time.Duration // of each stream: streamLifetime (tests shorten it)

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	done   chan struct{} // closed by close: streams end (server shutdown)
}

func newHub(node string) *hub {
	return &hub{node: node, lifetime: streamLifetime, subs: make(map[*subscriber]struct{}), done: make(chan struct{})}
}

// subscribe adds a subscriber, or returns false when the hub is full or closed.
func (h *hub) subscribe() (*subscriber, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) >= maxSubscribers {
		return nil, false
	}
	s := &subscriber{queue: make(chan message, subscriberQueue)}
	h.subs[s] = struct{}{}
	return s, true
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// count is the number of subscribers now.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// close ends every stream, so an HTTP shutdown does not wait on them.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// publish sends an event of type typ to every subscriber without ever
// waiting: a subscriber whose queue is full loses it (and is told how many
// it lost with its next event). fields get "node" and "time" added.
func (h *hub) publish(typ string, fields map[string]any) {
	h.mu.Lock()
	n := len(h.subs)
	h.mu.Unlock()
	if n == 0 {
		return // nobody listens: not even the encoding is paid for
	}
	m := h.encode(typ, fields)
	h.mu.Lock()
	for s := range h.subs {
		select {
		case s.queue <- m:
		default:
			s.dropped.Add(1)
		}
	}
	h.mu.Unlock()
}

// encode stamps fields with this node and the time and makes the message.
func (h *hub) encode(typ string, fields map[string]any) message {
	fields["node"] = h.node
	fields["time"] = time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	data, err := json.Marshal(fields)
	if err != nil {
		// Only our own field values go in; this is a bug, not input.
		panic(fmt.Sprintf("encode %s event: %v", typ, err))
	}
	return message{typ: typ, data: data}
}

// serveEvents streams one subscriber's events until the client goes away,
// the hub closes, a write has been stuck for writeTimeout, or the stream has
// lived h.lifetime (then it ends with an "end" event). first is the stream's
// opening event (this node's status).
func (h *hub) serveEvents(w http.ResponseWriter, r *http.Request, first func() map[string]any) {
	s, ok := h.subscribe()
	if !ok {
		w.Header().Set("Retry-After", "5")
		text(w, http.StatusServiceUnavailable, "too many event subscribers\n")
		return
	}
	defer h.unsubscribe(s)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)

	// The opening status is queued like any event, so it goes out before
	// everything published after the subscription.
	buf := appendEvent(nil, h.encode("status", first()), 0)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	expire := time.NewTimer(h.lifetime)
	defer expire.Stop()
	ending := false
	for {
		if len(buf) > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // unsupported only on HTTP/2's test recorders
			if _, err := w.Write(buf); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			buf = buf[:0]
		}
		if ending {
			return
		}
		select {
		case m := <-s.queue:
			buf = appendEvent(buf, m, s.dropped.Swap(0))
			buf = s.appendWaiting(buf) // in the same write
		case <-ping.C:
			buf = append(buf, ": ping\n\n"...)
		case <-expire.C:
			// What was published before the end still goes out first.
			buf = s.appendWaiting(buf)
			buf = append(buf, "retry: "+strconv.Itoa(reconnectMillis)+"\n"...)
			end := h.encode("end", map[string]any{"reason": "lifetime", "lifetime_s": h.lifetime.Seconds()})
			buf = appendEvent(buf, end, s.dropped.Swap(0))
			ending = true
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		}
	}
}

// appendWaiting appends the events waiting in s's queue, up to about 64 KiB.
func (s *subscriber) appendWaiting(buf []byte) []byte {
	for len(buf) < 64<<10 {
		select {
		case m := <-s.queue:
			buf = appendEvent(buf, m, s.dropped.Swap(0))
		default:
			return buf
		}
	}
	return buf
}

// appendEvent writes one SSE message; dropped > 0 is spliced into the JSON
// object as its first field.
func appendEvent(buf []byte, m message, dropped uint64) []byte {
	buf = append(buf, "event: "...)
	buf = append(buf, m.typ...)
	buf = append(buf, "\ndata: "...)
	if dropped > 0 {
		buf = append(buf, `{"dropped":`...)
		buf = strconv.AppendUint(buf, dropped, 10)
		buf = append(buf, ',')
		buf = append(buf, m.data[1:]...)
	} else {
		buf = append(buf, m.data...)
	}
	return append(buf, "\n\n"...)
}
