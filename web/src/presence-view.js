// Participants list and the "… is typing…" line, from phoenix Presence.
import { h, mount } from "./dom.js";

/**
 * Turn phoenix Presence state into one entry per person (a person with two
 * tabs has two metas but is listed once).
 * @returns {{id: string, name: string, color: string, typing: boolean, interviewer: boolean}[]}
 */
export function people(presence) {
  return presence.list((id, { metas }) => {
    const first = metas[0] || {};
    return {
      id: String(id),
      name: String(first.first_name ?? ""),
      color: String(first.color ?? ""),
      typing: metas.some((m) => m.typing === true),
      interviewer: metas.some((m) => m.role === "interviewer"),
      since: metas.reduce((min, m) => (m.online_at != null && (min == null || m.online_at < min) ? m.online_at : min), null),
    };
  });
}

/** "Sophie is typing…", "Sophie and Antoin are typing…", "Sophie, Antoin and Lea are typing…", "". */
export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`;
}

/** Arrival order (online_at), then name, then id: the same order for everyone. */
function byArrival(a, b) {
  const [x, y] = [a.since, b.since];
  if (x !== y && x != null && y != null) {
    const [nx, ny] = [Number(x), Number(y)];
    const c = Number.isFinite(nx) && Number.isFinite(ny) ? nx - ny : String(x).localeCompare(String(y));
    if (c) return c;
  }
  return a.name.localeCompare(b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** When each person started typing, as this page saw it, by typing line. */
const typingSince = new WeakMap();

/**
 * The others who are typing, in the order they started (as seen here; those
 * seen starting together by arrival): "Sophie and Antoin" when Sophie began.
 */
function typists(status, sorted, myId) {
  let since = typingSince.get(status);
  if (!since) typingSince.set(status, (since = new Map()));
  const now = Date.now();
  const typing = sorted.filter((p) => p.typing && p.id !== myId);
  for (const id of [...since.keys()]) if (!typing.some((p) => p.id === id)) since.delete(id);
  for (const p of typing) if (!since.has(p.id)) since.set(p.id, now);
  return typing.sort((a, b) => since.get(a.id) - since.get(b.id)); // stable: ties keep arrival order
}

/** Render the list into `ul` (me first, then by arrival) and the typing line into `status`. */
export function renderPresence(ul, status, list, myId) {
  const sorted = [...list].sort((a, b) => (a.id === myId ? -1 : b.id === myId ? 1 : byArrival(a, b)));
  mount(
    ul,
    sorted.map((p) => {
      const dot = h("span", { class: "dot", "aria-hidden": "true" });
      dot.style.backgroundColor = p.color;
      const li = h(
        "li",
        { class: p.id === myId ? "me" : null, "data-user-id": p.id },
        dot,
        h("span", { class: "name" }, p.name),
        p.interviewer ? h("span", { class: "role-tag" }, "Interviewer") : null,
        h("span", { class: "typing-mark", "aria-hidden": "true", title: "typing" }),
      );
      li.style.setProperty("--person", p.color);
      if (p.typing && p.id !== myId) li.classList.add("typing");
      return li;
    }),
  );
  const text = typingText(typists(status, sorted, myId).map((p) => p.name));
  if (status.textContent !== text) status.textContent = text;
}
