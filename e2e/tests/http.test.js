// The HTTP API (CONTRACT §0, §1): every status it promises.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { startServer, signIn, createChallenge, startWithUsers, stopServer } from "../lib/server.js";
import { api, rawRequest, signJwt, noneJwt, jwtClaims, nowSecs } from "../lib/http.js";
import { sleep } from "../lib/phx.js";

const T = { timeout: 30000 };

let server;
let alice, bob;

before(async () => {
  ({ server, alice, bob } = await startWithUsers({}, "Alice", "Bob"));
});

after(() => stopServer(server));

/** Assert an error answer: the status and a {"error": "<non-empty string>"} body. */
function assertError(r, status, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${r.text.slice(0, 300)}`);
  assert.ok(r.body && typeof r.body.error === "string" && r.body.error.length > 0, `${what}: body must be {"error": "..."}, got ${r.text.slice(0, 300)}`);
}

/** Pull language ids out of whatever shape /api/languages uses. */
function languageIds(body) {
  const list = Array.isArray(body) ? body : body?.languages;
  assert.ok(Array.isArray(list), `GET /api/languages: a list, got ${JSON.stringify(body)}`);
  return list.map((l) => (typeof l === "string" ? l : l.id ?? l.value ?? l.name));
}

describe("POST /api/session", () => {
  test("201 with a token and the user; the JWT carries sub, name, iat, exp (24 h)", T, async () => {
    const r = await api(server, "POST", "/api/session", { body: { first_name: "  Sophie  " } });
    assert.equal(r.status, 201, r.text);
    assert.equal(typeof r.body.token, "string");
    assert.equal(r.body.user.first_name, "Sophie", "the name is trimmed");
    assert.equal(typeof r.body.user.id, "string");
    assert.ok(r.body.user.id.length > 0);
    const [head] = r.body.token.split(".");
    assert.equal(JSON.parse(Buffer.from(head, "base64url")).alg, "HS256");
    const claims = jwtClaims(r.body.token);
    assert.equal(claims.sub, r.body.user.id);
    assert.equal(claims.name, "Sophie");
    assert.equal(typeof claims.iat, "number");
    assert.ok(Math.abs(claims.iat - nowSecs()) < 60, "iat is now");
    assert.ok(Math.abs(claims.exp - claims.iat - 24 * 3600) < 60, `exp - iat is 24 h, got ${claims.exp - claims.iat}`);
    const me = await api(server, "GET", "/api/me", { token: r.body.token });
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(me.body.user, r.body.user);
  });

  test("1 and 40 characters are fine, unicode included", T, async () => {
    for (const name of ["A", "x".repeat(40), "Zoë", "李小龙", "😀".repeat(40)]) {
      const r = await api(server, "POST", "/api/session", { body: { first_name: name } });
      assert.equal(r.status, 201, `${JSON.stringify(name)}: ${r.text}`);
      assert.equal(r.body.user.first_name, name);
    }
  });

  test("422 on empty, blank, 41-char and control-char names", T, async () => {
    const bad = ["", "   ", "x".repeat(41), "😀".repeat(41), "So\u0007phie", "Line\nbreak", "Tab\there", "Nul\u0000", "del\u007f"];
    for (const name of bad) {
      const r = await api(server, "POST", "/api/session", { body: { first_name: name } });
      assertError(r, 422, `first_name ${JSON.stringify(name)}`);
    }
  });

  test("400 on malformed JSON", T, async () => {
    for (const raw of ['{"first_name":', "not json", '{"first_name": "A",}']) {
      const r = await api(server, "POST", "/api/session", { rawBody: raw });
      assertError(r, 400, `body ${JSON.stringify(raw)}`);
    }
  });

  test("413 for a body over the limit (2 MiB)", T, async () => {
    const body = JSON.stringify({ first_name: "x".repeat(2 * 1024 * 1024) });
    const r = await rawRequest(server, "POST", "/api/session", { headers: { "content-type": "application/json" }, body });
    assert.equal(r.status, 413, `2 MiB sign-in body: ${r.status} ${r.text.slice(0, 200)}`);
    assert.ok(r.body && typeof r.body.error === "string", `413 body must be {"error": ...}, got ${r.text.slice(0, 200)}`);
  });
});

describe("authentication", () => {
  test("401 without a token, with a malformed, foreign-key, alg-none, expired or tampered token", T, async () => {
    const claims = { sub: alice.user.id, name: "Alice", iat: nowSecs(), exp: nowSecs() + 3600 };
    const [h, , s] = alice.token.split(".");
    const tamperedClaims = Buffer.from(JSON.stringify({ ...jwtClaims(alice.token), sub: bob.user.id })).toString("base64url");
    const tokens = {
      "malformed": "abc.def",
      "random": "not-a-token-at-all",
      "foreign key": signJwt(claims, "a completely different key"),
      "alg none": noneJwt(claims),
      "alg none, signature kept": `${noneJwt(claims)}${s}`,
      "tampered payload": `${h}.${tamperedClaims}.${s}`,
      "HS512 with another key": signJwt(claims, "x", { alg: "HS512", typ: "JWT" }),
    };
    const key = readKey();
    if (key) {
      tokens["expired (server key)"] = signJwt({ ...claims, iat: nowSecs() - 7200, exp: nowSecs() - 3600 }, key);
    }
    for (const path of ["/api/me", "/api/challenges"]) {
      assertError(await api(server, "GET", path), 401, `${path} without a token`);
      assertError(await api(server, "GET", path, { headers: { authorization: "Basic YTpi" } }), 401, `${path} with Basic auth`);
      assertError(await api(server, "GET", path, { headers: { authorization: "Bearer" } }), 401, `${path} with an empty Bearer`);
      for (const [name, token] of Object.entries(tokens)) {
        assertError(await api(server, "GET", path, { token }), 401, `${path} with a ${name} token`);
      }
    }
    assertError(await api(server, "POST", "/api/challenges", { body: { title: "t", prompt: "p", language: "python" } }), 401, "create without a token");
  });

  test("secret.key: 64 hex characters, mode 0600, its exact bytes are the HS256 key", T, async () => {
    const f = pathJoin(server.dataDir, "secret.key");
    const key = readFileSync(f);
    assert.match(key.toString(), /^[0-9a-f]{64}$/i, "64 hex characters");
    assert.equal(statSync(f).mode & 0o777, 0o600, "mode 0600");
    const token = signJwt({ sub: alice.user.id, name: "Alice", iat: nowSecs(), exp: nowSecs() + 600 }, key);
    const r = await api(server, "GET", "/api/me", { token });
    assert.equal(r.status, 200, `a token signed with secret.key's bytes: ${r.text}`);
    assert.equal(r.body.user.id, alice.user.id);
  });

  test("DUET_SECRET overrides the key; tokens survive a restart", { timeout: 30000 }, async (t) => {
    const srv = await startServer({ env: { DUET_SECRET: "e2e-secret-for-testing" } });
    let again = null;
    t.after(async () => {
      await srv.stop();
      await again?.stop();
      srv.cleanup();
    });
    const u = await signIn(srv, "Secret");
    const forged = signJwt({ sub: u.user.id, name: "Secret", iat: nowSecs(), exp: nowSecs() + 600 }, "e2e-secret-for-testing");
    assert.equal((await api(srv, "GET", "/api/me", { token: forged })).status, 200);
    await srv.stop();
    again = await startServer({ dataDir: srv.dataDir, env: { DUET_SECRET: "e2e-secret-for-testing" } });
    const me = await api(again, "GET", "/api/me", { token: u.token });
    assert.equal(me.status, 200, `a token after a restart: ${me.text}`);
  });
});

