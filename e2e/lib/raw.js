// Raw protocol clients: a bare `ws` WebSocket and a hand-written long-poll client,
// to send exactly the frames a test needs (including malformed ones) and see exactly
// what comes back. Every wait is bounded.
import WebSocket from "ws";

/** The query string phoenix.js would use. */
function socketQuery({ token, vsn = "2.0.0", query = {} } = {}) {
  const params = new URLSearchParams();
  if (token != null) params.set("token", token);
  if (vsn != null) params.set("vsn", vsn);
  for (const [k, v] of Object.entries(query)) params.set(k, v);
  const s = params.toString();
  return s ? `?${s}` : "";
}

/** Decode a phoenix V2 binary frame (push 0, reply 1, broadcast 2) into {kind, join_ref, ref, topic, event, payload: Buffer}. */
export function decodeBinaryFrame(buf) {
  const b = Buffer.from(buf);
  const kind = b[0];
  let off;
  const str = (len) => {
    const s = b.subarray(off, off + len).toString("utf8");
    off += len;
    return s;
  };
  if (kind === 0) {
    const [jl, tl, el] = [b[1], b[2], b[3]];
    off = 4;
    const join_ref = str(jl), topic = str(tl), event = str(el);
    return { kind: "push", join_ref, ref: null, topic, event, payload: b.subarray(off) };
  }
  if (kind === 1) {
    const [jl, rl, tl, el] = [b[1], b[2], b[3], b[4]];
    off = 5;
    const join_ref = str(jl), ref = str(rl), topic = str(tl), status = str(el);
    return { kind: "reply", join_ref, ref, topic, event: "phx_reply", status, payload: b.subarray(off) };
  }
  if (kind === 2) {
    const [tl, el] = [b[1], b[2]];
    off = 3;
    const topic = str(tl), event = str(el);
    return { kind: "broadcast", join_ref: null, ref: null, topic, event, payload: b.subarray(off) };
  }
  return { kind: `unknown(${kind})`, payload: b };
}

/** Encode a client push binary frame as phoenix.js does. */
export function encodeBinaryPush({ join_ref = "", ref = "", topic, event, payload }) {
  const enc = (s) => Buffer.from(s ?? "", "utf8");
  const j = enc(join_ref), r = enc(ref), t = enc(topic), e = enc(event);
  return Buffer.concat([Buffer.from([0, j.length, r.length, t.length, e.length]), j, r, t, e, Buffer.from(payload)]);
}

