// The room's Run (CONTRACT §8): the Run button, the shared Input (stdin,
// the Y.Text named "stdin" in the room's document), and the Output that
// everyone in the room sees live. A press asks the server for the room's one
// run (`run:start`); this page then runs the program in its sandboxed runner
// frame (runner/frame.js) and streams what the frame says to the server,
// which relays it to the others. This page sends the frame only the code,
// the stdin and the limits: never a token.
import { h } from "./dom.js";
import { bindTextarea } from "./ytextarea.js";

const RUNNABLE = { python: "Python", javascript: "JavaScript" };
/** The server's cut, used until a run tells its own limits. */
const DEFAULT_OUTPUT_BYTES = 64 * 1024;
/** How long "Already running…" and other notes stay beside the button. */
const NOTE_MS = 6000;
/** How long the runner frame may take to load its page and script. */
const FRAME_START_MS = 15000;
/** Longest stdin, in characters (the server's STDIN_MAX). */
const STDIN_MAX = 100000;

const languageName = (id) => RUNNABLE[id] || id;
const utf8Length = (s) => new TextEncoder().encode(s).length;

/** "exit 0 in 12 ms", "stopped after 10 s", "out of memory", … */
export function exitText(p) {
  if (p.reason) return `Ended: ${p.reason}.`;
  if (p.timed_out) return `Stopped after ${Math.round(p.wall_ms / 100) / 10} s.`;
  const time = p.wall_ms < 1000 ? `${p.wall_ms} ms` : `${(p.wall_ms / 1000).toFixed(1)} s`;
  if (p.out_of_memory) return `Out of memory (exit ${p.exit} in ${time}).`;
  if (p.exit == null) return `Ended without an exit status after ${time}.`;
  return `Exit ${p.exit} in ${time}.`;
}

/**
 * Creates the panel. `channel` is the room's joined channel, `ydoc` its
 * document, `ytext` the answer. Returns {element, setLanguage(id),
 * setInterview({runEnabled, ended, inputReadOnly}), rebind(ydoc, ytext), destroy()}.
 */
