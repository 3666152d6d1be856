// The interviewer key of a room (CONTRACT §6). The interviewer link is
// /challenges/:id?key=<key>: the key is read from the address once, kept in
// this tab's sessionStorage, and taken out of the address bar so that a
// link copied from it is the candidate's. Opening the interviewer link
// again works the same way.

const PREFIX = "duet.key.";

function store() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the key lives only in memory
  }
}
const memory = new Map();

/** Moves `?key=` of the current address into this tab's storage for room `id`. */
export function takeKeyFromUrl(id) {
  const url = new URL(location.href);
  const key = url.searchParams.get("key");
  if (key == null) return;
  url.searchParams.delete("key");
  if (key) setKey(id, key);
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

export function getKey(id) {
  const s = store();
  return (s && s.getItem(PREFIX + id)) || memory.get(id) || null;
}

export function setKey(id, key) {
  memory.set(id, key);
  const s = store();
  try {
    if (s) s.setItem(PREFIX + id, key);
  } catch {
    /* quota: memory only */
  }
}

export function forgetKey(id) {
  memory.delete(id);
  const s = store();
  if (s) s.removeItem(PREFIX + id);
}
