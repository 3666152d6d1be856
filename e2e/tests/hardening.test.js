// Hostile input at the HTTP level (the December 2026 hardening review, risks
// 3, 4, 6 and 7): the headers every answer carries, check_origin over
// WebSocket and long-poll with the real phoenix client, JSON bodies that are
// malformed or not objects, names and titles that draw nothing or reorder text.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startWithUsers, stopServer, createChallenge } from "../lib/server.js";
import { api } from "../lib/http.js";
import { Socket, LongPoll, WebSocket, disconnect, join, watchSocket, waitFor } from "../lib/phx.js";
import { rawWsAttempt } from "../lib/raw.js";

const T = { timeout: 30000 };

let server;
let alice;

before(async () => {
  ({ server, alice } = await startWithUsers({ env: { DUET_TEST_CHANNELS: "1" } }, "Alice"));
});

after(() => stopServer(server));

/** A Content-Security-Policy as {directive: "sources"}. */
function directives(csp) {
  assert.ok(csp, "a Content-Security-Policy header");
  return Object.fromEntries(
    csp
      .split(";")
      .map((d) => d.trim())
      .filter(Boolean)
      .map((d) => {
        const [name, ...sources] = d.split(/\s+/);
        return [name, sources.join(" ")];
      }),
  );
}

describe("response headers", () => {
  test("pages: a CSP of our own scripts, styles and socket, never framed; nosniff", T, async () => {
    const c = await createChallenge(server, alice.token);
    for (const path of ["/", `/challenges/${c.id}`]) {
      const r = await api(server, "GET", path);
      assert.equal(r.status, 200, path);
      const csp = directives(r.headers.get("content-security-policy"));
      assert.equal(csp["default-src"], "'self'", `${path}: ${JSON.stringify(csp)}`);
      assert.equal(csp["script-src"], "'self'", `${path}: no inline or eval'd script`);
      assert.equal(csp["connect-src"], "'self'", path);
      assert.equal(csp["object-src"], "'none'", path);
      assert.equal(csp["base-uri"], "'none'", path);
      assert.equal(csp["frame-ancestors"], "'none'", path);
      assert.equal(r.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(r.headers.get("x-frame-options"), "DENY", path);
    }
  });

  test("everything else (API, errors, assets, socket answers): default-src 'none', DENY, nosniff", T, async () => {
    const page = await api(server, "GET", "/");
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(page.text)?.[1];
    assert.ok(asset, "index.html references its script");
    const requests = [
      ["GET", "/api/languages", {}],
      ["GET", "/api/me", {}], // 401
      ["GET", "/api/me", { token: alice.token }],
      ["POST", "/api/session", { body: { first_name: "Hdr" } }],
      ["POST", "/api/session", { body: { first_name: "" } }], // 422
      ["GET", "/api/no-such-route", {}], // 404
      ["DELETE", "/api/challenges", { token: alice.token }], // 405
      ["GET", "/healthz", {}],
      ["GET", "/metrics", {}],
      ["GET", asset, {}],
      ["GET", "/nowhere", {}],
      ["GET", "/socket/longpoll?vsn=2.0.0", {}], // {"status": 403}
    ];
    for (const [method, path, opts] of requests) {
      const r = await api(server, method, path, opts);
      const what = `${method} ${path} (${r.status})`;
      const csp = directives(r.headers.get("content-security-policy"));
      assert.deepEqual(csp, { "default-src": "'none'", "frame-ancestors": "'none'" }, what);
      assert.equal(r.headers.get("x-frame-options"), "DENY", what);
      assert.equal(r.headers.get("x-content-type-options"), "nosniff", what);
    }
  });
});

/** A `ws` WebSocket class that sends this Origin (and Host), for phoenix.js's `transport`. */
function wsWith({ origin, host }) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { origin, headers: host ? { host } : {} });
    }
  };
}

/** Runs `fn` while every fetch (phoenix.js LongPoll's) sends this Origin. */
async function fetchingWithOrigin(origin, fn) {
  const plain = globalThis.fetch;
  globalThis.fetch = (url, opts = {}) => plain(url, { ...opts, headers: { ...(opts.headers || {}), origin } });
  try {
    return await fn();
  } finally {
    globalThis.fetch = plain;
  }
}

