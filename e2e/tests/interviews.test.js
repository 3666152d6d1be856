// Interviews (CONTRACT §6) with the real phoenix client and y-phoenix-channel:
// roles from the join (the creator, the interviewer key, everyone else), a
// wrong key refused, the controls (HTTP 200 for interviewers, 403 for
// candidates), every edit path refused while locked or ended (over WebSocket
// and long-poll), challenge:updated reaching everyone, the private notes out
// of every byte a candidate's socket receives, a restart keeping it all, and
// the integrity signals going to the interviewers only.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import * as encoding from "lib0/encoding";
import * as syncProtocol from "@y/protocols/sync";
import { startServer, signIn, createChallenge, startWithUsers, stopServer } from "../lib/server.js";
import { SocketPool, join, tryJoin, push, collect, waitFor, sleep, arrayBufferOf, bytesOf, poolFor, TRANSPORT_NAMES } from "../lib/phx.js";
import { trackPresence } from "../lib/presence.js";
import { api } from "../lib/http.js";
import { Y, PhoenixChannelProvider, waitSynced, closeProvider, syncUpdateMessage } from "../lib/yjs.js";

const T = { timeout: 30000 };
const READ_ONLY = { status: "error", response: { reason: "read only" } };
const FORBIDDEN = { status: "error", response: { reason: "forbidden" } };

let server;
let alice, bob, carol, dave; // alice creates; bob holds the key; carol and dave are candidates

before(async () => {
  ({ server, alice, bob, carol, dave } = await startWithUsers({}, "Alice", "Bob", "Carol", "Dave"));
});

after(() => stopServer(server));

/** A new challenge of Alice's and its interviewer key. */
async function interview(srv = server, owner = alice) {
  const res = await api(srv, "POST", "/api/challenges", { token: owner.token, body: { title: "Interview", prompt: "Two sum", language: "python" } });
  assert.equal(res.status, 201, res.text);
  assert.ok(res.body.interviewer_key, "the creator gets the key");
  return { id: res.body.challenge.id, key: res.body.interviewer_key, challenge: res.body.challenge };
}

const control = (user, id, what, body, srv = server) =>
  api(srv, "POST", `/api/challenges/${id}/${what}`, { token: user && user.token, body });

/** `user` in challenges:<id> with `params`, recording challenge:updated, activity and presence. */
async function enter(p, user, id, { params = {}, transport = "websocket", srv = server } = {}) {
  const socket = await p.connect(srv, user.token, { transport });
  const channel = socket.channel(`challenges:${id}`, params);
  const updated = collect(channel, "challenge:updated");
  const activity = collect(channel, "activity");
  const pres = trackPresence(channel);
  const response = await join(channel);
  return { socket, channel, updated, activity, pres, response };
}

/**
 * Every message `socket` receives, as text (JSON) and as bytes (binary
 * payloads; over long-poll the server sends them as arrays of byte values).
 */
function recordEverything(socket) {
  const seen = [];
  const isBytes = (v) => Array.isArray(v) && v.every((n) => Number.isInteger(n) && n >= 0 && n < 256);
  socket.onMessage((msg) => {
    const { payload } = msg;
    if (payload instanceof ArrayBuffer || ArrayBuffer.isView(payload)) seen.push(Buffer.from(bytesOf(payload)));
    else if (isBytes(payload)) seen.push(Buffer.from(payload));
    else if (isBytes(payload?.response)) seen.push(Buffer.from(payload.response));
    seen.push(JSON.stringify(msg));
  });
  return seen;
}

/** A y-protocols sync step 2 carrying `update`. */
function syncStep2Message(update) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, 0);
  syncProtocol.writeSyncStep2(enc, docWith(update));
  return encoding.toUint8Array(enc);
}
function docWith(update) {
  const d = new Y.Doc();
  Y.applyUpdate(d, update);
  return d;
}

/** An update inserting `text` into an empty answer, by a client of its own. */
function insertUpdate(text) {
  const d = new Y.Doc();
  d.getText("response").insert(0, text);
  return Y.encodeStateAsUpdate(d);
}