function readKey() {
  try {
    return readFileSync(pathJoin(server.dataDir, "secret.key"));
  } catch {
    return null;
  }
}

describe("challenges", () => {
  test("GET /api/languages lists the fixed languages, python among them", T, async () => {
    const r = await api(server, "GET", "/api/languages");
    assert.equal(r.status, 200, r.text);
    const ids = languageIds(r.body);
    assert.ok(ids.length >= 2, `several languages: ${JSON.stringify(r.body)}`);
    assert.ok(ids.includes("python"), `python is listed: ${JSON.stringify(ids)}`);
  });

  test("201 create with every listed language; the challenge has the contract's fields and an unguessable id", T, async () => {
    const ids = languageIds((await api(server, "GET", "/api/languages")).body);
    const seen = new Set();
    for (const language of ids) {
      const r = await api(server, "POST", "/api/challenges", {
        token: alice.token,
        body: { title: `In ${language}`, prompt: "Solve <script>alert(1)</script>", language },
      });
      assert.equal(r.status, 201, `${language}: ${r.text}`);
      const c = r.body.challenge;
      for (const k of ["id", "title", "prompt", "response", "language", "created_at", "updated_at"]) assert.ok(k in c, `challenge has ${k}`);
      assert.equal(c.title, `In ${language}`);
      assert.equal(c.prompt, "Solve <script>alert(1)</script>");
      assert.equal(c.language, language);
      assert.equal(c.response, "");
      assert.match(c.id, /^[A-Za-z0-9_-]+$/, "URL-safe id");
      assert.ok(c.id.length >= 11, `≥ 64 bits of randomness needs ≥ 11 base64url chars, got ${c.id}`);
      assert.ok(!seen.has(c.id));
      seen.add(c.id);
    }
  });

  test("title 1–120, prompt ≤ 20 000 chars accepted at the limits", T, async () => {
    for (const body of [
      { title: "x", prompt: "", language: "python" },
      { title: "t".repeat(120), prompt: "p".repeat(20000), language: "python" },
    ]) {
      const r = await api(server, "POST", "/api/challenges", { token: alice.token, body });
      assert.equal(r.status, 201, `title ${body.title.length}, prompt ${body.prompt.length}: ${r.text.slice(0, 200)}`);
    }
  });

  test("422 on a bad title, an unknown language or a too-long prompt", T, async () => {
    const cases = [
      ["empty title", { title: "", prompt: "p", language: "python" }],
      ["blank title", { title: "   ", prompt: "p", language: "python" }],
      ["121-char title", { title: "t".repeat(121), prompt: "p", language: "python" }],
      ["unknown language", { title: "t", prompt: "p", language: "cobol-2099" }],
      ["empty language", { title: "t", prompt: "p", language: "" }],
      ["20 001-char prompt", { title: "t", prompt: "p".repeat(20001), language: "python" }],
    ];
    for (const [name, body] of cases) {
      assertError(await api(server, "POST", "/api/challenges", { token: alice.token, body }), 422, name);
    }
  });

  test("a prompt keeps pasted control characters (ANSI escapes, form feeds) exactly; NUL is a 422", T, async () => {
    const prompt = "Strip \x1b[31mred\x1b[0m from a line,\tthen\x0cpage\r\n\u0085next";
    const r = await api(server, "POST", "/api/challenges", { token: alice.token, body: { title: "ANSI", prompt, language: "python" } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.challenge.prompt, prompt);
    const g = await api(server, "GET", `/api/challenges/${r.body.challenge.id}`, { token: alice.token });
    assert.equal(g.body.challenge.prompt, prompt);
    assertError(
      await api(server, "POST", "/api/challenges", { token: alice.token, body: { title: "t", prompt: "a\u0000b", language: "python" } }),
      422,
      "NUL in the prompt",
    );
  });

  test("400 on malformed JSON when creating", T, async () => {
    assertError(await api(server, "POST", "/api/challenges", { token: alice.token, rawBody: '{"title": "x", ' }), 400, "malformed create body");
  });

  test("413 for a 2 MiB create body, every time (the client sees the answer, not a reset)", T, async () => {
    const body = JSON.stringify({ title: "big", prompt: "p".repeat(2 * 1024 * 1024), language: "python" });
    for (let i = 0; i < 20; i++) {
      const r = await rawRequest(server, "POST", "/api/challenges", {
        headers: { "content-type": "application/json", authorization: `Bearer ${alice.token}` },
        body,
      });
      assert.equal(r.status, 413, `2 MiB create body #${i}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.ok(r.body && typeof r.body.error === "string", `413 body must be {"error": ...}, got ${r.text.slice(0, 200)}`);
    }
  });

  test("413 for a 2 MiB chunked create body (no Content-Length), every time, and nothing is created", T, async () => {
    const u = await signIn(server, "Chunky");
    const body = JSON.stringify({ title: "big", prompt: "p".repeat(2 * 1024 * 1024), language: "python" });
    for (let i = 0; i < 20; i++) {
      const r = await rawRequest(server, "POST", "/api/challenges", {
        headers: { "content-type": "application/json", authorization: `Bearer ${u.token}` },
        body,
        chunked: true,
      });
      assert.equal(r.status, 413, `2 MiB chunked create body #${i}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.ok(r.body && typeof r.body.error === "string", `413 body must be {"error": ...}, got ${r.text.slice(0, 200)}`);
    }
    const small = JSON.stringify({ title: "small", prompt: "fits", language: "python" });
    const ok = await rawRequest(server, "POST", "/api/challenges", {
      headers: { "content-type": "application/json", authorization: `Bearer ${u.token}` },
      body: small,
      chunked: true,
    });
    assert.equal(ok.status, 201, `a small chunked body is read: ${ok.status} ${ok.text.slice(0, 200)}`);
    const list = await api(server, "GET", "/api/challenges", { token: u.token });
    assert.deepEqual(list.body.challenges.map((c) => c.title), ["small"]);
  });

  test("GET /api/challenges lists the caller's own challenges, newest first", T, async () => {
    const u = await signIn(server, "Lister");
    const other = await signIn(server, "Other");
    const mine = [];
    for (let i = 0; i < 4; i++) {
      mine.push(await createChallenge(server, u.token, { title: `mine ${i}` }));
      await createChallenge(server, other.token, { title: `theirs ${i}` });
      await sleep(15);
    }
    const r = await api(server, "GET", "/api/challenges", { token: u.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      r.body.challenges.map((c) => c.title),
      ["mine 3", "mine 2", "mine 1", "mine 0"],
    );
    assert.deepEqual(r.body.challenges[0], mine[3]);
    const empty = await api(server, "GET", "/api/challenges", { token: (await signIn(server, "Newbie")).token });
    assert.deepEqual(empty.body, { challenges: [] });
  });

  test("GET /api/challenges/:id: 200 for anyone signed in who knows the id, 404 for an unknown id", T, async () => {
    const c = await createChallenge(server, alice.token, { title: "shared" });
    const r = await api(server, "GET", `/api/challenges/${c.id}`, { token: bob.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { challenge: c });
    assertError(await api(server, "GET", "/api/challenges/no-such-challenge", { token: alice.token }), 404, "unknown id");
    assertError(await api(server, "GET", `/api/challenges/${c.id}x`, { token: alice.token }), 404, "unknown id (near miss)");
    assertError(await api(server, "GET", `/api/challenges/${c.id}`), 401, "no token");
    assertError(await api(server, "GET", "/api/challenges/%FF%FE", { token: alice.token }), 400, "an id that is not UTF-8");
  });
});

describe("API rate limit", () => {
  test("429 {error} beyond the API rate limit (sign-ins)", { timeout: 30000 }, async (t) => {
    const srv = await startServer({ env: { DUET_API_RATE: "2", DUET_API_BURST: "5" } });
    t.after(() => stopServer(srv));
    const statuses = [];
    let limited = null;
    for (let i = 0; i < 30 && !limited; i++) {
      const r = await api(srv, "POST", "/api/session", { body: { first_name: `Rate${i}` } });
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, `no 429 within 30 quick requests: ${statuses.join(",")}`);
    assertError(limited, 429, "rate limited");
    const retry = Number(limited.headers.get("retry-after"));
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 5, `Retry-After in seconds: ${limited.headers.get("retry-after")}`);
    assert.ok(statuses.filter((x) => x === 201).length >= 1, "requests within the burst succeed");
  });
});

describe("operations", () => {
  test("GET /healthz → 200 {status: ok}", T, async () => {
    const r = await api(server, "GET", "/healthz");
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: "ok" });
  });

  test("GET /healthz → 503 once the data dir is deleted under the server", { timeout: 30000 }, async (t) => {
    const srv = await startServer();
    t.after(() => stopServer(srv));
    assert.equal((await api(srv, "GET", "/healthz")).status, 200);
    rmSync(srv.dataDir, { recursive: true, force: true });
    const r = await api(srv, "GET", "/healthz");
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body?.status, "unavailable");
    assert.match(r.body?.error ?? "", /database file/);
  });

  test("GET /metrics → Prometheus text with duet_ metrics", T, async () => {
    const r = await api(server, "GET", "/metrics");
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") || "", /^text\/plain/);
    assert.match(r.text, /^duet_\w+/m, "at least one duet_ sample");
    assert.match(r.text, /^# (HELP|TYPE) duet_/m, "HELP/TYPE lines");
  });

  test("GET / and GET /challenges/:id serve the embedded web app (a trailing slash too)", T, async () => {
    const c = await createChallenge(server, alice.token);
    for (const path of ["/", `/challenges/${c.id}`, `/challenges/${c.id}/`]) {
      const r = await api(server, "GET", path);
      assert.equal(r.status, 200, `${path}: ${r.status}`);
      assert.match(r.headers.get("content-type") || "", /^text\/html/, `${path} content-type`);
      assert.match(r.text, /<html|<!doctype html/i, `${path} is an HTML page`);
    }
  });

  test("DATABASE_URL overrides the SQLite path", { timeout: 30000 }, async (t) => {
    const dir = mkdtempSync(pathJoin(tmpdir(), "duet-e2e-db-"));
    const dbPath = pathJoin(dir, "custom.db");
    const srv = await startServer({ env: { DATABASE_URL: `sqlite://${dbPath}` } });
    t.after(async () => {
      await srv.stop();
      srv.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });
    await signIn(srv, "Custom");
    assert.ok(existsSync(dbPath), `the database was created at ${dbPath}`);
    assert.ok(!existsSync(pathJoin(srv.dataDir, "duet.db")), "no duet.db in the data dir");
  });

  test("unknown API routes are 404", T, async () => {
    const r = await api(server, "GET", "/api/no-such-route", { token: alice.token });
    assert.equal(r.status, 404);
  });

  test("a known route with the wrong method is 405 {error} with Allow", T, async () => {
    for (const [method, path, allow] of [
      ["GET", "/api/session", "POST"],
      ["POST", "/api/me", "GET"],
      ["DELETE", "/api/challenges", "POST"],
      ["POST", "/healthz", "GET"],
    ]) {
      const r = await api(server, method, path, { token: alice.token });
      assertError(r, 405, `${method} ${path}`);
      assert.ok((r.headers.get("allow") || "").split(",").includes(allow), `${method} ${path}: Allow ${r.headers.get("allow")}`);
    }
  });
});