/** The real phoenix.js client over `transport`: joins `echo:origin` or reports how it was refused. */
async function phoenixAttempt(transport) {
  const socket = new Socket(server.wsUrl, {
    transport,
    params: { token: alice.token },
    timeout: 3000,
    reconnectAfterMs: () => 500,
    longPollFallbackMs: null,
  });
  const w = watchSocket(socket);
  try {
    socket.connect();
    await waitFor(() => w.opens > 0 || w.errors.length > 0, { timeout: 5000, message: "open or error" });
    if (w.opens === 0) return { opened: false, errors: w.errors.map((e) => (typeof e === "number" ? e : String(e?.message ?? e))) };
    const response = await join(socket.channel(`echo:origin:${Math.random()}`, { hello: 1 }));
    return { opened: true, response };
  } finally {
    await disconnect(socket);
  }
}

/** A raw long-poll connect with this Host and Origin (raw bytes): the JSON status. */
function longPollConnect({ host, origin }) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}/socket/longpoll?vsn=2.0.0&token=${alice.token}`, {
      headers: { host, origin },
    });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve(JSON.parse(text).status));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("check_origin (the server's own origin, not the Host header)", () => {
  test("the real client over WebSocket from 127.0.0.1, localhost and [::1] at the server's port joins", T, async () => {
    for (const host of ["127.0.0.1", "localhost", "[::1]"]) {
      const origin = `http://${host}:${server.port}`;
      const r = await phoenixAttempt(wsWith({ origin, host: `${host}:${server.port}` }));
      assert.equal(r.opened, true, `${origin}: ${JSON.stringify(r.errors)}`);
      assert.deepEqual(r.response.params, { hello: 1 }, origin);
    }
  });

  test("a DNS-rebinding page (Host and Origin agree on a foreign name) is refused over WebSocket and long-poll", T, async () => {
    const host = `evil.example:${server.port}`;
    const origin = `http://${host}`;
    const r = await phoenixAttempt(wsWith({ origin, host }));
    assert.equal(r.opened, false, "the socket must not open");
    assert.ok(r.errors.some((e) => String(e).includes("403")), `refused with 403: ${JSON.stringify(r.errors)}`);
    const raw = await rawWsAttempt(server, { token: alice.token, origin, headers: { host } });
    assert.equal(raw.statusCode, 403, `raw upgrade: ${raw.status}`);
    assert.equal(await longPollConnect({ host, origin }), 403, "long-poll");
    // The same page on the server's own address is fine.
    const own = `127.0.0.1:${server.port}`;
    assert.equal(await longPollConnect({ host: own, origin: `http://${own}` }), 410, "long-poll from its own origin starts a session");
  });

  test("the real LongPoll client joins from the server's own origin and is refused from a foreign one", T, async () => {
    const ok = await fetchingWithOrigin(`http://localhost:${server.port}`, () => phoenixAttempt(LongPoll));
    assert.equal(ok.opened, true, JSON.stringify(ok.errors));
    const refused = await fetchingWithOrigin(`http://evil.example:${server.port}`, () => phoenixAttempt(LongPoll));
    assert.equal(refused.opened, false);
    assert.ok(refused.errors.includes(403), JSON.stringify(refused.errors));
  });

  test("other schemes, null and Origins that are not visible ASCII are refused; no Origin passes", T, async () => {
    const own = `127.0.0.1:${server.port}`;
    for (const origin of [`ftp://${own}`, `ws://${own}`, "null", `http://${own}\u00e9`, `http://user@${own}`]) {
      const r = await rawWsAttempt(server, { token: alice.token, origin, headers: { host: own } });
      assert.equal(r.statusCode, 403, `websocket, Origin ${JSON.stringify(origin)}: ${r.status}`);
      assert.equal(await longPollConnect({ host: own, origin }), 403, `long-poll, Origin ${JSON.stringify(origin)}`);
    }
    const r = await rawWsAttempt(server, { token: alice.token });
    assert.equal(r.status, "open", "no Origin: not a browser, allowed");
    r.client.close();
  });
});