async function answerOf(id, user = alice, srv = server) {
  const r = await api(srv, "GET", `/api/challenges/${id}`, { token: user.token });
  assert.equal(r.status, 200, r.text);
  return r.body.challenge;
}

/**
 * Every edit path of a member in `id` (on `transport`): response:update, a
 * yjs update, a yjs sync step 2. Resolves to their three replies.
 */
async function tryEveryEdit(p, user, id, { params = {}, transport = "websocket", marker = "refused" } = {}) {
  const m = await enter(p, user, id, { params, transport });
  const legacy = await push(m.channel, "response:update", { response: `${marker} legacy` });
  const update = await push(m.channel, "yjs", arrayBufferOf(syncUpdateMessage(insertUpdate(`${marker} update`))));
  const step2 = await push(m.channel, "yjs", arrayBufferOf(syncStep2Message(insertUpdate(`${marker} step 2`))));
  return { m, legacy, update, step2 };
}

describe("roles", () => {
  test("the creator and whoever holds the key are interviewers, anyone else a candidate; presence says so", T, async (t) => {
    const p = poolFor(t);
    const { id, key } = await interview();
    const a = await enter(p, alice, id);
    assert.equal(a.response.role, "interviewer");
    assert.equal(a.response.interviewer_key, key);
    const b = await enter(p, bob, id, { params: { key }, transport: "longpoll" });
    assert.equal(b.response.role, "interviewer");
    assert.equal(b.response.interviewer_key, key);
    const c = await enter(p, carol, id);
    assert.deepEqual(Object.keys(c.response), ["challenge"], "a candidate's join reply is {challenge} alone (the role is in presence)");
    assert.ok(!("interviewer_key" in c.response), "no key for a candidate");
    assert.ok(!JSON.stringify(c.response).includes(key), "the key is nowhere in a candidate's join reply");
    // Everyone's presence shows the roles.
    for (const m of [a, b, c]) {
      await waitFor(() => m.pres.list().length === 3, { message: "three present" });
      const role = (u) => m.pres.byKey(u.user.id).metas[0].role;
      assert.deepEqual([role(alice), role(bob), role(carol)], ["interviewer", "interviewer", "candidate"]);
    }
    // A challenge object never holds the key, not even the creator's
    // (POST /api/challenges gives it beside the challenge).
    for (const u of [alice, bob, carol]) assert.ok(!("interviewer_key" in (await answerOf(id, u))), `${u.user.first_name} reads no key`);
  });

  test("a wrong key is forbidden, on the answer and on the notes; candidates cannot join the notes", T, async (t) => {
    const p = poolFor(t);
    const { id, key } = await interview();
    const other = await interview();
    const s = await p.connect(server, carol.token);
    for (const params of [{ key: "wrong" }, { key: other.key }, { key: key.slice(0, -1) }, { key: `${key}x` }]) {
      assert.deepEqual(await tryJoin(s.channel(`challenges:${id}`, params)), FORBIDDEN, JSON.stringify(params));
      assert.deepEqual(await tryJoin(s.channel(`notes:${id}`, params)), FORBIDDEN, `notes ${JSON.stringify(params)}`);
    }
    assert.deepEqual(await tryJoin(s.channel(`notes:${id}`, {})), FORBIDDEN, "a candidate without a key");
    // Even the creator presenting a wrong key is refused (a key is checked when given).
    const sa = await p.connect(server, alice.token);
    assert.deepEqual(await tryJoin(sa.channel(`challenges:${id}`, { key: "wrong" })), FORBIDDEN);
    assert.equal((await tryJoin(sa.channel(`notes:${id}`, {}))).status, "ok", "the creator joins the notes");
    const sb = await p.connect(server, bob.token, { transport: "longpoll" });
    assert.equal((await tryJoin(sb.channel(`notes:${id}`, { key }))).status, "ok", "a key holder joins the notes");
  });
});

