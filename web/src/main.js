// Entry point: a two-route client router (lobby and room).
// The room (CodeMirror, Yjs, Phoenix) is a separate chunk loaded on demand,
// so the lobby's first load stays small.
import "./style.css";
import { h, mount } from "./dom.js";
import { currentUser, renderSignIn } from "./auth.js";
import { clearToken, getToken } from "./auth-store.js";
import { prefetchRoom } from "./api.js";
import { mountLobby } from "./lobby.js";
import { getKey, takeKeyFromUrl } from "./interview-key.js";

const root = document.getElementById("app");
let teardown = null;
let generation = 0;

export function navigate(path) {
  if (path !== location.pathname) history.pushState(null, "", path);
  route();
}

function roomId() {
  const m = /^\/challenges\/([^/]+)\/?$/.exec(location.pathname);
  return m ? decodeURIComponent(m[1]) : null;
}

/**
 * Resolve to the signed-in user. Shows the sign-in card when there is no valid
 * token, and resolves once the person has signed in. `gen` guards against the
 * page having moved on meanwhile.
 */
async function ensureUser(gen, { intro, notice } = {}) {
  for (;;) {
    let user;
    try {
      user = await currentUser();
    } catch (e) {
      if (gen !== generation) return null;
      await new Promise((resolve) =>
        mount(
          root,
          h(
            "main",
            { class: "center" },
            h(
              "div",
              { class: "card" },
              h("h1", null, "Cannot reach Duet"),
              h("p", { class: "form-error", role: "alert" }, e.message),
              h("button", { type: "button", class: "primary", onclick: resolve }, "Try again"),
            ),
          ),
        ),
      );
      continue;
    }
    if (gen !== generation) return null;
    if (user) return user;
    return new Promise((resolve) =>
      renderSignIn(root, { intro, notice, onSignedIn: (u) => resolve(gen === generation ? u : null) }),
    );
  }
}

async function route(notice) {
  const gen = ++generation;
  if (teardown) {
    const t = teardown;
    teardown = null;
    t();
  }
  const id = roomId();
  if (id) {
    takeKeyFromUrl(id); // before anything can show or share the address
    const roomModule = import("./room.js"); // fetch the chunk while we check the token
    const early = getToken() ? prefetchRoom(id, getKey(id)) : null;
    const user = await ensureUser(gen, {
      intro: "Enter your name to join this pair-programming room.",
      notice,
    });
    if (!user) return;
    const { mountRoom } = await roomModule;
    if (gen !== generation) return;
    teardown = mountRoom(root, id, user, { onAuthLost, navigate, early });
  } else {
    if (location.pathname !== "/") history.replaceState(null, "", "/");
    const user = await ensureUser(gen, { notice });
    if (!user) return;
    teardown = mountLobby(root, user, { onAuthLost, onSignOut, navigate });
  }
}

/** A 401 or a refused socket: forget the token and ask for the name again. */
function onAuthLost() {
  clearToken();
  route("Your session has expired. Enter your name to continue.");
}

/** "Change name": forget the token and show the name prompt. */
function onSignOut() {
  clearToken();
  route();
}

// Same-origin links marked data-link navigate without a page load.
document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[data-link]");
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", () => route());

route();
