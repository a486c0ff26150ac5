"use strict";
// stcache · live Raft view.
//
// Every stcache node streams what happens to it (GET /events, Server-Sent
// Events). This page opens one stream per cluster member and draws what it
// hears: who leads, who votes for whom, how far each node's log has got.
// It never talks Raft itself; it only listens, and sends writes to the leader
// the way any client would.

// ------------------------------------------------------------------ settings

// hashicorp/raft's defaults, which stcache keeps: the leader sends a heartbeat
// about every HeartbeatTimeout/10, and a follower that hears nothing for
// 1–2 × HeartbeatTimeout starts an election.
const HEARTBEAT_EVERY = "~100 ms";
const ELECTION_AFTER = "about 1 s";
// A leader stopped cleanly (Ctrl-C) first hands leadership to a follower
// (stcache calls raft's LeadershipTransfer), which starts an election at once.
// A candidate this soon after the leader went means a handover, not a crash.
const HANDOVER_WINDOW_MS = 700;

const LOG_WINDOW = 30;        // log indices shown per strip
const TIMELINE_CAP = 1000;    // older timeline entries are dropped
const ARROW_MS = 4500;        // how long a vote arrow stays on screen
const WIN_BANNER_MS = 8000;   // how long "node3 won" stays in the ring's centre
const STORY_FADES_MS = 60000; // a settled story gives way to the default text
const WRITE_WAIT_MS = 15000;  // stop waiting for nodes to apply a write
const SCHEME = location.protocol === "https:" ? "https:" : "http:";
const SVGNS = "http://www.w3.org/2000/svg";

// What the server streams, and the filter group of every timeline type.
// "unreachable", "reachable" and "write" are the page's own entries.
const STREAM_TYPES = ["status", "state", "leader", "vote", "heartbeat",
  "membership", "progress", "snapshot", "restore"];
const GROUP_OF = {
  state: "election", leader: "election", vote: "election",
  heartbeat: "health", unreachable: "health", reachable: "health",
  membership: "membership", snapshot: "snapshot", restore: "snapshot",
  write: "write",
};

// ------------------------------------------------------------------ what the page knows

const nodes = new Map();      // Raft server ID -> what we last heard from that node
let order = [];               // member IDs in configuration order: their place on the ring
const hbFailing = new Map();  // "leaderID peerID" -> Date the leader last heard the peer
const elections = new Map();  // term -> {term, candidates, asked, winner, wonAt}
let story = null;             // the latest notable situation ("What just happened?")
let pendingWrite = null;      // the last write, while we watch nodes apply it
let token = "";               // bearer token, asked for when the cluster wants one
let paused = false;
const buffered = [];          // timeline entries that arrived while paused
let highestIndex = 0;         // highest last_log_index seen: anchors the log strips

function ensureNode(id) {
  let n = nodes.get(id);
  if (!n) {
    n = {
      id, name: "", http: "", role: "", term: 0, keys: 0,
      lastLog: 0, commit: 0, applied: 0, snap: 0, leader: "",
      open: false, everOpen: false, reportedDown: false, lostAt: null, leftLeaderAt: 0,
      es: null, retry: 0,
    };
    nodes.set(id, n);
    addNodeFilter(n);
  }
  return n;
}

const members = () => order.map((id) => nodes.get(id));
const nameOf = (id) => (nodes.get(id) && nodes.get(id).name) || id || "?";
const majority = () => Math.floor(order.length / 2) + 1;
const openMembers = () => members().filter((n) => n.open);

// The state a test or a user's script sees: a node whose stream is closed is
// "Unreachable" to us, whatever it last said about itself.
const shownState = (n) => (n.open ? n.role || "Follower" : "Unreachable");

// The leader the page believes in: a reachable node that says it leads. After
// a partition two nodes may both say so; the higher term is the real one.
function clusterLeader() {
  let best = null;
  for (const n of openMembers()) {
    if (n.role === "Leader" && (!best || n.term > best.term)) best = n;
  }
  return best;
}

const clusterTerm = () => Math.max(0, ...members().map((n) => n.term));

function election(term) {
  if (!elections.has(term)) elections.set(term, { term, candidates: new Set(), asked: new Map(), winner: "", startedAt: 0, wonAt: 0 });
  return elections.get(term);
}
const latestElection = () => (elections.size ? elections.get(Math.max(...elections.keys())) : null);

// Membership: the Raft configuration decides who is in the cluster. Each
// member gets a stream; a removed one loses its stream and its place.
function applyServers(servers) {
  const ids = servers.map((s) => s.id);
  const changed = ids.length !== order.length || ids.some((id) => !order.includes(id));
  for (const s of servers) {
    const n = ensureNode(s.id);
    if (s.http && s.http !== n.http) {
      closeStream(n);
      n.http = s.http;
    }
  }
  for (const id of order) if (!ids.includes(id)) removeMember(nodes.get(id));
  order = order.filter((id) => ids.includes(id)).concat(ids.filter((id) => !order.includes(id)));
  for (const n of members()) openStream(n);
  return changed;
}

function removeMember(n) {
  closeStream(n);
  const g = document.querySelector(`#nodes [data-node="${CSS.escape(n.id)}"]`);
  if (g) g.remove();
}

// ------------------------------------------------------------------ streams

function openStream(n) {
  if (n.es || !n.http || !order.includes(n.id)) return;
  const es = new EventSource(`${SCHEME}//${n.http}/events`);
  n.es = es;
  for (const type of STREAM_TYPES) {
    es.addEventListener(type, (msg) => onStreamMessage(n, es, type, msg));
  }
  es.onerror = () => onStreamError(n, es);
}

function closeStream(n) {
  clearTimeout(n.retry);
  if (n.es) n.es.close();
  n.es = null;
  n.open = false;
}