describe("controls", () => {
  test("lock, unlock, Run on/off, end: 200 for interviewers (the creator without the key), 403 for anyone else", T, async (t) => {
    const { id, key } = await interview();
    const other = await interview();
    assert.equal((await control(null, id, "lock", { key })).status, 401, "no token");
    for (const [what, body, field, value] of [
      ["lock", {}, "locked", true],
      ["unlock", {}, "locked", false],
      ["run", { enabled: false }, "run_enabled", false],
      ["run", { enabled: true }, "run_enabled", true],
    ]) {
      for (const [who, b] of [[carol, {}], [carol, { key: "wrong" }], [carol, { key: other.key }], [bob, {}]]) {
        const r = await control(who, id, what, { ...body, ...b });
        assert.equal(r.status, 403, `${who.user.first_name} ${what} ${JSON.stringify(b)}: ${r.text}`);
      }
      const byKey = await control(bob, id, what, { ...body, key });
      assert.equal(byKey.status, 200, `${what} with the key: ${byKey.text}`);
      assert.equal(byKey.body.challenge[field], value);
      const byCreator = await control(alice, id, what, body);
      assert.equal(byCreator.status, 200, `${what} by the creator: ${byCreator.text}`);
      assert.equal((await answerOf(id))[field], value);
    }
    assert.equal((await control(alice, id, "run", {})).status, 422, "run without enabled");
    assert.equal((await control(carol, id, "end", {})).status, 403);
    const live = await answerOf(id);
    assert.equal(live.status, "live");
    assert.equal(live.ended_at, null);
    const end = await control(bob, id, "end", { key });
    assert.equal(end.status, 200, end.text);
    assert.equal(end.body.challenge.status, "ended");
    assert.match(end.body.challenge.ended_at, /^\d{4}-\d\d-\d\dT/);
    const ended = await answerOf(id, carol);
    assert.equal(ended.status, "ended");
  });

  test("challenge:updated reaches every member on both transports, without the key", T, async (t) => {
    const p = poolFor(t);
    const { id, key } = await interview();
    const members = [
      await enter(p, alice, id),
      await enter(p, bob, id, { params: { key }, transport: "longpoll" }),
      await enter(p, carol, id),
      await enter(p, dave, id, { transport: "longpoll" }),
    ];
    const steps = [
      ["lock", {}, (c) => c.locked === true],
      ["run", { enabled: false }, (c) => c.run_enabled === false],
      ["unlock", {}, (c) => c.locked === false],
      ["end", {}, (c) => c.status === "ended" && !!c.ended_at],
    ];
    for (const [i, [what, body, check]] of steps.entries()) {
      assert.equal((await control(alice, id, what, body)).status, 200);
      for (const m of members) {
        const got = await waitFor(() => m.updated[i], { message: `${what} reaches a member` });
        assert.ok(check(got.challenge), `${what}: ${JSON.stringify(got)}`);
        assert.equal(got.challenge.id, id);
        assert.ok(!JSON.stringify(got).includes(key), "no key in challenge:updated");
      }
    }
  });

  test("Run: refused while off ('run is off') and once ended ('interview ended')", T, async (t) => {
    const p = poolFor(t);
    const { id } = await interview();
    const c = await enter(p, carol, id);
    await control(alice, id, "run", { enabled: false });
    assert.deepEqual(await push(c.channel, "run:start", { code: "print(1)", stdin: "" }), { status: "error", response: { reason: "run is off" } });
    await control(alice, id, "run", { enabled: true });
    const ok = await push(c.channel, "run:start", { code: "print(1)", stdin: "" });
    assert.equal(ok.status, "ok", JSON.stringify(ok));
    await push(c.channel, "run:exit", { run_id: ok.response.run_id, exit: 0, wall_ms: 1, timed_out: false, truncated: false });
    await control(alice, id, "end", {});
    assert.deepEqual(await push(c.channel, "run:start", { code: "print(1)", stdin: "" }), { status: "error", response: { reason: "interview ended" } });
  });
});

