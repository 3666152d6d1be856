// Phoenix Channels protocol (CONTRACT §2) against the test channel `echo:*`,
// driven by the real phoenix.js client over both transports, plus raw-frame checks.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { join as pathJoin } from "node:path";
import { randomBytes } from "node:crypto";
import { startServer, signIn, startWithUsers, stopServer } from "../lib/server.js";
import { TRANSPORT_NAMES, makeSocket, join, tryJoin, push, nextEvent, collect, collectMessages, countJoins, watchSocket, waitFor, sleep, bytesOf, arrayBufferOf, poolFor } from "../lib/phx.js";
import { rawClient, rawWs, rawWsAttempt, RawLongPollClient, decodeBinaryFrame, encodeBinaryPush } from "../lib/raw.js";
import { signJwt, nowSecs } from "../lib/http.js";

const T = { timeout: 30000 };

let server;
let alice, bob, dora;

before(async () => {
  ({ server, alice, bob, dora } = await startWithUsers({ env: { DUET_TEST_CHANNELS: "1" } }, "Alice", "Bob", "Dora"));
});

after(() => stopServer(server));


/** The server's own JWT key (the exact bytes of secret.key), if it wrote one. */
function serverKey() {
  const f = pathJoin(server.dataDir, "secret.key");
  return existsSync(f) ? readFileSync(f) : null;
}

let topicSeq = 0;