// A broken stream means the node died, or is not up yet. The browser would
// retry by itself every ~3 s (and not at all after an answer that is not a
// stream, such as a 503); we retry every second, so a restarted node shows
// up quickly.
function onStreamError(n, es) {
  if (es !== n.es) return;
  es.close();
  n.es = null;
  clearTimeout(n.retry);
  n.retry = setTimeout(() => openStream(n), 1000);
  if (n.open) {
    nodeLost(n);
  } else if (!n.reportedDown) {
    n.reportedDown = true;
    addEntry("unreachable", n.id, `${b(n.id)} does not answer (its event stream cannot be opened)`);
  }
  scheduleRender();
}

function onStreamMessage(n, es, type, msg) {
  if (es !== n.es) return;
  let ev;
  try { ev = JSON.parse(msg.data); } catch (e) { return; } // not ours to understand
  const note = ev.dropped ? ` <span class="dropped">(${ev.dropped} earlier events from this node were dropped: the page fell behind)</span>` : "";
  HANDLERS[type](n, ev, note);
  scheduleRender();
}

// ------------------------------------------------------------------ event handlers

// Wire field -> our field. These four indices are what the log strips draw.
const INDEX_FIELDS = { term: "term", last_log_index: "lastLog", commit_index: "commit",
  applied_index: "applied", last_snapshot_index: "snap", keys: "keys" };

function copyIndices(n, ev) {
  for (const [wire, ours] of Object.entries(INDEX_FIELDS)) if (wire in ev) n[ours] = ev[wire];
  highestIndex = Math.max(highestIndex, n.lastLog);
  checkWrite(n);
}

const HANDLERS = {
  // First event of every (re)connection: the node's whole state.
  status(n, ev, note) {
    const returning = n.everOpen;
    n.open = n.everOpen = true;
    n.reportedDown = false;
    n.name = ev.name || n.name;
    n.role = ev.state;
    n.leader = ev.leader || "";
    copyIndices(n, ev);
    refreshNodeFilterLabel(n);
    // A (re)started leader reports its followers afresh.
    for (const key of hbFailing.keys()) if (key.startsWith(`${n.id} `)) hbFailing.delete(key);
    if (ev.member === false && order.includes(n.id) && order.length > 1) {
      addEntry("reachable", n.id, `${b(n.id)} answers, but says it is no longer a member of the cluster${note}`);
      return;
    }
    // Trust a leader's configuration; another node's only if we have none.
    if (ev.servers && ev.servers.length && (order.length <= 1 || ev.state === "Leader")) {
      applyServers(ev.servers);
    }
    if (returning) {
      addEntry("reachable", n.id, `${b(n.id)} answers again (its event stream reopened): ${ev.state} in term ${ev.term}${note}`, ev.time);
      if (!storyUnsettled()) setStory({ kind: "back", id: n.id });
    } else {
      addEntry("reachable", n.id, `watching ${b(n.id)}: ${ev.state} in term ${ev.term}, log up to index ${ev.last_log_index}${note}`, ev.time);
    }
  },

  // A role change: the heart of an election.
  state(n, ev, note) {
    const before = n.role;
    // hashicorp/raft turns Candidate before it raises its term (with pre-vote,
    // only once the pre-vote succeeds): the election is for the next term.
    const running = ev.term > clusterTerm() ? ev.term : ev.term + 1;
    n.role = ev.state;
    n.term = ev.term;
    if (before === "Leader" && ev.state !== "Leader") n.leftLeaderAt = Date.now();
    const who = b(n.id);
    if (ev.state === "Candidate") {
      const el = election(running);
      el.candidates.add(n.id);
      el.startedAt = el.startedAt || Date.now();
      // With the leader still in sight, or only just gone, this is a handover
      // (or a follower cut off from it), not a timeout after a crash.
      const l = clusterLeader();
      const quick = (l && l !== n) || (story && story.kind === "leaderLost" && Date.now() - story.lostAt < HANDOVER_WINDOW_MS);
      const how = quick ? "becomes a candidate and" : "timed out waiting for the leader and";
      addEntry("state", n.id, `${who} ${how} asks for votes in term ${running}${note}`, ev.time);
      // A candidate votes for itself and asks every other member.
      for (const m of members()) if (m.id !== n.id) drawVoteArrow(n.id, m.id, running, false);
      if (!story || (story.kind !== "leaderLost" && story.kind !== "election")) setStory({ kind: "election", term: running });
    } else if (ev.state === "Leader") {
      const el = election(ev.term);
      el.winner = n.id;
      el.wonAt = Date.now();
      addEntry("state", n.id, `${who} won the election: it leads term ${ev.term}${note}`, ev.time);
      const lost = story && story.kind === "leaderLost" ? story : null;
      const handover = lost && (el.startedAt || el.wonAt) - lost.lostAt < HANDOVER_WINDOW_MS;
      setStory({ kind: lost ? "failover" : "won", old: lost ? lost.old : "", winner: n.id, term: ev.term, handover });
    } else if (ev.state === "Follower") {
      // No term here: raft reports the role before it adopts the newer term
      // that made it step down, so the event's term can be one behind.
      const why = before === "Leader" ? " — it stepped down as leader"
        : before === "Candidate" ? " — it gave up its candidacy for a newer term or leader" : "";
      addEntry("state", n.id, `${who} becomes a follower${why}${note}`, ev.time);
    } else {
      addEntry("state", n.id, `${who} is now ${esc(ev.state)} (term ${ev.term})${note}`, ev.time);
    }
  },

  leader(n, ev, note) {
    n.leader = ev.leader || "";
    if ("term" in ev) n.term = ev.term;
    let text;
    if (!ev.leader) text = `${b(n.id)} has no leader`;
    else if (ev.leader === n.id) text = `${b(n.id)} knows it is the leader itself (term ${ev.term})`;
    else text = `${b(n.id)} now knows ${b(ev.leader)} as leader (term ${ev.term})`;
    addEntry("leader", n.id, text + note, ev.time);
  },

  // This node (the voter) was asked for its vote. A pre-vote asks "would you
  // vote for me?" without raising the term, so a node that was only cut off
  // for a moment cannot disturb a healthy cluster.
  vote(n, ev, note) {
    election(ev.term).asked.set(n.id, ev.candidate);
    const what = ev.prevote ? "a pre-vote request (would you vote for me?)" : "a vote request";
    addEntry("vote", n.id, `${b(n.id)} got ${what} from ${b(ev.candidate)} for term ${ev.term}${note}`, ev.time);
    drawVoteArrow(ev.candidate, n.id, ev.term, !!ev.prevote);
  },

  // Only a leader sends these: whether a follower answers its heartbeats.
  heartbeat(n, ev, note) {
    const key = `${n.id} ${ev.peer}`;
    if (ev.ok) {
      hbFailing.delete(key);
      addEntry("heartbeat", n.id, `${b(n.id)} (leader) hears ${b(ev.peer)} again${note}`, ev.time);
      if (story && story.kind === "partition" && story.peer === ev.peer) setStory({ kind: "back", id: ev.peer });
      return;
    }
    const since = new Date(ev.last_contact || ev.time);
    hbFailing.set(key, since);
    const last = ev.last_contact ? ` (last answer at ${clock(since)})` : "";
    addEntry("heartbeat", n.id, `${b(n.id)} (leader) lost contact with ${b(ev.peer)}${last}${note}`, ev.time);
    // If we still hear the peer ourselves, it is alive: the network between
    // the two is what broke.
    const peer = nodes.get(ev.peer);
    if (peer && peer.open) setStory({ kind: "partition", leader: n.id, peer: ev.peer });
  },

  membership(n, ev, note) {
    if (order.length > 0 && !order.includes(n.id)) return; // a removed node's stale view
    const changed = applyServers(ev.servers || []);
    const names = (ev.servers || []).map((s) => b(s.id)).join(", ");
    addEntry("membership", n.id, `the cluster now has ${(ev.servers || []).length} members: ${names} <span class="by">(seen by ${b(n.id)})</span>${note}`, ev.time);
    if (changed) setStory({ kind: "membership" });
  },

  progress: copyIndices,

  snapshot(n, ev, note) {
    n.snap = Math.max(n.snap, ev.index);
    addEntry("snapshot", n.id, `${b(n.id)} saved a snapshot up to index ${ev.index} (${plural(ev.keys, "key")}, ${ms(ev.duration_ms)})${note}`, ev.time);
  },

  restore(n, ev, note) {
    addEntry("restore", n.id, `${b(n.id)} loaded a snapshot up to index ${ev.index} (${plural(ev.keys, "key")})${note}`, ev.time);
  },
};