describe("refused edits", () => {
  for (const transport of TRANSPORT_NAMES) {
    test(`over ${transport}: locked, a candidate's response:update, yjs update and sync step 2 are "read only" and change nothing; an interviewer still edits`, T, async (t) => {
      const p = poolFor(t);
      const { id, key } = await interview();
      // An interviewer with a provider: sees whatever the room relays.
      const sa = await p.connect(server, alice.token);
      const A = { doc: new Y.Doc() };
      A.provider = new PhoenixChannelProvider(sa, `challenges:${id}`, A.doc, { disableBc: true });
      t.after(() => closeProvider(A));
      await waitSynced(A.provider);
      const before = await tryEveryEdit(p, carol, id, { transport, marker: "allowed" });
      for (const r of [before.legacy, before.update, before.step2]) assert.equal(r.status, "ok", JSON.stringify(r));
      const textBefore = (await answerOf(id)).response;

      assert.equal((await control(alice, id, "lock", {})).status, 200);
      const locked = await tryEveryEdit(p, carol, id, { transport, marker: "LOCKED-CANDIDATE" });
      assert.deepEqual(locked.legacy, READ_ONLY);
      assert.deepEqual(locked.update, READ_ONLY);
      assert.deepEqual(locked.step2, READ_ONLY);
      // An interviewer (the key, on this transport) still edits.
      const by = await tryEveryEdit(p, bob, id, { params: { key }, transport, marker: "interviewer" });
      for (const r of [by.legacy, by.update, by.step2]) assert.equal(r.status, "ok", JSON.stringify(r));
      await sleep(300);
      const textLocked = (await answerOf(id)).response;
      assert.ok(!textLocked.includes("LOCKED-CANDIDATE"), textLocked);
      for (const part of ["interviewer legacy", "interviewer update", "interviewer step 2"]) assert.ok(textLocked.includes(part), textLocked);
      assert.ok(!A.doc.getText("response").toString().includes("LOCKED-CANDIDATE"), "nothing refused was relayed");
      assert.ok(textBefore.length > 0);

      // Unlocked, the candidate edits again.
      assert.equal((await control(alice, id, "unlock", {})).status, 200);
      const again = await tryEveryEdit(p, carol, id, { transport, marker: "unlocked" });
      for (const r of [again.legacy, again.update, again.step2]) assert.equal(r.status, "ok", JSON.stringify(r));

      // Ended: nobody edits, interviewers included.
      assert.equal((await control(alice, id, "end", {})).status, 200);
      const final = (await answerOf(id)).response;
      for (const [u, params] of [[carol, {}], [bob, { key }], [alice, {}]]) {
        const r = await tryEveryEdit(p, u, id, { params, transport, marker: "AFTER-END" });
        assert.deepEqual([r.legacy, r.update, r.step2], [READ_ONLY, READ_ONLY, READ_ONLY], u.user.first_name);
      }
      await sleep(300);
      assert.equal((await answerOf(id)).response, final);
      assert.ok(!A.doc.getText("response").toString().includes("AFTER-END"));
    });
  }

  test("y-phoenix-channel: a locked candidate's provider edit is refused and never reaches the others", T, async (t) => {
    const p = poolFor(t);
    const { id } = await interview();
    // (y-phoenix-channel reads binary payloads only over WebSocket: long-poll sends them as base64 JSON.)
    const [sa, sc] = [await p.connect(server, alice.token), await p.connect(server, carol.token)];
    const A = { doc: new Y.Doc() };
    A.provider = new PhoenixChannelProvider(sa, `challenges:${id}`, A.doc, { disableBc: true });
    const C = { doc: new Y.Doc() };
    C.provider = new PhoenixChannelProvider(sc, `challenges:${id}`, C.doc, { disableBc: true });
    t.after(() => [A, C].forEach(closeProvider));
    await Promise.all([waitSynced(A.provider), waitSynced(C.provider)]);
    C.doc.getText("response").insert(0, "ok ");
    await waitFor(() => A.doc.getText("response").toString() === "ok ", { message: "the candidate's edit" });
    await control(alice, id, "lock", {});
    const replies = [];
    const origPush = C.provider.channel.push.bind(C.provider.channel);
    C.provider.channel.push = (event, payload, timeout) => {
      const pushed = origPush(event, payload, timeout);
      if (event === "yjs") pushed.receive("error", (r) => replies.push(r));
      return pushed;
    };
    C.doc.getText("response").insert(3, "refused");
    await waitFor(() => replies.some((r) => r.reason === "read only"), { message: "read only reply" });
    await sleep(300);
    assert.equal(A.doc.getText("response").toString(), "ok ");
    assert.equal((await answerOf(id)).response, "ok ");
  });
});