for (const transport of TRANSPORT_NAMES) {
  describe(`channels over ${transport}`, () => {
    const topic = (name) => `echo:${transport}:${name}:${++topicSeq}`;
    const conn = (p, user, opts = {}) => p.connect(server, user.token, { transport, ...opts });

    test("token as query param: join ok reply echoes topic and params", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const tp = topic("join");
      const params = { a: 1, nested: { b: [1, 2, "three"], u: "héllo ✓" }, n: null };
      const response = await join(s.channel(tp, params));
      assert.deepEqual(response, { topic: tp, params });
    });

    test("token via phoenix.js authToken option: join ok", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice, { authToken: true });
      const tp = topic("authtoken");
      const ch = s.channel(tp, {});
      assert.deepEqual(await join(ch), { topic: tp, params: {} });
      assert.deepEqual(await push(ch, "ping", { via: "authToken" }), { status: "ok", response: { via: "authToken" } });
    });

    test("missing, garbage, foreign-key, expired and unknown-user tokens are refused and nothing joins", T, async (t) => {
      const key = serverKey();
      const bad = [
        { name: "no token", token: null, authToken: false },
        { name: "garbage token", token: "not-a-jwt", authToken: false },
        { name: "garbage authToken", token: "not-a-jwt", authToken: true },
        {
          name: "token signed with another key",
          token: signJwt({ sub: alice.user.id, name: "Alice", iat: nowSecs(), exp: nowSecs() + 3600 }, "some other key"),
          authToken: false,
        },
      ];
      if (key) {
        bad.push({
          name: "expired token (server's own key)",
          token: signJwt({ sub: alice.user.id, name: "Alice", iat: nowSecs() - 7200, exp: nowSecs() - 3600 }, key),
          authToken: true,
        });
        // A database reset while its secret was kept: the HTTP API says "unknown user".
        bad.push({
          name: "token of a user this database does not have (server's own key)",
          token: signJwt({ sub: "ghostghostghost1", name: "Ghost", iat: nowSecs(), exp: nowSecs() + 3600 }, key),
          authToken: false,
        });
      }
      for (const b of bad) {
        const s = makeSocket(server, b.token, { transport, authToken: b.authToken, reconnectAfterMs: () => 200 });
        t.after(() => s.disconnect());
        const w = watchSocket(s);
        const ch = s.channel(topic("refused"), {});
        const joins = countJoins(ch);
        ch.join(1000);
        s.connect();
        if (transport === "websocket") {
          await waitFor(() => w.errors.length > 0 || w.closes.length > 0, { timeout: 3000, message: `${b.name}: error/close` });
          const msgs = w.errors.map((e) => String(e?.message ?? e));
          assert.ok(
            msgs.some((m) => m.includes("403")),
            `${b.name}: expected the upgrade to be refused with 403, got errors ${JSON.stringify(msgs)}`,
          );
        } else {
          await waitFor(() => w.closes.some((c) => c.code === 1008), {
            timeout: 3000,
            message: `${b.name}: LongPoll close 1008 (status 403)`,
          });
          assert.ok(w.errors.includes(403), `${b.name}: LongPoll error 403, got ${JSON.stringify(w.errors)}`);
        }
        await sleep(300);
        assert.equal(w.opens, 0, `${b.name}: the socket must never open`);
        assert.equal(joins.ok, 0, `${b.name}: nothing may be joined`);
        s.disconnect();
      }
      // the raw view of the same refusal
      for (const b of bad) {
        if (transport === "websocket") {
          const r = await rawWsAttempt(server, b.authToken ? { protocols: ["phoenix", `base64url.bearer.phx.${Buffer.from(b.token).toString("base64").replace(/=/g, "")}`] } : { token: b.token });
          assert.equal(r.status, "refused", `${b.name}: raw ws should be refused, got ${r.status} ${r.error?.message ?? ""}`);
          assert.equal(r.statusCode, 403, `${b.name}`);
          if (r.client) r.client.close();
        } else {
          const c = new RawLongPollClient(server, b.authToken ? { authToken: b.token } : { token: b.token });
          const r = await c.open();
          c.close();
          assert.equal(r.httpStatus, 200, `${b.name}: long-poll HTTP status is always 200`);
          assert.deepEqual(r.json?.status, 403, `${b.name}: long-poll body ${r.text}`);
        }
      }
    });

    test("a refused join gets error {reason: join refused}", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const r = await tryJoin(s.channel(topic("fail"), { fail: true }));
      assert.deepEqual(r, { status: "error", response: { reason: "join refused" } });
    });

    test("ping replies ok with the same payload", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const ch = s.channel(topic("ping"));
      await join(ch);
      const payloads = [
        {},
        { a: 1 },
        { text: "héllo wörld ✓ 🎉 \u0000 \n \"quoted\" \\ back", nested: { list: [1, 2.5, -3, true, false, null, "x"] } },
        { big: "x".repeat(50_000) },
      ];
      for (const payload of payloads) {
        const r = await push(ch, "ping", payload);
        assert.deepEqual(r, { status: "ok", response: payload });
      }
      // several pushes in flight at once get their own replies
      const many = await Promise.all(Array.from({ length: 20 }, (_, i) => push(ch, "ping", { i })));
      many.forEach((r, i) => assert.deepEqual(r, { status: "ok", response: { i } }));
    });

    test("fail replies error; unknown events reply unknown event", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const ch = s.channel(topic("errors"));
      await join(ch);
      assert.deepEqual(await push(ch, "fail", {}), { status: "error", response: { reason: "requested failure" } });
      assert.deepEqual(await push(ch, "no_such_event", { x: 1 }), { status: "error", response: { reason: "unknown event" } });
      // the channel is still fine after error replies
      assert.deepEqual(await push(ch, "ping", { still: "alive" }), { status: "ok", response: { still: "alive" } });
    });

    test("noreply: the push times out and the channel keeps working", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const ch = s.channel(topic("noreply"));
      await join(ch);
      const r = await push(ch, "noreply", { q: 1 }, 700);
      assert.equal(r.status, "timeout", `expected no reply, got ${JSON.stringify(r)}`);
      assert.deepEqual(await push(ch, "ping", { after: "noreply" }), { status: "ok", response: { after: "noreply" } });
    });

    test("broadcast reaches every member (sender included) and no other topic", T, async (t) => {
      const p = poolFor(t);
      const tp = topic("bcast");
      const other = topic("bcast-other");
      const [sa, sb, sc] = await Promise.all([conn(p, alice), conn(p, bob), conn(p, bob)]);
      const ca = sa.channel(tp), cb = sb.channel(tp), cc = sc.channel(other);
      await Promise.all([join(ca), join(cb), join(cc)]);
      const [ga, gb, gc] = [collect(ca, "broadcast"), collect(cb, "broadcast"), collect(cc, "broadcast")];
      const payload = { msg: "hello everyone", n: 42 };
      assert.deepEqual(await push(ca, "broadcast", payload), { status: "ok", response: {} });
      await waitFor(() => ga.length >= 1 && gb.length >= 1, { timeout: 3000, message: "broadcast on both members" });
      await sleep(300);
      assert.deepEqual(ga, [payload]);
      assert.deepEqual(gb, [payload]);
      assert.deepEqual(gc, [], "a member of another topic must not receive it");
    });

    test("broadcast_from reaches every member except the sender", T, async (t) => {
      const p = poolFor(t);
      const tp = topic("bcast-from");
      const [sa, sb, sb2] = await Promise.all([conn(p, alice), conn(p, bob), conn(p, bob)]);
      const ca = sa.channel(tp), cb = sb.channel(tp), cb2 = sb2.channel(tp);
      await Promise.all([join(ca), join(cb), join(cb2)]);
      const [ga, gb, gb2] = [collect(ca, "broadcast"), collect(cb, "broadcast"), collect(cb2, "broadcast")];
      const payload = { from: "alice", list: [1, 2, 3] };
      assert.deepEqual(await push(ca, "broadcast_from", payload), { status: "ok", response: {} });
      await waitFor(() => gb.length >= 1 && gb2.length >= 1, { timeout: 3000, message: "broadcast_from on the others" });
      await sleep(300);
      assert.deepEqual(gb, [payload]);
      assert.deepEqual(gb2, [payload]);
      assert.deepEqual(ga, [], "the sender must not receive its own broadcast_from");
    });

    test("push reaches the sender only", T, async (t) => {
      const p = poolFor(t);
      const tp = topic("push");
      const [sa, sb] = await Promise.all([conn(p, alice), conn(p, bob)]);
      const ca = sa.channel(tp), cb = sb.channel(tp);
      await Promise.all([join(ca), join(cb)]);
      const gb = collect(cb, "pushed");
      const payload = { only: "me", x: [true] };
      const got = nextEvent(ca, "pushed", { timeout: 3000 });
      assert.deepEqual(await push(ca, "push", payload), { status: "ok", response: {} });
      assert.deepEqual(await got, payload);
      await sleep(300);
      assert.deepEqual(gb, [], "another member must not receive a push");
    });

    test("binary push: the server receives the exact bytes and echoes them", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const ch = s.channel(topic("binary"));
      await join(ch);
      const bytes = new Uint8Array([...Array.from({ length: 256 }, (_, i) => i), ...randomBytes(3000)]);
      const pushed = nextEvent(ch, "binary_pushed", { timeout: 3000 });
      const r = await push(ch, "binary", arrayBufferOf(bytes));
      assert.equal(r.status, "ok", `binary push reply: ${JSON.stringify(r)}`);
      const ev = await pushed;
      if (transport === "websocket") {
        assert.ok(r.response instanceof ArrayBuffer, `reply should be an ArrayBuffer, got ${Object.prototype.toString.call(r.response)} ${JSON.stringify(r.response)?.slice(0, 200)}`);
        assert.deepEqual(Buffer.from(bytesOf(r.response)), Buffer.from(bytes));
        assert.ok(ev instanceof ArrayBuffer, `binary_pushed should be an ArrayBuffer, got ${JSON.stringify(ev)?.slice(0, 200)}`);
        assert.deepEqual(Buffer.from(bytesOf(ev)), Buffer.from(bytes));
      } else {
        // phoenix.js's LongPoll only JSON-parses: the bytes come as an array
        // of byte values, which new Uint8Array(payload) reads back.
        assert.ok(Array.isArray(r.response), `long-poll binary reply should be an array of bytes, got ${JSON.stringify(r.response)?.slice(0, 200)}`);
        assert.deepEqual(Buffer.from(new Uint8Array(r.response)), Buffer.from(bytes));
        assert.ok(Array.isArray(ev), `long-poll binary_pushed should be an array of bytes, got ${JSON.stringify(ev)?.slice(0, 200)}`);
        assert.deepEqual(Buffer.from(new Uint8Array(ev)), Buffer.from(bytes));
      }
      // an empty binary payload is fine too
      const empty = await push(ch, "binary", new ArrayBuffer(0));
      assert.equal(empty.status, "ok", `empty binary push: ${JSON.stringify(empty)}`);
    });

    test("crash: the client gets phx_error and phoenix.js rejoins by itself", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice, { rejoinAfterMs: () => 300 });
      const w = watchSocket(s);
      const msgs = collectMessages(s);
      const tp = topic("crash");
      const ch = s.channel(tp);
      const joins = countJoins(ch);
      let errors = 0;
      ch.onError(() => errors++);
      await join(ch);
      ch.push("crash", {});
      await waitFor(() => errors >= 1, { timeout: 3000, message: "channel onError after crash" });
      assert.ok(
        msgs.some((m) => m.topic === tp && m.event === "phx_error"),
        `expected a phx_error on ${tp}; got events ${JSON.stringify(msgs.map((m) => [m.topic, m.event]))}`,
      );
      await waitFor(() => joins.ok >= 2, { timeout: 5000, message: "rejoin ok after crash" });
      assert.deepEqual(await push(ch, "ping", { after: "crash" }), { status: "ok", response: { after: "crash" } });
      assert.equal(w.closes.length, 0, "a channel crash must not close the socket");
    });

    test("disconnect_me closes every socket of that user, not others; phoenix.js reconnects and rejoins", { timeout: 45000 }, async (t) => {
      const p = poolFor(t);
      const tp = topic("dm");
      const [d1, d2, b1] = await Promise.all([conn(p, dora), conn(p, dora), conn(p, bob)]);
      const [w1, w2, wb] = [watchSocket(d1), watchSocket(d2), watchSocket(b1)];
      const [c1, c2, cb] = [d1.channel(tp), d2.channel(tp), b1.channel(tp)];
      const [j1, j2, jb] = [countJoins(c1), countJoins(c2), countJoins(cb)];
      await Promise.all([join(c1), join(c2), join(cb)]);
      c1.push("disconnect_me", {});
      // long-poll only notices at its next poll
      const limit = transport === "websocket" ? 3000 : 15000;
      await waitFor(() => w1.closes.length >= 1 && w2.closes.length >= 1, {
        timeout: limit,
        message: "both of the user's sockets closed",
      });
      assert.equal(wb.closes.length, 0, "another user's socket must stay open");
      assert.deepEqual(await push(cb, "ping", { b: 1 }), { status: "ok", response: { b: 1 } });
      await waitFor(() => j1.ok >= 2 && j2.ok >= 2, { timeout: 10000, message: "both sockets rejoined" });
      assert.deepEqual(await push(c1, "ping", { back: 1 }), { status: "ok", response: { back: 1 } });
      assert.deepEqual(await push(c2, "ping", { back: 2 }), { status: "ok", response: { back: 2 } });
      assert.equal(jb.ok, 1, "the other user's channel never needed to rejoin");
    });

    test("leave: ok reply, phx_close, onClose; the socket no longer gets that topic", T, async (t) => {
      const p = poolFor(t);
      const tp = topic("leave");
      const [sa, sb] = await Promise.all([conn(p, alice), conn(p, bob)]);
      const ca = sa.channel(tp), cb = sb.channel(tp);
      await Promise.all([join(ca), join(cb)]);
      const msgs = collectMessages(sa);
      let closed = 0;
      ca.onClose(() => closed++);
      const leaveStatus = await new Promise((resolve) => {
        ca.leave(3000)
          .receive("ok", () => resolve("ok"))
          .receive("timeout", () => resolve("timeout"));
      });
      assert.equal(leaveStatus, "ok", "the server must reply ok to phx_leave");
      assert.ok(closed >= 1, "onClose fires");
      await waitFor(() => msgs.some((m) => m.topic === tp && m.event === "phx_close"), {
        timeout: 2000,
        message: `phx_close on ${tp} after leave (got ${JSON.stringify(msgs.map((m) => [m.topic, m.event]))})`,
      });
      assert.deepEqual(await push(cb, "broadcast", { after: "leave" }), { status: "ok", response: {} });
      await sleep(400);
      assert.ok(
        !msgs.some((m) => m.topic === tp && m.event === "broadcast"),
        "a left topic's broadcasts must not reach the socket",
      );
    });

    test("heartbeat gets phx_reply ok", T, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const msgs = collectMessages(s);
      const rtt = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no heartbeat reply")), 3000);
        const sent = s.ping((ms) => {
          clearTimeout(timer);
          resolve(ms);
        });
        if (!sent) reject(new Error("socket not connected"));
      });
      assert.ok(rtt >= 0);
      const reply = msgs.find((m) => m.topic === "phoenix" && m.event === "phx_reply");
      assert.ok(reply, "a phx_reply on topic phoenix");
      assert.equal(reply.payload.status, "ok");
    });

    test("a message on an unjoined topic gets error {reason: unmatched topic}", T, async (t) => {
      const c = await rawClient(server, transport, { token: alice.token });
      t.after(() => c.close());
      await c.send(["1", "2", "echo:nojoin", "ping", {}]);
      const r = await c.reply("2");
      assert.deepEqual(r, ["1", "2", "echo:nojoin", "phx_reply", { status: "error", response: { reason: "unmatched topic" } }]);
      await c.send([null, "3", "echo:nojoin2", "ping", { a: 1 }]);
      const r2 = await c.reply("3");
      assert.deepEqual(r2[4], { status: "error", response: { reason: "unmatched topic" } });
    });

    test("a second join of the same topic closes the first (phx_close to the old join_ref)", T, async (t) => {
      const c = await rawClient(server, transport, { token: alice.token });
      t.after(() => c.close());
      const tp = topic("dup");
      const first = await c.join(tp, "1", { n: 1 });
      assert.equal(first[4].status, "ok", JSON.stringify(first));
      const second = await c.join(tp, "5", { n: 2 });
      assert.deepEqual(second, ["5", "5", tp, "phx_reply", { status: "ok", response: { topic: tp, params: { n: 2 } } }]);
      const close = await c.next((m) => Array.isArray(m) && m[2] === tp && m[3] === "phx_close", 3000, "phx_close of the first join");
      assert.equal(close[0], "1", `phx_close must carry the old join_ref: ${JSON.stringify(close)}`);
      await c.send(["5", "6", tp, "ping", { via: "second" }]);
      assert.deepEqual(await c.reply("6"), ["5", "6", tp, "phx_reply", { status: "ok", response: { via: "second" } }]);
    });

    test("at most 100 joined topics per socket", { timeout: 40000 }, async (t) => {
      const p = poolFor(t);
      const s = await conn(p, alice);
      const base = topic("many");
      const channels = Array.from({ length: 100 }, (_, i) => s.channel(`${base}:${i}`));
      const results = await Promise.all(channels.map((ch) => tryJoin(ch, 10000)));
      const notOk = results.map((r, i) => [i, r]).filter(([, r]) => r.status !== "ok");
      assert.deepEqual(notOk, [], "the first 100 joins must succeed");
      const extra = await tryJoin(s.channel(`${base}:extra`), 5000);
      assert.equal(extra.status, "error", `join #101: ${JSON.stringify(extra)}`);
      assert.match(String(extra.response?.reason), /too many/i);
      // the joined ones still work, each on its own topic
      const pings = await Promise.all(channels.slice(0, 5).map((ch, i) => push(ch, "ping", { i })));
      pings.forEach((r, i) => assert.deepEqual(r, { status: "ok", response: { i } }));
      // leaving one frees a slot
      await new Promise((resolve) => channels[0].leave(3000).receive("ok", resolve).receive("timeout", resolve));
      await sleep(200);
      const again = await tryJoin(s.channel(`${base}:again`), 5000);
      assert.equal(again.status, "ok", `join after a leave: ${JSON.stringify(again)}`);
    });
  });
}