// A stream that was open has closed: to the page, the node is gone.
function nodeLost(n) {
  // It led until now, or until it handed leadership over a moment ago.
  const wasLeader = n.role === "Leader" || Date.now() - n.leftLeaderAt < 3000;
  n.open = false;
  n.reportedDown = true;
  n.lostAt = new Date();
  addEntry("unreachable", n.id, `${b(n.id)} stopped answering (its event stream closed)`);
  const l = clusterLeader();
  const el = l && elections.get(l.term);
  if (wasLeader && l && el && el.winner === l.id && Date.now() - el.wonAt < 3000) {
    // The successor won before the old leader's stream even closed: a handover.
    setStory({ kind: "failover", old: n.id, winner: l.id, term: l.term, handover: true });
  } else if (wasLeader) {
    setStory({ kind: "leaderLost", old: n.id, lostAt: Date.now() });
  } else if (!storyUnsettled()) {
    setStory({ kind: "nodeLost", id: n.id });
  }
  checkWrite(n);
}

// ------------------------------------------------------------------ "What just happened?"

function setStory(s) {
  story = Object.assign({ at: Date.now() }, s);
}

// While a leader is missing we keep telling that story, whatever else happens.
const storyUnsettled = () => story && (story.kind === "leaderLost" || story.kind === "election") && !clusterLeader();

function leaderCommit() {
  const l = clusterLeader();
  return l ? l.commit : Math.max(0, ...openMembers().map((n) => n.commit));
}

function healthy() {
  const l = clusterLeader();
  return l && members().every((n) => n.open) && ![...hbFailing.keys()].some((k) => k.startsWith(`${l.id} `));
}

// "itself + node2": the members that were asked by the winner and now follow it.
function votersOf(el) {
  if (!el || !el.winner) return "";
  const others = [...el.asked].filter(([voter, cand]) => cand === el.winner &&
    nodes.get(voter) && nodes.get(voter).leader === el.winner).map(([voter]) => b(voter));
  return others.length ? ` (itself + ${[...new Set(others)].join(", ")})` : "";
}

function quorumNote() {
  const up = openMembers().length;
  if (up >= majority()) return "";
  return ` <strong>Only ${up} of ${order.length} nodes answer.</strong> Raft needs a majority (${majority()}) to elect a leader or commit a write, so the cluster waits until enough nodes return.`;
}

