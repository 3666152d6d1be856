// The one-field sign-in: "Your name" + "Continue". No password.
import { h, mount } from "./dom.js";
import { createSession, getMe, ApiError } from "./api.js";
import { getToken, setToken, clearToken, getSavedName, saveName, tokenExpired } from "./auth-store.js";

/**
 * Resolve to the signed-in user, or null when there is no usable token
 * (none stored, expired, or refused by the server with 401).
 * Network errors propagate so the caller can say the server is unreachable.
 */
export async function currentUser() {
  if (!getToken() || tokenExpired()) {
    clearToken();
    return null;
  }
  try {
    return await getMe();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      clearToken();
      return null;
    }
    throw e;
  }
}

export function signOut() {
  clearToken();
}

/**
 * Render the sign-in card into `root`; calls onSignedIn(user) after success.
 * `intro` is an optional line of context ("Sign in to join this room").
 */
export function renderSignIn(root, { intro, notice, onSignedIn }) {
  const input = h("input", {
    id: "signin-name",
    name: "first_name",
    type: "text",
    autocomplete: "given-name",
    maxlength: "40",
    required: true,
    value: getSavedName(),
  });
  const error = h("p", { class: "form-error", role: "alert" });
  const button = h("button", { type: "submit", class: "primary" }, "Continue");
  const form = h(
    "form",
    { class: "card signin", novalidate: true },
    h("h1", null, "Welcome to Duet"),
    h("p", { class: "muted" }, intro || "Live pair-programming rooms. Tell us who you are — no password needed."),
    notice ? h("p", { class: "notice" }, notice) : null,
    h("label", { for: "signin-name" }, "Your name"),
    h("div", { class: "row" }, input, button),
    error,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = input.value.trim();
    error.textContent = "";
    if (!name) {
      error.textContent = "Please enter your name.";
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const { token, user } = await createSession(name);
      setToken(token);
      saveName(name);
      onSignedIn(user);
    } catch (e) {
      error.textContent = e.message;
      button.disabled = false;
      input.focus();
    }
  });
  mount(root, h("main", { class: "center" }, form));
  input.focus();
  if (input.value) input.select();
}
