// The Python worker: Pyodide (CPython compiled to wasm, from the npm
// `pyodide` package, served by the binary) loads once per worker, then runs
// one program and is thrown away, so no run sees what an earlier one left.
// Started by the runner frame with `self.duetInit` = {base, memoryBytes,
// outputBytes}; answers "ready" once loaded, then takes one "run".
import { Output, capWasmMemory, done } from "./common.js";

// Runs the program as `__main__` from a file named main.py, and returns
// [exit status, out of memory]. The harness's own frame is left out of
// tracebacks. Output is line-buffered (stdout is a tty) so every line leaves
// at once and none is lost when the worker is stopped.
const HARNESS = `
import sys, traceback
def _duet_run(code):
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    rc, oom = 0, False
    try:
        exec(compile(code, "main.py", "exec"), g)
    except SystemExit as e:
        c = e.code
        if c is None:
            rc = 0
        elif isinstance(c, int):
            rc = c & 0xFF
        else:
            print(c, file=sys.stderr)
            rc = 1
    except BaseException as e:
        oom = isinstance(e, MemoryError)
        rc = 1
        try:
            tb = e.__traceback__
            traceback.print_exception(type(e), e, tb.tb_next if tb else None)
        except BaseException:
            print(type(e).__name__, file=sys.stderr)
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
    return [rc, oom]
_duet_run
`;

const init = self.duetInit;
let output = null;
let stdin = new Uint8Array(0);
let run = null;

function writer(stream) {
  const decoder = new TextDecoder();
  return {
    isatty: true,
    write(buf) {
      if (output) output.write(stream, decoder.decode(buf, { stream: true }));
      return buf.length;
    },
  };
}

async function load() {
  capWasmMemory(init.memoryBytes);
  const { loadPyodide } = await import(init.base + "pyodide.mjs");
  const pyodide = await loadPyodide({
    indexURL: init.base,
    // Packages would come from here too, never from Pyodide's default CDN
    // (the frame's policy would block it anyway); the binary serves none.
    packageBaseUrl: init.base,
    // Nothing from the page's environment: a clean interpreter.
    env: { HOME: "/home/pyodide" },
    stdout: () => {},
    stderr: () => {},
  });
  pyodide.setStdout(writer("stdout"));
  pyodide.setStderr(writer("stderr"));
  pyodide.setStdin({
    read(buf) {
      const n = Math.min(buf.length, stdin.length);
      buf.set(stdin.subarray(0, n));
      stdin = stdin.subarray(n);
      return n;
    },
  });
  run = pyodide.runPython(HARNESS);
}

self.onmessage = async (ev) => {
  const m = ev.data;
  if (!m || m.type !== "run" || !run) return;
  output = new Output(init.outputBytes);
  stdin = new TextEncoder().encode(String(m.stdin ?? ""));
  let exit = 1;
  let oom = false;
  try {
    // Called so that the program may block on JavaScript promises (asyncio.run,
    // asyncio.sleep) where the browser can switch stacks (JSPI).
    const code = String(m.code ?? "");
    const result = run.callPromising ? await run.callPromising(code) : run(code);
    [exit, oom] = result.toJs();
    result.destroy();
  } catch (e) {
    // The interpreter itself failed (e.g. it could not allocate its error).
    oom = /memory/i.test(String(e && e.message));
    output.write("stderr", `${String(e && e.message ? e.message : e)}\n`);
  }
  done(exit, oom);
};

load().then(
  () => self.postMessage({ type: "ready" }),
  (e) => self.postMessage({ type: "fatal", message: `Python did not load: ${e && e.message ? e.message : e}` }),
);
