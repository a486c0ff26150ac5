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
//
// The lessons, their steps and every word they say come from lessons.json,
// which make demo (cmd/demo) reads too: this file only implements each step
// (STEPS, by the step's id), so the page and the terminal walkthrough tell
// the same story in the same steps. cmd/demo's TestLessonsAgree fails when a
// step of lessons.json is missing here or there, or STEPS strays from its
// order.

let STEP_TIMEOUT_MS = 20000;
let LESSONS = null;          // lessons.json's lessons, once loaded
let lessonProblems = [];     // why the lessons cannot run (shown, and checked by the browser test)

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
// A process action through the supervisor; a refusal is an answer, not an error.
async function procCall(n, what) {
  try {
    await supervisorPost(`nodes/${encodeURIComponent(n.name)}/${what}`);
    return { ok: true, status: 200, text: "ok", index: 0 };
  } catch (err) {
    return { ok: false, status: 0, text: err.message, index: 0 };
  }
}
const labCall = (n, what, peer, extra) => nodeRequest(n, "POST", `/lab/${what}${peer ? `?peer=${encodeURIComponent(peer.id)}${extra || ""}` : ""}`);
// An answer in words, as make demo words it too. A follower's 307 cannot be
// read by a page (redirect: "manual"), so it is named, not quoted.
const answer = (r) => (r.ok ? (r.index ? `ok (log index ${r.index})` : "ok")
  : r.status === 307 ? "307, a redirect to the leader" : r.status ? `${r.status} ${r.text}` : r.text);
const restoresOf = (n) => document.querySelectorAll(`[data-event="restore"][data-node="${CSS.escape(n.id)}"]`).length;

// ------------------------------------------------------------------ the steps

