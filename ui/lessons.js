"use strict";
// stcache · lessons: guided experiments on the real cluster. Loaded after
// app.js and lab.js, whose state and actions they use.
//
// A lesson is a few steps. A step says what it is about to do, does it
// through the lab (the supervisor's process faults, the nodes' link faults,
// ordinary writes and reads), then waits for the cluster's *real* events to
// show the outcome before it explains what happened, with the names, terms
// and indices that really occurred, and enables "Next". A real cluster is
// not scripted: when the expected outcome does not come in time, the step
// says so and what the cluster shows instead.

const STEP_TIMEOUT_MS = 20000;

// ------------------------------------------------------------------ what the steps use

const leaderNow = () => { const l = clusterLeader(); return l && l.open ? l : null; };
const followersOf = (l) => members().filter((n) => n !== l && n.open);

// A request to node n that may fail without throwing: the lessons want to
// show refusals and timeouts, not hide them.
async function tryRequest(n, method, path, ms, form) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms || 15000);
  const direct = n.open && !n.via ? n : null;
  const via = direct || openMembers().find((m) => !m.via) || pageServerRoute();
  const headers = { "X-Stcache-Forward": n.id };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (form) headers["Content-Type"] = "application/x-www-form-urlencoded";
  try {
    const res = await fetch(`${SCHEME}//${(via || n).http}${path}`, { method, mode: "cors", headers, redirect: "manual", signal: ctl.signal, body: form ? new URLSearchParams(form).toString() : undefined });
    const text = (await res.text()).trim();
    return { ok: res.ok, status: res.status || 307, text, index: num(res.headers.get("X-Raft-Index")) };
  } catch (err) {
    return { ok: false, status: 0, text: ctl.signal.aborted ? `no answer within ${(ms || 15000) / 1000} s` : err.message, index: 0 };
  } finally {
    clearTimeout(timer);
  }
}

// Writes go as a form body (POST): a POST is never resent behind our back.
const setKey = (n, key, value, ms) => tryRequest(n, "POST", "/set", ms, { key, value });
const getKey = (n, key, strong) => tryRequest(n, "GET", `/get?key=${encodeURIComponent(key)}${strong ? "&consistency=strong" : ""}`);
const proc = (n, what) => supervisorPost(`nodes/${encodeURIComponent(n.name)}/${what}`);
const labCall = (n, what, peer, extra) => nodeRequest(n, "POST", `/lab/${what}${peer ? `?peer=${encodeURIComponent(peer.id)}${extra || ""}` : ""}`);
const answer = (r) => (r.ok ? `ok (log index ${r.index})` : r.status ? `${r.status} ${r.text}` : r.text);

// ------------------------------------------------------------------ the lessons

