// Lobby: who am I, create a challenge, list my challenges.
import { h, mount } from "./dom.js";
import { listLanguages, listChallenges, createChallenge, ApiError } from "./api.js";

const FALLBACK_LANGUAGES = [
  ["python", "Python"],
  ["javascript", "JavaScript"],
  ["typescript", "TypeScript"],
  ["rust", "Rust"],
  ["go", "Go"],
  ["java", "Java"],
  ["c", "C"],
  ["cpp", "C++"],
  ["ruby", "Ruby"],
  ["sql", "SQL"],
  ["plaintext", "Plain text"],
].map(([id, name]) => ({ id, name }));

const LAST_LANGUAGE_KEY = "duet.language";

export function mountLobby(root, user, { onAuthLost, onSignOut, navigate }) {
  let alive = true;
  const languageNames = new Map(FALLBACK_LANGUAGES.map((l) => [l.id, l.name]));

  // --- create form
  const title = h("input", { id: "new-title", name: "title", type: "text", maxlength: "120", required: true, autocomplete: "off" });
  const prompt = h("textarea", {
    id: "new-prompt",
    name: "prompt",
    rows: "6",
    maxlength: "20000",
    placeholder: "Describe the task: input, expected output, constraints…",
  });
  const language = h("select", { id: "new-language", name: "language" });
  const formError = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create challenge");
  const fillLanguages = (langs) => {
    const saved = readLastLanguage();
    const current = language.value || saved || "python";
    mount(language, langs.map((l) => h("option", { value: l.id }, l.name)));
    if (langs.some((l) => l.id === current)) language.value = current;
    for (const l of langs) languageNames.set(l.id, l.name);
  };
  fillLanguages(FALLBACK_LANGUAGES);

  const form = h(
    "form",
    { class: "card create", novalidate: true },
    h("h2", null, "New challenge"),
    h("p", { class: "muted lead" }, "Create a room, then share its link with your partner."),
    h("label", { for: "new-title" }, "Title"),
    title,
    h("label", { for: "new-prompt" }, "Prompt"),
    prompt,
    h("label", { for: "new-language" }, "Language"),
    language,
    h("div", { class: "actions" }, submit),
    formError,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.textContent = "";
    if (!title.value.trim()) {
      formError.textContent = "Give your challenge a title.";
      title.focus();
      return;
    }
    submit.disabled = true;
    try {
      const challenge = await createChallenge({
        title: title.value.trim(),
        prompt: prompt.value,
        language: language.value,
      });
      writeLastLanguage(language.value);
      if (alive) navigate(roomPath(challenge.id));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return onAuthLost();
      formError.textContent = e.message;
      submit.disabled = false;
    }
  });

  // --- my challenges
  const list = h("ul", { class: "challenges", "aria-label": "My challenges" });
  const listStatus = h("p", { class: "muted" }, "Loading your challenges…");
  const renderList = (challenges) => {
    if (!challenges.length) {
      listStatus.textContent = "No challenges yet. Create one and share its link with your partner.";
      mount(list);
      return;
    }
    listStatus.textContent = "";
    mount(
      list,
      challenges.map((c) =>
        h(
          "li",
          null,
          h("a", { href: roomPath(c.id), "data-link": true }, c.title),
          h(
            "span",
            { class: "meta" },
            languageNames.get(c.language) || c.language,
            c.created_at ? ` · ${formatDate(c.created_at)}` : "",
          ),
        ),
      ),
    );
  };

  const changeName = h("button", { type: "button", class: "link" }, "Change name");
  changeName.addEventListener("click", () => onSignOut());

  mount(
    root,
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "/", "data-link": true }, "Duet"),
      h("div", { class: "who" }, h("span", null, "Signed in as "), h("strong", null, user.first_name), " ", changeName),
    ),
    h(
      "main",
      { class: "lobby" },
      form,
      h("section", { class: "card mine" }, h("h2", null, "My challenges"), listStatus, list),
    ),
  );
  title.focus();

  listLanguages()
    .then((langs) => alive && Array.isArray(langs) && langs.length && fillLanguages(langs))
    .catch(() => {});
  listChallenges()
    .then((cs) => alive && renderList(cs || []))
    .catch((e) => {
      if (!alive) return;
      if (e instanceof ApiError && e.status === 401) return onAuthLost();
      listStatus.textContent = e.message;
    });

  return () => {
    alive = false;
  };
}

export const roomPath = (id) => `/challenges/${encodeURIComponent(id)}`;

function formatDate(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function readLastLanguage() {
  try {
    return localStorage.getItem(LAST_LANGUAGE_KEY);
  } catch {
    return null;
  }
}
function writeLastLanguage(v) {
  try {
    localStorage.setItem(LAST_LANGUAGE_KEY, v);
  } catch {
    /* ignore */
  }
}
