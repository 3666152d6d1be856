// Helpers around the real `phoenix` npm client for protocol tests.
// Every wait here is bounded: nothing in a test can hang for ever.
import { Socket, LongPoll, Presence } from "phoenix";
import WebSocket from "ws";

export { Socket, LongPoll, Presence, WebSocket };

/** The transports the shared channel tests run over. */
export const TRANSPORT_NAMES = ["websocket", "longpoll"];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Poll `fn` (sync or async) until it returns a truthy value; resolve with that value.
 * Rejects after `timeout` ms with `message` and the last value/error seen.
 */
export async function waitFor(fn, { timeout = 5000, interval = 20, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.stack || last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

/** Reject `promise` if it does not settle within `ms`. */
export function withTimeout(promise, ms, what = "operation") {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Build (but do not connect) a phoenix.js Socket to `server`.
 * opts: transport "websocket" | "longpoll"; authToken: true to pass the token with phoenix.js's
 * `authToken` option instead of the `token` query param; token null/undefined = no token;
 * any other key is passed to the Socket constructor (timeout, reconnectAfterMs, rejoinAfterMs, ...).
 */
export function makeSocket(server, token, opts = {}) {
  const { transport = "websocket", authToken = false, params = {}, ...rest } = opts;
  const socketOpts = {
    transport: transport === "longpoll" ? LongPoll : WebSocket,
    timeout: 5000,
    reconnectAfterMs: () => 100,
    ...rest,
  };
  if (token != null && authToken) {
    socketOpts.authToken = token;
    socketOpts.params = { ...params };
  } else if (token != null) {
    socketOpts.params = { token, ...params };
  } else {
    socketOpts.params = { ...params };
  }
  return new Socket(server.wsUrl, socketOpts);
}

/** A set of sockets to disconnect together in `after`. */
export class SocketPool {
  constructor() {
    this.sockets = new Set();
  }
  add(socket) {
    this.sockets.add(socket);
    return socket;
  }
  /** Connect a socket (see `connect`) and remember it for `closeAll`. */
  async connect(server, token, opts = {}) {
    const socket = makeSocket(server, token, opts);
    this.add(socket);
    await openSocket(socket, opts.openTimeout ?? 5000);
    return socket;
  }
  async closeAll() {
    const all = [...this.sockets];
    this.sockets.clear();
    await Promise.all(all.map((s) => disconnect(s)));
  }
}

/** A socket pool for one test, closed when the test ends. */
export function poolFor(t) {
  const p = new SocketPool();
  t.after(() => p.closeAll());
  return p;
}

/** Connect `socket` and resolve once it is open (reject after `ms`). */
export function openSocket(socket, ms = 5000) {
  return new Promise((resolve, reject) => {
    let ref;
    const timer = setTimeout(() => {
      socket.off([ref]);
      socket.disconnect();
      reject(new Error(`socket to ${socket.endPointURL()} did not open within ${ms} ms`));
    }, ms);
    ref = socket.onOpen(() => {
      clearTimeout(timer);
      socket.off([ref]);
      resolve(socket);
    });
    socket.connect();
  });
}

/** Build a socket and connect it (not tracked: disconnect it yourself). */
export async function connect(server, token, opts = {}) {
  const socket = makeSocket(server, token, opts);
  await openSocket(socket, opts.openTimeout ?? 5000);
  return socket;
}

/** Disconnect a phoenix.js socket; resolves when done (at most ~3 s). */
export function disconnect(socket) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000);
    try {
      socket.disconnect(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/**
 * Join `channel` and resolve to {status: "ok"|"error"|"timeout", response}.
 * On error the channel is left so that phoenix.js stops retrying.
 */
export async function tryJoin(channel, ms = 5000) {
  const outcome = await settle(channel.join(ms), ms + 200);
  if (outcome.status !== "ok") channel.leave(100);
  return outcome;
}

/**
 * The first of a phoenix.js Push's ok / error / timeout as {status, response},
 * or "timeout" after `guardMs` if phoenix.js reports nothing. Never rejects.
 */
function settle(pushed, guardMs) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (status, response) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, response });
    };
    const timer = setTimeout(() => finish("timeout"), guardMs);
    pushed
      .receive("ok", (r) => finish("ok", r))
      .receive("error", (r) => finish("error", r))
      .receive("timeout", () => finish("timeout"));
  });
}

/** Join `channel`; resolve with the ok response, reject on error/timeout. */
export async function join(channel, ms = 5000) {
  const { status, response } = await tryJoin(channel, ms);
  if (status !== "ok") {
    const err = new Error(`join ${channel.topic} failed: ${status} ${JSON.stringify(response)}`);
    err.status = status;
    err.response = response;
    throw err;
  }
  return response;
}

/** Create channel `topic` on `socket` with `params` and join it; resolve to {channel, response}. */
export async function joinTopic(socket, topic, params = {}, ms = 5000) {
  const channel = socket.channel(topic, params);
  const response = await join(channel, ms);
  return { channel, response };
}

/** Push and resolve to {status: "ok"|"error"|"timeout", response}. Never rejects. */
export function push(channel, event, payload = {}, ms = 5000) {
  return settle(channel.push(event, payload, ms), ms + 500);
}

/** Resolve with the payload of the next `event` on `channel` matching `filter` (reject after ms). */
export function nextEvent(channel, event, { timeout = 5000, filter = () => true } = {}) {
  return new Promise((resolve, reject) => {
    let ref;
    const timer = setTimeout(() => {
      channel.off(event, ref);
      reject(new Error(`no "${event}" on ${channel.topic} within ${timeout} ms`));
    }, timeout);
    ref = channel.on(event, (payload) => {
      if (!filter(payload)) return;
      clearTimeout(timer);
      channel.off(event, ref);
      resolve(payload);
    });
  });
}

/** Record every `event` payload on `channel` into an array (with a `stop()` method). */
export function collect(channel, event) {
  const seen = [];
  const ref = channel.on(event, (payload) => seen.push(payload));
  Object.defineProperty(seen, "stop", { value: () => channel.off(event, ref), enumerable: false });
  return seen;
}

/** Record every raw message the socket receives ({topic, event, payload, ref, join_ref}). */
export function collectMessages(socket) {
  const seen = [];
  const ref = socket.onMessage((msg) => seen.push(msg));
  Object.defineProperty(seen, "stop", { value: () => socket.off([ref]), enumerable: false });
  return seen;
}

/** Count join "ok" replies of `channel` (the join push keeps its hooks across rejoins). */
export function countJoins(channel) {
  const counter = { ok: 0, error: 0 };
  channel.joinPush.receive("ok", () => counter.ok++);
  channel.joinPush.receive("error", () => counter.error++);
  return counter;
}

/** Record socket close events ({code, reason}) and errors. */
export function watchSocket(socket) {
  const w = { closes: [], errors: [], opens: 0 };
  w.refs = [
    socket.onClose((e) => w.closes.push({ code: e && e.code, reason: e && e.reason })),
    socket.onError((e) => w.errors.push(e)),
    socket.onOpen(() => w.opens++),
  ];
  w.stop = () => socket.off(w.refs);
  return w;
}

/** The underlying net.Socket of a phoenix.js WebSocket connection (for abrupt drops). */
export function rawTcpOf(socket) {
  const ws = socket.conn;
  if (!ws || !ws._socket) throw new Error("socket has no underlying TCP connection (not a connected WebSocket?)");
  return ws._socket;
}

/** ArrayBuffer helpers. */
export function bytesOf(buf) {
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new Error(`not binary: ${Object.prototype.toString.call(buf)}`);
}

export function arrayBufferOf(bytes) {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}
