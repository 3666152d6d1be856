// Bad input, limits, slow and abusive clients, graceful shutdown and restart.
// After each abuse a fresh, well-behaved client must still join and get replies.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { startServer, signIn, startWithUsers, stopServer, DUET_BIN } from "../lib/server.js";
import { SocketPool, join, push, countJoins, watchSocket, waitFor, sleep, connect, disconnect } from "../lib/phx.js";
import { rawWs, encodeBinaryPush, RawLongPollClient } from "../lib/raw.js";

const T = { timeout: 30000 };

let server;
let alice, bob, carol;
let seq = 0;

before(async () => {
  ({ server, alice, bob, carol } = await startWithUsers({ env: { DUET_TEST_CHANNELS: "1" } }, "Alice", "Bob", "Carol"));
});

after(() => stopServer(server));

/** A fresh phoenix.js client joins a new echo topic and gets a ping reply. */
async function assertHealthy(label, srv = server, user = bob) {
  const s = await connect(srv, user.token, { openTimeout: 5000 });
  try {
    const ch = s.channel(`echo:health:${++seq}`);
    await join(ch, 5000);
    const r = await push(ch, "ping", { healthy: label }, 5000);
    assert.deepEqual(r, { status: "ok", response: { healthy: label } }, `server unhealthy after ${label}`);
  } finally {
    await disconnect(s);
  }
}

/** A raw ws client joined to a fresh echo topic. */
async function rawJoined(user = alice) {
  const c = await rawWs(server, { token: user.token });
  const topic = `echo:raw:${++seq}`;
  const r = await c.join(topic, "1");
  assert.equal(r[4].status, "ok", `raw join: ${JSON.stringify(r)}`);
  return { c, topic };
}

describe("bad input on a raw WebSocket is survived", () => {
  const textCases = [
    ["invalid JSON", "not json {"],
    ["truncated JSON", '["1","2","echo:x","ping",{'],
    ["JSON object instead of array", '{"topic":"echo:x","event":"ping"}'],
    ["JSON string", '"hello"'],
    ["JSON number", "42"],
    ["empty array", "[]"],
    ["too short array", '["1","2","echo:x"]'],
    ["too long array", '["1","2","echo:x","ping",{},"extra"]'],
    ["numbers everywhere", "[1,2,3,4,5]"],
    ["nulls everywhere", "[null,null,null,null,null]"],
    ["object topic", '["1","2",{"t":1},"ping",{}]'],
    ["join with a string payload", '["9","9","echo:strpayload","phx_join","string"]'],
    ["join with an enormous topic", JSON.stringify(["9", "9", `echo:${"t".repeat(20000)}`, "phx_join", {}])],
    ["empty text frame", ""],
    ["JSON with a lone surrogate escape", '["1","2","echo:x","ping",{"s":"\\ud800"}]'],
  ];
  for (const [name, frame] of textCases) {
    test(`text: ${name}`, T, async (t) => {
      const { c } = await rawJoined();
      t.after(() => c.close());
      c.sendRaw(frame);
      await sleep(200);
      await assertHealthy(name);
    });
  }

  const binaryCases = [
    ["random bytes", () => randomBytes(1000)],
    ["push header with lengths past the end", () => Buffer.from([0, 255, 255, 255, 255, 1, 2, 3])],
    ["reply kind from a client", () => Buffer.from([1, 1, 1, 1, 1, 65, 66, 67, 68])],
    ["unknown kind", () => Buffer.from([9, 0, 0, 0])],
    ["single byte", () => Buffer.from([0])],
    ["empty binary frame", () => Buffer.alloc(0)],
    ["binary push with invalid UTF-8 topic", () => Buffer.concat([Buffer.from([0, 1, 1, 4, 4]), Buffer.from("11"), Buffer.from([0xff, 0xfe, 0xfd, 0xfc]), Buffer.from("ping")])],
  ];
  for (const [name, make] of binaryCases) {
    test(`binary: ${name}`, T, async (t) => {
      const { c } = await rawJoined();
      t.after(() => c.close());
      c.sendRaw(make());
      await sleep(200);
      await assertHealthy(name);
    });
  }

  test("a storm of mixed junk from many raw sockets", T, async (t) => {
    const clients = [];
    t.after(() => clients.forEach((c) => c.close()));
    for (let i = 0; i < 10; i++) {
      const { c, topic } = await rawJoined();
      clients.push(c);
      for (let k = 0; k < 20; k++) {
        const pick = (i + k) % 4;
        if (pick === 0) c.sendRaw(randomBytes(64 + k));
        else if (pick === 1) c.sendRaw(`[${"[".repeat(k)}`);
        else if (pick === 2) c.send(["1", String(100 + k), topic, `junk_${k}`, { k }]);
        else c.sendRaw(encodeBinaryPush({ join_ref: "1", ref: String(200 + k), topic, event: "binary", payload: randomBytes(k) }));
      }
    }
    await sleep(300);
    await assertHealthy("junk storm");
  });

  test("long-poll: junk ndjson lines are survived", T, async (t) => {
    const c = new RawLongPollClient(server, { token: alice.token });
    t.after(() => c.close());
    const opened = await c.open();
    assert.equal(opened.json?.status, 410, opened.text);
    const topic = `echo:lpjunk:${++seq}`;
    await c.post(["1", "1", topic, "phx_join", {}]);
    assert.equal((await c.reply("1"))[4].status, "ok");
    for (const junk of ["not json {", "[1,2]", "{}", "!!!not-base64!!!", Buffer.from([9, 9, 9]).toString("base64"), ""]) {
      await c.post(junk).catch(() => null);
    }
    await sleep(200);
    await assertHealthy("long-poll junk");
  });

  test("unknown event on a joined topic: error reply, the connection stays usable", T, async (t) => {
    const { c, topic } = await rawJoined();
    t.after(() => c.close());
    c.send(["1", "2", topic, "what_is_this", { a: 1 }]);
    assert.deepEqual(await c.reply("2"), ["1", "2", topic, "phx_reply", { status: "error", response: { reason: "unknown event" } }]);
    c.send(["1", "3", topic, "ping", { still: true }]);
    assert.deepEqual(await c.reply("3"), ["1", "3", topic, "phx_reply", { status: "ok", response: { still: true } }]);
  });
});