export function createRunPanel({ channel, ydoc, ytext }) {
  const button = h("button", { type: "button", class: "primary run-button", disabled: true }, "Run");
  const note = h("span", { class: "run-note", "aria-live": "polite" });
  const input = h("textarea", { id: "run-input", class: "run-input", spellcheck: "false", maxlength: String(STDIN_MAX), placeholder: "What the program reads from stdin" });
  const text = h("pre", { class: "output-text" });
  const cut = h("p", { class: "output-cut", hidden: true });
  const end = h("p", { class: "output-exit" });
  const body = h("div", { class: "output-body" }, text, cut, end);
  const status = h("span", { class: "output-status muted", "aria-live": "polite" });
  const region = h(
    "section",
    { class: "output", "aria-label": "Output" },
    h("div", { class: "output-head" }, h("h2", { class: "section-title" }, "Output"), status),
    body,
  );
  const element = h(
    "div",
    { class: "run-panel" },
    h("div", { class: "run-bar" }, button, note),
    h("div", { class: "run-io" }, h("div", { class: "run-input-box" }, h("label", { for: "run-input" }, "Input"), input), region),
  );
  let unbind = bindTextarea(input, ydoc.getText("stdin"));

  let language = null;
  let view = null; // the run shown: {run_id, first_name, language, bytes, cap, exited}
  let mine = null; // the run this page is running: {run_id}
  let starting = false;
  let frame = null;
  let noteTimer = null;
  // The interview's say (CONTRACT §6): Run on or off, the interview ended.
  let runEnabled = true;
  let ended = false;

  /** Why Run cannot be pressed now, kept beside the button; "" when it can. */
  function standingNote() {
    if (ended) return "Run is off: the interview has ended.";
    if (!runEnabled) return "Run is off (the interviewer turned it off).";
    if (language && !RUNNABLE[language]) return `Run works for ${Object.values(RUNNABLE).join(" and ")}.`;
    return "";
  }

  let transient = false; // a note of the last press is showing
  function say(msg) {
    note.textContent = msg || standingNote();
    transient = !!msg;
    clearTimeout(noteTimer);
    if (msg) {
      noteTimer = setTimeout(() => {
        transient = false;
        note.textContent = standingNote();
      }, NOTE_MS);
    }
  }

  function renderButton() {
    const running = !!view && !view.exited;
    button.textContent = running ? "Running…" : "Run";
    button.setAttribute("aria-busy", String(running));
    button.disabled = !RUNNABLE[language] || !runEnabled || ended;
  }

  // ---------- the Output, as every member renders it
  function show(run) {
    region.dataset.runId = run.run_id;
    view = { run_id: run.run_id, first_name: run.first_name, language: run.language, bytes: 0, cap: run.limits?.output_bytes || DEFAULT_OUTPUT_BYTES, exited: false };
    text.replaceChildren();
    cut.hidden = true;
    end.textContent = "";
    status.textContent = `${run.first_name} runs ${languageName(run.language)}…`;
    renderButton();
  }

  /**
   * Adds a batch of output. One layout per batch, not per piece: a program
   * alternating stdout and stderr sends thousands of pieces.
   */
  function append(chunks) {
    if (!view || !chunks.length) return;
    const stick = body.scrollHeight - body.scrollTop - body.clientHeight < 4;
    let last = text.lastElementChild;
    for (const { stream, data } of chunks) {
      if (typeof data !== "string" || !data || view.bytes >= view.cap) continue;
      view.bytes += utf8Length(data);
      if (last && last.dataset.stream === stream) last.firstChild.appendData(data);
      else {
        last = h("span", { class: stream === "stderr" ? "out-stderr" : "out-stdout" }, data);
        last.dataset.stream = stream;
        text.append(last);
      }
    }
    if (stick) body.scrollTop = body.scrollHeight;
  }

  function markCut() {
    cut.hidden = false;
    cut.textContent = `[output cut at ${Math.round(view.cap / 1024)} KiB]`;
  }

  function setPhase(phase) {
    if (!view || view.exited) return;
    status.textContent = phase === "loading" ? `Loading ${languageName(view.language)}…` : `${view.first_name} is running ${languageName(view.language)}…`;
  }

  function showExit(p) {
    if (!view) return;
    view.exited = true;
    if (p.truncated) markCut();
    end.textContent = exitText(p);
    end.dataset.exit = p.exit == null ? "none" : String(p.exit);
    status.textContent = `Run by ${view.first_name}`;
    renderButton();
  }

  const refs = [
    ["run:started", (p) => show(p)],
    ["run:status", (p) => view && p.run_id === view.run_id && setPhase(p.phase)],
    ["run:output", (p) => {
      if (!view || p.run_id !== view.run_id || (mine && mine.run_id === p.run_id)) return;
      append(Array.isArray(p.chunks) ? p.chunks : []);
      if (p.truncated) markCut();
    }],
    ["run:exited", (p) => {
      if (mine && mine.run_id === p.run_id) mine = null;
      if (view && p.run_id === view.run_id) showExit(p);
    }],
    ["run:state", ({ run }) => {
      if (!run || (mine && mine.run_id === run.run_id)) return;
      show(run);
      append(run.output || []);
      if (run.truncated) markCut();
      if (run.exit) showExit(run.exit);
      else setPhase(run.phase);
    }],
  ].map(([event, f]) => [event, channel.on(event, f)]);

  // ---------- pressing Run
  button.addEventListener("click", () => {
    if (!RUNNABLE[language] || !runEnabled || ended || starting) return;
    say("");
    starting = true;
    const code = ytext.toString();
    const stdin = ydoc.getText("stdin").toString();
    channel
      .push("run:start", { code, stdin })
      .receive("ok", (r) => {
        starting = false;
        mine = { run_id: r.run_id };
        runInFrame(r, code, stdin);
      })
      .receive("error", (r) => {
        starting = false;
        say(r.reason === "already running" ? `Already running (started by ${r.first_name})` : `Cannot run: ${r.reason}`);
      })
      .receive("timeout", () => {
        starting = false;
        say("The server did not answer; try again.");
      });
  });

  // ---------- the runner frame (created on this page's first run)
  function ensureFrame() {
    if (frame) return frame.ready;
    const iframe = h("iframe", { class: "runner-frame", sandbox: "allow-scripts", src: "/runner", title: "Code runner", "aria-hidden": "true", tabindex: "-1" });
    frame = { iframe };
    frame.ready = new Promise((resolve) => (frame.hello = resolve));
    element.append(iframe);
    return frame.ready;
  }

  async function runInFrame({ run_id, limits }, code, stdin) {
    const timeout = new Promise((resolve) => setTimeout(() => resolve(false), FRAME_START_MS));
    const started = await Promise.race([ensureFrame().then(() => true), timeout]);
    if (!mine || mine.run_id !== run_id) return; // ended meanwhile (e.g. the socket dropped)
    if (!started) {
      frame.iframe.remove(); // the next press tries a new one
      frame = null;
      report(run_id, { type: "output", id: run_id, chunks: [{ stream: "stderr", data: "The runner did not start.\n" }] });
      report(run_id, { type: "exit", id: run_id, exit: null, wall_ms: 0 });
      return;
    }
    frame.iframe.contentWindow.postMessage({ type: "run", id: run_id, language, code, stdin, limits }, "*");
  }

  // What the frame says about this page's run goes on screen and to the server.
  const onMessage = (ev) => {
    if (!frame || ev.source !== frame.iframe.contentWindow) return;
    const m = ev.data;
    if (!m || typeof m !== "object") return;
    if (m.type === "hello") return frame.hello();
    if (mine) report(mine.run_id, m);
  };
  window.addEventListener("message", onMessage);

  function report(run_id, m) {
    if (!mine || m.id !== run_id || mine.run_id !== run_id) return;
    if (m.type === "phase" && (m.phase === "loading" || m.phase === "running")) {
      setPhase(m.phase);
      channel.push("run:status", { run_id, phase: m.phase });
    } else if (m.type === "output" && Array.isArray(m.chunks)) {
      // One push per batch, however often the program switched streams:
      // a push per piece could pass the socket's message rate.
      const chunks = m.chunks
        .filter((c) => c && (c.stream === "stdout" || c.stream === "stderr") && typeof c.data === "string")
        .map((c) => ({ stream: c.stream, data: c.data }));
      append(chunks);
      if (chunks.length) channel.push("run:output", { run_id, chunks });
      if (m.truncated) markCut();
    } else if (m.type === "exit") {
      const exit = { run_id, exit: Number.isInteger(m.exit) ? m.exit : null, wall_ms: Math.max(0, Number(m.wall_ms) | 0), timed_out: m.timed_out === true, out_of_memory: m.out_of_memory === true, truncated: m.truncated === true };
      mine = null;
      channel.push("run:exit", exit);
      if (view && view.run_id === run_id) showExit(exit);
    }
  }

  return {
    element,
    setLanguage(id) {
      language = id;
      renderButton();
      // Kept beside the disabled button: why it is disabled.
      if (!transient) note.textContent = standingNote();
    },
    setInterview({ runEnabled: on, ended: over, inputReadOnly }) {
      runEnabled = on;
      ended = over;
      input.readOnly = inputReadOnly;
      renderButton();
      if (!transient) note.textContent = standingNote();
    },
    /** The room's document was replaced (see ysync.js): bind the Input to the new one. */
    rebind(doc, text) {
      unbind();
      ydoc = doc;
      ytext = text;
      unbind = bindTextarea(input, ydoc.getText("stdin"));
    },
    destroy() {
      clearTimeout(noteTimer);
      window.removeEventListener("message", onMessage);
      for (const [event, ref] of refs) channel.off(event, ref);
      unbind();
      if (frame) frame.iframe.remove(); // ends its workers
    },
  };
}
