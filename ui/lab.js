"use strict";
// stcache · the lab: break the real cluster from the page, and read each
// node's log entry by entry. Loaded after app.js, whose state (nodes,
// members, clusterLeader) and helpers (html, b, addEntry, scheduleRender) it
// uses.
//
// Two kinds of fault, two owners:
//  - process faults (crash = SIGKILL, restart, freeze = SIGSTOP, thaw =
//    SIGCONT) need whoever started the processes: the lab supervisor
//    (cmd/stlab), which `make cluster` runs and which serves this page at
//    http://127.0.0.1:6080/ (its API: /lab-api/ on the page's own origin);
//  - link faults (cut, slow, heal) live in each node's own Raft transport, on
//    nodes started with -lab: POST /lab/cut|slow|heal on the node that sends.
// On a cluster that is not a lab, neither answers and no control shows.

const SLOW_DELAY = "200ms";   // what "slow" adds to every RPC on a link
const LOG_REFRESH_MS = 300;   // at most this often per node, /log is read again

const lab = {
  supervisor: false,          // /lab-api/ answers on this page's origin
  procs: new Map(),           // node name -> {state, ours, exit, pid} as the supervisor says
  menuFor: null,              // the node whose menu is open
  selected: null,             // {id, index}: the log cell whose entry is shown
};

// ------------------------------------------------------------------ talking to nodes and the supervisor

// A request to node n: straight to it when the browser reaches it, else
// through a member it reaches, which forwards it (X-Stcache-Forward: <ID>),
// as for the page's writes: node1's port 6000 is one the browser refuses.
async function nodeRequest(n, method, path) {
  const direct = n.open && !n.via ? n : null;
  const via = direct || openMembers().find((m) => !m.via) || pageServerRoute();
  if (!via) throw new Error("no node answers this page");
  const headers = {};
  if (!direct) headers["X-Stcache-Forward"] = n.id;
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${SCHEME}//${via.http}${path}`, { method, mode: "cors", headers, redirect: "manual" });
  const text = await res.text();
  // A follower's 307 cannot be read by a page (redirect: "manual"): say what it means.
  if (res.type === "opaqueredirect") throw new Error("307 refused: this node is not the leader (it redirects to it)");
  if (!res.ok) throw new Error(`${res.status} ${text.trim()}`);
  return text;
}

