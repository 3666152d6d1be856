// The room: prompt, shared editor, participants, typing line, connection
// badge, Run with its shared Input and Output (run-panel.js), and the
// interview (CONTRACT §6): the role the join gives (an interviewer link's
// key, see interview-key.js), the locked / ended state for everyone, the
// candidate's integrity signals (signals.js), the interviewer's panel
// (interview.js) and the playback (playback.js), both loaded only when needed.
import { Socket, Presence } from "phoenix";
import * as Y from "yjs";
import { PhoenixChannelProvider } from "y-phoenix-channel";
import { h, mount } from "./dom.js";
import { getChallenge, getExport, getMe, ApiError } from "./api.js";
import { getToken, tokenExpired } from "./auth-store.js";
import { createEditor, userField } from "./editor.js";
import { createRunPanel } from "./run-panel.js";
import { people, renderPresence } from "./presence-view.js";
import { getKey, forgetKey } from "./interview-key.js";
import { guardSync } from "./ysync.js";
import { watchSignals } from "./signals.js";

const LANGUAGE_NAMES = {
  python: "Python",
  javascript: "JavaScript",
  typescript: "TypeScript",
  rust: "Rust",
  go: "Go",
  java: "Java",
  c: "C",
  cpp: "C++",
  ruby: "Ruby",
  sql: "SQL",
  plaintext: "Plain text",
};

const TYPING_IDLE_MS = 1000;
const AUTH_CHECK_MIN_INTERVAL_MS = 3000;
/** How long "Your change was undone…" stays in the status bar. */
const UNDONE_NOTE_MS = 6000;

/**
 * `early`: what main.js asked for while this chunk loaded ({challenge,
 * exported} promises, see api.js `prefetchRoom`), used when they succeed.
 */