describe("WebSocket specifics", () => {
  test("raw heartbeat frame gets the exact phx_reply", T, async (t) => {
    const c = await rawWs(server, { token: alice.token });
    t.after(() => c.close());
    c.send([null, "1", "phoenix", "heartbeat", {}]);
    assert.deepEqual(await c.reply("1"), [null, "1", "phoenix", "phx_reply", { status: "ok", response: {} }]);
  });

  test("numeric refs come back as numbers, as Phoenix echoes them", T, async (t) => {
    const c = await rawWs(server, { token: alice.token });
    t.after(() => c.close());
    c.send([null, 7, "phoenix", "heartbeat", {}]);
    assert.deepEqual(await c.reply(7), [null, 7, "phoenix", "phx_reply", { status: "ok", response: {} }]);
    const tp = `echo:numref:${++topicSeq}`;
    c.send([3, 3, tp, "phx_join", {}]);
    const joined = await c.reply(3);
    assert.deepEqual([joined[0], joined[1], joined[4].status], [3, 3, "ok"]);
    c.send([3, 4, tp, "phx_leave", {}]);
    assert.deepEqual((await c.reply(4)).slice(0, 2), [3, 4]);
    const close = await c.next((m) => m[3] === "phx_close" && m[2] === tp, 3000, "phx_close");
    assert.deepEqual(close.slice(0, 2), [3, 3]);
  });

  test("binary frames: push kind 0 in, reply kind 1 and push kind 0 out, same bytes", T, async (t) => {
    const c = await rawWs(server, { token: alice.token });
    t.after(() => c.close());
    const tp = `echo:rawbin:${++topicSeq}`;
    const j = await c.join(tp, "1");
    assert.equal(j[4].status, "ok");
    const bytes = randomBytes(2048);
    c.sendRaw(encodeBinaryPush({ join_ref: "1", ref: "2", topic: tp, event: "binary", payload: bytes }));
    const reply = await c.next((m) => Buffer.isBuffer(m) && m[0] === 1, 3000, "binary reply frame");
    const r = decodeBinaryFrame(reply);
    assert.equal(r.kind, "reply");
    assert.equal(r.join_ref, "1");
    assert.equal(r.ref, "2");
    assert.equal(r.topic, tp);
    assert.equal(r.status, "ok");
    assert.deepEqual(r.payload, bytes);
    const pushed = await c.next((m) => Buffer.isBuffer(m) && m[0] === 0, 3000, "binary push frame");
    const pf = decodeBinaryFrame(pushed);
    assert.equal(pf.kind, "push");
    assert.equal(pf.topic, tp);
    assert.equal(pf.event, "binary_pushed");
    assert.deepEqual(pf.payload, bytes);
  });

  test("sub-protocol auth: the server selects a sub-protocol", T, async (t) => {
    const proto = `base64url.bearer.phx.${Buffer.from(alice.token).toString("base64").replace(/=/g, "")}`;
    const r = await rawWsAttempt(server, { protocols: ["phoenix", proto] });
    assert.equal(r.status, "open", `upgrade with the auth sub-protocol: ${r.status} ${r.statusCode ?? ""} ${r.error?.message ?? ""}`);
    t.after(() => r.client.close());
    assert.ok(["phoenix", proto].includes(r.client.ws.protocol), `selected protocol ${r.client.ws.protocol}`);
    const j = await r.client.join("echo:subproto", "1", { via: "subprotocol" });
    assert.equal(j[4].status, "ok");
  });

  test("check_origin: foreign Origin refused with 403, own origin and allow-listed origins accepted (a comma list with spaces)", { timeout: 30000 }, async (t) => {
    const evil = await rawWsAttempt(server, { token: alice.token, origin: "http://evil.example.com" });
    assert.equal(evil.status, "refused", `foreign origin: ${evil.status}`);
    assert.equal(evil.statusCode, 403);
    const own = await rawWsAttempt(server, { token: alice.token, origin: server.url });
    assert.equal(own.status, "open", `own origin ${server.url}: ${own.status} ${own.statusCode ?? ""}`);
    own.client.close();
    const other = await startServer({ env: { DUET_TEST_CHANNELS: "1", DUET_ALLOWED_ORIGINS: "https://allowed.example, http://also.example:8080" } });
    t.after(() => stopServer(other));
    const u = await signIn(other, "Origin");
    for (const origin of ["https://allowed.example", "http://also.example:8080", other.url]) {
      const r = await rawWsAttempt(other, { token: u.token, origin });
      assert.equal(r.status, "open", `allowed origin ${origin}: ${r.status} ${r.statusCode ?? ""}`);
      r.client.close();
    }
    const r = await rawWsAttempt(other, { token: u.token, origin: "https://not-allowed.example" });
    assert.equal(r.status, "refused");
    assert.equal(r.statusCode, 403);
  });
});

