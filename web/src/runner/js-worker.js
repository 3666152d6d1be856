// The JavaScript worker: QuickJS compiled to wasm (npm quickjs-emscripten,
// the single-file sync build, so no second download), with a memory limit.
// The program sees only what js-prelude.js gives it (console, process,
// timers, stdin): no fetch, no DOM, no worker globals. One run per worker.
// Started by the runner frame with `self.duetInit` = {memoryBytes,
// outputBytes}; answers "ready" once loaded, then takes one "run".
import { newQuickJSWASMModuleFromVariant } from "quickjs-emscripten-core";
import variant from "@jitl/quickjs-singlefile-browser-release-sync";
import { Output, capWasmMemory, done } from "./common.js";
import { PRELUDE } from "./js-prelude.js";

/**
 * QuickJS's own stack limit, so deep recursion is its catchable "stack
 * overflow" error and not the worker's native stack running out (which kills
 * the run). Each QuickJS call level also takes native stack, and a Chromium
 * worker's runs out after about 1 300 levels of a one-line recursive
 * function; 192 KiB of QuickJS stack is about 1 000 levels of it (measured:
 * 1 022), Python's own default recursion limit.
 */
const STACK_BYTES = 192 * 1024;
/** Room for QuickJS's wasm heap beyond the program's own limit (its runtime, stack). */
const HEAP_SLACK_BYTES = 32 * 1024 * 1024;

const init = self.duetInit;
let quickjs = null;

async function load() {
  capWasmMemory(init.memoryBytes + HEAP_SLACK_BYTES);
  quickjs = await newQuickJSWASMModuleFromVariant(variant);
}

function describe(vm, handle) {
  const e = vm.dump(handle);
  handle.dispose();
  if (e && typeof e === "object" && "message" in e) {
    const head = `${e.name || "Error"}: ${e.message}`;
    return { text: e.stack ? `${head}\n${e.stack}` : `${head}\n`, oom: e.message === "out of memory" };
  }
  return { text: `Uncaught ${typeof e === "string" ? e : JSON.stringify(e)}\n`, oom: false };
}

function run(code, stdin) {
  const output = new Output(init.outputBytes);
  const rt = quickjs.newRuntime();
  rt.setMemoryLimit(init.memoryBytes);
  rt.setMaxStackSize(STACK_BYTES);
  let exitCode = null; // set by process.exit()
  rt.setInterruptHandler(() => exitCode !== null);
  const vm = rt.newContext();
  const timers = new Map();
  let finished = false;

  const host = {
    __duet_write: (fd, s) => output.write(vm.getNumber(fd) === 2 ? "stderr" : "stdout", vm.getString(s)),
    __duet_timer: (id, ms) => {
      const n = vm.getNumber(id);
      timers.set(n, setTimeout(() => fire(n), vm.getNumber(ms)));
    },
    __duet_clear: (id) => {
      const n = vm.getNumber(id);
      clearTimeout(timers.get(n));
      timers.delete(n);
    },
    __duet_exit: (c) => {
      exitCode = vm.getNumber(c);
    },
  };
  for (const [name, f] of Object.entries(host)) {
    const fn = vm.newFunction(name, f);
    vm.setProp(vm.global, name, fn);
    fn.dispose();
  }
  const input = vm.newString(stdin);
  vm.setProp(vm.global, "__duet_stdin", input);
  input.dispose();
  const fireFn = vm.unwrapResult(vm.evalCode(PRELUDE, "prelude.js"));

  function finish(exit, oom = false) {
    if (finished) return;
    finished = true;
    for (const t of timers.values()) clearTimeout(t);
    done(exit, oom);
    // The worker is thrown away after one run: no need to free the VM.
  }

  // An uncaught error ends the program with status 1 (as in Node).
  function settle(result) {
    if (result.error === undefined) {
      result.dispose();
      return true;
    }
    if (exitCode !== null) {
      result.error.dispose();
      finish(exitCode);
      return false;
    }
    const { text, oom } = describe(vm, result.error);
    output.write("stderr", text);
    finish(1, oom);
    return false;
  }

  function drain() {
    if (finished) return;
    for (;;) {
      const jobs = rt.executePendingJobs(-1);
      if (!settle(jobs)) return;
      if (!rt.hasPendingJob()) break;
    }
    if (exitCode !== null) return finish(exitCode);
    if (timers.size === 0) finish(plannedExit());
  }

  // process.exitCode, as the program left it (Node exits with it).
  function plannedExit() {
    const r = vm.evalCode("(typeof process === 'object' && process && Number(process.exitCode) | 0)", "exit.js");
    if (r.error !== undefined) {
      r.dispose();
      return 0;
    }
    const n = vm.getNumber(r.value);
    r.dispose();
    return n;
  }

  function fire(id) {
    if (finished) return;
    timers.delete(id);
    const arg = vm.newNumber(id);
    const result = vm.callFunction(fireFn, vm.undefined, arg);
    arg.dispose();
    if (settle(result)) drain();
  }

  if (settle(vm.evalCode(code, "main.js"))) drain();
}

self.onmessage = (ev) => {
  const m = ev.data;
  if (!m || m.type !== "run" || !quickjs) return;
  run(String(m.code ?? ""), String(m.stdin ?? ""));
};

load().then(
  () => self.postMessage({ type: "ready" }),
  (e) => self.postMessage({ type: "fatal", message: `JavaScript did not load: ${e && e.message ? e.message : e}` }),
);