describe("private notes", () => {
  test("interviewers share them; a candidate's socket never receives a byte of them, nor its exports", T, async (t) => {
    const p = poolFor(t);
    const { id, key } = await interview();
    const MARKER = `NOTES-${Math.random().toString(36).slice(2)}-MARKER`;
    // Candidates on both transports, recording every message from before anything is written.
    const cs = await p.connect(server, carol.token);
    const cl = await p.connect(server, dave.token, { transport: "longpoll" });
    const carolSeen = recordEverything(cs);
    const daveSeen = recordEverything(cl);
    const wsFrames = [];
    cs.conn.on("message", (data) => wsFrames.push(Buffer.from(data)));
    await join(cs.channel(`challenges:${id}`, {}));
    await join(cl.channel(`challenges:${id}`, {}));
    assert.deepEqual(await tryJoin(cs.channel(`notes:${id}`, {})), FORBIDDEN);
    assert.deepEqual(await tryJoin(cl.channel(`notes:${id}`, { key: "guess" })), FORBIDDEN);

    // Alice (creator) and Bob (with the key) write notes to each other.
    const [sa, sb] = [await p.connect(server, alice.token), await p.connect(server, bob.token)];
    const A = { doc: new Y.Doc() };
    A.provider = new PhoenixChannelProvider(sa, `notes:${id}`, A.doc, { disableBc: true });
    const B = { doc: new Y.Doc() };
    B.provider = new PhoenixChannelProvider(sb, `notes:${id}`, B.doc, { params: { key }, disableBc: true });
    t.after(() => [A, B].forEach(closeProvider));
    await Promise.all([waitSynced(A.provider), waitSynced(B.provider)]);
    A.doc.getText("notes").insert(0, `Carol pasted the loop. ${MARKER}`);
    await waitFor(() => B.doc.getText("notes").toString().includes(MARKER), { message: "Bob sees Alice's note" });
    B.doc.getText("notes").insert(0, "Bob: ");
    await waitFor(() => A.doc.getText("notes").toString().startsWith("Bob: "), { message: "Alice sees Bob's" });
    // The answer is another document.
    assert.ok(!(await answerOf(id)).response.includes(MARKER));
    await sleep(500);

    // After the end, the candidates may read the timeline and export: no notes there either.
    await control(alice, id, "end", {});
    for (const u of [carol, dave]) {
      for (const what of ["timeline", "export"]) {
        const r = await api(server, "GET", `/api/challenges/${id}/${what}`, { token: u.token });
        assert.equal(r.status, 200, r.text);
        assert.ok(!r.text.includes(MARKER), `${what} has no notes`);
        assert.ok(!r.text.includes(key), `${what} has no key`);
      }
    }
    await sleep(300);
    const needle = Buffer.from(MARKER);
    for (const [who, seen] of [["carol (websocket)", carolSeen], ["dave (long-poll)", daveSeen]]) {
      assert.ok(seen.length > 3, `${who} received messages`);
      for (const m of seen) {
        if (Buffer.isBuffer(m)) assert.equal(m.indexOf(needle), -1, `${who}: a binary payload holds the notes`);
        else assert.ok(!m.includes(MARKER), `${who}: ${m.slice(0, 200)}`);
      }
    }
    assert.ok(wsFrames.length > 3);
    for (const f of wsFrames) assert.equal(f.indexOf(needle), -1, "a WebSocket frame holds the notes");
  });
});