const LESSONS = [
  {
    title: "1. A write travels",
    needs: [],
    steps: [
      {
        intro: () => html`We write <b>lesson1=hello</b>. The write goes to the leader, which <em>appends</em> it to its log, sends it to the followers, counts it <em>committed</em> once a majority has it on disk, <em>applies</em> it to its map and answers ok. The followers apply it when the leader's next message tells them the new commit index. Watch the three markers L, C and A move on each strip.`,
        act: async (c) => {
          c.leader = leaderNow();
          c.t0 = performance.now();
          c.w = await setKey(c.leader, "lesson1", "hello");
          c.applied = new Map();
        },
        until: (c) => {
          if (!c.w || !c.w.ok) return !!c.w;
          for (const n of members()) if (n.open && n.applied >= c.w.index && !c.applied.has(n.id)) c.applied.set(n.id, Math.round(performance.now() - c.t0));
          return members().every((n) => !n.open || c.applied.has(n.id));
        },
        outcome: (c) => c.w.ok
          ? html`The leader ${b(c.leader.id)} answered <b>ok</b>: entry ${c.w.index} is committed. Applied: ${joinMarkup([...c.applied].map(([id, t]) => html`${b(id)} after ${t} ms`), ", ")} (as the page saw them, to ~100 ms). The leader applies first; a follower applies only when it learns the entry is committed, which is why a stale read from a follower can trail the leader.`
          : html`The write was not acknowledged: ${answer(c.w)}.`,
      },
    ],
  },
  {
    title: "2. The leader crashes",
    needs: ["supervisor"],
    steps: [
      {
        intro: () => html`We kill the leader with SIGKILL: no goodbye, no hand-over. The followers expect a heartbeat every ~100 ms; after about a second without one, one of them times out, first asks a <em>pre-vote</em> ("would you vote for me?"), then becomes a <em>candidate</em> in a new term and asks for votes.`,
        act: async (c) => { c.old = leaderNow(); c.oldTerm = c.old.term; await proc(c.old, "crash"); c.at = Date.now(); },
        until: (c) => { const l = leaderNow(); return !!(l && l !== c.old && l.term > c.oldTerm); },
        outcome: (c) => {
          const l = leaderNow();
          const el = elections.get(l.term);
          return html`${b(l.id)} won term ${l.term}${votersOf(el)}, ${((Date.now() - c.at) / 1000).toFixed(1)} s after the crash (the page learns it a little late). The term went from ${c.oldTerm} to ${l.term}: every election raises it, and each term has at most one leader. Writes now go to ${b(l.id)}. The vote arrows and the timeline show who asked whom.`;
        },
      },
      {
        intro: (c) => html`We start ${b(c.old.id)} again, with its flags and its data. It remembers its log and its term, hears the new leader's heartbeats, and becomes a follower.`,
        act: async (c) => { await proc(c.old, "restart"); },
        until: (c) => { const l = leaderNow(); return !!(c.old.open && c.old.role === "Follower" && l && c.old.applied >= l.commit); },
        outcome: (c) => html`${b(c.old.id)} is back as a follower of ${b(leaderNow().id)} and has caught up (applied ${c.old.applied}). A restarted node never takes leadership back by itself: the cluster has moved on to a newer term.`,
      },
    ],
  },
  {
    title: "3. A stale read, then a strong one",
    needs: ["supervisor", "lab"],
    steps: [
      {
        intro: () => html`We write <b>lesson3=old</b> and wait until every node has it. Then we <em>freeze</em> a follower (SIGSTOP: it stops, its clock stops, its connections stay open) and write <b>lesson3=new</b>: two of three nodes are a majority, so it commits without the frozen one.`,
        act: async (c) => {
          c.leader = leaderNow();
          c.f = followersOf(c.leader)[0];
          const w = await setKey(c.leader, "lesson3", "old");
          c.oldIndex = w.index;
          for (let i = 0; i < 50 && !members().every((n) => !n.open || n.applied >= w.index); i++) await new Promise((r) => setTimeout(r, 100));
          await proc(c.f, "freeze");
          c.w = await setKey(c.leader, "lesson3", "new");
          // Keep the leader's news from it for now, so the read below is stale for sure.
          await labCall(c.leader, "cut", c.f);
          await proc(c.f, "thaw");
        },
        until: (c) => !!c.w,
        outcome: (c) => html`${b(c.f.id)} was frozen while the leader committed <b>lesson3=new</b> at index ${c.w.index} (${answer(c.w)}). We thawed it, and also cut the leader's link to it for now, so it cannot catch up yet (✂ on the ring).`,
      },
      {
        intro: (c) => html`Now a <em>stale</em> read from ${b(c.f.id)}: it answers from its own map, whatever it has.`,
        act: async (c) => { c.stale = await getKey(c.f, "lesson3", false); },
        until: (c) => !!c.stale,
        outcome: (c) => html`${b(c.f.id)} answered <b>${c.stale.ok ? c.stale.text : answer(c.stale)}</b>, though the leader acknowledged <b>new</b> a moment ago. That is a stale read: allowed, fast, and exactly what the tutorial's reads are.`,
      },
      {
        intro: (c) => html`The same read with <b>consistency=strong</b>, first from ${b(c.f.id)}, then from the leader ${b(c.leader.id)}.`,
        act: async (c) => { c.strongF = await getKey(c.f, "lesson3", true); c.strongL = await getKey(c.leader, "lesson3", true); await labCall(c.leader, "heal", c.f); },
        until: (c) => !!c.strongL,
        outcome: (c) => html`${b(c.f.id)} refused: ${answer(c.strongF)} — only a leader may serve a strong read. The leader answered <b>${c.strongL.ok ? c.strongL.text : answer(c.strongL)}</b>: before answering, it checked with a majority that it still leads, so no newer leader can have acknowledged a write it does not have. We healed the link; ${b(c.f.id)} catches up now.`,
      },
    ],
  },
  {
    title: "4. An isolated leader",
    needs: ["lab"],
    steps: [
      {
        intro: () => html`We cut the leader off from every other node, both ways, and at once send it two writes. It still believes it leads for a moment, so it <em>appends</em> them to its log, but it can never <em>commit</em> them: no majority will ever have them.`,
        act: async (c) => {
          c.old = leaderNow();
          c.oldTerm = c.old.term;
          await ACTIONS.isolate(c.old);
          // Sent now, answered later or never: the client waits.
          const send = (key, value) => {
            addEntry("write", c.old.id, html`you wrote ${key}=${value} to ${b(c.old.id)}, which is cut off; waiting for its answer…`);
            return setKey(c.old, key, value, 12000).then((r) => {
              addEntry("write", c.old.id, html`${b(c.old.id)} answered your write of ${key}=${value}: ${answer(r)}`);
              return r;
            });
          };
          c.pending = [send("lesson4", "lost-1"), send("lesson4-b", "lost-2")];
          Promise.all(c.pending).then((rs) => { c.lost = rs; scheduleRender(); });
          c.lastBefore = c.old.lastLog;
        },
        until: (c) => { const l = leaderNow(); return !!(l && l !== c.old && l.term > c.oldTerm); },
        outcome: (c) => {
          const l = leaderNow();
          return html`The majority heard no leader for about a second and elected ${b(l.id)} in term ${l.term}. ${b(c.old.id)} is cut off: its strip holds entries up to ${c.old.lastLog} that nobody else has (hatched: appended, not committed). Within a leader lease it noticed it cannot reach a majority and stepped down; its two writes are still waiting for an answer.`;
        },
      },
      {
        intro: (c) => html`We write <b>lesson4=kept</b> through the new leader. It commits with the majority, at the same log indices where ${b(c.old.id)} holds its uncommitted entries.`,
        act: async (c) => { c.kept = await setKey(leaderNow(), "lesson4", "kept"); },
        until: (c) => !!c.kept,
        outcome: (c) => html`The new leader answered ${answer(c.kept)}. Two different logs now disagree at those indices: the majority's (committed) and ${b(c.old.id)}'s (not).`,
      },
      {
        intro: (c) => html`We heal every link. ${b(c.old.id)} hears the leader of a newer term and follows it; the leader finds where their logs diverge, and ${b(c.old.id)} drops its own entries from there on and takes the leader's. Watch the terms on its strip change.`,
        act: async (c) => { c.healAt = Date.now(); await ACTIONS.heal(c.old); },
        until: (c) => {
          const t = c.old.lastTruncate;
          if (t && t.at >= c.healAt) c.truncated = t;
          return !!(c.lost && c.old.open && c.old.role === "Follower" && c.truncated);
        },
        outcome: (c) => html`${b(c.old.id)} dropped ${c.truncated.from === c.truncated.to ? `entry ${c.truncated.from}` : `entries ${c.truncated.from}–${c.truncated.to}`} from term ${c.truncated.terms.join(", ")} and replaced ${c.truncated.from === c.truncated.to ? "it" : "them"} with the leader's: they were never committed, so Raft may throw them away. The client of those writes never got ok: ${joinMarkup(c.lost.map(answer), "; ")}. This is why only an <b>ok</b> means a write happened, and why a write that fails may or may not have happened: a client must read to find out.`,
      },
    ],
  },
  {
    title: "5. Catching up by snapshot",
    needs: ["supervisor", "lab"],
    steps: [
      {
        intro: () => html`We crash a follower, then write 300 entries (one write at a time, so one entry each) and ask the leader for a snapshot now. The leader then keeps only the last entries behind its snapshot (make cluster's nodes keep 128: -trailing-logs), so the ones the crashed follower misses are gone from its log.`,
        act: async (c) => {
          c.leader = leaderNow();
          c.f = followersOf(c.leader)[0];
          await proc(c.f, "crash");
          c.fLast = c.f.lastLog;
          for (let i = 0; i < 300; i++) await setKey(c.leader, `lesson5-${i % 20}`, String(i));
          await labCall(c.leader, "snapshot");
        },
        until: (c) => c.leader.snap > c.fLast + 128,
        outcome: (c) => html`The leader's snapshot covers up to index ${c.leader.snap}; its log now starts after it, far past ${c.f.name}'s last entry (${c.fLast}).`,
      },
      {
        intro: (c) => html`We restart ${b(c.f.id)}. The leader cannot send it the entries it misses (they are gone), so it sends its snapshot instead (InstallSnapshot): ${b(c.f.id)} replaces its whole map with it, then takes the entries after it.`,
        act: async (c) => { c.restoresBefore = document.querySelectorAll(`[data-event="restore"][data-node="${CSS.escape(c.f.id)}"]`).length; await proc(c.f, "restart"); },
        until: (c) => document.querySelectorAll(`[data-event="restore"][data-node="${CSS.escape(c.f.id)}"]`).length > c.restoresBefore && c.f.applied >= c.leader.snap,
        outcome: (c) => html`${b(c.f.id)} loaded the leader's snapshot (see "loaded a snapshot" in the timeline) and is up to date: applied ${c.f.applied}. A follower that is only a little behind gets the entries; one too far behind gets the snapshot.`,
      },
    ],
  },
  {
    title: "6. Membership: remove a node, add it back",
    needs: [],
    steps: [
      {
        intro: () => html`We ask the leader to remove a follower (/leave). The cluster's configuration is itself a log entry: once committed, the leader stops sending to the removed node, and the majority is counted among fewer members.`,
        act: async (c) => {
          c.leader = leaderNow();
          c.f = followersOf(c.leader).pop();
          c.r = await tryRequest(c.leader, "GET", `/leave?peerAddress=${encodeURIComponent(c.f.id)}`);
        },
        until: (c) => !!c.r && (!c.r.ok || !order.includes(c.f.id)),
        outcome: (c) => c.r.ok
          ? html`${b(c.f.id)} left (${answer(c.r)}): the ring has ${order.length} members, a majority is ${majority()}. The removed node still runs, and answers "503 not a member" to reads and writes.`
          : html`The leader refused: ${answer(c.r)}.`,
      },
      {
        intro: (c) => html`We add ${b(c.f.id)} back (/join with its Raft and HTTP addresses). The leader appends a new configuration; ${b(c.f.id)} receives the entries it missed and is a voter again.`,
        act: async (c) => { c.j = await tryRequest(c.leader, "GET", `/join?peerAddress=${encodeURIComponent(c.f.id)}&httpAddress=${encodeURIComponent(c.f.http)}`); },
        until: (c) => !!c.j && (!c.j.ok || (order.includes(c.f.id) && c.f.open && c.f.applied >= c.leader.commit)),
        outcome: (c) => c.j.ok
          ? html`${b(c.f.id)} is a member again and has caught up (applied ${c.f.applied}); a majority is ${majority()} of ${order.length}.`
          : html`The leader refused: ${answer(c.j)}.`,
      },
    ],
  },
];

