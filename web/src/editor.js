// The shared CodeMirror 6 editor bound to a Y.Text through y-codemirror.next.
// Language support is loaded on demand (one small chunk per language).
import { EditorState, Compartment, Transaction } from "@codemirror/state";
import {
  EditorView,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  drawSelection,
  dropCursor,
} from "@codemirror/view";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, indentUnit } from "@codemirror/language";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";

const LANGUAGES = {
  python: () => import("@codemirror/lang-python").then((m) => m.python()),
  javascript: () => import("@codemirror/lang-javascript").then((m) => m.javascript()),
  typescript: () => import("@codemirror/lang-javascript").then((m) => m.javascript({ typescript: true })),
  rust: () => import("@codemirror/lang-rust").then((m) => m.rust()),
  go: () => import("@codemirror/lang-go").then((m) => m.go()),
  java: () => import("@codemirror/lang-java").then((m) => m.java()),
  c: () => import("@codemirror/lang-cpp").then((m) => m.cpp()),
  cpp: () => import("@codemirror/lang-cpp").then((m) => m.cpp()),
  sql: () => import("@codemirror/lang-sql").then((m) => m.sql()),
  ruby: () =>
    Promise.all([import("@codemirror/language"), import("@codemirror/legacy-modes/mode/ruby")]).then(([l, r]) =>
      l.StreamLanguage.define(r.ruby),
    ),
};

const INDENT = { go: "\t", python: "    ", java: "    ", rust: "    ", c: "    ", cpp: "    " };

const theme = EditorView.theme({
  "&": { height: "100%", fontSize: "14px", backgroundColor: "#fff" },
  ".cm-scroller": {
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace",
    lineHeight: "1.55",
  },
  ".cm-content": { padding: "18px 0 40px" },
  ".cm-gutters": { backgroundColor: "#f7f7f9", color: "#9a9aa5", border: "none", borderRight: "1px solid #ececf1" },
  ".cm-activeLine": { backgroundColor: "#f5f7ff" },
  ".cm-activeLineGutter": { backgroundColor: "#eef1fb", color: "#55586a" },
  "&:not(.cm-focused) .cm-activeLine, &:not(.cm-focused) .cm-activeLineGutter": { backgroundColor: "transparent", color: "inherit" },
  "&.cm-focused": { outline: "none" },
  // Other people's carets: keep their name visible, not only on hover.
  ".cm-ySelectionInfo": {
    opacity: "1",
    fontFamily: "system-ui, -apple-system, 'Segoe UI', sans-serif",
    fontSize: "11px",
    fontWeight: "600",
    padding: "1px 4px",
    borderRadius: "3px 3px 3px 0",
    top: "-1.35em",
  },
  ".cm-ySelectionCaret": { borderLeftWidth: "2px", borderRightWidth: "0" },
});

/** Read-only: no edits, and not editable in the DOM either (no caret, no IME). */
const readOnlyExtension = (on) => [EditorState.readOnly.of(on), EditorView.editable.of(!on)];

/**
 * Create the editor in `parent`. Returns {view, setLanguage(id),
 * setReadOnly(bool), destroy()}. onLocalEdit() fires for every change the
 * local person makes (typing, pasting, deleting, undo…), never for remote
 * changes. `label` is the editable element's accessible name; `gutter`:
 * line numbers; `wrap`: long lines wrap (prose, such as notes).
 */
export function createEditor(parent, { ytext, awareness, onLocalEdit = () => {}, label = "Shared code editor", readOnly = false, gutter = true, wrap = false }) {
  const language = new Compartment();
  const indent = new Compartment();
  const editable = new Compartment();
  let readOnlyNow = readOnly;
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        gutter ? lineNumbers() : [],
        wrap ? EditorView.lineWrapping : [],
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        drawSelection(),
        dropCursor(),
        indentOnInput(),
        bracketMatching(),
        highlightActiveLine(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        EditorState.tabSize.of(4),
        indent.of(indentUnit.of("    ")),
        language.of([]),
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap, indentWithTab]),
        yCollab(ytext, awareness),
        editable.of(readOnlyExtension(readOnly)),
        EditorView.contentAttributes.of({ "aria-label": label, spellcheck: "false" }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged && u.transactions.some((tr) => tr.annotation(Transaction.userEvent) != null)) onLocalEdit();
        }),
        theme,
      ],
    }),
  });

  let wanted = null;
  let destroyed = false;
  return {
    view,
    async setLanguage(id) {
      if (id === wanted) return;
      wanted = id;
      view.dispatch({ effects: indent.reconfigure(indentUnit.of(INDENT[id] || "  ")) });
      const load = LANGUAGES[id];
      let ext = [];
      if (load) {
        try {
          ext = await load();
        } catch {
          ext = []; // chunk failed to load: plain text is still usable
        }
      }
      if (wanted === id && !destroyed) view.dispatch({ effects: language.reconfigure(ext) });
    },
    setReadOnly(on) {
      if (on === readOnlyNow || destroyed) return;
      readOnlyNow = on;
      view.dispatch({ effects: editable.reconfigure(readOnlyExtension(on)) });
    },
    destroy() {
      destroyed = true;
      view.destroy();
    },
  };
}

/**
 * The awareness "user" field y-codemirror.next reads for remote carets.
 * Its caret widgets compare only their colour, so CodeMirror would reuse one
 * person's caret (and name label) for another person of the same colour:
 * each client's colour string is its own (an alpha of 0.99… ending in the
 * client's id), the same colour to the eye.
 */
export function userField(name, color, clientID) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  if (!m) return { name, color, colorLight: `color-mix(in srgb, ${color} 20%, transparent)` };
  const [r, g, b] = m.slice(1).map((x) => parseInt(x, 16));
  return { name, color: `rgb(${r} ${g} ${b} / 0.99${clientID >>> 0})`, colorLight: `rgb(${r} ${g} ${b} / 0.2)` };
}