function explain() {
  const l = clusterLeader();
  const s = story && Date.now() - story.at < STORY_FADES_MS || !healthy() ? story : null;
  if (order.length && openMembers().length === 0) {
    return ["No node answers", "The page cannot open any node's event stream. Start the nodes (or check the addresses) and the view fills in by itself.", true];
  }
  if (!s) return defaultStory(l);
  const el = latestElection();
  const cand = el && !el.winner ? [...el.candidates].pop() : "";
  switch (s.kind) {
    case "leaderLost": {
      let text = `The leader (${b(s.old)}) stopped answering. Stopped cleanly, it hands leadership to a follower on its way out; after a crash the followers notice the missing heartbeats (one every ${HEARTBEAT_EVERY}) after ${ELECTION_AFTER}, and one of them becomes a <em>candidate</em> and asks the others for votes in a new term. Until someone wins a majority there is no leader, and writes are refused (503).`;
      if (cand) text += ` Right now ${b(cand)} is a candidate in term ${el.term} and waits for votes.`;
      return ["The leader stopped", text + quorumNote()];
    }
    case "election": {
      const text = cand
        ? `${b(cand)} became a <em>candidate</em>: it votes for itself and asks the others for their vote in term ${el.term}. It needs ${majority()} of ${order.length} votes. Each node votes at most once per term, so at most one candidate can win.`
        : `An election took place in term ${s.term}.`;
      return [`Election in term ${s.term}`, text + quorumNote()];
    }
    case "failover": {
      const old = nodes.get(s.old);
      const then = old && old.open
        ? `${b(s.old)} is back and follows ${b(s.winner)}; it catches up from the leader's log.`
        : `${b(s.old)} will follow it when it returns.`;
      const won = `asked the others for votes in term ${s.term} and won a majority${votersOf(elections.get(s.term))}. Writes go to ${b(s.winner)} now; ${then}`;
      return [`New leader: ${nameOf(s.winner)}`, (s.handover
        ? `The leader (${b(s.old)}) was stopped. On its way out it handed leadership over: it told ${b(s.winner)}, a follower with an up-to-date log, to start an election at once instead of waiting ${ELECTION_AFTER} for the heartbeats to stop. ${b(s.winner)} ${won} <span class="aside">(A crash, such as kill -9, gives no handover: the followers first wait ${ELECTION_AFTER} without heartbeats.)</span>`
        : `The leader (${b(s.old)}) stopped. Followers expect a heartbeat every ${HEARTBEAT_EVERY}; after ${ELECTION_AFTER} of silence ${b(s.winner)} became a candidate, ${won}`) + quorumNote()];
    }
    case "won":
      return [`New leader: ${nameOf(s.winner)}`,
        `${b(s.winner)} won the election of term ${s.term} with a majority of the votes${votersOf(elections.get(s.term))}. It now sends heartbeats to the others so they do not start an election of their own, and every write goes to it.` + quorumNote()];
    case "nodeLost": {
      const n = nodes.get(s.id);
      const text = l
        ? `${b(s.id)} (a follower) stopped answering. The leader ${b(l.id)} carries on: a write only needs a majority (${majority()} of ${order.length}) to be committed. When ${b(s.id)} returns it catches up from the leader's log, or from a snapshot if it is too far behind.`
        : `${b(s.id)} stopped answering.`;
      return [`${nameOf(s.id)} stopped`, (n && n.open ? `${b(s.id)} is back now. ` : "") + text + quorumNote()];
    }
    case "back": {
      const n = nodes.get(s.id);
      const lag = n ? Math.max(0, leaderCommit() - n.applied) : 0;
      const catchup = lag > 0 ? `It is ${plural(lag, "entry", "entries")} behind and catching up.` : "It has caught up: its log matches the leader's.";
      const who = l && l.id !== s.id ? ` It learned that ${b(l.id)} leads term ${l.term} and follows it; the leader sends it the entries it missed.` : "";
      return [`${nameOf(s.id)} is back`, `${b(s.id)} answers again.${who} ${catchup}`];
    }
    case "partition":
      return [`${nameOf(s.leader)} cannot reach ${nameOf(s.peer)}`,
        `The leader ${b(s.leader)} gets no answer from ${b(s.peer)}, yet ${b(s.peer)} still answers this page: the network between them is broken (or ${b(s.peer)} is paused). The leader keeps going as long as a majority answers it. ${b(s.peer)} will time out and start elections, but pre-vote keeps it from disrupting the others.`];
    case "membership":
      return ["Membership changed", `The cluster's configuration is itself a Raft log entry. It now has ${order.length} members (${order.map(b).join(", ")}), so a majority is ${majority()}.` + quorumNote()];
    default:
      return defaultStory(l);
  }
}

function defaultStory(l) {
  if (!l) {
    return ["No leader yet", `No node leads right now. Nodes that hear no leader for ${ELECTION_AFTER} become candidates and ask for votes; the first to get a majority leads the next term.` + quorumNote(), true];
  }
  const followers = members().filter((n) => n !== l).map((n) => b(n.id)).join(", ") || "none";
  const down = members().filter((n) => !n.open);
  const downNote = down.length ? ` Right now ${down.map((n) => b(n.id)).join(", ")} ${down.length > 1 ? "do" : "does"} not answer; the cluster keeps working as long as a majority (${majority()} of ${order.length}) is up.` : "";
  return [down.length ? "Leader and followers" : "A healthy cluster",
    `${b(l.id)} is the <em>leader</em> of term ${l.term}: every write goes to it. It appends the write to its <em>log</em> and copies it to the <em>followers</em> (${followers}); once a majority has it on disk the entry is <em>committed</em>, and every node <em>applies</em> it to its map. Heartbeats every ${HEARTBEAT_EVERY} tell the followers the leader is alive; if they stop, a follower starts an election and the <em>term</em> (the election's number) goes up.${downNote}`, true];
}

// ------------------------------------------------------------------ drawing: cluster ring

// The ring is sized for three nodes; with more it shrinks to stay in view.
const RING = { cx: 260, node: 56, top: 70, bottom: 300 }; // node: circle radius; top/bottom: centres

