// The room: prompt, shared editor, participants, typing line, connection
// badge, and Run with its shared Input and Output (run-panel.js).
import { Socket, Presence } from "phoenix";
import * as Y from "yjs";
import { PhoenixChannelProvider } from "y-phoenix-channel";
import { h, mount } from "./dom.js";
import { getChallenge, getMe, ApiError } from "./api.js";
import { getToken, tokenExpired } from "./auth-store.js";
import { createEditor } from "./editor.js";
import { createRunPanel } from "./run-panel.js";
import { people, renderPresence } from "./presence-view.js";

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

export function mountRoom(root, id, user, { onAuthLost }) {
  let alive = true;
  const myId = String(user.id);
  let challengeShown = false;
  let joined = false;
  let online = navigator.onLine !== false;
  let typingTimer = null;
  let lastAuthCheck = 0;
  const cleanups = [];

  // ---------- layout
  const title = h("h1", { class: "title" }, "Loading…");
  const langTag = h("span", { class: "tag", hidden: true });
  const prompt = h("div", { class: "prompt" });
  const participants = h("ul", { class: "participants", "aria-label": "Participants" });
  const typingLine = h("p", { class: "typing-line", role: "status", "aria-live": "polite" });
  const badge = h("span", { class: "badge", "data-state": "reconnecting", "aria-live": "polite", title: "Connection" }, "Reconnecting…");
  // The button keeps its name ("Copy link"); the outcome is told beside it.
  const copyButton = h("button", { type: "button", class: "secondary copy" }, "Copy link");
  const copyNote = h("span", { class: "copy-note muted", "aria-live": "polite" });
  const copyFallback = h("input", { type: "text", class: "copy-fallback", readonly: true, hidden: true, "aria-label": "Room link" });
  const editorHost = h("div", { class: "editor-host" });
  const runHost = h("div", { class: "run-host" });
  const myDot = h("span", { class: "dot", "aria-hidden": "true" });

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
        h("h2", { class: "section-title" }, "Participants"),
        participants,
      ),
      h("section", { class: "editor-pane" }, editorHost, h("div", { class: "statusbar" }, typingLine), runHost),
    ),
  );

  // ---------- Yjs document, socket, provider
  const ydoc = new Y.Doc();
  const ytext = ydoc.getText("response");
  const socket = new Socket("/socket", { params: () => ({ token: getToken() }) });
  const provider = new PhoenixChannelProvider(socket, `challenges:${id}`, ydoc, { connect: false });
  const awareness = provider.awareness;
  awareness.setLocalStateField("user", userField(user.first_name, "#6b7280", ydoc.clientID));

  const editor = createEditor(editorHost, {
    ytext,
    awareness,
    onLocalEdit() {
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => {
        const ch = provider.channel;
        if (ch && ch.state === "joined") ch.push("current_participant_typing:remove", {});
      }, TYPING_IDLE_MS);
    },
  });

  provider.connect(); // creates provider.channel and queues the join
  const channel = provider.channel;
  const runPanel = createRunPanel({ channel, ydoc, ytext });
  runHost.append(runPanel.element);
  const presence = new Presence(channel);
  let myColor = null;
  presence.onSync(() => {
    if (!alive) return;
    // My colour comes from my own presence meta (the server picks it).
    const mine = presence.state[myId];
    const color = mine && mine.metas && mine.metas[0] && mine.metas[0].color;
    if (color && color !== myColor) {
      myColor = color;
      awareness.setLocalStateField("user", userField(user.first_name, color, ydoc.clientID));
      myDot.style.backgroundColor = color;
    }
    renderPresence(participants, typingLine, people(presence), myId);
  });

  channel.joinPush.receive("ok", (resp) => {
    if (!alive) return;
    joined = true;
    renderBadge();
    if (resp && resp.challenge) showChallenge(resp.challenge);
    renderPresence(participants, typingLine, people(presence), myId);
  });
  channel.joinPush.receive("error", (resp) => {
    if (!alive) return;
    if (resp && resp.reason === "not found") showNotFound();
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

  // ---------- the challenge itself (REST answers before the socket is up)
  getChallenge(id)
    .then((c) => alive && showChallenge(c))
    .catch((e) => {
      if (!alive) return;
      if (e instanceof ApiError && e.status === 404) showNotFound();
      else if (e instanceof ApiError && e.status === 401) authLost();
    });

  function showChallenge(c) {
    if (!c) return;
    title.textContent = c.title;
    document.title = `${c.title} · Duet`;
    langTag.textContent = LANGUAGE_NAMES[c.language] || c.language;
    langTag.hidden = false;
    prompt.textContent = c.prompt || "";
    prompt.classList.toggle("empty", !c.prompt);
    if (!challengeShown) {
      challengeShown = true;
      editor.setLanguage(c.language);
      runPanel.setLanguage(c.language);
    }
  }

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

  // ---------- copy link
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

  // ---------- not found
  function showNotFound() {
    if (!alive) return;
    teardown();
    document.title = "Challenge not found · Duet";
    mount(
      root,
      h(
        "header",
        { class: "topbar" },
        h("a", { class: "brand", href: "/", "data-link": true }, "Duet"),
      ),
      h(
        "main",
        { class: "center" },
        h(
          "div",
          { class: "card" },
          h("h1", null, "Challenge not found"),
          h("p", { class: "muted" }, "This room does not exist, or its link is incomplete."),
          h("a", { href: "/", "data-link": true, class: "button primary" }, "Back to the lobby"),
        ),
      ),
    );
  }

  function teardown() {
    if (!alive) return;
    alive = false;
    clearTimeout(typingTimer);
    clearTimeout(copyTimer);
    for (const c of cleanups) c();
    runPanel.destroy();
    provider.destroy();
    socket.disconnect();
    editor.destroy();
    ydoc.destroy();
    document.title = "Duet";
  }

  return teardown;
}

/**
 * The awareness "user" field y-codemirror.next reads for remote carets.
 * Its caret widgets compare only their colour, so CodeMirror would reuse one
 * person's caret (and name label) for another person of the same colour:
 * each client's colour string is its own (an alpha of 0.99… ending in the
 * client's id), the same colour to the eye.
 */
function userField(name, color, clientID) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  if (!m) return { name, color, colorLight: `color-mix(in srgb, ${color} 20%, transparent)` };
  const [r, g, b] = m.slice(1).map((x) => parseInt(x, 16));
  return { name, color: `rgb(${r} ${g} ${b} / 0.99${clientID >>> 0})`, colorLight: `rgb(${r} ${g} ${b} / 0.2)` };
}
