// A candidate's integrity signals (CONTRACT §6): a paste anywhere in the
// room (`paste` with its size in characters), and leaving the page or
// coming back (`away` / `back`: the tab hidden or the window unfocused).
// The page tells the candidate that these are recorded.

/**
 * Starts watching this page; `send(event, payload)` is called for each
 * signal (the room pushes it when it should). Returns the function that stops.
 */
export function watchSignals(send) {
  // Only changes are told: a page opened in a background tab has not left.
  let away = false;
  const leave = () => {
    if (away) return;
    away = true;
    send("away", {});
  };
  const back = () => {
    if (!away || document.hidden) return;
    away = false;
    send("back", {});
  };
  const onVisibility = () => (document.hidden ? leave() : document.hasFocus() && back());
  const onPaste = (ev) => {
    const text = ev.clipboardData ? ev.clipboardData.getData("text/plain") : "";
    if (text) send("paste", { chars: text.length });
  };
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("blur", leave);
  window.addEventListener("focus", back);
  document.addEventListener("paste", onPaste, true);
  return () => {
    document.removeEventListener("visibilitychange", onVisibility);
    window.removeEventListener("blur", leave);
    window.removeEventListener("focus", back);
    document.removeEventListener("paste", onPaste, true);
  };
}