function ringGeometry() {
  const k = Math.max(1, order.length);
  const sines = [...Array(k).keys()].map((i) => Math.sin(-Math.PI / 2 + (2 * Math.PI * i) / k));
  const span = Math.max(...sines) - Math.min(...sines) || 1;
  const r = Math.min(148, (RING.bottom - RING.top) / span);
  const chord = k > 1 ? 2 * r * Math.sin(Math.PI / k) : 999;
  return { r, cy: RING.top - r * Math.min(...sines), scale: Math.min(1, (chord / 2 - 4) / RING.node) };
}

function positionOf(id) {
  const geo = ringGeometry();
  const a = -Math.PI / 2 + (2 * Math.PI * order.indexOf(id)) / Math.max(1, order.length);
  return { x: RING.cx + geo.r * Math.cos(a), y: geo.cy + geo.r * Math.sin(a) };
}

// Squeeze a label that would overflow its place (a long server ID, say).
function fitText(t, text, maxWidth, charWidth) {
  t.textContent = text;
  if (text.length * charWidth > maxWidth) {
    t.setAttribute("textLength", maxWidth);
    t.setAttribute("lengthAdjust", "spacingAndGlyphs");
  } else {
    t.removeAttribute("textLength");
  }
}

// One <g data-node> per member, kept (not redrawn) so scripts can hold on to it.
function nodeElement(n) {
  let g = document.querySelector(`#nodes [data-node="${CSS.escape(n.id)}"]`);
  if (g) return g;
  g = svg("g", { class: "node", "data-node": n.id });
  g.append(svg("circle", { class: "halo", r: RING.node + 9 }),
    svg("circle", { class: "body", r: RING.node }),
    svg("text", { class: "name", y: -16 }), svg("text", { class: "role", y: 3 }),
    svg("text", { class: "term", y: 20 }), svg("text", { class: "keys", y: 35 }),
    svg("title"));
  document.getElementById("nodes").append(g);
  return g;
}

function drawNode(n) {
  const g = nodeElement(n), state = shownState(n), p = positionOf(n.id);
  g.setAttribute("transform", `translate(${p.x.toFixed(1)},${p.y.toFixed(1)}) scale(${ringGeometry().scale.toFixed(2)})`);
  g.setAttribute("class", `node ${state.toLowerCase()}`);
  Object.entries({
    state, term: n.term, "last-log-index": n.lastLog, "commit-index": n.commit,
    "applied-index": n.applied, "snapshot-index": n.snap,
  }).forEach(([k, v]) => g.setAttribute(`data-${k}`, v));
  const connecting = !n.open && !n.reportedDown;
  fitText(g.querySelector(".name"), nameOf(n.id), 92, 10);
  g.querySelector(".role").textContent = !n.http ? "address unknown" : connecting ? "connecting…" : state;
  g.querySelector(".term").textContent = n.open ? `term ${n.term}` : n.everOpen ? `last seen term ${n.term}` : "never seen";
  g.querySelector(".keys").textContent = n.open ? plural(n.keys, "key") : n.lostAt ? `since ${clock(n.lostAt, false)}` : "";
  g.querySelector("title").textContent = `${nameOf(n.id)} — Raft ID ${n.id}, HTTP ${n.http || "unknown"}\n` +
    `${state}, term ${n.term}; log ${n.lastLog}, committed ${n.commit}, applied ${n.applied}, snapshot ${n.snap}`;
}

// Leader → follower lines: the path of heartbeats and log entries. Redrawn
// only when something about them changes, so the heartbeat dots keep moving.
let linksDrawn = "";
function drawLinks() {
  const l = clusterLeader();
  const links = !l ? [] : members().filter((f) => f !== l).map((f) => {
    const since = hbFailing.get(`${l.id} ${f.id}`);
    return { f, since, kind: since ? "failing" : f.open ? "ok" : "lost",
      voting: arrows.has(`${l.id} ${f.id}`) || arrows.has(`${f.id} ${l.id}`) };
  });
  const signature = JSON.stringify([l && l.id, order, links.map((k) => [k.f.id, k.kind, k.voting, String(k.since)])]);
  if (signature === linksDrawn) return;
  linksDrawn = signature;
  const layer = document.getElementById("links");
  layer.textContent = "";
  const a = l && positionOf(l.id);
  for (const { f, since, kind, voting } of links) {
    const bpos = positionOf(f.id);
    const label = since ? ["heartbeat failing", `since ${clock(since, false)}`]
      : f.open ? ["heartbeats ok"] : ["no answer", "(unreachable)"];
    layer.append(svg("line", { class: `link ${kind}`, x1: a.x, y1: a.y, x2: bpos.x, y2: bpos.y }));
    if (kind === "ok") {
      // A dot travelling leader → follower: the stream of heartbeats.
      const dot = svg("circle", { class: "pulse", r: 4 });
      dot.append(svg("animateMotion", { dur: "1.2s", repeatCount: "indefinite",
        path: `M${a.x},${a.y} L${bpos.x},${bpos.y}`, begin: "0s" }));
      layer.append(dot);
    }
    if (voting) continue; // while a vote arrow runs along this pair, its label speaks for it
    const m = outward((a.x + bpos.x) / 2, (a.y + bpos.y) / 2, 16);
    const t = svg("text", { class: `link-label ${kind}`, x: m.x, y: m.y });
    label.forEach((line, i) => t.append(svg("tspan", { x: m.x, dy: i ? 14 : 0 }, line)));
    layer.append(t);
  }
}

// A point pushed away from the ring's centre, so labels sit outside the links.
function outward(x, y, d) {
  const dx = x - RING.cx, dy = y - ringGeometry().cy, len = Math.hypot(dx, dy) || 1;
  return { x: x + (dx / len) * d, y: y + (dy / len) * d };
}