describe("frame size limit", () => {
  test("a frame just under 1 MiB is accepted", T, async (t) => {
    const { c, topic } = await rawJoined();
    t.after(() => c.close());
    const big = "y".repeat(1_000_000);
    c.send(["1", "2", topic, "ping", { big }]);
    const r = await c.reply("2", 10000);
    assert.equal(r[4].status, "ok");
    assert.equal(r[4].response.big.length, big.length);
  });

  for (const kind of ["text", "binary"]) {
    test(`a 2 MiB ${kind} frame closes the connection with 1009`, T, async (t) => {
      const { c, topic } = await rawJoined();
      t.after(() => c.close());
      if (kind === "text") {
        c.send(["1", "2", topic, "ping", { big: "z".repeat(2 * 1024 * 1024) }]);
      } else {
        c.sendRaw(encodeBinaryPush({ join_ref: "1", ref: "2", topic, event: "binary", payload: randomBytes(2 * 1024 * 1024) }));
      }
      const closed = await c.waitClosed(5000);
      assert.ok(closed, "the connection must be closed");
      assert.equal(closed.code, 1009, `close code (errors: ${c.errors.map((e) => e.message).join(", ")})`);
      await assertHealthy(`2 MiB ${kind} frame`);
    });
  }
});

describe("abusive clients", () => {
  test("a flood beyond the rate limit closes the flooder with 1008 while others keep getting replies", T, async (t) => {
    const p = new SocketPool();
    t.after(() => p.closeAll());
    const observer = await p.connect(server, bob.token);
    const och = observer.channel(`echo:observer:${++seq}`);
    await join(och);

    const { c: flooder, topic } = await rawJoined(alice);
    t.after(() => flooder.close());

    let observing = true;
    const results = [];
    const observe = (async () => {
      let i = 0;
      while (observing) {
        const started = Date.now();
        const r = await push(och, "ping", { i }, 3000);
        results.push({ ok: r.status === "ok" && r.response?.i === i, ms: Date.now() - started, status: r.status });
        i++;
        await sleep(20);
      }
    })();

    for (let i = 0; i < 5000 && flooder.isOpen; i++) {
      flooder.send(["1", String(i + 10), topic, "ping", { i }]);
    }
    const closed = await flooder.waitClosed(10000);
    await sleep(500);
    observing = false;
    await observe;

    assert.ok(closed, "the flooder must be disconnected");
    assert.equal(closed.code, 1008, `flooder close code`);
    const replies = flooder.messages.filter((m) => Array.isArray(m) && m[3] === "phx_reply").length;
    assert.ok(replies < 5000, `the flooder must not have been served all 5000 messages (got ${replies} replies)`);
    assert.ok(results.length >= 5, `observer pings during the flood: ${results.length}`);
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed, [], "every observer ping got its reply");
    await assertHealthy("rate-limit flood");
  });

  test("a client that never reads is disconnected; the server keeps serving others", { timeout: 90000 }, async (t) => {
    const FLOODERS = 5;
    const PER_FLOODER = 640; // 3200 broadcasts in all
    const PAYLOAD = "p".repeat(64 * 1024); // 64 KiB each: ~200 MiB for the slow client
    const p = new SocketPool();
    t.after(() => p.closeAll());

    // the slow client joins one topic per flooder, then stops reading
    const slow = await rawWs(server, { token: carol.token });
    t.after(() => slow.close());
    const topics = [];
    for (let i = 0; i < FLOODERS; i++) {
      const topic = `echo:slow:${++seq}`;
      topics.push(topic);
      const r = await slow.join(topic, String(i + 1));
      assert.equal(r[4].status, "ok");
    }
    let slowBroadcasts = 0;
    slow.ws.on("message", () => slowBroadcasts++);
    slow.ws._socket.pause();

    const observer = await p.connect(server, bob.token);
    const och = observer.channel(`echo:observer:${++seq}`);
    await join(och);

    const flooders = [];
    for (let i = 0; i < FLOODERS; i++) {
      const f = await rawWs(server, { token: alice.token });
      t.after(() => f.close());
      const r = await f.join(topics[i], "1");
      assert.equal(r[4].status, "ok");
      flooders.push(f);
    }
    const before = slowBroadcasts;

    // stay under each flooder's rate limit: a burst, then ~150 messages/s
    let sent = 0;
    const floodOne = async (f, topic) => {
      for (let k = 0; k < PER_FLOODER && f.isOpen; k++) {
        f.send(["1", String(k + 10), topic, "broadcast_from", { k, data: PAYLOAD }]);
        sent++;
        if (k >= 300 && k % 15 === 0) await sleep(100);
        else if (k % 50 === 0) await new Promise((r) => setImmediate(r));
      }
    };
    const observed = [];
    let observing = true;
    const observe = (async () => {
      let i = 0;
      while (observing) {
        const r = await push(och, "ping", { i }, 5000);
        observed.push(r.status === "ok" && r.response?.i === i);
        i++;
        await sleep(50);
      }
    })();
    await Promise.all(flooders.map((f, i) => floodOne(f, topics[i])));
    await sleep(2000);
    observing = false;
    await observe;

    assert.ok(flooders.every((f) => f.isOpen), "the flooders stayed under the rate limit and must not be closed");
    assert.ok(observed.length >= 3 && observed.every(Boolean), `observer pings during the flood: ${JSON.stringify(observed)}`);

    // now read what the server still had for the slow client: it must end with a close,
    // not with every broadcast
    slow.ws._socket.resume();
    const closed = await slow.waitClosed(30000);
    const got = slowBroadcasts - before;
    assert.ok(closed, `the never-reading client must have been disconnected (it received ${got} of ${sent} broadcasts and is still open)`);
    assert.ok(got < sent, `the slow client must not get every broadcast (${got} of ${sent})`);
    await assertHealthy("never-reading client");
  });
});