class Inbox {
  constructor() {
    this.messages = [];
    this.waiters = [];
  }
  push(msg) {
    this.messages.push(msg);
    for (const w of [...this.waiters]) {
      if (w.pred(msg)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(msg);
      }
    }
  }
  /** Resolve with the first message (already received or future) matching pred. */
  next(pred, timeout = 5000, what = "message") {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${timeout} ms; got: ${summarise(this.messages)}`));
      }, timeout);
      this.waiters.push(w);
    });
  }
}

function summarise(messages) {
  const tail = messages.slice(-8).map((m) => (Buffer.isBuffer(m) ? `<binary ${m.length}>` : JSON.stringify(m).slice(0, 200)));
  return `${messages.length} message(s)${tail.length ? ": " + tail.join(" | ") : ""}`;
}

/** Matcher for a phx_reply to `ref`. */
export const replyTo = (ref, topic) => (m) =>
  Array.isArray(m) && m[1] === ref && m[3] === "phx_reply" && (topic === undefined || m[2] === topic);

/**
 * Attempt a raw WebSocket connection. Resolves to
 * {status: "open", client} or {status: "refused", statusCode, body} or {status: "error", error}.
 */
export function rawWsAttempt(server, { token, vsn, query, protocols, origin, headers, timeout = 5000 } = {}) {
  const url = `${server.wsUrl}/websocket${socketQuery({ token, vsn, query })}`;
  return new Promise((resolve) => {
    const opts = { headers: { ...(headers || {}) }, maxPayload: 256 * 1024 * 1024 };
    if (origin) opts.origin = origin;
    let ws;
    try {
      ws = new WebSocket(url, protocols, opts);
    } catch (error) {
      resolve({ status: "error", error });
      return;
    }
    let refused = false;
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ status: "error", error: new Error("connect timed out") });
    }, timeout);
    ws.on("unexpected-response", (req, res) => {
      clearTimeout(timer);
      refused = true;
      let body = "";
      const done = () => {
        clearTimeout(bodyTimer);
        resolve({ status: "refused", statusCode: res.statusCode, body });
        req.destroy();
      };
      res.on("data", (d) => (body += d));
      res.on("end", done);
      res.on("error", done);
      res.on("close", done);
      const bodyTimer = setTimeout(done, 1000);
    });
    ws.on("error", (error) => {
      if (refused) return;
      clearTimeout(timer);
      resolve({ status: "error", error });
    });
    ws.on("open", () => {
      clearTimeout(timer);
      resolve({ status: "open", client: new RawWsClient(ws) });
    });
  });
}

/** Open a raw WebSocket client or throw. */
export async function rawWs(server, opts = {}) {
  const r = await rawWsAttempt(server, opts);
  if (r.status !== "open") {
    throw new Error(`raw ws connect failed: ${r.status} ${r.statusCode ?? ""} ${r.error?.message ?? r.body ?? ""}`);
  }
  return r.client;
}

export class RawWsClient {
  constructor(ws) {
    this.ws = ws;
    this.inbox = new Inbox();
    this.closeInfo = null;
    this.errors = [];
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
      });
    });
    ws.on("error", (e) => this.errors.push(e));
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        this.inbox.push(Buffer.from(data));
      } else {
        let msg;
        try {
          msg = JSON.parse(data.toString());
        } catch {
          msg = { unparsable: data.toString() };
        }
        this.inbox.push(msg);
      }
    });
  }
  get messages() {
    return this.inbox.messages;
  }
  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }
  /** Send a V2 message array as JSON text. */
  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }
  /** Send raw data (string → text frame, Buffer → binary frame). */
  sendRaw(data, opts = {}) {
    this.ws.send(data, { binary: typeof data !== "string", ...opts });
  }
  next(pred, timeout = 5000, what) {
    return this.inbox.next(pred, timeout, what);
  }
  reply(ref, timeout = 5000) {
    return this.inbox.next(replyTo(ref), timeout, `phx_reply to ref ${ref}`);
  }
  /** Send phx_join and resolve to the reply message. */
  async join(topic, joinRef, payload = {}, timeout = 5000) {
    this.send([joinRef, joinRef, topic, "phx_join", payload]);
    return this.reply(joinRef, timeout);
  }
  /** Resolve with {code, reason} once closed, or null after `timeout` ms. */
  waitClosed(timeout = 5000) {
    let timer;
    return Promise.race([this.closed, new Promise((r) => (timer = setTimeout(() => r(null), timeout)))]).finally(() =>
      clearTimeout(timer),
    );
  }
  close() {
    try {
      this.ws.terminate();
    } catch {
      /* already gone */
    }
  }
}

/**
 * A hand-written long-poll client speaking exactly what phoenix.js's LongPoll speaks:
 * GET (410 + session token on the first call, then 200 messages / 204), POST ndjson.
 * opts.token: JWT as query param; opts.authToken: JWT in the X-Phoenix-AuthToken header.
 */
export class RawLongPollClient {
  constructor(server, { token, authToken, vsn = "2.0.0" } = {}) {
    this.base = `${server.url}/socket/longpoll`;
    this.jwt = token;
    this.authToken = authToken;
    this.vsn = vsn;
    this.session = null;
    this.inbox = new Inbox();
    this.active = false;
    this.polls = [];
    this.controller = new AbortController();
  }
  get messages() {
    return this.inbox.messages;
  }
  url() {
    const p = new URLSearchParams();
    if (this.jwt != null) p.set("token", this.jwt);
    p.set("vsn", this.vsn);
    // phoenix.js appends the session token after the connect params
    let s = `${this.base}?${p}`;
    if (this.session != null) s += `&token=${encodeURIComponent(this.session)}`;
    return s;
  }
  async request(method, body) {
    const headers = { accept: "application/json" };
    if (this.authToken) headers["x-phoenix-authtoken"] = this.authToken;
    if (body !== undefined) headers["content-type"] = "application/x-ndjson";
    const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(25000)]);
    const res = await fetch(this.url(), { method, headers, body, signal });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { httpStatus: res.status, json, text };
  }
  /** First GET: resolves to its JSON body ({status: 410, token} for a new session). */
  async open() {
    const r = await this.request("GET");
    if (r.json && r.json.status === 410 && r.json.token) {
      this.session = r.json.token;
      this.active = true;
      this.loop();
    }
    return r;
  }
  async loop() {
    while (this.active) {
      let r;
      try {
        r = await this.request("GET");
      } catch {
        if (!this.active) return;
        this.active = false;
        this.endStatus = "network error";
        return;
      }
      const status = r.json && r.json.status;
      if (status === 200) {
        for (const m of r.json.messages || []) {
          if (typeof m === "string") {
            try {
              this.inbox.push(JSON.parse(m));
            } catch {
              this.inbox.push({ unparsable: m });
            }
          } else {
            this.inbox.push(m);
          }
        }
      } else if (status === 204) {
        // nothing new
      } else {
        this.active = false;
        this.endStatus = status;
        return;
      }
    }
  }
  /** POST messages (arrays are JSON-encoded; strings sent as they are). Resolves to the JSON body. */
  async post(...msgs) {
    const body = msgs.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join("\n");
    const r = await this.request("POST", body);
    return r.json ?? { httpStatus: r.httpStatus, text: r.text };
  }
  send(msg) {
    return this.post(msg);
  }
  next(pred, timeout = 5000, what) {
    return this.inbox.next(pred, timeout, what);
  }
  reply(ref, timeout = 5000) {
    return this.inbox.next(replyTo(ref), timeout, `phx_reply to ref ${ref}`);
  }
  async join(topic, joinRef, payload = {}, timeout = 5000) {
    await this.send([joinRef, joinRef, topic, "phx_join", payload]);
    return this.reply(joinRef, timeout);
  }
  close() {
    this.active = false;
    this.controller.abort();
  }
}

/**
 * A raw client over either transport with the same interface (send, next, reply, join, close).
 */
export async function rawClient(server, transport, { token } = {}) {
  if (transport === "websocket") return rawWs(server, { token });
  const c = new RawLongPollClient(server, { token });
  const r = await c.open();
  if (!c.active) throw new Error(`raw long-poll open failed: ${r.httpStatus} ${r.text}`);
  return c;
}