// What each step does (act), when it is over (until: the cluster's own
// events say so), and what it tells (tell: ok, whether the expected outcome
// happened, and the facts that fill lessons.json's {placeholders}; the facts
// stay known to the later steps of the lesson). In the same order as
// lessons.json.
const STEPS = {
  "write": {
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
    tell: (c) => ({
      ok: c.w.ok, leader: b(c.leader.id), index: c.w.index, answer: answer(c.w),
      applied: joinMarkup([...c.applied].map(([id, t]) => html`${b(id)} after ${t} ms`), ", "),
    }),
  },
  "crash-leader": {
    act: async (c) => { c.old = leaderNow(); c.oldTerm = c.old.term; c.r = await procCall(c.old, "crash"); c.at = Date.now(); },
    until: (c) => { const l = leaderNow(); return !!(l && l !== c.old && l.term > c.oldTerm); },
    tell: (c) => {
      const l = leaderNow();
      return { leader: b(l.id), term: l.term, old_term: c.oldTerm, old: b(c.old.id), answer: answer(c.r), seconds: ((Date.now() - c.at) / 1000).toFixed(1) };
    },
  },
  "restart-old-leader": {
    act: async (c) => { c.r = await procCall(c.old, "restart"); },
    until: (c) => { const l = leaderNow(); return !!(c.old.open && c.old.role === "Follower" && l && c.old.applied >= l.commit); },
    tell: (c) => ({ leader: b(leaderNow().id), applied: c.old.applied, answer: answer(c.r) }),
  },
  "freeze-and-write": {
    act: async (c) => {
      c.leader = leaderNow();
      c.f = followersOf(c.leader)[0];
      const w = await setKey(c.leader, "lesson3", "old");
      for (let i = 0; i < 50 && !members().every((n) => !n.open || n.applied >= w.index); i++) await new Promise((r) => setTimeout(r, 100));
      await procCall(c.f, "freeze");
      // Keep the leader's news from it for now, so the read below is stale
      // for sure; cut before the write, so nothing about the write can
      // already sit in the frozen node's socket when it thaws.
      await labCall(c.leader, "cut", c.f);
      c.w = await setKey(c.leader, "lesson3", "new");
      await procCall(c.f, "thaw");
    },
    until: (c) => !!c.w,
    tell: (c) => ({ ok: c.w.ok, leader: b(c.leader.id), follower: b(c.f.id), index: c.w.index, answer: answer(c.w) }),
  },
  "stale-read": {
    act: async (c) => { c.stale = await getKey(c.f, "lesson3", false); },
    until: (c) => !!c.stale,
    tell: (c) => ({ ok: c.stale.ok && c.stale.text === "old", value: c.stale.ok ? c.stale.text : answer(c.stale) }),
  },
  "strong-read": {
    act: async (c) => { c.strongF = await getKey(c.f, "lesson3", true); c.strongL = await getKey(c.leader, "lesson3", true); await labCall(c.leader, "heal", c.f); },
    until: (c) => !!c.strongL,
    tell: (c) => ({ ok: !c.strongF.ok && c.strongL.ok && c.strongL.text === "new", refusal: answer(c.strongF), value: c.strongL.ok ? c.strongL.text : answer(c.strongL) }),
  },
  "isolate-leader": {
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
    },
    until: (c) => { const l = leaderNow(); return !!(l && l !== c.old && l.term > c.oldTerm); },
    tell: (c) => { const l = leaderNow(); return { old: b(c.old.id), leader: b(l.id), term: l.term, last: c.old.lastLog }; },
  },
  "write-to-majority": {
    act: async (c) => { c.kept = await setKey(leaderNow(), "lesson4", "kept"); },
    until: (c) => !!c.kept,
    tell: (c) => ({ ok: c.kept.ok, answer: answer(c.kept) }),
  },
  "heal": {
    act: async (c) => { c.healAt = Date.now(); await ACTIONS.heal(c.old); },
    until: (c) => {
      const t = c.old.lastTruncate;
      if (t && t.at >= c.healAt) c.truncated = t;
      return !!(c.lost && c.old.open && c.old.role === "Follower" && c.truncated);
    },
    tell: (c) => {
      const t = c.truncated;
      return {
        ok: c.lost.every((r) => !r.ok),
        dropped: t.from === t.to ? `entry ${t.from}` : `entries ${t.from}–${t.to}`, terms: t.terms.join(", "),
        lost: joinMarkup(c.lost.map(answer), "; "),
      };
    },
  },
  "crash-follower-and-write": {
    act: async (c) => {
      c.leader = leaderNow();
      c.f = followersOf(c.leader)[0];
      c.fLast = c.f.lastLog;
      await procCall(c.f, "crash");
      for (let i = 0; i < 300; i++) await setKey(c.leader, `lesson5-${i % 20}`, String(i));
      await labCall(c.leader, "snapshot");
    },
    until: (c) => c.leader.snap > c.fLast + 128,
    tell: (c) => ({ follower: b(c.f.id), snapshot: c.leader.snap, last: c.fLast }),
  },
  "restart-follower": {
    act: async (c) => { c.restoresBefore = restoresOf(c.f); c.r = await procCall(c.f, "restart"); },
    until: (c) => restoresOf(c.f) > c.restoresBefore && c.f.applied >= c.leader.snap,
    tell: (c) => ({ applied: c.f.applied, answer: answer(c.r) }),
  },
  "remove-follower": {
    act: async (c) => {
      c.leader = leaderNow();
      c.f = followersOf(c.leader).pop();
      c.r = await tryRequest(c.leader, "GET", `/leave?peerAddress=${encodeURIComponent(c.f.id)}`);
    },
    until: (c) => !!c.r && (!c.r.ok || !order.includes(c.f.id)),
    tell: (c) => ({ ok: c.r.ok, follower: b(c.f.id), answer: answer(c.r), members: order.length, majority: majority() }),
  },
  "add-back": {
    act: async (c) => { c.r = await tryRequest(c.leader, "GET", `/join?peerAddress=${encodeURIComponent(c.f.id)}&httpAddress=${encodeURIComponent(c.f.http)}`); },
    until: (c) => !!c.r && (!c.r.ok || (order.includes(c.f.id) && c.f.open && c.f.applied >= c.leader.commit)),
    tell: (c) => ({ ok: c.r.ok, answer: answer(c.r), applied: c.f.applied, members: order.length, majority: majority() }),
  },
};

