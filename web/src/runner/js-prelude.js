// Evaluated inside QuickJS before the program: console, print, process,
// require("fs").readFileSync(0) and readline() for stdin, and timers, built
// on the four host functions the worker defines (and this removes from the
// global object). Exported as source text: it never runs in the worker itself.
export const PRELUDE = String.raw`(() => {
  "use strict";
  const g = globalThis;
  const write = g.__duet_write, arm = g.__duet_timer, disarm = g.__duet_clear, quit = g.__duet_exit;
  const input = String(g.__duet_stdin);
  for (const k of ["__duet_write", "__duet_timer", "__duet_clear", "__duet_exit", "__duet_stdin"]) delete g[k];

  const quote = (s) => "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";
  const key = (k) => (typeof k === "symbol" ? "[" + k.toString() + "]" : /^[A-Za-z_$][\w$]*$/.test(k) ? k : quote(k));
  function inspect(v, depth, seen) {
    switch (typeof v) {
      case "string": return quote(v);
      case "number": return Object.is(v, -0) ? "-0" : String(v);
      case "bigint": return v + "n";
      case "symbol": return v.toString();
      case "undefined": return "undefined";
      case "boolean": return String(v);
      case "function": return /^class[\s{]/.test(Function.prototype.toString.call(v)) ? "[class " + (v.name || "(anonymous)") + "]" : "[Function: " + (v.name || "(anonymous)") + "]";
    }
    if (v === null) return "null";
    if (seen.includes(v)) return "[Circular]";
    if (v instanceof Error) return v.stack ? v.name + ": " + v.message + "\n" + v.stack.replace(/\n$/, "") : v.name + ": " + v.message;
    if (v instanceof Date) return isNaN(v) ? "Invalid Date" : v.toISOString();
    if (v instanceof RegExp) return String(v);
    if (v instanceof Promise) return "Promise { <pending> }";
    const inner = seen.concat([v]);
    const show = (x) => inspect(x, depth + 1, inner);
    const wrap = (open, parts, close) => (parts.length ? open + " " + parts.join(", ") + " " + close : open + close);
    if (Array.isArray(v)) {
      if (depth > 2) return "[Array]";
      const parts = v.slice(0, 100).map(show);
      if (v.length > 100) parts.push("... " + (v.length - 100) + " more items");
      return wrap("[", parts, "]");
    }
    if (v instanceof Map) {
      if (depth > 2) return "[Map]";
      return wrap("Map(" + v.size + ") {", [...v].map(([k, x]) => show(k) + " => " + show(x)), "}");
    }
    if (v instanceof Set) {
      if (depth > 2) return "[Set]";
      return wrap("Set(" + v.size + ") {", [...v].map(show), "}");
    }
    const proto = Object.getPrototypeOf(v);
    const name = proto === null ? "[Object: null prototype]" : proto !== Object.prototype && proto.constructor && proto.constructor.name ? proto.constructor.name : "";
    if (depth > 2) return "[" + (name || "Object") + "]";
    const parts = Reflect.ownKeys(v).filter((k) => Object.prototype.propertyIsEnumerable.call(v, k)).map((k) => key(k) + ": " + show(v[k]));
    return (name ? name + " " : "") + wrap("{", parts, "}");
  }
  function format(args) {
    let out = [];
    let rest = args;
    if (typeof args[0] === "string" && args[0].includes("%")) {
      let i = 1;
      const first = args[0].replace(/%([sdifjoOc%])/g, (m, c) => {
        if (c === "%") return "%";
        if (i >= args.length) return m;
        const a = args[i++];
        switch (c) {
          case "s": return typeof a === "string" ? a : inspect(a, 1, []);
          case "d": case "i": return typeof a === "bigint" ? a + "n" : String(c === "i" ? parseInt(a) : Number(a));
          case "f": return String(parseFloat(a));
          case "j": try { return JSON.stringify(a); } catch (e) { return "[Circular]"; }
          case "c": return "";
          default: return inspect(a, 0, []);
        }
      });
      out.push(first);
      rest = args.slice(i);
    } else if (args.length) {
      out.push(typeof args[0] === "string" ? args[0] : inspect(args[0], 0, []));
      rest = args.slice(1);
    }
    for (const a of rest) out.push(typeof a === "string" ? a : inspect(a, 0, []));
    return out.join(" ");
  }

  const out = (...a) => write(1, format(a) + "\n");
  const err = (...a) => write(2, format(a) + "\n");
  const counts = new Map();
  const times = new Map();
  g.console = {
    log: out, info: out, debug: out, error: err, warn: err, trace: err,
    dir: (v) => write(1, inspect(v, 0, []) + "\n"),
    table: out,
    assert: (ok, ...a) => { if (!ok) err("Assertion failed" + (a.length ? ": " + format(a) : "")); },
    count: (l = "default") => { const n = (counts.get(l) || 0) + 1; counts.set(l, n); out(l + ": " + n); },
    time: (l = "default") => times.set(l, Date.now()),
    timeEnd: (l = "default") => { if (times.has(l)) out(l + ": " + (Date.now() - times.get(l)) + "ms"); times.delete(l); },
  };
  g.print = (...a) => write(1, a.map(String).join(" ") + "\n");

  let pos = 0;
  g.readline = () => {
    if (pos >= input.length) return null;
    const nl = input.indexOf("\n", pos);
    const end = nl < 0 ? input.length : nl;
    const line = input.slice(pos, end).replace(/\r$/, "");
    pos = end + 1;
    return line;
  };
  const fs = {
    readFileSync(path) {
      if (path === 0 || path === "/dev/stdin") return input;
      const e = new Error("ENOENT: no such file or directory, open '" + path + "'");
      e.code = "ENOENT";
      throw e;
    },
  };
  class Exit extends Error {}
  const proc = {
    argv: ["node", "main.js"],
    env: {},
    platform: "browser",
    exitCode: undefined,
    exit(code) {
      const c = code === undefined ? (proc.exitCode === undefined ? 0 : proc.exitCode) : code;
      quit(Number(c) | 0);
      throw new Exit("process.exit(" + c + ")");
    },
    stdout: { write: (s) => (write(1, String(s)), true) },
    stderr: { write: (s) => (write(2, String(s)), true) },
  };
  g.process = proc;
  g.require = (name) => {
    if (name === "fs" || name === "node:fs") return fs;
    const e = new Error("Cannot find module '" + name + "'");
    e.code = "MODULE_NOT_FOUND";
    throw e;
  };

  const timers = new Map();
  let next = 1;
  function schedule(fn, ms, args, repeat) {
    if (typeof fn !== "function") throw new TypeError("The callback must be a function");
    const id = next++;
    const delay = Math.max(0, Number(ms) || 0);
    timers.set(id, { fn, args, delay, repeat });
    arm(id, delay);
    return id;
  }
  function cancel(id) {
    if (timers.delete(id)) disarm(id);
  }
  g.setTimeout = (fn, ms, ...args) => schedule(fn, ms, args, false);
  g.setInterval = (fn, ms, ...args) => schedule(fn, ms, args, true);
  g.clearTimeout = cancel;
  g.clearInterval = cancel;
  g.queueMicrotask = (fn) => Promise.resolve().then(fn);
  // The worker calls this when a timer is due; it is not left on globalThis.
  return (id) => {
    const t = timers.get(id);
    if (!t) return;
    if (t.repeat) arm(id, t.delay);
    else timers.delete(id);
    t.fn(...t.args);
  };
})()`;
