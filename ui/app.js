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
  "membership", "progress", "snapshot", "restore", "lab", "truncate", "end"];
const GROUP_OF = {
  state: "election", leader: "election", vote: "election",
  heartbeat: "health", unreachable: "health", reachable: "health",
  membership: "membership", snapshot: "snapshot", restore: "snapshot",
  write: "write", truncate: "election", lab: "lab", read: "lab",
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
      es: null, retry: 0, renewing: false,
      // How the page reaches its stream (see "streams" below).
      via: null, routes: [], rerouting: 0, directBlocked: false, triedVia: [],
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

// Who says that node id leads: the members we hear, each of which names
// its leader. Their names, for "leader, per node2 and node3".
const reportersOf = (id) => openMembers().filter((m) => m.id !== id && m.leader === id);

// The state a test or a user's script sees. A node whose stream we cannot
// open is drawn from what the others say: the leader they follow is a
// Leader (reported), any other is Unreachable to us, whatever it last said.
function shownState(n) {
  if (n.open) return n.role || "Follower";
  return reportersOf(n.id).length ? "Leader" : "Unreachable";
}

// The leader the page believes in: a node we hear that says it leads (after
// a partition two may say so; the higher term is the real one), else the one
// the nodes we hear follow, at the highest term any of them reports.
function clusterLeader() {
  let best = null;
  for (const n of openMembers()) {
    if (n.role === "Leader" && (!best || n.term > best.term)) best = n;
  }
  if (best) return best;
  let term = -1;
  for (const m of openMembers()) {
    const l = nodes.get(m.leader);
    if (l && order.includes(l.id) && m.term > term) { best = l; term = m.term; }
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
      n.directBlocked = false;
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
//
// Each member's stream comes straight from it when the browser can reach it,
// else relayed by a member the browser can reach (GET /events?node=<ID> on
// that member). Browsers refuse some ports outright: 6000, the tutorial's
// node1, is X11's, so Chrome, Firefox and Safari will not open it. A route is
// "direct" (null) or the member that relays.
//
// A stream that breaks is tried again at once by every route; only when
// none opens is the node lost to us. So a relay that dies does not make the
// nodes it relayed look dead.

// The server this page came from, when it is not a member (the lab
// supervisor, which passes every request on to a node that answers): the
// route of last resort, for streams and requests alike.
const PAGE_SERVER = { id: "", http: location.host, pageServer: true };
const pageServerRoute = () => (members().some((m) => m.http === location.host) ? null : PAGE_SERVER);
// How a route is called in the page's sentences (text).
const viaName = (via) => (via.pageServer ? "the page's server" : nameOf(via.id));
// The same, as markup for the timeline.
const viaMention = (via) => (via.pageServer ? html`the page's server` : b(via.id));

function streamURL(n, via) {
  return via ? `${SCHEME}//${via.http}/events?node=${encodeURIComponent(n.id)}` : `${SCHEME}//${n.http}/events`;
}

// The routes to try, best first: direct (unless the browser refused it while
// a relay worked), then relays through members we hear directly, the one
// that served this page first.
function routesTo(n) {
  const relays = members().filter((m) => m !== n && m.open && !m.via && m.http)
    .sort((p, q) => (q.http === location.host) - (p.http === location.host));
  const page = pageServerRoute();
  return (n.directBlocked ? [] : [null]).concat(relays, page ? [page] : []);
}

function openStream(n) {
  if (n.es || !n.http || !order.includes(n.id)) return;
  clearTimeout(n.retry);
  if (!n.routes.length) {
    n.routes = routesTo(n);
    n.triedVia = [];
  }
  const via = n.routes.shift() || null;
  n.via = via;
  if (via) n.triedVia.push(via);
  const es = new EventSource(streamURL(n, via));
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
  n.routes = [];
}

// A stream did not open, or broke. Try the next route at once; when none is
// left the node is lost to us, and we start over every second (the browser
// would retry by itself every ~3 s, and never after an answer that is not a
// stream, such as a relay's 502), so a restarted node shows up quickly.
function onStreamError(n, es) {
  if (es !== n.es) return;
  const wasOpen = n.open, via = n.via;
  es.close();
  n.es = null;
  n.open = false;
  if (wasOpen) {
    // Broken after it worked: reroute from scratch, quietly at first. Wait a
    // moment so that a relay that died has its own stream marked broken.
    n.rerouting = n.rerouting || Date.now();
    n.routes = [];
    n.retry = setTimeout(() => openStream(n), via ? 300 : 0);
    scheduleRender();
    return;
  }
  if (n.routes.length) {
    openStream(n);
    return;
  }
  // No route works. At the start, relays may only be connecting: wait for
  // them before calling the node unreachable.
  if (!n.everOpen && !n.triedVia.length && members().some((m) => m !== n && m.es && !m.open && !m.via)) {
    n.retry = setTimeout(() => openStream(n), 300);
    return;
  }
  n.retry = setTimeout(() => openStream(n), 1000);
  if (n.rerouting) {
    const since = n.rerouting;
    n.rerouting = 0;
    nodeLost(n, new Date(since));
  } else if (!n.reportedDown) {
    n.reportedDown = true;
    const through = n.triedVia.length ? html`, nor through ${joinMarkup(n.triedVia.map(viaMention), ", ")}` : "";
    const tried = n.directBlocked ? html` (not through ${joinMarkup(n.triedVia.map(viaMention), ", ")} either)` : html` (not directly${through})`;
    addEntry("unreachable", n.id, html`${b(n.id)} does not answer: its event stream cannot be opened${tried}`);
  }
  scheduleRender();
}

function onStreamMessage(n, es, type, msg) {
  if (es !== n.es) return;
  let ev;
  try { ev = JSON.parse(msg.data); } catch (e) { return; } // not ours to understand
  if (!ev || typeof ev !== "object") return;
  const note = ev.dropped ? html` <span class="dropped">(${ev.dropped} earlier events from this node were dropped: the page fell behind)</span>` : "";
  HANDLERS[type](n, ev, note);
  scheduleRender();
}

// ------------------------------------------------------------------ event handlers

// Wire field -> our field. These four indices are what the log strips draw.
const INDEX_FIELDS = { term: "term", last_log_index: "lastLog", commit_index: "commit",
  applied_index: "applied", last_snapshot_index: "snap", keys: "keys" };

// Numbers from the wire are numbers here, whatever arrives (NaN reads as 0).
const num = (v) => (Number.isFinite(Number(v)) ? Number(v) : 0);

function copyIndices(n, ev) {
  for (const [wire, ours] of Object.entries(INDEX_FIELDS)) if (wire in ev) n[ours] = num(ev[wire]);
  highestIndex = Math.max(highestIndex, n.lastLog);
  checkWrite(n);
}

const HANDLERS = {
  // First event of every (re)connection: the node's whole state.
  status(n, ev, note) {
    // A stream that replaces one the node ended ("end") is news only if the
    // node changed in the moment between the two.
    const renewed = n.renewing && n.open && String(ev.state || "") === n.role && num(ev.term) === n.term;
    n.renewing = false;
    const returning = n.everOpen, quietly = n.rerouting;
    n.open = n.everOpen = true;
    n.reportedDown = false;
    n.rerouting = 0;
    n.routes = [];
    // The browser refused the direct route, a relay worked: skip it from now on.
    if (n.via && n.triedVia.length === 1 && !n.directBlocked) n.directBlocked = true;
    // A member we hear directly can relay the ones we cannot: try them now.
    if (!n.via) for (const m of members()) if (m !== n && !m.open && !m.es) openStream(m);
    const named = !n.name && ev.name;
    n.name = String(ev.name || n.name || "");
    n.role = String(ev.state || "");
    n.leader = String(ev.leader || "");
    // A node started with -lab says which of its links are cut or slow (lab.js).
    n.lab = ev.lab && typeof ev.lab === "object"
      ? { cut: Array.isArray(ev.lab.cut) ? ev.lab.cut.map(String) : [], slow: Object.assign({}, ev.lab.slow) } : null;
    copyIndices(n, ev);
    refreshNodeFilterLabel(n);
    if (named) renameMentions(n);
    // A (re)started leader reports its followers afresh.
    for (const key of hbFailing.keys()) if (key.startsWith(`${n.id} `)) hbFailing.delete(key);
    if (ev.member === false && order.includes(n.id) && order.length > 1) {
      addEntry("reachable", n.id, html`${b(n.id)} answers, but says it is no longer a member of the cluster${note}`);
      return;
    }
    // Trust a leader's configuration; another node's only if we have none.
    if (Array.isArray(ev.servers) && ev.servers.length && (order.length <= 1 || ev.state === "Leader")) {
      applyServers(ev.servers);
    }
    const how = n.via ? html` <span class="by">(relayed by ${viaMention(n.via)}: this browser cannot open ${n.http} itself)</span>` : "";
    if (renewed) {
      // nothing to tell
    } else if (quietly) {
      if (n.via) addEntry("reachable", n.id, html`${b(n.id)}'s stream now comes through ${viaMention(n.via)}${note}`, ev.time);
    } else if (returning) {
      addEntry("reachable", n.id, html`${b(n.id)} answers again (its event stream reopened): ${ev.state} in term ${num(ev.term)}${how}${note}`, ev.time);
      if (!storyUnsettled()) setStory({ kind: "back", id: n.id });
    } else {
      addEntry("reachable", n.id, html`watching ${b(n.id)}: ${ev.state} in term ${num(ev.term)}, log up to index ${num(ev.last_log_index)}${how}${note}`, ev.time);
    }
  },

  // The node ends every stream after a while (so that a client that stopped
  // reading cannot hold one of its few places for ever): open the next one at
  // once the same way (direct, or through the same relay, which passed this
  // on), without rerouting and without calling the node lost. Should that
  // fail, the stream counts as broken after it worked (onStreamError).
  end(n) {
    n.es.close();
    n.es = null;
    n.renewing = true;
    n.routes = [n.via];
    openStream(n);
  },

  // A role change: the heart of an election.
  state(n, ev, note) {
    const before = n.role;
    const term = num(ev.term);
    // hashicorp/raft turns Candidate before it raises its term (with pre-vote,
    // only once the pre-vote succeeds): the election is for the next term.
    const running = term > clusterTerm() ? term : term + 1;
    n.role = String(ev.state || "");
    n.term = term;
    if (before === "Leader" && n.role !== "Leader") n.leftLeaderAt = Date.now();
    const who = b(n.id);
    if (n.role === "Candidate") {
      const el = election(running);
      el.candidates.add(n.id);
      el.startedAt = el.startedAt || Date.now();
      // With the leader still in sight, or only just gone, this is a handover
      // (or a follower cut off from it), not a timeout after a crash.
      const l = clusterLeader();
      const quick = (l && l !== n) || (story && story.kind === "leaderLost" && Date.now() - story.lostAt < HANDOVER_WINDOW_MS);
      const how = quick ? "becomes a candidate and" : "timed out waiting for the leader and";
      addEntry("state", n.id, html`${who} ${how} asks for votes in term ${running}${note}`, ev.time);
      // A candidate votes for itself and asks every other member.
      for (const m of members()) if (m.id !== n.id) drawVoteArrow(n.id, m.id, running, false);
      if (!story || (story.kind !== "leaderLost" && story.kind !== "election")) setStory({ kind: "election", term: running });
    } else if (n.role === "Leader") {
      const el = election(term);
      el.winner = n.id;
      el.wonAt = Date.now();
      addEntry("state", n.id, html`${who} won the election: it leads term ${term}${note}`, ev.time);
      const lost = story && story.kind === "leaderLost" ? story : null;
      const handover = lost && (el.startedAt || el.wonAt) - lost.lostAt < HANDOVER_WINDOW_MS;
      setStory({ kind: lost ? "failover" : "won", old: lost ? lost.old : "", winner: n.id, term, handover });
    } else if (n.role === "Follower") {
      // No term here: raft reports the role before it adopts the newer term
      // that made it step down, so the event's term can be one behind.
      const why = before === "Leader" ? " — it stepped down as leader"
        : before === "Candidate" ? " — it gave up its candidacy for a newer term or leader" : "";
      addEntry("state", n.id, html`${who} becomes a follower${why}${note}`, ev.time);
    } else {
      addEntry("state", n.id, html`${who} is now ${n.role} (term ${term})${note}`, ev.time);
    }
  },

  leader(n, ev, note) {
    n.leader = String(ev.leader || "");
    if ("term" in ev) n.term = num(ev.term);
    let text;
    if (!n.leader) text = html`${b(n.id)} has no leader`;
    else if (n.leader === n.id) text = html`${b(n.id)} knows it is the leader itself (term ${num(ev.term)})`;
    else text = html`${b(n.id)} now knows ${b(n.leader)} as leader (term ${num(ev.term)})`;
    addEntry("leader", n.id, html`${text}${note}`, ev.time);
  },

  // This node (the voter) was asked for its vote. A pre-vote asks "would you
  // vote for me?" without raising the term, so a node that was only cut off
  // for a moment cannot disturb a healthy cluster.
  vote(n, ev, note) {
    const candidate = String(ev.candidate || ""), term = num(ev.term);
    election(term).asked.set(n.id, candidate);
    const what = ev.prevote ? "a pre-vote request (would you vote for me?)" : "a vote request";
    addEntry("vote", n.id, html`${b(n.id)} got ${what} from ${b(candidate)} for term ${term}${note}`, ev.time);
    drawVoteArrow(candidate, n.id, term, !!ev.prevote);
  },

  // Only a leader sends these: whether a follower answers its heartbeats.
  heartbeat(n, ev, note) {
    const peerId = String(ev.peer || "");
    const key = `${n.id} ${peerId}`;
    if (ev.ok) {
      hbFailing.delete(key);
      addEntry("heartbeat", n.id, html`${b(n.id)} (leader) hears ${b(peerId)} again${note}`, ev.time);
      if (story && story.kind === "partition" && story.peer === peerId) setStory({ kind: "back", id: peerId });
      return;
    }
    const since = new Date(ev.last_contact || ev.time);
    hbFailing.set(key, since);
    const last = ev.last_contact ? ` (last answer at ${clock(since)})` : "";
    addEntry("heartbeat", n.id, html`${b(n.id)} (leader) lost contact with ${b(peerId)}${last}${note}`, ev.time);
    // If we still hear the peer ourselves, it is alive: the network between
    // the two is what broke.
    const peer = nodes.get(peerId);
    if (peer && peer.open) setStory({ kind: "partition", leader: n.id, peer: peerId });
  },

  membership(n, ev, note) {
    if (order.length > 0 && !order.includes(n.id)) return; // a removed node's stale view
    const servers = Array.isArray(ev.servers) ? ev.servers.filter((s) => s && typeof s.id === "string") : [];
    const changed = applyServers(servers);
    const names = joinMarkup(servers.map((s) => b(s.id)), ", ");
    addEntry("membership", n.id, html`the cluster now has ${servers.length} members: ${names} <span class="by">(seen by ${b(n.id)})</span>${note}`, ev.time);
    if (changed) setStory({ kind: "membership" });
  },

  progress: copyIndices,

  snapshot(n, ev, note) {
    n.snap = Math.max(n.snap, num(ev.index));
    addEntry("snapshot", n.id, html`${b(n.id)} saved a snapshot up to index ${num(ev.index)} (${plural(num(ev.keys), "key")}, ${ms(num(ev.duration_ms))})${note}`, ev.time);
  },

  restore(n, ev, note) {
    addEntry("restore", n.id, html`${b(n.id)} loaded a snapshot up to index ${num(ev.index)} (${plural(num(ev.keys), "key")})${note}`, ev.time);
  },
};

// A stream that was open has closed, and no route reopens it: to the page,
// the node is gone (since when: when its stream first broke).
function nodeLost(n, since) {
  // It led until now, or until it handed leadership over a moment ago.
  const wasLeader = n.role === "Leader" || Date.now() - n.leftLeaderAt < 3000;
  n.open = false;
  n.reportedDown = true;
  n.lostAt = since || new Date();
  addEntry("unreachable", n.id, html`${b(n.id)} stopped answering (its event stream closed, and no member the page can reach relays it)`);
  const l = clusterLeader();
  const el = l && elections.get(l.term);
  if (wasLeader && l && l !== n && el && el.winner === l.id && Date.now() - el.wonAt < 3000) {
    // The successor won before the old leader's stream even closed: a handover.
    setStory({ kind: "failover", old: n.id, winner: l.id, term: l.term, handover: true });
  } else if (wasLeader) {
    setStory({ kind: "leaderLost", old: n.id, lostAt: n.lostAt.getTime() });
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

// The leader's commit index, if we hear the leader; else the highest any
// node we hear reports.
function leaderCommit() {
  const l = clusterLeader();
  return l && l.open ? l.commit : Math.max(0, ...openMembers().map((n) => n.commit));
}

function healthy() {
  const l = clusterLeader();
  return l && members().every((n) => n.open) && ![...hbFailing.keys()].some((k) => k.startsWith(`${l.id} `));
}

// "itself + node2": the members that were asked by the winner and now follow it.
function votersOf(el) {
  if (!el || !el.winner) return "";
  const others = [...new Set([...el.asked].filter(([voter, cand]) => cand === el.winner &&
    nodes.get(voter) && nodes.get(voter).leader === el.winner).map(([voter]) => voter))];
  return others.length ? html` (itself + ${joinMarkup(others.map(b), ", ")})` : "";
}

function quorumNote() {
  const up = openMembers().length + (members().some((n) => !n.open && reportersOf(n.id).length) ? 1 : 0);
  if (up >= majority()) return "";
  return html` <strong>Only ${up} of ${order.length} nodes answer.</strong> Raft needs a majority (${majority()}) to elect a leader or commit a write, so the cluster waits until enough nodes return.`;
}

// "node1 leads, per node2 and node3; its own stream is not reachable from
// this browser": a leader we only know from the others' word.
function reportedNote(l) {
  if (!l || l.open) return "";
  return html` <span class="aside">(${b(l.id)} leads per ${joinMarkup(reportersOf(l.id).map((m) => b(m.id)), " and ")}; its own event stream is not reachable from this browser, so its log strip shows what it last said.)</span>`;
}

function explain() {
  const l = clusterLeader();
  const s = story && Date.now() - story.at < STORY_FADES_MS || !healthy() ? story : null;
  if (order.length && openMembers().length === 0) {
    return ["No node answers", html`The page cannot open any node's event stream, directly or relayed. Start the nodes (or check the addresses) and the view fills in by itself.`, true];
  }
  if (!s) return defaultStory(l);
  const el = latestElection();
  const cand = el && !el.winner ? [...el.candidates].pop() : "";
  switch (s.kind) {
    case "leaderLost": {
      const now = l && l.id !== s.old ? html` Right now ${b(l.id)} leads term ${l.term}.` : cand ? html` Right now ${b(cand)} is a candidate in term ${el.term} and waits for votes.` : "";
      return ["The leader stopped", html`The leader (${b(s.old)}) stopped answering. Stopped cleanly, it hands leadership to a follower on its way out; after a crash the followers notice the missing heartbeats (one every ${HEARTBEAT_EVERY}) after ${ELECTION_AFTER}, and one of them becomes a <em>candidate</em> and asks the others for votes in a new term. Until someone wins a majority there is no leader, and writes are refused (503).${now}${quorumNote()}`];
    }
    case "election": {
      const text = cand
        ? html`${b(cand)} became a <em>candidate</em>: it votes for itself and asks the others for their vote in term ${el.term}. It needs ${majority()} of ${order.length} votes. Each node votes at most once per term, so at most one candidate can win.`
        : l ? html`An election took place in term ${s.term}; ${b(l.id)} leads term ${l.term}.` : html`An election took place in term ${s.term}.`;
      return [`Election in term ${s.term}`, html`${text}${quorumNote()}`];
    }
    case "failover": {
      const old = nodes.get(s.old);
      const then = old && old.open
        ? html`${b(s.old)} is back and follows ${b(s.winner)}; it catches up from the leader's log.`
        : html`${b(s.old)} will follow it when it returns.`;
      const won = html`asked the others for votes in term ${s.term} and won a majority${votersOf(elections.get(s.term))}. Writes go to ${b(s.winner)} now; ${then}`;
      return [`New leader: ${nameOf(s.winner)}`, s.handover
        ? html`The leader (${b(s.old)}) was stopped. On its way out it handed leadership over: it told ${b(s.winner)}, a follower with an up-to-date log, to start an election at once instead of waiting ${ELECTION_AFTER} for the heartbeats to stop. ${b(s.winner)} ${won} <span class="aside">(A crash, such as kill -9, gives no handover: the followers first wait ${ELECTION_AFTER} without heartbeats.)</span>${quorumNote()}`
        : html`The leader (${b(s.old)}) stopped. Followers expect a heartbeat every ${HEARTBEAT_EVERY}; after ${ELECTION_AFTER} of silence ${b(s.winner)} became a candidate, ${won}${quorumNote()}`];
    }
    case "won":
      return [`New leader: ${nameOf(s.winner)}`,
        html`${b(s.winner)} won the election of term ${s.term} with a majority of the votes${votersOf(elections.get(s.term))}. It now sends heartbeats to the others so they do not start an election of their own, and every write goes to it.${quorumNote()}`];
    case "nodeLost": {
      const n = nodes.get(s.id);
      const text = l
        ? html`${b(s.id)} (a follower) stopped answering. The leader ${b(l.id)} carries on: a write only needs a majority (${majority()} of ${order.length}) to be committed. When ${b(s.id)} returns it catches up from the leader's log, or from a snapshot if it is too far behind.`
        : html`${b(s.id)} stopped answering.`;
      return [`${nameOf(s.id)} stopped`, html`${n && n.open ? html`${b(s.id)} is back now. ` : ""}${text}${quorumNote()}`];
    }
    case "back": {
      const n = nodes.get(s.id);
      const lag = n ? Math.max(0, leaderCommit() - n.applied) : 0;
      const catchup = lag > 0 ? `It is ${plural(lag, "entry", "entries")} behind and catching up.` : "It has caught up: its log matches the leader's.";
      const who = l && l.id !== s.id ? html` It learned that ${b(l.id)} leads term ${l.term} and follows it; the leader sends it the entries it missed.` : "";
      return [`${nameOf(s.id)} is back`, html`${b(s.id)} answers again.${who} ${catchup}`];
    }
    case "partition":
      return [`${nameOf(s.leader)} cannot reach ${nameOf(s.peer)}`,
        html`The leader ${b(s.leader)} gets no answer from ${b(s.peer)}, yet ${b(s.peer)} still answers this page: the network between them is broken (or ${b(s.peer)} is paused). The leader keeps going as long as a majority answers it. ${b(s.peer)} will time out and start elections, but pre-vote keeps it from disrupting the others.`];
    case "truncate":
      return [`${nameOf(s.id)}'s uncommitted entries replaced`,
        html`${b(s.id)} had ${s.from === s.to ? html`entry ${s.from}` : html`entries ${s.from}–${s.to}`} from term ${s.terms.join(", ")} in its log, appended while it was cut off or leading alone, but never committed: no majority had them. The leader${l ? html` ${b(l.id)}` : ""} has other entries at those indices, and Raft makes every follower's log match the leader's, so ${b(s.id)} dropped its own and took the leader's (watch the terms change on its strip). A client that wrote them never got <b>ok</b>: an ok means committed.`];
    case "membership":
      return ["Membership changed", html`The cluster's configuration is itself a Raft log entry. It now has ${order.length} members (${joinMarkup(order.map(b), ", ")}), so a majority is ${majority()}.${quorumNote()}`];
    default:
      return defaultStory(l);
  }
}

function defaultStory(l) {
  if (!l) {
    return ["No leader yet", html`No node leads right now, by what every node the page hears says. Nodes that hear no leader for ${ELECTION_AFTER} become candidates and ask for votes; the first to get a majority leads the next term.${quorumNote()}`, true];
  }
  const followers = members().filter((n) => n !== l).map((n) => b(n.id));
  const down = members().filter((n) => !n.open && n !== l);
  const downNote = down.length ? html` Right now ${joinMarkup(down.map((n) => b(n.id)), ", ")} ${down.length > 1 ? "do" : "does"} not answer; the cluster keeps working as long as a majority (${majority()} of ${order.length}) is up.` : "";
  return [down.length || !l.open ? "Leader and followers" : "A healthy cluster",
    html`${b(l.id)} is the <em>leader</em> of term ${l.term}: every write goes to it. It appends the write to its <em>log</em> and copies it to the <em>followers</em> (${followers.length ? joinMarkup(followers, ", ") : "none"}); once a majority has it on disk the entry is <em>committed</em>, and every node <em>applies</em> it to its map. Heartbeats every ${HEARTBEAT_EVERY} tell the followers the leader is alive; if they stop, a follower starts an election and the <em>term</em> (the election's number) goes up.${downNote}${reportedNote(l)}`, true];
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
  // How we know: its own stream (direct or relayed), the others' word, or not at all.
  const reporters = n.open ? [] : reportersOf(n.id);
  const reach = n.open ? (n.via ? "relayed" : "direct") : reporters.length ? "reported" : "none";
  g.setAttribute("data-reach", reach);
  const connecting = !n.open && !n.reportedDown && !reporters.length;
  fitText(g.querySelector(".name"), nameOf(n.id), 92, 10);
  g.querySelector(".role").textContent = !n.http ? "address unknown" : connecting ? "connecting…" : state;
  g.querySelector(".term").textContent = n.open ? `term ${n.term}` : reporters.length
    ? `per ${reporters.map((m) => nameOf(m.id)).join(", ")}` : n.everOpen ? `last seen term ${n.term}` : "never seen";
  g.querySelector(".keys").textContent = n.open ? plural(n.keys, "key") : reporters.length ? "stream unreachable"
    : n.lostAt ? `since ${clock(n.lostAt, false)}` : "";
  const how = reach === "relayed" ? `its stream relayed by ${viaName(n.via)} (this browser cannot open ${n.http} itself)`
    : reach === "reported" ? `leader per ${reporters.map((m) => nameOf(m.id)).join(" and ")}; its own stream is not reachable from this browser`
    : reach === "none" ? "its stream cannot be opened, directly or relayed" : "its stream comes straight from it";
  g.querySelector("title").textContent = `${nameOf(n.id)} — Raft ID ${n.id}, HTTP ${n.http || "unknown"}\n` +
    `${state}, term ${n.term}; log ${n.lastLog}, committed ${n.commit}, applied ${n.applied}, snapshot ${n.snap}\n${how}`;
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
    g.append(svg("rect", { class: `cell ${kind}`, x, y: 0, width: STRIP.cell, height: 24, "data-index": i }));
    if (i <= n.snap) g.append(svg("rect", { class: "cell-snap", x, y: 20, width: STRIP.cell, height: 4 }));
    // The entry's term, when the node's /log told it (lab.js): a band in
    // the term's colour and its number. A follower's entries that a new
    // leader replaces change term here.
    const e = typeof entryAt === "function" && kind !== "missing" ? entryAt(n, i) : null;
    if (e) {
      const term = num(e.term);
      g.append(svg("rect", { class: "cell-term", x: x + 1, y: 0, width: STRIP.cell - 2, height: 4, fill: termColour(term), "data-index": i }));
      g.append(svg("text", { class: "cell-term-no", x: x + STRIP.cell / 2, y: 17, "data-index": i, "data-term": term }, String(term)));
    }
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
  if (!n.open && shownState(n) === "Leader") return ["leader, per " + reportersOf(n.id).map((m) => nameOf(m.id)).join(" and "), "its stream: not reachable"];
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
  const relayed = openMembers().filter((n) => n.via).map((n) => `${nameOf(n.id)} via ${viaName(n.via)}`);
  const leader = !l ? "none" : l.open ? nameOf(l.id) : `${nameOf(l.id)} (per ${reportersOf(l.id).map((m) => nameOf(m.id)).join(", ")})`;
  document.getElementById("summary").textContent = [`term ${clusterTerm()}`, `leader ${leader}`,
    `commit index ${leaderCommit()}`, `streams from ${openMembers().length} of ${order.length} nodes` +
    (relayed.length ? ` (${relayed.join(", ")})` : "") +
    (down.length ? ` (${down.join(", ")}: no stream)` : "")].join(" · ");
}

let explainDrawn = "";
function drawExplain() {
  const [title, text, timeless] = explain();
  document.getElementById("explain-title").textContent = title;
  const markupText = markup(text); // escaped unless html`` built it
  if (markupText !== explainDrawn) document.getElementById("explain-text").innerHTML = markupText; // keeps a reader's selection
  explainDrawn = markupText;
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

// Drawings that other scripts add (lab.js: the faults in force).
const renderHooks = [];

function render() {
  renderQueued = false;
  members().forEach(drawNode);
  [drawLinks, drawCentre, drawStrips, drawSummary, drawExplain, drawWriteResult, ...renderHooks].forEach((draw) => draw());
}

// ------------------------------------------------------------------ timeline

// One timeline entry; text is html`` markup (or plain text, escaped).
function addEntry(type, nodeId, text, time) {
  let when = time ? new Date(time) : new Date();
  if (isNaN(when)) when = new Date(); // a malformed time from the wire
  const group = GROUP_OF[type] || "health";
  const li = document.createElement("li");
  li.className = `entry g-${group} t-${type}`;
  Object.assign(li.dataset, { event: type, node: nodeId, group });
  li.innerHTML = markup(html`<time datetime="${when.toISOString()}">${clock(when)}</time><span class="tag">${type}</span><span class="msg">${text}</span>`);
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

// Writes go to the leader: only it may append to the log. The page sends
// its write to a member it reaches directly, the leader itself when it can,
// with "X-Stcache-Forward: leader": a follower then forwards it to the leader
// instead of redirecting (the browser might not reach the leader: port 6000).
// The leader's answer comes back as is, with X-Raft-Leader naming it.
function writeTarget() {
  const direct = openMembers().filter((n) => !n.via);
  const l = clusterLeader();
  return direct.find((n) => n === l) || direct.find((n) => n.http === location.host) || direct[0] || pageServerRoute();
}

async function onWriteSubmit(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const key = form.elements.namedItem("key").value;
  const value = form.elements.namedItem("value").value;
  const tokenInput = form.elements.namedItem("token");
  if (tokenInput && tokenInput.value.trim()) token = tokenInput.value.trim();
  const target = writeTarget();
  pendingWrite = null;
  if (!target) {
    writeFailed("", key, "no node answers this page: nothing to send the write to");
    return;
  }
  const headers = { "Content-Type": "application/x-www-form-urlencoded", "X-Stcache-Forward": "leader" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const body = new URLSearchParams({ key, value }).toString();
  const l = clusterLeader();
  setWriteResult(target === l ? `sending to the leader ${nameOf(target.id)}…` : `sending to ${viaName(target)}, which forwards it to the leader…`, "");
  let res, text;
  try {
    res = await fetch(`${SCHEME}//${target.http}/set`, { method: "POST", mode: "cors", headers, body, redirect: "manual" });
    text = (await res.text()).trim();
  } catch (err) {
    writeFailed(target.id, key, `no answer from ${viaName(target)} (${err.message}) — the leader may have just stopped; try again in a second`);
    return;
  }
  if (!res.ok) {
    if (res.status === 401) document.getElementById("token-field").hidden = false;
    writeFailed(target.id, key, res.type === "opaqueredirect" ? "redirected: the leader changed while the write was on its way; try again"
      : `${res.status} ${text}${WRITE_HINTS[res.status] || ""}`);
    return;
  }
  const index = Number(res.headers.get("X-Raft-Index"));
  const leaderId = nodeByHttp(res.headers.get("X-Raft-Leader") || "") || target.id;
  startWatchingWrite(index, key, leaderId);
}

// What a refusal means, in the learner's terms.
const WRITE_HINTS = {
  503: " — no leader yet, try again", 507: " — the cache is full",
  401: " — this cluster needs a token: paste it in the token field and send again",
};

function writeFailed(id, key, text) {
  setWriteResult(text, "error");
  addEntry("write", id || "", html`your write of key “${key}” failed: ${text}`);
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
  addEntry("write", leaderId, html`you wrote key “${key}”: the leader ${b(leaderId)} committed it at ${ix}`);
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

// Every piece of markup the page builds from what it hears goes through
// html``: each interpolated value is escaped unless it is itself markup that
// html`` made. Event fields come from the network; a term, an index or a
// state that carries "<img onerror=…>" must show as text, never run.
class Markup {
  constructor(s) { this.s = s; }
  toString() { return this.s; }
}

function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => { out += markup(v) + strings[i + 1]; });
  return new Markup(out);
}

// A value as markup: escaped text, or markup as it is; lists are joined.
function markup(v) {
  if (v instanceof Markup) return v.s;
  if (Array.isArray(v)) return v.map(markup).join("");
  return esc(v);
}

// Joins pieces of markup with a separator (itself text).
const joinMarkup = (list, sep) => new Markup(list.map(markup).join(esc(sep)));

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// A member's name in running text. The <b> carries its server ID, so when
// the page learns the name of a member it first knew only by ID, every
// mention already on the page changes with it (renameMentions).
const b = (id) => html`<b class="who" data-id="${id}">${nameOf(id)}</b>`;

function renameMentions(n) {
  const name = nameOf(n.id);
  const sel = `b.who[data-id="${CSS.escape(n.id)}"]`;
  for (const el of document.querySelectorAll(sel)) el.textContent = name;
  for (const li of buffered) for (const el of li.querySelectorAll(sel)) el.textContent = name;
}
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
