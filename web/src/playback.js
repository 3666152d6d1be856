// The Playback view of a room (CONTRACT §7), a chunk loaded when opened:
// the session's export replayed in the page (playback-model.js), with a
// slider labelled "Timeline" (keyboard: arrows ±1 s, Shift+arrows ±10 s,
// Page Up / Page Down ±10 %, Home / End, "," / "." one edit back or on,
// Space plays), Play / Pause, a Speed choice (1× to 32×), idle stretches
// skipped, one coloured track per author with the pastes, runs and
// absences on it, each author's text in their colour, and the output of the
// last run before the playhead.
import { addStyles, h, mount } from "./dom.js";
import styles from "./playback.lazy.css";
import { getExport, ApiError } from "./api.js";
import { Session } from "./playback-model.js";

const SPEEDS = [1, 2, 4, 8, 16, 32];
/** Arrow keys move this much playback time, Shift+arrows ten times more. */
const STEP_MS = 1000;
/** A frame that came late (a busy page) moves the playhead at most this much. */
const MAX_FRAME_MS = 1000;

/** "4:05", "1:02:03". */
function clockText(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const [hh, mm, ss] = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

/** "2 min 10 s", "45 s". */
function durationText(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

const timeOf = (ms) => new Date(ms).toLocaleTimeString();

/** What a mark on a track says. */
function markText(e, name) {
  switch (e.kind) {
    case "paste":
      return `${name} pasted ${e.chars} character${e.chars === 1 ? "" : "s"} at ${timeOf(e.at)}`;
    case "run":
      return `${name} ran the answer at ${timeOf(e.at)}${e.exit != null ? ` (exit ${e.exit})` : ""}`;
    case "away":
      return `${name} left the page at ${timeOf(e.at)}`;
    case "join":
      return `${name} joined at ${timeOf(e.at)}`;
    case "leave":
      return `${name} left the room at ${timeOf(e.at)}`;
    case "lock":
      return `${name} locked editing at ${timeOf(e.at)}`;
    case "unlock":
      return `${name} unlocked editing at ${timeOf(e.at)}`;
    case "end":
      return `${name} ended the interview at ${timeOf(e.at)}`;
    default:
      return `${e.kind} at ${timeOf(e.at)}`;
  }
}

/**
 * Mounts the view in `host`. `interviewerKey()`: the key to read the export
 * with (none: the creator, or anyone once ended); `prefetched`: the export's
 * answer if it was asked for already (the room does, while this chunk
 * loads). Returns {reload(), pause(), destroy()}.
 */
export function mountPlayback(host, { id, interviewerKey, onAuthLost, prefetched }) {
  addStyles(styles);
  let alive = true;
  let session = null;
  let file = null;
  let pos = 0; // playback time: ms from the start, idle skipped
  let playing = false;
  let speed = 1;
  let raf = 0;
  let last = 0;
  let loads = 0;
  let shownK = -1;
  let runs = []; // run events, in order
  let lanes = []; // {canvas, author}

  const status = h("p", { class: "pb-status muted", "aria-live": "polite" }, "Loading the session…");
  const playButton = h("button", { type: "button", class: "primary pb-play", disabled: true }, "Play");
  const speedSelect = h(
    "select",
    { id: "pb-speed", class: "pb-speed", disabled: true },
    SPEEDS.map((s) => h("option", { value: String(s) }, `${s}×`)),
  );
  const slider = h("input", { type: "range", class: "pb-slider", "aria-label": "Timeline", min: "0", max: "0", step: "1", value: "0", disabled: true });
  const clock = h("span", { class: "pb-clock" }, "0:00 / 0:00");
  const wall = h("span", { class: "pb-wall muted" });
  const download = h("button", { type: "button", class: "secondary small", disabled: true }, "Download session");
  const tracks = h("div", { class: "pb-tracks" });
  const playhead = h("div", { class: "pb-playhead", "aria-hidden": "true" });
  const text = h("pre", { class: "pb-text", tabindex: "0", "aria-label": "The answer at this moment" });
  const runHead = h("p", { class: "pb-run-head muted" }, "No run yet at this moment.");
  const runOut = h("pre", { class: "output-text pb-run-out" });
  const section = h(
    "section",
    { class: "playback", "aria-label": "Playback", "data-ready": "false" },
    h("div", { class: "pb-head" }, h("h2", { class: "section-title" }, "Playback"), status, download),
    h(
      "div",
      { class: "pb-controls" },
      playButton,
      h("label", { for: "pb-speed", class: "pb-speed-label" }, "Speed"),
      speedSelect,
      slider,
      clock,
      wall,
    ),
    h("div", { class: "pb-tracks-box" }, tracks, playhead),
    h("div", { class: "pb-body" }, text, h("div", { class: "pb-run" }, h("h3", { class: "section-title" }, "Last run"), runHead, runOut)),
  );
  mount(host, section);

  // ---------- loading: the export, then the first pass over it
  async function load() {
    const n = ++loads;
    pause();
    section.dataset.ready = "false";
    delete section.dataset.filled;
    status.textContent = "Loading the session…";
    performance.mark("duet:playback-load");
    let got;
    try {
      const asked = n === 1 && prefetched;
      got = await (asked || getExport(id, interviewerKey()));
    } catch (e) {
      if (!alive || n !== loads) return;
      if (e instanceof ApiError && e.status === 401) return onAuthLost();
      status.textContent = e instanceof ApiError && e.status === 403 ? "The playback is for interviewers until the interview has ended." : e.message;
      return;
    }
    if (!alive || n !== loads) return;
    performance.mark("duet:playback-fetched");
    const s = new Session(got);
    performance.mark("duet:playback-read");
    session = s;
    file = got;
    runs = s.events.filter((e) => e.kind === "run");
    for (const c of [playButton, speedSelect, slider, download]) c.disabled = false;
    slider.max = String(Math.ceil(s.total));
    buildTracks();
    shownK = -1;
    show(0); // at the start, ready to play (End shows the answer as it was left)
    const people = s.authors.filter((a) => a.edits).map((a) => a.name);
    const skipped = s.skips.reduce((sum, k) => sum + (k.to - k.from - k.shown), 0);
    status.textContent = `${s.n} edit${s.n === 1 ? "" : "s"}${people.length ? ` by ${people.join(", ")}` : ""} over ${durationText(s.end - s.start)}${skipped ? `; ${durationText(skipped)} of idle time skipped` : ""}.`;
    section.dataset.ready = "true";
    performance.mark("duet:playback-ready");
    // Then the whole log once, in idle time: every later seek is quick.
    s.fillSnapshots(() => !alive || session !== s).then(() => {
      if (alive && session === s) section.dataset.filled = "true";
    });
  }

  // ---------- the tracks: one per author, and the session's own row
  function buildTracks() {
    const s = session;
    const frac = (t) => (s.total ? s.toComp(t) / s.total : 0);
    const mark = (e, name, cls) => {
      const b = h("button", { type: "button", class: `pb-mark ${cls}`, tabindex: "-1", title: markText(e, name), "aria-label": markText(e, name) });
      b.style.left = `${frac(e.at) * 100}%`;
      b.addEventListener("click", () => show(s.toComp(e.at), { scroll: true }));
      return b;
    };
    const axis = h("div", { class: "pb-lane pb-axis-lane" });
    for (const k of s.skips) {
      const tick = h("span", { class: "pb-skip", title: `${durationText(k.to - k.from)} with nothing happening, skipped` });
      tick.style.left = `${(k.at / (s.total || 1)) * 100}%`;
      tick.style.width = `${(k.shown / (s.total || 1)) * 100}%`;
      axis.append(tick);
    }
    for (const e of s.events) {
      if (["lock", "unlock", "end"].includes(e.kind)) axis.append(mark(e, s.authors[e.author]?.name || "Someone", `pb-mark-${e.kind}`));
    }
    const rows = [h("div", { class: "pb-row pb-axis" }, h("span", { class: "pb-label muted" }, "Session"), axis)];
    lanes = [];
    for (const a of s.authors) {
      const own = s.events.filter((e) => e.author === a.index);
      if (!a.edits && !own.some((e) => ["paste", "run", "away"].includes(e.kind))) continue;
      const canvas = h("canvas", { class: "pb-density", "aria-hidden": "true" });
      const lane = h("div", { class: "pb-lane" }, canvas);
      lane.style.setProperty("--c", a.color);
      // Absences: from "away" to the next "back" (or the end).
      for (let i = 0; i < own.length; i++) {
        if (own[i].kind !== "away") continue;
        const back = own.slice(i + 1).find((e) => e.kind === "back");
        const span = mark(own[i], a.name, "pb-away");
        span.style.width = `${Math.max(0.3, (frac(back ? back.at : s.end) - frac(own[i].at)) * 100)}%`;
        lane.append(span);
      }
      for (const e of own) if (e.kind === "paste" || e.kind === "run") lane.append(mark(e, a.name, `pb-mark-${e.kind}`));
      const dot = h("span", { class: "dot", "aria-hidden": "true" });
      dot.style.backgroundColor = a.color;
      const label = h("span", { class: "pb-label" }, dot, h("span", { class: "name" }, a.name), h("span", { class: "muted" }, ` ${a.edits}`));
      label.title = `${a.name}: ${a.edits} edit${a.edits === 1 ? "" : "s"}`;
      rows.push(h("div", { class: "pb-row", "data-author": a.name }, label, lane));
      lanes.push({ canvas, author: a.index });
    }
    mount(tracks, rows);
    drawDensity();
  }

  /** Each author's edits per pixel of their track, as bars in their colour. */
  function drawDensity() {
    if (!session || !lanes.length) return;
    const s = session;
    const width = Math.max(1, Math.round(lanes[0].canvas.clientWidth * (window.devicePixelRatio || 1)));
    const height = Math.max(1, Math.round(lanes[0].canvas.clientHeight * (window.devicePixelRatio || 1)));
    const bins = lanes.map(() => new Uint32Array(width));
    const laneOf = new Map(lanes.map((l, i) => [l.author, i]));
    let max = 1;
    for (let i = 0; i < s.n; i++) {
      const lane = laneOf.get(s.authorOf[i]);
      if (lane === undefined) continue;
      const x = Math.min(width - 1, Math.floor((s.toComp(s.times[i]) / (s.total || 1)) * width));
      max = Math.max(max, ++bins[lane][x]);
    }
    lanes.forEach(({ canvas, author }, i) => {
      canvas.width = width;
      canvas.height = height;
      const g = canvas.getContext("2d");
      if (!g) return;
      g.fillStyle = s.authors[author].color;
      for (let x = 0; x < width; x++) {
        if (!bins[i][x]) continue;
        const bar = Math.max(2, Math.round(Math.sqrt(bins[i][x] / max) * height));
        g.fillRect(x, height - bar, 1, bar);
      }
    });
  }
  const resized = new ResizeObserver(() => drawDensity());
  resized.observe(tracks);

  // ---------- showing an instant
  function show(c, { scroll = false } = {}) {
    if (!session) return;
    const s = session;
    pos = Math.max(0, Math.min(s.total, c));
    const real = Math.floor(s.toReal(pos));
    const k = s.countAt(real);
    if (k !== shownK) {
      s.seek(k);
      shownK = k;
      renderText(scroll);
    }
    slider.value = String(Math.round(pos));
    const elapsed = clockText(real - s.start);
    slider.setAttribute("aria-valuetext", `${elapsed} of ${clockText(s.end - s.start)}, ${timeOf(real)}`);
    clock.textContent = `${elapsed} / ${clockText(s.end - s.start)}`;
    wall.textContent = timeOf(real);
    section.dataset.at = new Date(real).toISOString();
    section.dataset.edits = String(k);
    playhead.style.setProperty("--at", String(s.total ? pos / s.total : 1));
    renderRun(real);
  }

  function renderText(scroll) {
    const frag = document.createDocumentFragment();
    let fresh = null;
    for (const r of session.runs()) {
      const a = session.authors[r.author];
      const span = document.createElement("span");
      span.textContent = r.text;
      span.className = r.fresh ? "pb-a pb-fresh" : "pb-a";
      if (a) {
        span.style.setProperty("--c", a.color);
        span.title = a.name;
      }
      if (r.fresh) fresh = span;
      frag.append(span);
    }
    text.replaceChildren(frag);
    // Keep the last change in sight (scrolling the text only, never the page).
    if (scroll && fresh) {
      const top = fresh.offsetTop - text.offsetTop;
      if (top < text.scrollTop || top > text.scrollTop + text.clientHeight - 30) text.scrollTop = Math.max(0, top - text.clientHeight / 3);
    }
  }

  let runShown = null;
  function renderRun(real) {
    let i = runs.length - 1;
    while (i >= 0 && runs[i].at > real) i--;
    const run = i >= 0 ? runs[i] : null;
    if (run === runShown) return;
    runShown = run;
    if (!run) {
      runHead.textContent = "No run yet at this moment.";
      runOut.replaceChildren();
      return;
    }
    const who = session.authors[run.author]?.name || "Someone";
    runHead.textContent = `${who} ran it at ${timeOf(run.at)}${run.exit != null ? `: exit ${run.exit}` : ""}${run.timed_out ? " (stopped: too long)" : ""}.`;
    const out = Array.isArray(run.output) ? run.output : [];
    mount(
      runOut,
      out.map((c) => h("span", { class: c.stream === "stderr" ? "out-stderr" : "out-stdout" }, String(c.data ?? ""))),
    );
  }

  // ---------- play, speed, seeking
  function play() {
    if (!session) return;
    if (pos >= session.total) show(0);
    playing = true;
    playButton.textContent = "Pause";
    last = performance.now();
    raf = requestAnimationFrame(tick);
  }
  function pause() {
    playing = false;
    cancelAnimationFrame(raf);
    playButton.textContent = "Play";
  }
  function tick(now) {
    if (!playing || !alive) return;
    const dt = Math.min(MAX_FRAME_MS, now - last);
    last = now;
    show(pos + dt * speed, { scroll: true });
    if (pos >= session.total) pause();
    else raf = requestAnimationFrame(tick);
  }
  playButton.addEventListener("click", () => (playing ? pause() : play()));
  speedSelect.addEventListener("change", () => {
    speed = Number(speedSelect.value) || 1;
  });
  slider.addEventListener("input", () => show(Number(slider.value), { scroll: true }));
  slider.addEventListener("keydown", (ev) => {
    if (!session) return;
    const s = session;
    const step = ev.shiftKey ? 10 * STEP_MS : STEP_MS;
    let to;
    switch (ev.key) {
      case "ArrowRight":
      case "ArrowUp":
        to = pos + step;
        break;
      case "ArrowLeft":
      case "ArrowDown":
        to = pos - step;
        break;
      case "PageUp":
        to = pos + s.total / 10;
        break;
      case "PageDown":
        to = pos - s.total / 10;
        break;
      case "Home":
        to = 0;
        break;
      case "End":
        to = s.total;
        break;
      case ".": // the next edit
        to = shownK < s.n ? s.toComp(s.times[shownK]) : s.total;
        break;
      case ",": // one edit back
        to = shownK >= 2 ? s.toComp(s.times[shownK - 2]) : 0;
        break;
      case " ":
        ev.preventDefault();
        return playing ? pause() : play();
      default:
        return;
    }
    ev.preventDefault();
    show(to, { scroll: true });
  });
  // Clicking a track seeks there.
  tracks.addEventListener("click", (ev) => {
    const lane = ev.target.closest && ev.target.closest(".pb-lane");
    if (!session || !lane || ev.target.closest(".pb-mark")) return;
    const box = lane.getBoundingClientRect();
    show(((ev.clientX - box.left) / box.width) * session.total, { scroll: true });
  });
  download.addEventListener("click", () => {
    if (!file) return;
    const url = URL.createObjectURL(new Blob([JSON.stringify(file)], { type: "application/json" }));
    const a = h("a", { href: url, download: `duet-${id}.json`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 0);
  });

  load();

  return {
    reload: () => load(),
    pause,
    destroy() {
      alive = false;
      pause();
      resized.disconnect();
      if (session) session.doc.destroy();
    },
  };
}