describe("JSON bodies", () => {
  const bodies = (first_name) => [
    ["/api/session", { first_name }],
    ["/api/challenges", { title: first_name, prompt: "", language: "python" }],
  ];

  test("400 for malformed JSON, even when the first thing wrong is a type", T, async () => {
    for (const raw of ["[[[[", '{"first_name": [[[[', "[1,", '"unterminated', "{} {}", "[".repeat(100000)]) {
      for (const path of ["/api/session", "/api/challenges"]) {
        const r = await api(server, "POST", path, { token: alice.token, rawBody: raw });
        assert.equal(r.status, 400, `${path} ${JSON.stringify(raw.slice(0, 20))}: ${r.text}`);
        assert.equal(r.body.error, "malformed JSON body");
      }
    }
  });

  test("422 'the body must be a JSON object' for JSON that is not an object", T, async () => {
    for (const raw of ['["Ann"]', '"Ann"', "null", "42", "[]", ' \n ["FizzBuzz", "", "python"]']) {
      for (const path of ["/api/session", "/api/challenges"]) {
        const r = await api(server, "POST", path, { token: alice.token, rawBody: raw });
        assert.equal(r.status, 422, `${path} ${JSON.stringify(raw)}: ${r.text}`);
        assert.match(r.body.error, /must be a JSON object/);
      }
    }
  });

  test("an object with a field of the wrong type stays 422, naming the field", T, async () => {
    for (const [path, body] of bodies(3)) {
      const r = await api(server, "POST", path, { token: alice.token, body });
      assert.equal(r.status, 422, `${path}: ${r.text}`);
      assert.match(r.body.error, path.endsWith("session") ? /first_name/ : /title/);
    }
  });
});

describe("names and titles", () => {
  const refused = [
    ["zero-width space only", "\u200b", /visible/],
    ["three ZWJs", "\u200d\u200d\u200d", /visible/],
    ["BOM", "\ufeff", /visible/],
    ["Hangul filler", "\u3164", /visible/],
    ["halfwidth Hangul filler", "\uffa0", /visible/],
    ["word joiner and invisible operators", "\u2060\u2062", /visible/],
    ["tag characters", "\u{e0041}\u{e0042}", /visible/],
    ["variation selector and CGJ", "\ufe0f\u034f", /visible/],
    ["right-to-left override", "\u202eniamdA", /bidirectional/],
    ["isolates", "Ann\u2067x\u2069", /bidirectional/],
    ["Arabic letter mark", "a\u061cb", /bidirectional/],
    ["right-to-left mark", "Ann\u200f", /bidirectional/],
    ["line separator", "a\u2028b", /separator/],
    ["paragraph separator", "a\u2029b", /separator/],
  ];

  test("422 with a clear message for bidi controls, separators and text with nothing visible", T, async () => {
    for (const [what, name, why] of refused) {
      const s = await api(server, "POST", "/api/session", { body: { first_name: name } });
      assert.equal(s.status, 422, `first_name, ${what}: ${s.text}`);
      assert.match(s.body.error, /^first_name must /, what);
      assert.match(s.body.error, why, what);
      const c = await api(server, "POST", "/api/challenges", { token: alice.token, body: { title: name, prompt: "", language: "python" } });
      assert.equal(c.status, 422, `title, ${what}: ${c.text}`);
      assert.match(c.body.error, /^title must /, what);
      assert.match(c.body.error, why, what);
    }
  });

  test("names in every script, emoji sequences with joiners included, are kept as typed", T, async () => {
    for (const name of ["Zoë", "José María", "李小龙", "محمد", "דוד", "Ελένη", "👩‍💻", "Ann 👩‍👩‍👧", "🏳️‍🌈", "e\u0301"]) {
      const s = await api(server, "POST", "/api/session", { body: { first_name: name } });
      assert.equal(s.status, 201, `${JSON.stringify(name)}: ${s.text}`);
      assert.equal(s.body.user.first_name, name);
      const c = await api(server, "POST", "/api/challenges", { token: alice.token, body: { title: name, prompt: "", language: "python" } });
      assert.equal(c.status, 201, `title ${JSON.stringify(name)}: ${c.text}`);
      assert.equal(c.body.challenge.title, name);
    }
  });
});