describe("idle timeout", () => {
  test("a silent socket is closed after the idle timeout; a heartbeating one is not", { timeout: 30000 }, async (t) => {
    const srv = await startServer({ env: { DUET_TEST_CHANNELS: "1", DUET_IDLE_TIMEOUT_SECS: "2" } });
    t.after(() => stopServer(srv));
    const u = await signIn(srv, "Idle");
    const silent = await rawWs(srv, { token: u.token });
    const chatty = await rawWs(srv, { token: u.token });
    t.after(() => {
      silent.close();
      chatty.close();
    });
    let ref = 0;
    const beat = setInterval(() => chatty.send([null, `hb${++ref}`, "phoenix", "heartbeat", {}]), 500);
    t.after(() => clearInterval(beat));
    const started = Date.now();
    const closed = await silent.waitClosed(8000);
    const took = Date.now() - started;
    assert.ok(closed, "the silent socket must be closed");
    assert.ok(took >= 1500, `closed too early: ${took} ms`);
    await sleep(1500);
    assert.ok(chatty.isOpen, "a socket that sends heartbeats stays open");
    chatty.send([null, "last", "phoenix", "heartbeat", {}]);
    assert.equal((await chatty.reply("last"))[4].status, "ok");
  });
});

describe("graceful shutdown and restart", () => {
  test("a second server on the same data dir stops with a clear message; the first goes on", { timeout: 30000 }, async (t) => {
    const srv = await startServer();
    t.after(() => stopServer(srv));
    await signIn(srv, "Before");
    const second = spawnSync(DUET_BIN, [], {
      env: { ...process.env, DUET_ADDR: "127.0.0.1:0", DUET_DATA_DIR: srv.dataDir, RUST_BACKTRACE: "0" },
      encoding: "utf8",
      timeout: 15000,
    });
    assert.equal(second.status, 1, second.stderr);
    assert.match(second.stderr, /another duet server \(pid \d+\) is using the data dir/, second.stderr);
    assert.ok(second.stderr.trim().split("\n").length <= 2, `a short message: ${second.stderr}`);
    assert.equal((await signIn(srv, "After")).user.first_name, "After");
  });

  test("SIGTERM closes sockets with 1001; after a restart on the same port phoenix.js reconnects and rejoins", { timeout: 60000 }, async (t) => {
    let srv = await startServer({ env: { DUET_TEST_CHANNELS: "1" } });
    const dataDir = srv.dataDir;
    t.after(() => stopServer(srv));
    const u = await signIn(srv, "Restart");
    const p = new SocketPool();
    t.after(() => p.closeAll());
    const opts = { reconnectAfterMs: () => 200, rejoinAfterMs: () => 300 };
    const ws = await p.connect(srv, u.token, { transport: "websocket", ...opts });
    const lp = await p.connect(srv, u.token, { transport: "longpoll", ...opts });
    const [wws, wlp] = [watchSocket(ws), watchSocket(lp)];
    const cws = ws.channel("echo:restart:ws");
    const clp = lp.channel("echo:restart:lp");
    const [jws, jlp] = [countJoins(cws), countJoins(clp)];
    await Promise.all([join(cws), join(clp)]);

    const stopping = Date.now();
    await srv.stop();
    const stopMs = Date.now() - stopping;
    assert.equal(srv.proc.signalCode, null, "the server must exit by itself on SIGTERM, not die of it");
    await waitFor(() => wws.closes.length >= 1, { timeout: 5000, message: "WebSocket close on shutdown" });
    assert.equal(wws.closes[0].code, 1001, `WebSocket close code on shutdown: ${JSON.stringify(wws.closes)}`);
    assert.ok(stopMs < 5000, `a graceful shutdown with nothing to flush must not stall: it took ${stopMs} ms`);

    srv = await startServer({ port: srv.port, dataDir, env: { DUET_TEST_CHANNELS: "1" } });
    await waitFor(() => jws.ok >= 2, { timeout: 15000, message: "WebSocket channel rejoined after restart" });
    await waitFor(() => jlp.ok >= 2, { timeout: 25000, message: "long-poll channel rejoined after restart" });
    assert.deepEqual(await push(cws, "ping", { after: "restart" }), { status: "ok", response: { after: "restart" } });
    assert.deepEqual(await push(clp, "ping", { after: "restart" }), { status: "ok", response: { after: "restart" } });
    assert.ok(wlp.closes.length >= 1 || wlp.errors.length >= 1, "the long-poll socket noticed the restart");
  });
});