describe("restart", () => {
  test("a restart keeps the lock, Run off, the end and the notes", T, async (t) => {
    let srv = await startServer();
    const dataDir = srv.dataDir;
    t.after(async () => {
      await srv.stop();
      srv.cleanup();
    });
    const pool = new SocketPool();
    const owner = await signIn(srv, "Alice");
    const cand = await signIn(srv, "Carol");
    const { id } = await interview(srv, owner);
    const MARKER = "kept across restarts";
    {
      const s = await pool.connect(srv, owner.token);
      const notes = s.channel(`notes:${id}`, {});
      await join(notes);
      const d = new Y.Doc();
      let update;
      d.on("update", (u) => (update = u));
      d.getText("notes").insert(0, MARKER);
      assert.equal((await push(notes, "yjs", arrayBufferOf(syncUpdateMessage(update)))).status, "ok", "the note is durable");
      assert.equal((await control(owner, id, "lock", {}, srv)).status, 200);
      assert.equal((await control(owner, id, "run", { enabled: false }, srv)).status, 200);
      await pool.closeAll();
    }
    const restart = async () => {
      await srv.stop();
      srv = await startServer({ dataDir, port: srv.port });
    };
    await restart();
    {
      const s = await pool.connect(srv, cand.token);
      const ch = s.channel(`challenges:${id}`, {});
      const response = await join(ch);
      assert.ok(!("role" in response), "a candidate's join reply has no role");
      assert.equal(response.challenge.locked, true);
      assert.equal(response.challenge.run_enabled, false);
      assert.equal(response.challenge.status, "live");
      assert.deepEqual(await push(ch, "response:update", { response: "while locked" }), READ_ONLY);
      assert.deepEqual(await push(ch, "run:start", { code: "print(1)", stdin: "" }), { status: "error", response: { reason: "run is off" } });
    }
    await pool.closeAll();
    {
      const s = await pool.connect(srv, owner.token);
      const N = { doc: new Y.Doc() };
      N.provider = new PhoenixChannelProvider(s, `notes:${id}`, N.doc, { disableBc: true });
      await waitSynced(N.provider);
      assert.equal(N.doc.getText("notes").toString(), MARKER);
      closeProvider(N);
      assert.equal((await control(owner, id, "end", {}, srv)).status, 200);
    }
    await pool.closeAll();
    const endedAt = (await answerOf(id, owner, srv)).ended_at;
    await restart();
    const again = await answerOf(id, owner, srv);
    assert.equal(again.status, "ended");
    assert.equal(again.ended_at, endedAt);
    const s = await pool.connect(srv, owner.token);
    const ch = s.channel(`challenges:${id}`, {});
    await join(ch);
    assert.deepEqual(await push(ch, "response:update", { response: "after the end" }), READ_ONLY);
    await pool.closeAll();
  });
});

describe("integrity signals", () => {
  test("pastes, away and back reach the interviewers only, live and on the timeline", T, async (t) => {
    const p = poolFor(t);
    const { id, key } = await interview();
    const a = await enter(p, alice, id);
    const b = await enter(p, bob, id, { params: { key }, transport: "longpoll" });
    const c = await enter(p, carol, id);
    const d = await enter(p, dave, id, { transport: "longpoll" });
    assert.deepEqual(await push(c.channel, "paste", {}), { status: "error", response: { reason: "chars must be a number" } });
    for (const [event, payload] of [["paste", { chars: 42 }], ["away", {}], ["back", {}]]) {
      assert.equal((await push(c.channel, event, payload)).status, "ok", event);
    }
    for (const m of [a, b]) {
      await waitFor(() => m.activity.length === 3, { message: "three signals for an interviewer" });
      assert.deepEqual(
        m.activity.map(({ user_id, first_name, kind, chars }) => ({ user_id, first_name, kind, chars })),
        [
          { user_id: carol.user.id, first_name: "Carol", kind: "paste", chars: 42 },
          { user_id: carol.user.id, first_name: "Carol", kind: "away", chars: undefined },
          { user_id: carol.user.id, first_name: "Carol", kind: "back", chars: undefined },
        ],
      );
      for (const s of m.activity) assert.match(s.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    await sleep(500);
    assert.deepEqual(c.activity, [], "the candidate is not sent signals");
    assert.deepEqual(d.activity, [], "nor is any other candidate");
    // The timeline has them (interviewers now; candidates only once ended).
    assert.equal((await api(server, "GET", `/api/challenges/${id}/timeline`, { token: carol.token })).status, 403);
    const tl = await api(server, "GET", `/api/challenges/${id}/timeline?key=${encodeURIComponent(key)}`, { token: bob.token });
    assert.equal(tl.status, 200, tl.text);
    const signals = tl.body.events.filter((e) => ["paste", "away", "back"].includes(e.kind));
    assert.deepEqual(signals.map((e) => [e.kind, e.user_id, e.chars]), [["paste", carol.user.id, 42], ["away", carol.user.id, undefined], ["back", carol.user.id, undefined]]);
  });
});
