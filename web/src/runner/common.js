// What both runner workers share: the output cap (UTF-8 bytes, cut on a
// character boundary) and the wasm memory cap. Runs inside a Worker.

const encoder = new TextEncoder();

/** UTF-8 length of `s`. */
export function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** The longest prefix of `s` whose UTF-8 form fits in `bytes`, never splitting a character. */
export function cutUtf8(s, bytes) {
  if (bytes <= 0) return "";
  const { read } = encoder.encodeInto(s, new Uint8Array(bytes));
  return s.slice(0, read);
}

/**
 * Sends the program's output to the frame, one message per write (so nothing
 * waits in a buffer when the program is stopped), until `cap` bytes have
 * gone out; the rest is counted as cut, never sent.
 */
export class Output {
  constructor(cap, post = (m) => self.postMessage(m)) {
    this.left = cap;
    this.truncated = false;
    this.post = post;
  }

  write(stream, data) {
    if (this.truncated || !data) return;
    const n = utf8Length(data);
    if (n <= this.left) {
      this.left -= n;
      this.post({ type: "out", stream, data });
      return;
    }
    const part = cutUtf8(data, this.left);
    if (part) this.post({ type: "out", stream, data: part });
    this.left = 0;
    this.truncated = true;
    this.post({ type: "truncated" });
  }
}

/**
 * Caps every WebAssembly memory of this worker at `maxBytes`: a grow past it
 * fails as a grow the engine refuses does, so emscripten's allocator returns
 * NULL and the program sees its own out-of-memory error (Python's
 * MemoryError, QuickJS's "out of memory") instead of taking the tab down.
 * Emscripten grows its heap from JavaScript (`emscripten_resize_heap` calls
 * `wasmMemory.grow`), which is the call wrapped here.
 */
export function capWasmMemory(maxBytes) {
  const proto = WebAssembly.Memory.prototype;
  const grow = proto.grow;
  const page = 65536;
  Object.defineProperty(proto, "grow", {
    configurable: false,
    writable: false,
    value: function capped(delta) {
      if (this.buffer.byteLength + Number(delta) * page > maxBytes) {
        throw new RangeError(`WebAssembly.Memory.grow(): the runner's cap of ${maxBytes} bytes`);
      }
      return grow.call(this, delta);
    },
  });
}

/** The message the frame turns into "exit N" / "out of memory". */
export function done(exit, outOfMemory = false) {
  self.postMessage({ type: "done", exit, out_of_memory: outOfMemory });
}