// ------------------------------------------------------------------ running one

let running = null; // {lesson, step, ctx, phase: "intro"|"acting"|"waiting"|"done"|"late", since}

function startLesson(i) {
  running = { lesson: LESSONS[i], step: 0, ctx: {}, phase: "intro", since: Date.now() };
  addEntry("lab", "", html`lesson started: ${running.lesson.title}`);
  drawLesson();
}

async function doStep() {
  const r = running, step = r.lesson.steps[r.step];
  r.phase = "acting";
  drawLesson();
  try {
    await step.act(r.ctx);
  } catch (err) {
    r.error = err.message;
  }
  if (running !== r) return;
  r.phase = "waiting";
  r.since = Date.now();
  drawLesson();
}

function nextStep() {
  const r = running;
  if (r.step + 1 >= r.lesson.steps.length) {
    addEntry("lab", "", html`lesson finished: ${r.lesson.title}`);
    running = null;
  } else {
    Object.assign(r, { step: r.step + 1, phase: "intro", error: "" });
  }
  drawLesson();
}

// Checked at every render: the real events decide when a step is over.
function checkLesson() {
  const r = running;
  if (!r || r.phase !== "waiting") return;
  const step = r.lesson.steps[r.step];
  let done = false;
  try { done = !!step.until(r.ctx); } catch (err) { done = false; }
  if (done) {
    r.phase = "done";
    drawLesson();
  } else if (Date.now() - r.since > STEP_TIMEOUT_MS) {
    r.phase = "late";
    drawLesson();
  }
}

