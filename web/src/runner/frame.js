// The runner frame, served at /runner and embedded by the room page as
// <iframe sandbox="allow-scripts">. Without allow-same-origin its origin is
// opaque: it cannot read the page, its localStorage (where the token is) or
// its cookies, and the server's Content-Security-Policy on /runner lets it
// fetch nothing but this server's files. Each program runs in a fresh
// module Worker (from a data: URL: see spawn), which is terminated at the
// wall limit; the frame relays output and the exit to the
// page with postMessage, and takes orders only from its parent.
import { cutUtf8, utf8Length } from "./common.js";

/* global __DUET_WORKERS__, __DUET_PYODIDE__ */
const WORKERS = __DUET_WORKERS__; // {language: "/assets/runner/<worker>-HASH.js"}, set by build.mjs
const PYODIDE = __DUET_PYODIDE__;
/** Longest a runtime may take to load (the server's LOAD_ALLOWANCE). */
const LOAD_LIMIT_MS = 60000;
/** Output goes to the page at most this often, so a chatty program costs it little. */
const FLUSH_MS = 50;

const abs = (path) => new URL(path, location.href).href;
const toPage = (msg) => parent.postMessage(msg, "*");

/** The limits the server sent, kept within sane bounds. */
function sanitize(limits) {
  const int = (v, lo, hi, dflt) => (Number.isInteger(v) ? Math.min(hi, Math.max(lo, v)) : dflt);
  return {
    wall_ms: int(limits && limits.wall_ms, 100, 600000, 10000),
    output_bytes: int(limits && limits.output_bytes, 1, 1 << 20, 65536),
    memory_mb: int(limits && limits.memory_mb, 64, 2048, 256),
  };
}

/** Starts a worker for `language`; its `ready` settles once the runtime is loaded. */
function spawn(language, limits) {
  const init = {
    base: abs(PYODIDE),
    memoryBytes: limits.memory_mb * 1024 * 1024,
    outputBytes: limits.output_bytes,
  };
  const src =
    `self.duetInit = ${JSON.stringify(init)};\n` +
    `import(${JSON.stringify(abs(WORKERS[language]))}).catch((e) => self.postMessage({type: "fatal", message: "The runner did not load: " + e}));\n`;
  // A data: URL: Chromium refuses module workers from blob: URLs in an
  // opaque-origin document, and Pyodide refuses classic workers.
  const url = `data:text/javascript,${encodeURIComponent(src)}`;
  const worker = new Worker(url, { type: "module", name: `duet-${language}` });
  const w = { language, key: JSON.stringify(limits), worker, loaded: false, onMessage: null, onError: null };
  w.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("The runtime took too long to load.")), LOAD_LIMIT_MS);
    const settle = (f, v) => {
      clearTimeout(timer);
      f(v);
    };
    worker.onmessage = (ev) => {
      const m = ev.data;
      if (!w.loaded && m && m.type === "ready") {
        w.loaded = true;
        settle(resolve);
      } else if (!w.loaded && m && m.type === "fatal") settle(reject, new Error(String(m.message)));
      else if (w.onMessage) w.onMessage(m);
    };
    worker.onerror = (ev) => {
      ev.preventDefault();
      const err = new Error(ev.message || "The runner stopped.");
      if (!w.loaded) settle(reject, err);
      else if (w.onError) w.onError(err);
    };
  });
  w.ready.catch(() => worker.terminate());
  return w;
}

// One loaded worker per language waits for the next run, so only the first
// run of a language waits for its runtime to load.
const spares = new Map();
let current = null;

function takeWorker(language, limits) {
  const spare = spares.get(language);
  spares.delete(language);
  if (spare && spare.key === JSON.stringify(limits)) return spare;
  if (spare) spare.worker.terminate();
  return spawn(language, limits);
}

function prepare(language, limits) {
  if (spares.has(language)) return;
  const w = spawn(language, limits);
  spares.set(language, w);
  w.ready.catch(() => spares.get(language) === w && spares.delete(language));
}

async function start(m) {
  const language = String(m.language);
  const limits = sanitize(m.limits);
  if (current) finish(current, { exit: null, error: "Stopped: another run started." });
  const run = { id: String(m.id), language, limits, left: limits.output_bytes, truncated: false, pending: [], flushTimer: null, started: 0, ended: false };
  current = run;
  if (!WORKERS[language]) {
    emit(run, "stderr", `The runner cannot run ${language}.\n`);
    return finish(run, { exit: null });
  }
  const w = takeWorker(language, limits);
  run.worker = w;
  if (!w.loaded) toPage({ type: "phase", id: run.id, phase: "loading" });
  try {
    await w.ready;
  } catch (e) {
    emit(run, "stderr", `${e.message}\n`);
    return finish(run, { exit: null });
  }
  if (run.ended) return;
  w.onMessage = (msg) => fromWorker(run, msg);
  w.onError = (e) => {
    emit(run, "stderr", `${e.message}\n`);
    finish(run, { exit: null });
  };
  toPage({ type: "phase", id: run.id, phase: "running" });
  run.started = performance.now();
  run.timer = setTimeout(() => finish(run, { exit: null, timed_out: true }), limits.wall_ms);
  w.worker.postMessage({ type: "run", code: String(m.code), stdin: String(m.stdin ?? "") });
}

// The worker runs the program, so what it says is checked like any input.
function fromWorker(run, m) {
  if (!m || typeof m !== "object" || run.ended) return;
  if (m.type === "out" && (m.stream === "stdout" || m.stream === "stderr") && typeof m.data === "string") {
    emit(run, m.stream, m.data);
  } else if (m.type === "truncated") {
    run.truncated = true;
    schedule(run);
  } else if (m.type === "done") {
    finish(run, { exit: Number.isInteger(m.exit) ? m.exit : null, out_of_memory: m.out_of_memory === true });
  }
}

function emit(run, stream, data) {
  if (run.truncated || !data) return;
  const n = utf8Length(data);
  if (n > run.left) {
    data = cutUtf8(data, run.left);
    run.truncated = true;
  }
  run.left -= utf8Length(data);
  const last = run.pending[run.pending.length - 1];
  if (last && last.stream === stream) last.data += data;
  else if (data) run.pending.push({ stream, data });
  schedule(run);
}

function schedule(run) {
  if (run.flushTimer === null) run.flushTimer = setTimeout(() => flush(run), FLUSH_MS);
}

function flush(run) {
  clearTimeout(run.flushTimer);
  run.flushTimer = null;
  if (run.pending.length === 0 && (!run.truncated || run.toldTruncated)) return;
  run.toldTruncated = run.truncated;
  toPage({ type: "output", id: run.id, chunks: run.pending, truncated: run.truncated });
  run.pending = [];
}

function finish(run, { exit, timed_out = false, out_of_memory = false }) {
  if (run.ended) return;
  run.ended = true;
  clearTimeout(run.timer);
  if (run.worker) run.worker.worker.terminate();
  flush(run);
  const wall = run.started ? Math.round(performance.now() - run.started) : 0;
  toPage({
    type: "exit",
    id: run.id,
    exit,
    wall_ms: timed_out ? run.limits.wall_ms : wall,
    timed_out,
    out_of_memory,
    truncated: run.truncated,
  });
  if (current === run) current = null;
  // A fresh interpreter for the next run of this language, loaded now.
  if (WORKERS[run.language]) setTimeout(() => prepare(run.language, run.limits), 0);
}

addEventListener("message", (ev) => {
  if (ev.source !== parent) return;
  const m = ev.data;
  if (m && m.type === "run") start(m);
});

toPage({ type: "hello" });
