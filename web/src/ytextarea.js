// A plain <textarea> bound to a Y.Text: local typing becomes the minimal
// Yjs edit, remote edits update the field and keep the local caret where
// the text around it went.

const LOCAL = Symbol("textarea");

/** Binds `textarea` to `ytext`; returns the function that unbinds it. */
export function bindTextarea(textarea, ytext) {
  textarea.value = ytext.toString();

  const onInput = () => {
    const before = ytext.toString();
    const after = textarea.value;
    if (before === after) return;
    let start = 0;
    const max = Math.min(before.length, after.length);
    while (start < max && before[start] === after[start]) start++;
    let end = 0;
    while (end < max - start && before[before.length - 1 - end] === after[after.length - 1 - end]) end++;
    ytext.doc.transact(() => {
      const removed = before.length - start - end;
      if (removed > 0) ytext.delete(start, removed);
      const inserted = after.slice(start, after.length - end);
      if (inserted) ytext.insert(start, inserted);
    }, LOCAL);
  };

  const onChange = (event, tr) => {
    if (tr.origin === LOCAL) return;
    const focused = document.activeElement === textarea;
    let [from, to] = [textarea.selectionStart, textarea.selectionEnd];
    let pos = 0;
    for (const op of event.delta) {
      if (op.retain) pos += op.retain;
      else if (op.insert) {
        const n = op.insert.length;
        if (pos <= from) from += n;
        if (pos <= to) to += n;
        pos += n;
      } else if (op.delete) {
        const n = op.delete;
        if (pos < from) from -= Math.min(n, from - pos);
        if (pos < to) to -= Math.min(n, to - pos);
      }
    }
    textarea.value = ytext.toString();
    if (focused) textarea.setSelectionRange(from, to);
  };

  textarea.addEventListener("input", onInput);
  ytext.observe(onChange);
  return () => {
    textarea.removeEventListener("input", onInput);
    ytext.unobserve(onChange);
  };
}