// What a lesson needs that this cluster may lack.
function missing(lesson) {
  const want = [];
  if (lesson.needs.includes("supervisor") && !lab.supervisor) want.push("the lab supervisor (open the page make cluster prints: http://127.0.0.1:6080/)");
  if (lesson.needs.includes("lab") && !members().some(hasLab)) want.push("nodes started with -lab (make cluster does)");
  if (!leaderNow()) want.push("a leader (wait, or heal all)");
  return want;
}

function drawLesson() {
  const box = document.getElementById("lesson-body");
  box.textContent = "";
  const para = (m, cls) => { const p = document.createElement("p"); if (cls) p.className = cls; p.innerHTML = markup(m); box.append(p); return p; };
  const btn = (label, fn, primary) => {
    const x = document.createElement("button");
    x.type = "button";
    x.textContent = label;
    if (primary) x.className = "primary";
    x.addEventListener("click", fn);
    box.append(x);
    return x;
  };
  if (!running) {
    para("Each lesson acts on the real cluster through the lab, waits for what really happens, then explains it.");
    LESSONS.forEach((lesson, i) => {
      const want = missing(lesson);
      const x = btn(lesson.title, () => startLesson(i));
      x.className = "lesson-pick";
      x.dataset.lesson = String(i + 1);
      if (want.length) { x.disabled = true; x.title = `needs ${want.join(" and ")}`; }
    });
    return;
  }
  const r = running, step = r.lesson.steps[r.step];
  const head = document.createElement("h3");
  head.textContent = `${r.lesson.title} — step ${r.step + 1} of ${r.lesson.steps.length}`;
  box.append(head);
  box.dataset.phase = r.phase;
  box.dataset.lesson = r.lesson.title;
  box.dataset.step = String(r.step + 1);
  para(step.intro(r.ctx));
  if (r.phase === "intro") {
    const want = missing(r.lesson);
    if (want.length) para(html`This needs ${want.join(" and ")}.`, "late");
    btn("Do it", doStep, true).disabled = want.length > 0;
  } else if (r.phase === "acting" || r.phase === "waiting") {
    para(r.phase === "acting" ? "Acting on the cluster…" : "Waiting for the cluster's own events…", "wait");
  } else if (r.phase === "done") {
    let out;
    try { out = step.outcome(r.ctx); } catch (err) { out = html`(The step finished, but the page cannot tell the story: ${err.message}.)`; }
    para(out, "outcome");
    btn(r.step + 1 < r.lesson.steps.length ? "Next" : "Finish", nextStep, true);
  } else {
    const [title, text] = explain();
    para(html`This did not happen within ${STEP_TIMEOUT_MS / 1000} s${r.error ? html` (an action failed: ${r.error})` : ""}. What the cluster shows now: <b>${title}</b>. ${text}`, "late");
    btn("Next anyway", nextStep, true);
  }
  btn("Stop the lesson", () => { running = null; drawLesson(); });
}

document.getElementById("lessons-toggle").addEventListener("click", () => {
  const panel = document.getElementById("lessons");
  panel.hidden = !panel.hidden;
  drawLesson();
});
renderHooks.push(checkLesson);
// The list says which lessons this cluster can run; refresh it now and then.
setInterval(() => { if (!running && !document.getElementById("lessons").hidden) drawLesson(); }, 2000);