describe("long-poll specifics", () => {
  test("session lifecycle: 410 + token, 200 messages, POST 200, gone session 410; HTTP status always 200", T, async (t) => {
    const c = new RawLongPollClient(server, { token: alice.token });
    t.after(() => c.close());
    const first = await c.open();
    assert.equal(first.httpStatus, 200);
    assert.equal(first.json?.status, 410, first.text);
    assert.equal(typeof first.json.token, "string");
    const tp = `echo:lp:${++topicSeq}`;
    const postResult = await c.post(["1", "1", tp, "phx_join", {}], ["1", "2", tp, "ping", { x: 1 }]);
    assert.equal(postResult.status, 200, JSON.stringify(postResult));
    assert.deepEqual(await c.reply("1"), ["1", "1", tp, "phx_reply", { status: "ok", response: { topic: tp, params: {} } }]);
    assert.deepEqual(await c.reply("2"), ["1", "2", tp, "phx_reply", { status: "ok", response: { x: 1 } }]);
    // a binary push as a base64 ndjson line
    const bytes = randomBytes(64);
    const frame = encodeBinaryPush({ join_ref: "1", ref: "3", topic: tp, event: "binary", payload: bytes });
    assert.equal((await c.post(frame.toString("base64"))).status, 200);
    const br = await c.reply("3");
    assert.equal(br[4].status, "ok");
    assert.deepEqual(Buffer.from(br[4].response), bytes, "the binary reply, as its byte values");

    // an unknown session token: 410 (gone)
    const gone = await fetch(`${server.url}/socket/longpoll?vsn=2.0.0&token=${encodeURIComponent(alice.token)}&token=bogus-session`, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(15000),
    });
    assert.equal(gone.status, 200);
    const goneBody = await gone.json();
    assert.ok([410, 403].includes(goneBody.status), `unknown session: ${JSON.stringify(goneBody)}`);
  });
});