async function supervisorPost(path) {
  const res = await fetch(`/lab-api/${path}`, { method: "POST" });
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.status} ${text.trim()}`);
  return text;
}

// The supervisor's view of the processes, every second (only it knows that a
// process is frozen: a frozen node's stream just goes quiet).
async function pollSupervisor() {
  try {
    const res = await fetch("/lab-api/nodes", { cache: "no-store" });
    const list = res.ok ? await res.json() : null;
    if (!Array.isArray(list)) throw new Error("not a lab supervisor");
    lab.supervisor = true;
    lab.procs.clear();
    for (const p of list) if (p && typeof p.name === "string") lab.procs.set(p.name, p);
    scheduleRender();
  } catch (err) {
    lab.supervisor = false;
  }
  setTimeout(pollSupervisor, lab.supervisor ? 1000 : 10000);
}

const procOf = (n) => lab.procs.get(n.name) || [...lab.procs.values()].find((p) => p.id === n.id);
// A node has link controls when it said it runs with -lab.
const hasLab = (n) => !!n.lab;

// ------------------------------------------------------------------ actions

// Each action says what it does in the timeline ("you cut node1 → node2")
// before the cluster's own events tell what followed.
async function act(what, nodeId, run) {
  closeMenu();
  addEntry("lab", nodeId, html`you ${what}`);
  try {
    await run();
  } catch (err) {
    addEntry("lab", nodeId, html`<span class="failed">${what} failed: ${err.message}</span>`);
  }
  scheduleRender();
}

const others = (n) => members().filter((m) => m !== n);

const ACTIONS = {
  crash: (n) => act(html`crashed ${b(n.id)} (SIGKILL: the process dies at once, no hand-over)`, n.id,
    () => supervisorPost(`nodes/${encodeURIComponent(n.name)}/crash`)),
  restart: (n) => act(html`restarted ${b(n.id)} (same flags and data dir)`, n.id,
    () => supervisorPost(`nodes/${encodeURIComponent(n.name)}/restart`)),
  freeze: (n) => act(html`froze ${b(n.id)} (SIGSTOP: its clock stops; its connections stay open)`, n.id,
    () => supervisorPost(`nodes/${encodeURIComponent(n.name)}/freeze`)),
  thaw: (n) => act(html`thawed ${b(n.id)} (SIGCONT)`, n.id,
    () => supervisorPost(`nodes/${encodeURIComponent(n.name)}/thaw`)),
  // A partition is a cut on both sides: n stops sending to each peer, and
  // each peer stops sending to n.
  isolate: (n) => act(html`isolated ${b(n.id)} from every other member`, n.id, () => Promise.all(others(n).flatMap((m) => [
    nodeRequest(n, "POST", `/lab/cut?peer=${encodeURIComponent(m.id)}`),
    nodeRequest(m, "POST", `/lab/cut?peer=${encodeURIComponent(n.id)}`)]))),
  heal: (n) => act(html`healed every link of ${b(n.id)}`, n.id, () => Promise.all([
    nodeRequest(n, "POST", "/lab/heal"),
    ...others(n).map((m) => nodeRequest(m, "POST", `/lab/heal?peer=${encodeURIComponent(n.id)}`))])),
  cut: (n, m) => act(html`cut ${b(n.id)} → ${b(m.id)} (what ${b(n.id)} sends to ${b(m.id)} is lost)`, n.id,
    () => nodeRequest(n, "POST", `/lab/cut?peer=${encodeURIComponent(m.id)}`)),
  cutBoth: (n, m) => act(html`cut ${b(n.id)} ↔ ${b(m.id)} both ways`, n.id, () => Promise.all([
    nodeRequest(n, "POST", `/lab/cut?peer=${encodeURIComponent(m.id)}`),
    nodeRequest(m, "POST", `/lab/cut?peer=${encodeURIComponent(n.id)}`)])),
  // Heals the one link between n and m, both ways: cuts and delays.
  healLink: (n, m) => act(html`healed ${b(n.id)} ↔ ${b(m.id)} (cuts and delays, both ways)`, n.id, () => Promise.all([
    nodeRequest(n, "POST", `/lab/heal?peer=${encodeURIComponent(m.id)}`),
    nodeRequest(m, "POST", `/lab/heal?peer=${encodeURIComponent(n.id)}`)])),
  slow: (n, m) => act(html`slowed ${b(n.id)} → ${b(m.id)} (${SLOW_DELAY} more per message)`, n.id,
    () => nodeRequest(n, "POST", `/lab/slow?peer=${encodeURIComponent(m.id)}&delay=${SLOW_DELAY}`)),
  transfer: (n, m) => act(html`asked the leader ${b(n.id)} to hand over to ${b(m.id)} (it tells ${b(m.id)} to start an election at once)`, n.id,
    () => nodeRequest(n, "POST", `/lab/transfer?to=${encodeURIComponent(m.id)}`)),
  snapshot: (n) => act(html`asked ${b(n.id)} for a snapshot now`, n.id, () => nodeRequest(n, "POST", "/lab/snapshot")),
};

async function healAll() {
  if (lab.supervisor) {
    await act("healed everything (thawed, links healed, crashed nodes restarted)", "", () => supervisorPost("heal-all"));
  } else {
    await act("healed every link", "", () => Promise.all(members().filter(hasLab).map((n) => nodeRequest(n, "POST", "/lab/heal"))));
  }
}

// A read from a chosen node, stale or strong: the stale-read lesson by hand.
async function onReadSubmit(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const key = form.elements.namedItem("key").value;
  const n = nodes.get(form.elements.namedItem("node").value);
  const strong = form.elements.namedItem("consistency").value === "strong";
  const out = document.getElementById("read-result");
  if (!n) return;
  out.textContent = "…";
  const q = `/get?key=${encodeURIComponent(key)}${strong ? "&consistency=strong" : ""}`;
  const how = strong ? "a strong read (only a leader that confirms it still leads may answer)" : "a stale read (its own map, as it is)";
  try {
    const v = await nodeRequest(n, "GET", q);
    out.textContent = `${nameOf(n.id)}: ${key} = ${v.replace(/\n$/, "")}`;
    addEntry("read", n.id, html`you read “${key}” from ${b(n.id)}, ${how}: “${v.replace(/\n$/, "")}”`);
  } catch (err) {
    out.textContent = `${nameOf(n.id)}: ${err.message}`;
    addEntry("read", n.id, html`you read “${key}” from ${b(n.id)}, ${how}: ${err.message}`);
  }
}

// ------------------------------------------------------------------ the node menu

// What the menu of n offers depends on this: when it changes while the menu
// is open (the supervisor saw the crash), the menu is built again.
const menuSignature = (n) => JSON.stringify([n.id, (procOf(n) || {}).state, n.role, n.open, hasLab(n), order]);

function openMenu(n) {
  lab.menuFor = n.id;
  lab.menuSig = menuSignature(n);
  const menu = document.getElementById("node-menu");
  menu.textContent = "";
  const title = document.createElement("h3");
  title.textContent = `${nameOf(n.id)} — ${shownState(n).toLowerCase()}`;
  menu.append(title);
  const button = (label, fn, why) => {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = label;
    if (why) btn.title = why;
    btn.addEventListener("click", fn);
    menu.append(btn);
    return btn;
  };
  const p = procOf(n);
  if (lab.supervisor && p && p.ours) {
    if (p.state === "stopped") button("restart", () => ACTIONS.restart(n), "start it again with its flags and data");
    else button("crash (kill -9)", () => ACTIONS.crash(n), "SIGKILL: no hand-over, no goodbye");
    if (p.state === "frozen") button("thaw", () => ACTIONS.thaw(n), "SIGCONT");
    else if (p.state === "running") button("freeze", () => ACTIONS.freeze(n), "SIGSTOP: alive but silent");
  }
  if (hasLab(n)) {
    button("isolate", () => ACTIONS.isolate(n), "cut every link to and from it");
    button("heal its links", () => ACTIONS.heal(n));
    button("snapshot now", () => ACTIONS.snapshot(n));
    for (const m of others(n)) {
      const row = document.createElement("div");
      row.className = "menu-row";
      const label = document.createElement("span");
      label.textContent = `to ${nameOf(m.id)}:`;
      row.append(label);
      menu.append(row);
      for (const [text, fn] of [["cut →", ACTIONS.cut], ["cut ↔", ACTIONS.cutBoth], [`slow →`, ACTIONS.slow], ["heal", ACTIONS.healLink]]) {
        row.append(button(text, () => fn(n, m)));
      }
      if (n.role === "Leader" && n.open) row.append(button("hand over", () => ACTIONS.transfer(n, m), "leadership transfer"));
    }
  }
  if (menu.querySelectorAll("button").length === 0) {
    const p2 = document.createElement("p");
    p2.textContent = "No lab controls: start the cluster with make cluster (nodes with -lab, and the supervisor at http://127.0.0.1:6080/).";
    menu.append(p2);
  }
  button("close", closeMenu);
  const ring = document.getElementById("ring").getBoundingClientRect();
  const pos = positionOf(n.id);
  menu.style.left = `${Math.round(window.scrollX + ring.left + (pos.x - 40) * ring.width / 440 + 60)}px`;
  menu.style.top = `${Math.round(window.scrollY + ring.top + pos.y * ring.height / 366)}px`;
  menu.hidden = false;
  menu.querySelector("button").focus();
}

function closeMenu() {
  lab.menuFor = null;
  document.getElementById("node-menu").hidden = true;
}

// Circles are buttons: a click, or Enter or Space on a focused one.
document.getElementById("nodes").addEventListener("click", (e) => {
  const g = e.target.closest("[data-node]");
  if (g && nodes.get(g.dataset.node)) openMenu(nodes.get(g.dataset.node));
});
document.getElementById("nodes").addEventListener("keydown", (e) => {
  const g = e.target.closest("[data-node]");
  if (g && (e.key === "Enter" || e.key === " ")) {
    e.preventDefault();
    openMenu(nodes.get(g.dataset.node));
  }
});
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenu(); });

// ------------------------------------------------------------------ events of the lab

// "lab": a node reports an action on its links (from the page or anyone).
HANDLERS.lab = (n, ev, note) => {
  const peer = String(ev.peer || "");
  n.lab = n.lab || { cut: [], slow: {} };
  const action = String(ev.action || "");
  if (action === "cut") n.lab.cut = [...new Set([...n.lab.cut, peer])];
  if (action === "slow") n.lab.slow = Object.assign({}, n.lab.slow, { [peer]: String(ev.delay || "") });
  if (action === "heal") {
    n.lab.cut = peer ? n.lab.cut.filter((p) => p !== peer) : [];
    const slow = Object.assign({}, n.lab.slow);
    if (peer) delete slow[peer]; else for (const k of Object.keys(slow)) delete slow[k];
    n.lab.slow = slow;
  }
  const text = action === "cut" ? html`${b(n.id)} → ${b(peer)} cut: what ${b(n.id)} sends there is lost`
    : action === "slow" ? html`${b(n.id)} → ${b(peer)} slowed by ${String(ev.delay || "")} per message`
    : action === "heal" ? (peer ? html`${b(n.id)} → ${b(peer)} healed` : html`every link from ${b(n.id)} healed`)
    : action === "transfer" ? html`${b(n.id)} hands leadership over to ${b(peer)}: it tells ${b(peer)} to start an election now`
    : action === "snapshot" ? html`${b(n.id)} was asked for a snapshot now`
    : html`${b(n.id)}: lab action ${action}`;
  addEntry("lab", n.id, html`${text}${note}`, ev.time);
};

// "truncate": a follower dropped entries from the tail of its log because
// the leader's log disagreed: they were never committed (a committed entry is
// on a majority, and a leader always has every committed entry).
HANDLERS.truncate = (n, ev, note) => {
  const from = num(ev.from), to = num(ev.to);
  const terms = Array.isArray(ev.terms) ? ev.terms.map(num) : [];
  const range = from === to ? `entry ${from}` : `entries ${from}–${to}`;
  const of = terms.length ? ` from term ${terms.join(", ")}` : "";
  addEntry("truncate", n.id, html`${b(n.id)}'s ${range}${of} were replaced by the leader's: they were never committed${note}`, ev.time);
  setStory({ kind: "truncate", id: n.id, from, to, terms });
  n.lastTruncate = { from, to, terms, at: Date.now() };
  n.entries = new Map(); // they changed: read them again
  refreshLog(n, true);
};

// ------------------------------------------------------------------ the log, entry by entry

// Each node's entries in the strips' window, from its own /log: a term per
// index, so the strips show the terms (a colour and a number per cell), and a
// click on a cell shows the entry.
function refreshLog(n, now) {
  if (!n.open || n.logBusy) return;
  const due = (n.logReadAt || 0) + LOG_REFRESH_MS - Date.now();
  if (due > 0 && !now) {
    if (!n.logTimer) n.logTimer = setTimeout(() => { n.logTimer = 0; refreshLog(n); }, due);
    return;
  }
  const hi = Math.max(highestIndex, LOG_WINDOW), lo = hi - LOG_WINDOW + 1;
  if (n.logRange === `${lo}-${n.lastLog}` && !now) return;
  n.logBusy = true;
  n.logReadAt = Date.now();
  nodeRequest(n, "GET", `/log?from=${Math.max(1, lo)}&to=${hi}`).then((text) => {
    const log = JSON.parse(text);
    n.entries = new Map();
    n.firstIndex = num(log.first_index);
    for (const e of Array.isArray(log.entries) ? log.entries : []) n.entries.set(num(e.index), e);
    n.logRange = `${lo}-${n.lastLog}`;
  }).catch(() => {
    n.entries = null; // no /log here (an older node), or not reachable: strips without terms
  }).finally(() => {
    n.logBusy = false;
    scheduleRender();
  });
}

// One colour per term: neighbouring terms far apart on the wheel.
const termColour = (term) => `hsl(${(term * 137) % 360} 55% 45%)`;

// Called by app.js's drawStrip for each cell: the entry's term, or null.
function entryAt(n, i) {
  return n.entries && n.entries.get(i) || null;
}

function showEntry(n, i) {
  lab.selected = { id: n.id, index: i };
  const box = document.getElementById("entry");
  const e = entryAt(n, i);
  box.hidden = false;
  if (!e) {
    box.textContent = i < (n.firstIndex || 0) ? `${nameOf(n.id)} · index ${i}: compacted into a snapshot (the log starts at ${n.firstIndex})`
      : `${nameOf(n.id)} · index ${i}: not in its log`;
    return;
  }
  const ops = Array.isArray(e.ops) ? e.ops.map((o) => `${o.op} ${o.key}${o.value !== undefined ? `=${o.value}` : ""}`).join("; ") : "";
  const state = i <= n.applied ? "applied" : i <= n.commit ? "committed, not applied yet" : "appended, not committed yet";
  box.textContent = `${nameOf(n.id)} · index ${i} · term ${num(e.term)} · ${e.type}${ops ? `: ${ops}` : ""} · ${state}`;
}

document.getElementById("strips").addEventListener("click", (e) => {
  const cell = e.target.closest("[data-index]");
  const strip = e.target.closest("[data-strip]");
  if (cell && strip && nodes.get(strip.dataset.strip)) showEntry(nodes.get(strip.dataset.strip), num(cell.dataset.index));
});

// ------------------------------------------------------------------ drawing the faults

// Cut links: red, dashed, with ✂ at the sending end; slow ones: orange,
// dotted, with the delay. Frozen and crashed processes get their word.
function drawFaults() {
  const layer = document.getElementById("faults");
  layer.textContent = "";
  for (const n of members()) {
    if (!n.lab) continue;
    for (const [peer, kind] of [...n.lab.cut.map((p) => [p, "cut"]), ...Object.keys(n.lab.slow).map((p) => [p, "slow"])]) {
      if (!order.includes(peer)) continue;
      const a = positionOf(n.id), z = positionOf(peer);
      const len = Math.hypot(z.x - a.x, z.y - a.y) || 1, ux = (z.x - a.x) / len, uy = (z.y - a.y) / len;
      // Offset sideways so that a → b and b → a are two lines.
      const ox = -uy * 5, oy = ux * 5, r = RING.node * ringGeometry().scale + 6;
      layer.append(svg("line", { class: `fault ${kind}`, x1: a.x + ux * r + ox, y1: a.y + uy * r + oy, x2: z.x - ux * r + ox, y2: z.y - uy * r + oy, "data-fault": `${kind} ${n.id} ${peer}` }));
      const t = svg("text", { class: `fault-label ${kind}`, x: a.x + ux * (r + 26) + ox * 3, y: a.y + uy * (r + 26) + oy * 3 + 4 },
        kind === "cut" ? "✂" : `+${n.lab.slow[peer]}`);
      layer.append(t);
    }
  }
  for (const n of members()) {
    const g = document.querySelector(`#nodes [data-node="${CSS.escape(n.id)}"]`);
    if (!g) continue;
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    g.setAttribute("aria-label", `${nameOf(n.id)}: ${shownState(n)}; open its lab controls`);
    const p = procOf(n);
    g.setAttribute("data-proc", p ? p.state : "");
    if (p && p.state === "frozen") {
      g.classList.add("frozen");
      g.querySelector(".role").textContent = "frozen (SIGSTOP)";
    } else if (p && p.state === "stopped") {
      g.classList.add("crashed");
      g.querySelector(".role").textContent = p.exit === "killed" || p.exit === "signal: killed" ? "crashed (killed)" : "stopped";
    }
  }
  document.getElementById("lab-tools").hidden = !(lab.supervisor || members().some(hasLab));
  const sel = document.querySelector("#read select[name=node]");
  const want = members().map((n) => `${n.id}=${nameOf(n.id)}`).join(",");
  if (sel.dataset.members !== want) {
    const keep = sel.value;
    sel.textContent = "";
    for (const n of members()) sel.append(new Option(nameOf(n.id), n.id));
    if (keep) sel.value = keep;
    sel.dataset.members = want;
  }
  for (const n of openMembers()) if (n.lastLog !== n.logSeen) { n.logSeen = n.lastLog; refreshLog(n); }
  if (lab.selected && nodes.get(lab.selected.id)) showEntry(nodes.get(lab.selected.id), lab.selected.index);
  const open = lab.menuFor && nodes.get(lab.menuFor);
  if (open && menuSignature(open) !== lab.menuSig) openMenu(open);
}

renderHooks.push(drawFaults);
document.getElementById("heal-all").addEventListener("click", healAll);
document.getElementById("read").addEventListener("submit", onReadSubmit);
pollSupervisor();