// The ring's centre says which term we are in and whether an election runs.
function drawCentre() {
  const l = clusterLeader(), el = latestElection(), term = clusterTerm();
  document.getElementById("centre-term").textContent = term ? `term ${term}` : "";
  let [note, cls] = l ? [`leader: ${nameOf(l.id)}`, "leader"] : ["no leader", "none"];
  if (el && !el.winner && el.term >= term && !l) [note, cls] = ["election…", "candidate"];
  else if (el && el.winner && Date.now() - el.wonAt < WIN_BANNER_MS) [note, cls] = [`${nameOf(el.winner)} won term ${el.term}`, "won"];
  document.getElementById("centre-note").textContent = note;
  document.getElementById("centre").setAttribute("class", cls);
}

// A vote request travelling candidate → voter, fading after a few seconds.
// One arrow per pair: the real request replaces the pre-vote that preceded it.
const arrows = new Map(); // "candidate voter" -> its <g>
function drawVoteArrow(from, to, term, prevote) {
  if (!order.includes(from) || !order.includes(to) || from === to) return;
  const key = `${from} ${to}`;
  // One conversation per pair: a newer request, either way, replaces the old.
  for (const k of [key, `${to} ${from}`]) if (arrows.has(k)) { arrows.get(k).remove(); arrows.delete(k); }
  const a = positionOf(from), z = positionOf(to);
  const len = Math.hypot(z.x - a.x, z.y - a.y) || 1;
  const ux = (z.x - a.x) / len, uy = (z.y - a.y) / len;
  const radius = RING.node * ringGeometry().scale;
  const start = { x: a.x + ux * (radius + 4), y: a.y + uy * (radius + 4) };
  const end = { x: z.x - ux * (radius + 10), y: z.y - uy * (radius + 10) };
  const ctrl = outward((start.x + end.x) / 2, (start.y + end.y) / 2, 44);
  const g = svg("g", { class: `vote${prevote ? " pre" : ""}` });
  g.append(svg("path", { d: `M${start.x},${start.y} Q${ctrl.x},${ctrl.y} ${end.x},${end.y}`, "marker-end": "url(#arrowhead)" }));
  const mid = { x: (start.x + 2 * ctrl.x + end.x) / 4, y: (start.y + 2 * ctrl.y + end.y) / 4 };
  g.append(svg("text", { x: mid.x, y: mid.y + 4 }, `${prevote ? "pre-vote" : "vote request"}, term ${term}`));
  document.getElementById("votes").append(g);
  arrows.set(key, g);
  setTimeout(() => {
    g.remove();
    if (arrows.get(key) === g) arrows.delete(key);
    scheduleRender(); // the link's own label comes back
  }, ARROW_MS);
  scheduleRender();
}

// ------------------------------------------------------------------ drawing: log strips

const STRIP = { x: 84, cell: 19, row: 58, top: 26 };

function drawStrips() {
  const host = document.getElementById("strips");
  host.textContent = "";
  const hi = Math.max(highestIndex, LOG_WINDOW);
  const lo = hi - LOG_WINDOW + 1;
  document.getElementById("log-range").textContent = `indices ${lo}–${hi}`;
  host.setAttribute("viewBox", `0 0 860 ${STRIP.top + members().length * STRIP.row + 4}`);
  drawAxis(host, lo, hi);
  const commit = leaderCommit();
  members().forEach((n, row) => drawStrip(host, n, lo, STRIP.top + row * STRIP.row, commit));
}

function drawAxis(host, lo, hi) {
  for (let i = lo; i <= hi; i++) {
    // Every fifth index, and the window's ends unless they would crowd one.
    const end = (i === lo || i === hi) && Math.min(i % 5, 5 - (i % 5)) >= 2;
    if (i % 5 !== 0 && !end) continue;
    const x = STRIP.x + (i - lo + 0.5) * STRIP.cell;
    host.append(svg("text", { class: "axis", x, y: STRIP.top - 10 }, String(i)));
  }
}

function drawStrip(host, n, lo, y, leaderCommitIndex) {
  const g = svg("g", { class: `strip ${shownState(n).toLowerCase()}`, "data-strip": n.id, transform: `translate(0,${y})` });
  const label = svg("text", { class: "strip-name", x: 0, y: 16 });
  fitText(label, nameOf(n.id), 78, 8.5);
  g.append(label);
  for (let i = lo; i < lo + LOG_WINDOW; i++) {
    const x = STRIP.x + (i - lo) * STRIP.cell;
    // What this node has done with entry i, from most to least advanced.
    const kind = i <= n.applied ? "applied" : i <= n.commit ? "committed"
      : i <= n.lastLog ? "appended" : "missing";
    g.append(svg("rect", { class: `cell ${kind}`, x, y: 0, width: STRIP.cell, height: 24 }));
    if (i <= n.snap) g.append(svg("rect", { class: "cell-snap", x, y: 20, width: STRIP.cell, height: 4 }));
  }
  drawMarkers(g, n, lo);
  const lines = stripNote(n, leaderCommitIndex);
  const tone = !n.open ? "gone" : lines[0].endsWith("behind") ? "behind" : "fine";
  const note = svg("text", { class: `strip-note ${tone}`, y: lines.length > 1 ? 9 : 17 });
  const noteX = STRIP.x + LOG_WINDOW * STRIP.cell + 14;
  lines.forEach((line, i) => note.append(svg("tspan", { x: noteX, dy: i ? 15 : 0 }, line)));
  g.append(note);
  host.append(g);
}

// One or two short lines to the right of a strip.
function stripNote(n, leaderCommitIndex) {
  if (!n.open) return ["unreachable", n.everOpen ? `last known: applied ${n.applied}` : "never seen"];
  if (n.role === "Leader") {
    const waiting = n.lastLog - n.commit;
    return waiting > 0 ? ["leader", `${waiting} waiting for a majority`] : ["leader", "all committed"];
  }
  const behind = leaderCommitIndex - n.applied;
  return behind > 0 ? [`${behind} behind`, "catching up"] : ["up to date"];
}

