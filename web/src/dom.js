// Tiny DOM helpers. User data only ever goes in through textContent or
// attribute setters — never innerHTML.

/**
 * h("div", {class: "x", onclick: fn}, "text", child, [more children])
 * Strings become text nodes; null/false children are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k in el && typeof v !== "string") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
}

/** Replace everything inside `el` with `children`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const styled = new Set();

/** Adds a chunk's own styles to the page, once (see build.mjs, `*.lazy.css`). */
export function addStyles(css) {
  if (styled.has(css)) return;
  styled.add(css);
  document.head.append(h("style", null, css));
}
