// The interviewer's panel (CONTRACT §6), a chunk only interviewers load:
// Lock editing / Unlock editing, End interview (after a confirmation),
// Allow Run, Copy candidate link / Copy interviewer link, the Private notes
// (a second CodeMirror bound to the Y.Text "notes" of the `notes:<id>`
// topic, which candidates cannot join) and the live list of the
// candidates' integrity signals (pastes with their size, left / came back).
import * as Y from "yjs";
import { PhoenixChannelProvider } from "y-phoenix-channel";
import { addStyles, h, mount } from "./dom.js";
import styles from "./interview.lazy.css";
import { api } from "./api.js";
import { createEditor, userField } from "./editor.js";
import { guardSync } from "./ysync.js";

/** Signals listed at most (the playback has them all). */
const SIGNALS_MAX = 200;
/** A live signal and the timeline's record of it are at most this far apart. */
const SAME_SIGNAL_MS = 3000;
/** How long "Copied" stays beside the copy buttons. */
const NOTE_MS = 2500;

/**
 * `channel`: the room's channel; `interviewerKey()`: the key (the join
 * reply gives it to interviewers). Returns {element, update(challenge),
 * setColor(css), destroy()}.
 */
export function createInterviewPanel({ id, socket, channel, user, color, interviewerKey }) {
  addStyles(styles);
  const key = () => interviewerKey() || undefined;
  const path = (what) => `/api/challenges/${encodeURIComponent(id)}/${what}`;
  let challenge = null;
  let busy = false;

  // ---------- controls
  const lockButton = h("button", { type: "button", class: "secondary" }, "Lock editing");
  const endButton = h("button", { type: "button", class: "danger" }, "End interview");
  const runBox = h("input", { type: "checkbox", id: "allow-run", checked: true });
  const confirmYes = h("button", { type: "button", class: "danger" }, "End for everyone");
  const confirmNo = h("button", { type: "button", class: "secondary" }, "Cancel");
  const confirmBox = h(
    "div",
    { class: "confirm", role: "alertdialog", "aria-label": "End the interview?", hidden: true },
    h("p", null, "End the interview for everyone? Nobody can edit the answer afterwards, and the room opens on its playback."),
    h("div", { class: "row" }, confirmYes, confirmNo),
  );
  const controlNote = h("p", { class: "control-note", "aria-live": "polite" });
  const copyCandidate = h("button", { type: "button", class: "secondary" }, "Copy candidate link");
  const copyInterviewer = h("button", { type: "button", class: "secondary" }, "Copy interviewer link");
  const copyNote = h("p", { class: "copy-note muted", "aria-live": "polite" });
  const copyField = h("input", { type: "text", readonly: true, hidden: true, "aria-label": "Link to copy" });

  async function control(what, body = {}) {
    if (busy) return;
    busy = true;
    render();
    controlNote.textContent = "";
    try {
      const r = await api("POST", path(what), { key: key(), ...body });
      if (r && r.challenge) update(r.challenge);
    } catch (e) {
      controlNote.textContent = e.message;
    } finally {
      busy = false;
      render();
    }
  }
  lockButton.addEventListener("click", () => control(challenge && challenge.locked ? "unlock" : "lock"));
  endButton.addEventListener("click", () => {
    confirmBox.hidden = false;
    confirmNo.focus();
  });
  confirmNo.addEventListener("click", () => {
    confirmBox.hidden = true;
    endButton.focus();
  });
  confirmYes.addEventListener("click", () => {
    confirmBox.hidden = true;
    control("end");
  });
  runBox.addEventListener("change", () => control("run", { enabled: runBox.checked }));

  let copyTimer = null;
  async function copy(url, what) {
    copyField.hidden = true;
    let ok = false;
    try {
      await navigator.clipboard.writeText(url);
      ok = true;
    } catch {
      copyField.value = url;
      copyField.hidden = false;
      copyField.select();
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
    }
    copyNote.textContent = ok ? `${what} link copied.` : "Press Ctrl+C to copy it.";
    clearTimeout(copyTimer);
    copyTimer = setTimeout(() => (copyNote.textContent = ""), NOTE_MS);
  }
  const roomUrl = () => `${location.origin}/challenges/${encodeURIComponent(id)}`;
  copyCandidate.addEventListener("click", () => copy(roomUrl(), "Candidate"));
  copyInterviewer.addEventListener("click", () => copy(`${roomUrl()}?key=${encodeURIComponent(key() || "")}`, "Interviewer"));

  // ---------- private notes
  const notesHost = h("div", { class: "notes-host" });
  const notesNote = h("p", { class: "muted small" }, "Only interviewers see these notes.");
  const notesDoc = new Y.Doc();
  const notesProvider = new PhoenixChannelProvider(socket, `notes:${id}`, notesDoc, { params: { key: key() }, disableBc: true });
  const notesAwareness = notesProvider.awareness;
  notesAwareness.setLocalStateField("user", userField(user.first_name, color || "#6b7280", notesDoc.clientID));
  let notesEditor = createEditor(notesHost, { ytext: notesDoc.getText("notes"), awareness: notesAwareness, label: "Private notes", gutter: false, wrap: true });
  const notesSync = guardSync(notesProvider, {
    onDoc(doc) {
      notesEditor.destroy();
      notesEditor = createEditor(notesHost, { ytext: doc.getText("notes"), awareness: notesAwareness, label: "Private notes", gutter: false, wrap: true });
    },
  });
  notesProvider.channel.joinPush.receive("error", (r) => {
    notesNote.textContent = `The notes are not available (${(r && r.reason) || "refused"}).`;
  });

  // ---------- integrity signals: the timeline's so far, then live
  const signals = []; // newest first: {user_id, first_name, kind, chars, at}
  const signalList = h("ul", { class: "signals", "aria-label": "Integrity signals", "aria-live": "polite" });
  const signalsEmpty = h("p", { class: "muted small" }, "No pastes or focus changes yet.");
  function addSignal(s) {
    if (!s || !["paste", "away", "back"].includes(s.kind)) return;
    const at = Date.parse(s.at) || Date.now();
    const same = (o) => o.user_id === s.user_id && o.kind === s.kind && o.chars === s.chars && Math.abs(o.at - at) < SAME_SIGNAL_MS;
    if (signals.some(same)) return;
    signals.push({ user_id: s.user_id, first_name: String(s.first_name ?? ""), kind: s.kind, chars: s.chars, at });
    signals.sort((a, b) => b.at - a.at);
    signals.length = Math.min(signals.length, SIGNALS_MAX);
    renderSignals();
  }
  function renderSignals() {
    signalsEmpty.hidden = signals.length > 0;
    mount(
      signalList,
      signals.map((s) => {
        const what = s.kind === "paste" ? `pasted ${s.chars} character${s.chars === 1 ? "" : "s"}` : s.kind === "away" ? "left the page" : "came back";
        const time = new Date(s.at);
        return h(
          "li",
          { class: `signal signal-${s.kind}` },
          h("time", { datetime: time.toISOString() }, time.toLocaleTimeString()),
          " ",
          h("strong", null, s.first_name),
          ` ${what}`,
        );
      }),
    );
  }
  const activityRef = channel.on("activity", addSignal);
  const timelineUrl = `${path("timeline")}${key() ? `?key=${encodeURIComponent(key())}` : ""}`;
  api("GET", timelineUrl)
    .then((r) => r && Array.isArray(r.events) && r.events.forEach(addSignal))
    .catch(() => {}); // the live ones still come; the playback has them all

  // ---------- the panel
  const element = h(
    "div",
    { class: "interview-panel" },
    h("h2", { class: "section-title" }, "Interview"),
    h("div", { class: "controls" }, lockButton, endButton),
    confirmBox,
    h("label", { class: "switch", for: "allow-run" }, runBox, h("span", null, "Allow Run")),
    controlNote,
    h("div", { class: "controls" }, copyCandidate, copyInterviewer),
    copyNote,
    copyField,
    h("fieldset", { class: "notes" }, h("legend", { class: "section-title" }, "Private notes"), notesNote, notesHost),
    h("section", { class: "signals-box" }, h("h2", { class: "section-title" }, "Integrity signals"), signalsEmpty, signalList),
  );

  function render() {
    const ended = !!challenge && challenge.status === "ended";
    lockButton.textContent = challenge && challenge.locked ? "Unlock editing" : "Lock editing";
    lockButton.disabled = busy || ended;
    endButton.disabled = busy || ended;
    runBox.disabled = busy || ended;
    if (ended) confirmBox.hidden = true;
  }
  function update(c) {
    challenge = c;
    // (Not in render: a click's new state stays while its request is out.)
    runBox.checked = c.run_enabled !== false && c.status !== "ended";
    render();
  }
  render();

  return {
    element,
    update,
    setColor(css) {
      notesAwareness.setLocalStateField("user", userField(user.first_name, css, notesDoc.clientID));
    },
    destroy() {
      clearTimeout(copyTimer);
      channel.off("activity", activityRef);
      notesSync.destroy();
      notesProvider.destroy();
      notesEditor.destroy();
      notesAwareness.destroy();
      notesProvider.doc.destroy();
    },
  };
}