// L, C, A, S markers. Markers at the same index share one label; a label
// that would overlap its neighbour is nudged right, or dropped a line.
function drawMarkers(g, n, lo) {
  const marks = [["S", n.snap], ["A", n.applied], ["C", n.commit], ["L", n.lastLog]];
  const byIndex = new Map();
  for (const [letter, index] of marks) {
    if (index === 0) continue; // nothing there yet: no marker
    if (!byIndex.has(index)) byIndex.set(index, []);
    byIndex.get(index).push(letter);
  }
  const rightEdge = [-99, -99]; // where the last label of each line ends
  for (const index of [...byIndex.keys()].sort((p, q) => p - q)) {
    const before = index < lo;
    const x = STRIP.x + (before ? 0 : (index - lo + 1) * STRIP.cell);
    const letters = byIndex.get(index);
    for (const letter of letters) {
      g.append(svg("line", { class: `mark m-${letter}`, x1: x, x2: x, y1: -4, y2: 28 }));
    }
    const text = `${letters.join(" ")} ${index}${before ? "◂" : ""}`;
    const width = text.length * 6.8;
    let line = 0, cx = Math.max(x, STRIP.x + width / 2 - 8);
    const overlap = rightEdge[0] + 4 - (cx - width / 2);
    if (overlap > 0 && overlap <= 26) cx += overlap;
    else if (overlap > 26) line = 1;
    rightEdge[line] = cx + width / 2;
    const t = svg("text", { class: "mark-label", x: cx, y: 40 + line * 12 });
    for (const letter of letters) t.append(svg("tspan", { class: `m-${letter}` }, letter + " "));
    t.append(svg("tspan", {}, before ? `${index}◂` : String(index)));
    g.append(t);
  }
}

// ------------------------------------------------------------------ drawing: header, explanation

function drawSummary() {
  const l = clusterLeader();
  const down = members().filter((n) => !n.open).map((n) => nameOf(n.id));
  document.getElementById("summary").textContent = [`term ${clusterTerm()}`, `leader ${l ? nameOf(l.id) : "none"}`,
    `commit index ${leaderCommit()}`, `streams from ${openMembers().length} of ${order.length} nodes` +
    (down.length ? ` (${down.join(", ")} unreachable)` : "")].join(" · ");
}

let explainDrawn = "";
function drawExplain() {
  const [title, html, timeless] = explain();
  document.getElementById("explain-title").textContent = title;
  if (html !== explainDrawn) document.getElementById("explain-text").innerHTML = html; // keeps a reader's selection
  explainDrawn = html;
  const age = story && !timeless ? `${Math.round((Date.now() - story.at) / 1000)} s ago` : "";
  document.getElementById("explain-age").textContent = age;
  document.getElementById("try").hidden = !timeless; // suggestions only while nothing is going on
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(render, 0);
}

function render() {
  renderQueued = false;
  members().forEach(drawNode);
  [drawLinks, drawCentre, drawStrips, drawSummary, drawExplain, drawWriteResult].forEach((draw) => draw());
}

// ------------------------------------------------------------------ timeline

function addEntry(type, nodeId, html, time) {
  const when = time ? new Date(time) : new Date();
  const group = GROUP_OF[type] || "health";
  const li = document.createElement("li");
  li.className = `entry g-${group} t-${type}`;
  Object.assign(li.dataset, { event: type, node: nodeId, group });
  li.innerHTML = `<time datetime="${esc(when.toISOString())}">${clock(when)}</time>` +
    `<span class="tag">${esc(type)}</span><span class="msg">${html}</span>`;
  applyFilter(li);
  if (paused) {
    buffered.push(li);
    if (buffered.length > TIMELINE_CAP) buffered.shift();
    drawPauseButton();
  } else {
    showEntries([li]);
  }
}

function showEntries(list) {
  const tl = document.getElementById("timeline");
  for (const li of list) tl.prepend(li); // newest on top
  while (tl.children.length > TIMELINE_CAP) tl.lastElementChild.remove();
}

// Pausing freezes the list so a reader can scroll back; the cluster runs on.
function togglePause() {
  paused = !paused;
  if (!paused) showEntries(buffered.splice(0));
  drawPauseButton();
}

function drawPauseButton() {
  const btn = document.getElementById("pause");
  btn.classList.toggle("paused", paused);
  btn.textContent = !paused ? "❚❚ pause" : buffered.length
    ? `${buffered.length} new event${buffered.length > 1 ? "s" : ""} — resume` : "▶ resume";
}

// Filters: a node is shown unless its box is unticked; same for a group.
const hiddenNodes = new Set();
const hiddenGroups = new Set();

const applyFilter = (li) => { li.hidden = hiddenNodes.has(li.dataset.node) || hiddenGroups.has(li.dataset.group); };
const refilter = () => [...document.querySelectorAll("#timeline > li"), ...buffered].forEach(applyFilter);

function addNodeFilter(n) {
  const label = document.createElement("label");
  label.dataset.filterNode = n.id;
  const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: true });
  filterBox(box, hiddenNodes, n.id);
  label.append(box, document.createElement("span"));
  document.getElementById("filter-nodes").append(label);
  refreshNodeFilterLabel(n);
}

function refreshNodeFilterLabel(n) {
  const span = document.querySelector(`#filter-nodes [data-filter-node="${CSS.escape(n.id)}"] span`);
  if (span) span.textContent = nameOf(n.id);
}

// Unticking a box hides its node's (or group's) entries; ticking shows them.
function filterBox(box, hidden, key) {
  box.addEventListener("change", () => {
    if (box.checked) hidden.delete(key); else hidden.add(key);
    refilter();
  });
}

// ------------------------------------------------------------------ writes