export function mountRoom(root, id, user, { onAuthLost, navigate, early = null }) {
  let alive = true;
  const myId = String(user.id);
  let challengeShown = false;
  let joined = false;
  let online = navigator.onLine !== false;
  let typingTimer = null;
  let lastAuthCheck = 0;
  const cleanups = [];
  // The interview: this page's role, the challenge as last told, the lazy parts.
  const key = getKey(id);
  let role = null; // "interviewer" | "candidate", from the join reply
  let interviewerKey = null;
  let current = null;
  let toldByChannel = false; // the REST answer may be older than the channel's
  let language = null;
  let panel = null; // interview.js, interviewers only
  let playback = null; // playback.js, once opened
  let playbackOpen = false;
  let endedSeen = false;

  // ---------- layout
  const title = h("h1", { class: "title" }, "Loading…");
  const langTag = h("span", { class: "tag", hidden: true });
  const prompt = h("div", { class: "prompt" });
  const participants = h("ul", { class: "participants", "aria-label": "Participants" });
  const typingLine = h("p", { class: "typing-line", role: "status", "aria-live": "polite" });
  const undoneNote = h("p", { class: "undone-note", "aria-live": "polite" });
  const badge = h("span", { class: "badge", "data-state": "reconnecting", "aria-live": "polite", title: "Connection" }, "Reconnecting…");
  // The button keeps its name ("Copy link"); the outcome is told beside it.
  const copyButton = h("button", { type: "button", class: "secondary copy" }, "Copy link");
  const copyNote = h("span", { class: "copy-note muted", "aria-live": "polite" });
  const copyFallback = h("input", { type: "text", class: "copy-fallback", readonly: true, hidden: true, "aria-label": "Room link" });
  const editorHost = h("div", { class: "editor-host" });
  const runHost = h("div", { class: "run-host" });
  const myDot = h("span", { class: "dot", "aria-hidden": "true" });
  // "Editing is locked" / "Interview ended", and the playback's switch.
  const stateText = h("strong", { class: "interview-state" });
  const stateDetail = h("span", { class: "interview-detail muted" });
  const playbackToggle = h("button", { type: "button", class: "secondary small playback-toggle", hidden: true }, "Playback");
  const paneBar = h("div", { class: "pane-bar", hidden: true }, h("p", { class: "state-line", "aria-live": "polite" }, stateText, stateDetail), playbackToggle);
  const live = h("div", { class: "live" }, editorHost, h("div", { class: "statusbar" }, typingLine, undoneNote), runHost);
  const playbackHost = h("div", { class: "playback-host", hidden: true });
  // Shown to candidates only (put in place once the join says so).
  const notice = h("div", { class: "notice-host" });
  const side = h("aside", { class: "interview-side", hidden: true, "aria-label": "Interview" });

  mount(
    root,
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "/", "data-link": true, title: "Back to the lobby" }, "Duet"),
      h("div", { class: "spacer" }),
      badge,
      copyFallback,
      copyNote,
      copyButton,
      h("span", { class: "who", title: "You" }, myDot, h("strong", null, user.first_name)),
    ),
    h(
      "main",
      { class: "room" },
      h(
        "aside",
        { class: "brief" },
        h("div", { class: "brief-head" }, title, langTag),
        prompt,
        notice,
        h("h2", { class: "section-title" }, "Participants"),
        participants,
      ),
      h("section", { class: "editor-pane" }, paneBar, live, playbackHost),
      side,
    ),
  );

  // ---------- Yjs document, socket, provider
  const socket = new Socket("/socket", { params: () => ({ token: getToken() }) });
  // No BroadcastChannel between tabs: an edit the server refuses must stay
  // in this tab, which then syncs a fresh document (ysync.js).
  const provider = new PhoenixChannelProvider(socket, `challenges:${id}`, new Y.Doc(), {
    connect: false,
    params: key ? { key } : {},
    disableBc: true,
  });
  const awareness = provider.awareness;
  awareness.setLocalStateField("user", userField(user.first_name, "#6b7280", provider.doc.clientID));

  const onLocalEdit = () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      const ch = provider.channel;
      if (ch && ch.state === "joined") ch.push("current_participant_typing:remove", {});
    }, TYPING_IDLE_MS);
  };
  let editor = createEditor(editorHost, { ytext: provider.doc.getText("response"), awareness, onLocalEdit });

  provider.connect(); // creates provider.channel and queues the join
  const channel = provider.channel;
  const runPanel = createRunPanel({ channel, ydoc: provider.doc, ytext: provider.doc.getText("response") });
  runHost.append(runPanel.element);

  // An edit the server refused: the editors show the server's text again.
  let undoneTimer = null;
  const sync = guardSync(provider, {
    onRefused(reason) {
      editor.setReadOnly(true); // until the fresh document is in
      // (Worded apart from the state line's "Editing is locked" / "Interview ended".)
      const why = reason === "read only" ? (isEnded() ? "the interview has ended" : "the answer is locked") : "the server did not take it";
      undoneNote.textContent = `Your last change was undone: ${why}.`;
      clearTimeout(undoneTimer);
      undoneTimer = setTimeout(() => (undoneNote.textContent = ""), UNDONE_NOTE_MS);
    },
    onDoc: (doc) => alive && rebindDocument(doc),
  });

  /** Binds the editor and the Input to `doc` (the server's, after a refusal). */
  function rebindDocument(doc) {
    const { view } = editor;
    const head = view.state.selection.main.head;
    const scroll = view.scrollDOM.scrollTop;
    const focused = view.hasFocus;
    editor.destroy();
    editor = createEditor(editorHost, { ytext: doc.getText("response"), awareness, onLocalEdit, readOnly: readOnly() });
    if (language) editor.setLanguage(language);
    const pos = Math.min(head, editor.view.state.doc.length);
    editor.view.dispatch({ selection: { anchor: pos } });
    editor.view.scrollDOM.scrollTop = scroll;
    if (focused && !readOnly()) editor.view.focus();
    runPanel.rebind(doc, doc.getText("response"));
  }

  const presence = new Presence(channel);
  let myColor = null;
  presence.onSync(() => {
    if (!alive) return;
    // My colour comes from my own presence meta (the server picks it).
    const mine = presence.state[myId];
    const color = mine && mine.metas && mine.metas[0] && mine.metas[0].color;
    if (color && color !== myColor) {
      myColor = color;
      awareness.setLocalStateField("user", userField(user.first_name, color, provider.doc.clientID));
      myDot.style.backgroundColor = color;
      if (panel) panel.setColor(color);
    }
    renderPresence(participants, typingLine, people(presence), myId);
  });

  channel.joinPush.receive("ok", (resp) => {
    if (!alive) return;
    joined = true;
    renderBadge();
    if (resp && resp.interviewer_key) interviewerKey = resp.interviewer_key;
    // An interviewer's reply says so; a candidate's is {challenge} alone (CONTRACT §3, §6).
    if (resp) setRole(resp.role === "interviewer" ? "interviewer" : "candidate");
    if (resp && resp.challenge) {
      toldByChannel = true;
      applyChallenge(resp.challenge);
    }
    renderPresence(participants, typingLine, people(presence), myId);
  });
  channel.joinPush.receive("error", (resp) => {
    if (!alive) return;
    if (resp && resp.reason === "not found") showNotFound();
    else if (resp && resp.reason === "forbidden") showForbidden();
  });
  channel.on("challenge:updated", (payload) => {
    if (!alive || !payload || !payload.challenge) return;
    toldByChannel = true;
    applyChallenge(payload.challenge);
  });
  channel.onError(() => {
    joined = false;
    renderBadge();
  });
  channel.onClose(() => {
    joined = false;
    renderBadge();
  });
  socket.onError(() => {
    joined = false;
    renderBadge();
    checkAuth();
  });
  socket.onClose(() => {
    joined = false;
    renderBadge();
  });
  if (online) socket.connect();

  // ---------- the candidate's integrity signals (the page says they are recorded)
  cleanups.push(
    watchSignals((event, payload) => {
      if (alive && role === "candidate" && channel.joinedOnce) channel.push(event, payload);
    }),
  );

  // ---------- the challenge itself (REST answers before the socket is up)
  (early ? early.challenge.catch(() => getChallenge(id)) : getChallenge(id))
    .then((c) => {
      if (!alive || !c) return;
      if (toldByChannel) showChallenge(c);
      else applyChallenge(c);
    })
    .catch((e) => {
      if (!alive) return;
      if (e instanceof ApiError && e.status === 404) showNotFound();
      else if (e instanceof ApiError && e.status === 401) authLost();
    });

  function showChallenge(c) {
    title.textContent = c.title;
    document.title = `${c.title} · Duet`;
    langTag.textContent = LANGUAGE_NAMES[c.language] || c.language;
    langTag.hidden = false;
    prompt.textContent = c.prompt || "";
    prompt.classList.toggle("empty", !c.prompt);
    if (!challengeShown) {
      challengeShown = true;
      language = c.language;
      editor.setLanguage(c.language);
      runPanel.setLanguage(c.language);
    }
  }

  // ---------- the interview: role, locked, ended, Run on or off
  const isEnded = () => !!current && current.status === "ended";
  /** Whether this page may not edit the answer now (not known yet: as a candidate). */
  const readOnly = () => isEnded() || (!!current && current.locked && role !== "interviewer") || sync.rebuilding();
  const mayReview = () => role === "interviewer" || isEnded();

  function applyChallenge(c) {
    current = c;
    showChallenge(c);
    renderInterview();
  }

  function setRole(r) {
    if (role === r) return;
    role = r;
    mount(
      notice,
      r === "candidate"
        ? h(
            "p",
            { class: "interview-notice" },
            "This is an interview. Pastes and focus changes are recorded: the interviewer sees when you paste (and how much) and when you leave this page or come back.",
          )
        : null,
    );
    if (r === "interviewer") loadPanel();
    renderInterview();
  }

  function renderInterview() {
    const ended = isEnded();
    const locked = !!current && current.locked;
    stateText.textContent = ended ? "Interview ended" : locked ? "Editing is locked" : "";
    stateDetail.textContent = ended
      ? "Nobody can edit the answer any more."
      : locked
        ? role === "interviewer"
          ? "Candidates cannot edit; interviewers still can."
          : "The interviewer has locked the answer for now."
        : "";
    playbackToggle.hidden = !mayReview();
    paneBar.hidden = !stateText.textContent && playbackToggle.hidden;
    editor.setReadOnly(readOnly());
    runPanel.setInterview({ runEnabled: !current || current.run_enabled !== false, ended, inputReadOnly: readOnly() });
    if (panel && current) panel.update(current);
    // An ended room opens on its playback (an open one reloads, with the end).
    if (ended && !endedSeen) {
      endedSeen = true;
      openPlayback();
    }
  }

  function loadPanel() {
    side.hidden = false;
    side.append(h("p", { class: "muted loading" }, "Loading the interviewer's tools…"));
    import("./interview.js")
      .then(({ createInterviewPanel }) => {
        if (!alive) return;
        panel = createInterviewPanel({ id, socket, channel, user, color: myColor, interviewerKey: () => interviewerKey });
        mount(side, panel.element);
        if (current) panel.update(current);
      })
      .catch(() => alive && mount(side, h("p", { class: "form-error" }, "The interviewer's tools did not load. Reload the page.")));
  }

  // ---------- playback (interviewers any time; everyone once ended)
  function openPlayback() {
    playbackOpen = true;
    live.hidden = true;
    playbackHost.hidden = false;
    playbackToggle.textContent = "Back to the editor";
    if (playback) return playback.reload();
    mount(playbackHost, h("p", { class: "muted loading" }, "Loading the playback…"));
    // The export (megabytes for a long session) is asked for while the chunk
    // loads, if main.js did not already.
    const ask = () => getExport(id, interviewerKey || key);
    const prefetched = early ? early.exported.then((x) => x || ask(), ask) : ask();
    early = null;
    prefetched.catch(() => {}); // the view reports it
    import("./playback.js")
      .then(({ mountPlayback }) => {
        if (!alive) return;
        playback = mountPlayback(playbackHost, { id, interviewerKey: () => interviewerKey || key, onAuthLost: authLost, prefetched });
      })
      .catch(() => alive && mount(playbackHost, h("p", { class: "form-error" }, "The playback did not load. Reload the page.")));
  }
  function closePlayback() {
    playbackOpen = false;
    live.hidden = false;
    playbackHost.hidden = true;
    playbackToggle.textContent = "Playback";
    if (playback) playback.pause();
    editor.view.requestMeasure();
  }
  playbackToggle.addEventListener("click", () => (playbackOpen ? closePlayback() : openPlayback()));

  // ---------- connection badge
  function renderBadge() {
    if (!alive) return;
    const [state, text] = !online ? ["offline", "Offline"] : joined ? ["connected", "Connected"] : ["reconnecting", "Reconnecting…"];
    if (badge.textContent !== text) badge.textContent = text;
    badge.dataset.state = state;
  }
  const onOffline = () => {
    online = false;
    joined = false;
    renderBadge();
    // Stop talking to a dead network; edits stay in the Y.Doc and are merged
    // by the sync handshake when the channel rejoins.
    socket.disconnect();
  };
  const onOnline = () => {
    online = true;
    renderBadge();
    socket.connect();
  };
  window.addEventListener("offline", onOffline);
  window.addEventListener("online", onOnline);
  cleanups.push(() => {
    window.removeEventListener("offline", onOffline);
    window.removeEventListener("online", onOnline);
  });

  // A refused socket (bad or expired token) looks like a plain connection
  // error to the browser: ask the HTTP API whether the token is still good.
  function checkAuth() {
    if (!alive) return;
    if (tokenExpired()) return authLost();
    const now = Date.now();
    if (now - lastAuthCheck < AUTH_CHECK_MIN_INTERVAL_MS) return;
    lastAuthCheck = now;
    getMe().catch((e) => {
      if (alive && e instanceof ApiError && e.status === 401) authLost();
    });
  }
  function authLost() {
    if (!alive) return;
    teardown();
    onAuthLost();
  }

  // ---------- copy link (the address bar's: never the interviewer key, see interview-key.js)
  let copyTimer = null;
  copyButton.addEventListener("click", async () => {
    const url = location.href;
    let ok = false;
    try {
      await navigator.clipboard.writeText(url);
      ok = true;
    } catch {
      copyFallback.value = url;
      copyFallback.hidden = false;
      copyFallback.focus();
      copyFallback.select();
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
    }
    copyNote.textContent = ok ? "Copied!" : "Press Ctrl+C";
    clearTimeout(copyTimer);
    copyTimer = setTimeout(() => {
      copyNote.textContent = "";
    }, 1600);
  });

  // ---------- not found, wrong interviewer link
  function showCard(heading, text, ...actions) {
    if (!alive) return;
    teardown();
    document.title = `${heading} · Duet`;
    mount(
      root,
      h("header", { class: "topbar" }, h("a", { class: "brand", href: "/", "data-link": true }, "Duet")),
      h("main", { class: "center" }, h("div", { class: "card" }, h("h1", null, heading), h("p", { class: "muted" }, text), h("div", { class: "actions" }, ...actions))),
    );
  }
  function showNotFound() {
    showCard(
      "Challenge not found",
      "This room does not exist, or its link is incomplete.",
      h("a", { href: "/", "data-link": true, class: "button primary" }, "Back to the lobby"),
    );
  }
  function showForbidden() {
    const asCandidate = h("button", { type: "button", class: "primary" }, "Join as a candidate");
    asCandidate.addEventListener("click", () => {
      forgetKey(id);
      navigate(location.pathname);
    });
    showCard(
      "Wrong interviewer link",
      "The key in this link is not this room's interviewer key. Ask the interviewer for the link again, or join as a candidate.",
      asCandidate,
      h("a", { href: "/", "data-link": true, class: "button secondary" }, "Back to the lobby"),
    );
  }

  function teardown() {
    if (!alive) return;
    alive = false;
    clearTimeout(typingTimer);
    clearTimeout(copyTimer);
    clearTimeout(undoneTimer);
    for (const c of cleanups) c();
    if (panel) panel.destroy();
    if (playback) playback.destroy();
    sync.destroy();
    runPanel.destroy();
    provider.destroy();
    socket.disconnect();
    editor.destroy();
    awareness.destroy();
    provider.doc.destroy();
    document.title = "Duet";
  }

  return teardown;
}