// lessons.json's words with their {placeholders} filled: its text is this
// page's own markup (<b>, <em>); the facts are escaped unless html`` built
// them. A placeholder no fact fills stays as it is, for the eye and the
// browser test to catch.
const fill = (text, facts) => new Markup(String(text).replace(/\{([a-z_]+)\}/g, (m, k) => (k in facts ? markup(facts[k]) : m)));

// Loads lessons.json and says what does not match STEPS.
async function loadLessons() {
  try {
    const res = await fetch("/ui/lessons.json", { cache: "no-store" });
    if (!res.ok) throw new Error(`${res.status}`);
    const src = await res.json();
    const ids = src.lessons.flatMap((l) => l.steps.map((s) => s.id));
    lessonProblems = [
      ...ids.filter((id) => !STEPS[id]).map((id) => `step ${id} of lessons.json is not implemented on this page`),
      ...Object.keys(STEPS).filter((id) => !ids.includes(id)).map((id) => `step ${id} is not in lessons.json`),
    ];
    STEP_TIMEOUT_MS = (Number(src.step_timeout_seconds) || 20) * 1000;
    LESSONS = src.lessons;
  } catch (err) {
    lessonProblems = [`the lessons could not be loaded (/ui/lessons.json: ${err.message})`];
  }
  drawLesson();
}

// ------------------------------------------------------------------ running one

let running = null; // {lesson, step, ctx, phase: "intro"|"acting"|"waiting"|"done"|"late", since}

function startLesson(i) {
  running = { lesson: LESSONS[i], step: 0, ctx: { say: {} }, phase: "intro", since: Date.now() };
  addEntry("lab", "", html`lesson started: ${running.lesson.title}`);
  drawLesson();
}

async function doStep() {
  const r = running, step = r.lesson.steps[r.step];
  r.phase = "acting";
  drawLesson();
  try {
    await STEPS[step.id].act(r.ctx);
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
    Object.assign(r, { step: r.step + 1, phase: "intro", error: "", told: null, expected: false });
  }
  drawLesson();
}

// Checked at every render: the real events decide when a step is over.
function checkLesson() {
  const r = running;
  if (!r || r.phase !== "waiting") return;
  const step = r.lesson.steps[r.step];
  let done = false;
  try { done = !!STEPS[step.id].until(r.ctx); } catch (err) { done = false; }
  if (done) {
    // What it tells is settled once: the facts join the lesson's, for the
    // steps after it.
    try {
      const { ok, ...facts } = STEPS[step.id].tell(r.ctx);
      Object.assign(r.ctx.say, facts);
      r.expected = ok !== false;
      r.told = fill(r.expected ? step.outcome : step.otherwise, r.ctx.say);
    } catch (err) {
      r.told = html`(The step finished, but the page cannot tell the story: ${err.message}.)`;
    }
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
    for (const p of lessonProblems) para(p, "late");
    if (!LESSONS) return;
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
  // Whether the step's expected outcome happened (its "outcome" words), or
  // something else did (its "otherwise" words).
  box.dataset.outcome = r.phase === "done" ? (r.expected ? "expected" : "otherwise") : "";
  para(fill(step.intro, r.ctx.say));
  if (r.phase === "intro") {
    const want = missing(r.lesson);
    if (want.length) para(html`This needs ${want.join(" and ")}.`, "late");
    btn("Do it", doStep, true).disabled = want.length > 0;
  } else if (r.phase === "acting" || r.phase === "waiting") {
    para(r.phase === "acting" ? "Acting on the cluster…" : "Waiting for the cluster's own events…", "wait");
  } else if (r.phase === "done") {
    para(r.told, "outcome");
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
loadLessons();