// Writes go to the leader: only it may append to the log. A follower would
// redirect us (307) anyway; with no leader at all the answer is a 503.
function writeTarget() {
  const l = clusterLeader();
  if (l && l.http) return { url: `${SCHEME}//${l.http}`, id: l.id };
  for (const n of openMembers()) {
    const known = nodes.get(n.leader);
    if (known && known.http && known.open) return { url: `${SCHEME}//${known.http}`, id: known.id };
  }
  const any = openMembers()[0];
  return any ? { url: `${SCHEME}//${any.http}`, id: any.id } : { url: "", id: "" };
}

async function onWriteSubmit(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const key = form.elements.namedItem("key").value;
  const value = form.elements.namedItem("value").value;
  const tokenInput = form.elements.namedItem("token");
  if (tokenInput && tokenInput.value.trim()) token = tokenInput.value.trim();
  const target = writeTarget();
  const url = `${target.url}/set?key=${encodeURIComponent(key)}&value=${encodeURIComponent(value)}`;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  pendingWrite = null;
  setWriteResult(`sending to ${target.id ? nameOf(target.id) : "the serving node"}…`, "");
  let res, body;
  try {
    res = await fetch(url, { mode: "cors", headers });
    body = (await res.text()).trim();
  } catch (err) {
    writeFailed(target.id, key, `no answer from ${target.id ? nameOf(target.id) : "the node"} (${err.message}) — the leader may have just stopped; try again in a second`);
    return;
  }
  if (!res.ok) {
    if (res.status === 401) document.getElementById("token-field").hidden = false;
    writeFailed(target.id, key, `${res.status} ${body}${WRITE_HINTS[res.status] || ""}`);
    return;
  }
  const index = Number(res.headers.get("X-Raft-Index"));
  const leaderId = nodeByHttp(new URL(res.url).host) || target.id || "";
  startWatchingWrite(index, key, leaderId);
}

// What a refusal means, in the learner's terms.
const WRITE_HINTS = {
  503: " — no leader yet, try again", 507: " — the cache is full",
  401: " — this cluster needs a token: paste it in the token field and send again",
};

function writeFailed(id, key, text) {
  setWriteResult(text, "error");
  addEntry("write", id || "", `your write of key “${esc(key)}” failed: ${esc(text)}`);
}

const nodeByHttp = (host) => (members().find((n) => n.http === host) || {}).id;

// The answer means: committed (a majority has it on disk). Each node applies
// it a little later; we time that with the progress events.
function startWatchingWrite(index, key, leaderId) {
  pendingWrite = { index, t0: performance.now(), times: new Map() };
  for (const n of members()) {
    if (!n.open) pendingWrite.times.set(n.id, null);
    else if (n.applied >= index) pendingWrite.times.set(n.id, 0);
  }
  const ix = Number.isFinite(index) && index > 0 ? `log index ${index}` : "an unknown index (X-Raft-Index not visible)";
  addEntry("write", leaderId, `you wrote key “${esc(key)}”: the leader ${b(leaderId)} committed it at ${ix}`);
  setTimeout(scheduleRender, WRITE_WAIT_MS);
  scheduleRender();
}

function checkWrite(n) {
  const w = pendingWrite;
  if (!w || w.times.has(n.id)) return;
  if (!n.open) w.times.set(n.id, null);
  else if (n.applied >= w.index) w.times.set(n.id, Math.round(performance.now() - w.t0));
}

function drawWriteResult() {
  const w = pendingWrite;
  if (!w) return;
  const late = performance.now() - w.t0 > WRITE_WAIT_MS;
  const parts = members().map((n) => {
    const t = w.times.get(n.id);
    if (t === null) return `${nameOf(n.id)} — (unreachable)`;
    if (t === undefined) return `${nameOf(n.id)} ${late ? "not yet" : "…"}`;
    return `${nameOf(n.id)} +${t} ms`;
  });
  setWriteResult(`ok ${Number.isFinite(w.index) ? w.index : "?"} · applied: ${parts.join(", ")}`, "ok");
}

function setWriteResult(text, cls) {
  const out = document.getElementById("write-result");
  out.textContent = text;
  out.className = cls;
}

// ------------------------------------------------------------------ helpers

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

const b = (id) => `<b>${esc(nameOf(id))}</b>`;
const plural = (k, one, many = one + "s") => `${k} ${k === 1 ? one : many}`;
const ms = (x) => `${Number(x) < 10 ? Number(x).toFixed(1) : Math.round(x)} ms`; // durations may be fractional

// hh:mm:ss(.mmm) in the reader's time zone.
function clock(d, withMs = true) {
  if (isNaN(d)) return "--:--:--";
  const s = d.toTimeString().slice(0, 8);
  return withMs ? `${s}.${String(d.getMilliseconds()).padStart(3, "0")}` : s;
}

// ------------------------------------------------------------------ start

// The serving node tells us who the members are; after that the streams
// keep us informed, even if the serving node dies.
async function start() {
  try {
    const res = await fetch("/status", { cache: "no-store" });
    const st = await res.json();
    const servers = st.servers && st.servers.length ? st.servers : [{ id: st.raft, http: st.http }];
    applyServers(servers);
    const self = nodes.get(st.raft);
    if (self) {
      self.name = st.node || "";
      self.http = self.http || st.http;
      refreshNodeFilterLabel(self);
      openStream(self);
    }
    render();
  } catch (err) {
    document.getElementById("summary").textContent = `cannot read /status from this node (${err.message}); retrying…`;
    setTimeout(start, 2000);
  }
}

document.getElementById("write").addEventListener("submit", onWriteSubmit);
document.getElementById("pause").addEventListener("click", togglePause);
document.querySelectorAll("#filter-groups input").forEach((box) => filterBox(box, hiddenGroups, box.value));
setInterval(scheduleRender, 1000); // ages ("12 s ago") and fading banners
start();
